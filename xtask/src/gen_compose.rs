//! `cargo xtask gen-compose`: writes the factory's `docker-compose.yml` for this checkout's
//! settings, or with `--check` fails with a diff when a committed file is stale.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use disinto::fsx::{self, Written};
use disinto::model::compose::{generate, ComposeInput};
use disinto::model::config::{FactoryConfig, Settings};

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

/// Most LCS table cells the diff may use (8 bytes each): 32 MB. Beyond it, the lines that
/// differ are listed without alignment, so a huge file costs time, not memory.
const MAX_CELLS: usize = 4_000_000;

/// A short line diff (`-` old, `+` new) so a `--check` failure shows what drifted. Line
/// endings count: a CRLF line differs from its LF twin, and shows as `…⏎CR`.
pub fn diff_summary(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    // Common head and tail need no table.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a_mid, b_mid) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let line = |sign: char, n: usize, text: &str| {
        let (text, end) = match text.strip_suffix('\n') {
            Some(text) => (text, ""),
            None => (text, " (no newline at end of file)"),
        };
        match text.strip_suffix('\r') {
            Some(text) => format!("{sign}{n:>4} | {text}⏎CR{end}\n"),
            None => format!("{sign}{n:>4} | {text}{end}\n"),
        }
    };
    let mut out = String::new();
    if (a_mid.len() + 1).saturating_mul(b_mid.len() + 1) > MAX_CELLS {
        for (i, text) in a_mid.iter().enumerate() {
            out.push_str(&line('-', head + i + 1, text));
        }
        for (j, text) in b_mid.iter().enumerate() {
            out.push_str(&line('+', head + j + 1, text));
        }
        return out;
    }
    // Longest-common-subsequence table over the part that differs.
    let (a, b) = (a_mid, b_mid);
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&line('-', head + i + 1, a[i]));
            i += 1;
        } else {
            out.push_str(&line('+', head + j + 1, b[j]));
            j += 1;
        }
    }
    out
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
        // 100k changed lines each side would need 80 GB of table: listed instead.
        let old: String = (0..100_000).map(|i| format!("old {i}\n")).collect();
        let new: String = (0..100_000).map(|i| format!("new {i}\n")).collect();
        let d = diff_summary(&format!("same\n{old}end\n"), &format!("same\n{new}end\n"));
        assert_eq!(d.lines().count(), 200_000);
        assert!(d.starts_with("-   2 | old 0\n"), "{}", &d[..40]);
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
