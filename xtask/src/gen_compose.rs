//! `cargo xtask gen-compose`: writes a factory's `docker-compose.yml` from that factory's
//! settings, or with `--check` fails with a diff when a committed file is stale.
//!
//! Which `.env` applies is compose's rule: the one in the compose file's directory (compose's
//! project directory is the directory of its first `-f` file). So `--output
//! /srv/factory/docker-compose.yml` reads `/srv/factory/.env`, the settings compose will run
//! that file with, never the checkout's; without `--output` the file and its `.env` are the
//! checkout's. The process environment comes first, as always.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use disinto::factory::{COMPOSE_FILE, DOTENV_FILE};
use disinto::fsx::{self, Written};
use disinto::model::compose::{generate, ComposeInput, AGENTS_DOCKERFILE};
use disinto::model::config::{Environment, FactoryConfig, Settings};
use disinto::model::image_ref::AgentsImage;
use similar::{Algorithm, DiffTag};

use crate::Checkout;

/// `cargo xtask gen-compose`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenCompose {
    /// Where to write the file; the .env beside it applies [default: docker-compose.yml at the
    /// repository root]
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write nothing; exit 1 with a diff when FILE differs from what would be generated
    #[arg(long)]
    pub check: bool,
}

impl GenCompose {
    pub fn run(self, checkout: &Checkout) -> Result<()> {
        self.run_with(checkout, Environment::current())
    }

    /// [`GenCompose::run`] with `process` as the process environment.
    pub fn run_with(self, checkout: &Checkout, process: Environment) -> Result<()> {
        let output = self
            .output
            .unwrap_or_else(|| checkout.root().join(COMPOSE_FILE));
        let dir = settings_dir(&output)?;
        let config = FactoryConfig::from_settings(&Settings::load_with(&dir, process)?)?;
        let input = ComposeInput::from(&config);
        let text = generate(&input)?;
        if self.check {
            return check(&output, &text);
        }
        let verb = match fsx::write_if_changed(&output, &text)? {
            Written::Generated => "Generated",
            Written::Unchanged => "Unchanged",
        };
        let dotenv = dir.join(DOTENV_FILE);
        let settings = match dotenv.is_file() {
            true => format!("settings from the environment and {}", dotenv.display()),
            false => format!("no {}: settings from the environment", dotenv.display()),
        };
        eprintln!("{verb} {} ({}; {settings})", output.display(), input.agents);
        // Dev mode builds from the compose file's directory: where that holds no sources, the
        // file only works with `--project-directory CHECKOUT`, which is worth a line.
        if config.agents == AgentsImage::Dev && !dir.join(AGENTS_DOCKERFILE).is_file() {
            eprintln!(
                "warning: dev mode, but {} has no {AGENTS_DOCKERFILE} to build: set AGENTS_IMAGE \
                 in {} to pin a release",
                dir.display(),
                dotenv.display()
            );
        }
        Ok(())
    }
}

/// The directory whose `.env` applies to a compose file at `output`: the file's own, as
/// compose takes it for the project directory (the absolute path's directory, symlinks not
/// followed; a relative path is relative to the working directory, where the file is written).
fn settings_dir(output: &Path) -> Result<PathBuf> {
    let absolute = std::path::absolute(output)
        .with_context(|| format!("cannot resolve {}", output.display()))?;
    match absolute.parent() {
        Some(dir) => Ok(dir.to_path_buf()),
        None => bail!("{} names no file", output.display()),
    }
}

/// How long `--check` may spend aligning lines. Past it, similar gives up the search and
/// lists what is left as removed, then added: a huge drifted file costs this much time at
/// most, and memory stays linear in its lines (Myers) whatever happens.
const DIFF_TIME: Duration = Duration::from_secs(1);

/// A short line diff (`-` old, `+` new) so a `--check` failure shows what drifted. Line
/// endings count: a CRLF line differs from its LF twin, and shows as `…⏎CR`.
pub fn diff_summary(old: &str, new: &str) -> String {
    diff_until(old, new, Instant::now().checked_add(DIFF_TIME))
}

/// `diff_summary`, aligning lines until `deadline` at most.
fn diff_until(old: &str, new: &str, deadline: Option<Instant>) -> String {
    // Lines keep their endings, so line endings are compared too.
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let mut out = String::new();
    for op in similar::capture_diff_slices_deadline(Algorithm::Myers, &a, &b, deadline) {
        let (tag, removed, added) = op.as_tag_tuple();
        if tag == DiffTag::Equal {
            continue;
        }
        for i in removed {
            out.push_str(&shown('-', i + 1, a[i]));
        }
        for j in added {
            out.push_str(&shown('+', j + 1, b[j]));
        }
    }
    out
}

/// One line of the diff: its sign and number, a CR and a missing final newline made visible.
fn shown(sign: char, n: usize, text: &str) -> String {
    let (text, end) = match text.strip_suffix('\n') {
        Some(text) => (text, ""),
        None => (text, " (no newline at end of file)"),
    };
    match text.strip_suffix('\r') {
        Some(text) => format!("{sign}{n:>4} | {text}⏎CR{end}\n"),
        None => format!("{sign}{n:>4} | {text}{end}\n"),
    }
}

fn check(output: &Path, expected: &str) -> Result<()> {
    let current = match std::fs::read_to_string(output) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", output.display())),
    };
    if current == expected {
        eprintln!("{} is up to date", output.display());
        return Ok(());
    }
    eprint!("{}", diff_summary(&current, expected));
    bail!(
        "{} is stale (lines marked + are what gen-compose would write): run `cargo xtask gen-compose --output {}`",
        output.display(),
        output.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_show_and_huge_files_stay_cheap() {
        assert_eq!(
            diff_summary("a\r\nb\n", "a\nb\n"),
            "-   1 | a⏎CR\n+   1 | a\n"
        );
        assert_eq!(
            diff_summary("x\n", "x"),
            "-   1 | x\n+   1 | x (no newline at end of file)\n"
        );
        // 100k changed lines each side: an LCS table would need 80 GB; the search is bounded
        // by DIFF_TIME (how long is the benchmark's business, not a test's), and every line
        // is listed.
        let old: String = (0..100_000).map(|i| format!("old {i}\n")).collect();
        let new: String = (0..100_000).map(|i| format!("new {i}\n")).collect();
        let d = diff_summary(&format!("same\n{old}end\n"), &format!("same\n{new}end\n"));
        assert_eq!(d.lines().count(), 200_000);
        assert!(d.starts_with("-   2 | old 0\n"), "{}", &d[..40]);
    }

    #[test]
    fn a_diff_out_of_time_still_lists_every_changed_line() {
        // A deadline already passed: the search gives up, and no change may go missing.
        let old = "a\nb\nc\nd\ne\n";
        let new = "a\nB\nc\nD\ne\nf\n";
        let d = diff_until(old, new, Some(Instant::now()));
        let mut removed: Vec<&str> = d.lines().filter(|l| l.starts_with('-')).collect();
        let mut added: Vec<&str> = d.lines().filter(|l| l.starts_with('+')).collect();
        removed.retain(|l| !["-   3 | c", "-   5 | e"].contains(l));
        added.retain(|l| !["+   3 | c", "+   5 | e"].contains(l));
        assert_eq!(removed, ["-   2 | b", "-   4 | d"]);
        assert_eq!(added, ["+   2 | B", "+   4 | D", "+   6 | f"]);
    }

    #[test]
    fn diff_marks_changed_lines() {
        let d = diff_summary("a\nb\nc\n", "a\nB\nc\nd\n");
        assert_eq!(d, "-   2 | b\n+   2 | B\n+   4 | d\n");
        assert_eq!(diff_summary("same\n", "same\n"), "");
    }

    /// A directory holding a `.env` of `text`.
    fn with_env(prefix: &str, text: &str) -> fsx::TempDir {
        let dir = fsx::TempDir::new(prefix).unwrap();
        std::fs::write(dir.path().join(DOTENV_FILE), text).unwrap();
        dir
    }

    fn gen(
        checkout: &Path,
        output: Option<PathBuf>,
        check: bool,
        env: &[(&str, &str)],
    ) -> Result<()> {
        let env: std::collections::BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GenCompose { output, check }.run_with(&Checkout::at(checkout), env.into())
    }

    #[test]
    fn the_env_beside_the_output_applies_not_the_checkouts() {
        let checkout = with_env("checkout", "AGENTS_IMAGE=v0.2.0\n");
        let factory = with_env("factory", "AGENTS_IMAGE=v0.1.1\n");
        let file = factory.path().join(COMPOSE_FILE);
        let read = |path: &Path| std::fs::read_to_string(path).unwrap();
        gen(checkout.path(), Some(file.clone()), false, &[]).unwrap();
        assert!(read(&file).contains("agents:v0.1.1"), "{}", read(&file));
        assert!(!read(&file).contains("v0.2.0"));
        // --check holds the factory's file to the factory's settings too.
        gen(checkout.path(), Some(file.clone()), true, &[]).unwrap();
        // The process environment comes first, as everywhere.
        gen(
            checkout.path(),
            Some(file.clone()),
            false,
            &[("AGENTS_IMAGE", "v0.3.0")],
        )
        .unwrap();
        assert!(read(&file).contains("agents:v0.3.0"));
        // Without --output: the checkout's file, from the checkout's .env.
        gen(checkout.path(), None, false, &[]).unwrap();
        assert!(read(&checkout.path().join(COMPOSE_FILE)).contains("agents:v0.2.0"));
        // A directory with no .env: the environment alone (here: dev mode), never the checkout's.
        let bare = fsx::TempDir::new("bare").unwrap();
        let file = bare.path().join(COMPOSE_FILE);
        gen(checkout.path(), Some(file.clone()), false, &[]).unwrap();
        assert!(read(&file).contains("build:"), "{}", read(&file));
        // A bad value in the factory's .env is the factory's error, and writes nothing.
        let broken = with_env("broken", "AGENTS_IMAGE=v1.2\n");
        let file = broken.path().join(COMPOSE_FILE);
        assert!(gen(checkout.path(), Some(file.clone()), false, &[]).is_err());
        assert!(!file.exists());
    }

    #[test]
    fn the_settings_directory_is_the_output_path_s_own() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(settings_dir(Path::new("docker-compose.yml")).unwrap(), cwd);
        assert_eq!(settings_dir(Path::new("f/x.yml")).unwrap(), cwd.join("f"));
        // As compose: the path as given, a symlink's target not followed.
        let dir = settings_dir(Path::new("/srv/factory/docker-compose.yml")).unwrap();
        assert_eq!(dir, Path::new("/srv/factory"));
    }

    #[test]
    fn check_mode_fails_on_drift_and_writes_nothing() {
        let dir = fsx::TempDir::new("check").unwrap();
        let path = dir.path().join("docker-compose.yml");
        std::fs::write(&path, "old\n").unwrap();
        let message = format!("{:#}", check(&path, "new\n").unwrap_err());
        assert!(message.contains("is stale"), "{message}");
        assert!(message.contains("cargo xtask gen-compose"), "{message}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        check(&path, "old\n").unwrap();
    }
}
