//! `cargo xtask gen-compose`: writes the factory's `docker-compose.yml` for this checkout's
//! settings, or with `--check` fails with a diff when a committed file is stale.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use disinto::fsx::{self, Written};
use disinto::model::compose::{generate, ComposeInput};
use disinto::model::config::{FactoryConfig, Settings};
use similar::{Algorithm, DiffTag};

use crate::Checkout;

/// `cargo xtask gen-compose`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenCompose {
    /// Where to write the file [default: docker-compose.yml at the repository root]
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write nothing; exit 1 with a diff when FILE differs from what would be generated
    #[arg(long)]
    pub check: bool,
}

impl GenCompose {
    pub fn run(self, checkout: &Checkout) -> Result<()> {
        let config = FactoryConfig::from_settings(&Settings::load(checkout.root())?)?;
        let input = ComposeInput::from(&config);
        let text = generate(&input)?;
        let output = self
            .output
            .unwrap_or_else(|| checkout.root().join("docker-compose.yml"));
        if self.check {
            return check(&output, &text);
        }
        let verb = match fsx::write_if_changed(&output, &text)? {
            Written::Generated => "Generated",
            Written::Unchanged => "Unchanged",
        };
        eprintln!("{verb} {} ({})", output.display(), input.agents);
        Ok(())
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
