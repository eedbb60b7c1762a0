//! The factory's deployment history, `state/deployments.jsonl`: one JSON line per rollout
//! (time, version, the exact image, outcome), append-only. `rollback` with no version, and
//! `status`'s "since" and "previous", read it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Where the history lives, relative to the factory directory.
pub const HISTORY_FILE: &str = "state/deployments.jsonl";

/// How a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The new agents turned healthy and runs.
    Deployed,
    /// The new agents did not turn healthy; the previous image runs again.
    Reverted,
    /// `disinto rollback` put an earlier version back, and it runs.
    RolledBack,
    /// The new agents did not turn healthy and there was nothing to go back to.
    Failed,
}

/// One rollout of agents (and runner, which shares its image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// When the rollout ended, RFC 3339 UTC.
    pub time: String,
    /// `AGENTS_IMAGE` as the operator gave it (`v0.1.1`, a reference, or empty for dev).
    pub version: String,
    /// The exact reference compose ran (digest-pinned when the registry gave a digest).
    pub image: String,
    /// The local image id, which no moved tag can change.
    pub image_id: String,
    pub outcome: Outcome,
    /// The Swarm stack the rollout ran on (`disinto swarm`); none for compose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<String>,
}

impl Deployment {
    /// Whether this entry says what runs now (a revert leaves the earlier entry in charge).
    pub fn runs(&self) -> bool {
        matches!(self.outcome, Outcome::Deployed | Outcome::RolledBack)
    }

    /// The version as tables show it: `dev` for dev mode.
    pub fn shown_version(&self) -> &str {
        match self.version.as_str() {
            "" => "dev",
            v => v,
        }
    }
}

/// A factory's history, read once per command: the one answer to "what runs now" that
/// `up`, `rollback`, `status` and `swarm` all read, and the place they append to.
#[derive(Debug, Clone)]
pub struct History {
    dir: PathBuf,
    entries: Vec<Deployment>,
}

impl History {
    /// The history of the factory in `factory_dir`; a missing file is an empty history.
    pub fn load(factory_dir: &Path) -> Result<History> {
        Ok(History {
            dir: factory_dir.to_path_buf(),
            entries: load(factory_dir)?,
        })
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[Deployment] {
        &self.entries
    }

    /// What runs now, by the history (see [`current`]).
    pub fn current(&self) -> Option<&Deployment> {
        current(&self.entries)
    }

    /// Where `rollback` goes (see [`previous`]).
    pub fn previous(&self) -> Option<&Deployment> {
        previous(&self.entries)
    }

    /// Appends `entry` to the file, and to what this value holds.
    pub fn append(&mut self, entry: Deployment) -> Result<()> {
        append(&self.dir, &entry)?;
        self.entries.push(entry);
        Ok(())
    }

    pub fn path(&self) -> PathBuf {
        path(&self.dir)
    }
}

pub fn path(factory_dir: &Path) -> PathBuf {
    factory_dir.join(HISTORY_FILE)
}

/// Every entry, oldest first; a missing file is an empty history.
pub fn load(factory_dir: &Path) -> Result<Vec<Deployment>> {
    let path = path(factory_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    parse(&text, &path.display().to_string())
}

/// Parses the JSON lines; `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Deployment>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).with_context(|| {
                format!(
                    "{origin}:{} is not a deployment record: fix or delete that line",
                    n + 1
                )
            })
        })
        .collect()
}

/// Appends one entry. One `write` of a whole line on an O_APPEND file: concurrent writers
/// never interleave within a line, and earlier lines are never rewritten.
pub fn append(factory_dir: &Path, entry: &Deployment) -> Result<()> {
    let path = path(factory_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut line = serde_json::to_string(entry)?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot append to {}", path.display()))
}

/// What runs now, by the history: the last entry that deployed or rolled back.
pub fn current(history: &[Deployment]) -> Option<&Deployment> {
    history.iter().rev().find(|d| d.runs())
}

/// The deployment before the current one with another version: where `rollback` goes.
pub fn previous(history: &[Deployment]) -> Option<&Deployment> {
    let now = current(history)?;
    let position = history.iter().rposition(|d| std::ptr::eq(d, now))?;
    history[..position]
        .iter()
        .rev()
        .find(|d| d.runs() && d.version != now.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: &str, outcome: Outcome) -> Deployment {
        Deployment {
            time: "2026-11-25T08:00:00Z".into(),
            version: version.into(),
            image: format!("r/agents:{version}@sha256:{}", "a".repeat(64)),
            image_id: format!("sha256:{}", "b".repeat(64)),
            outcome,
            swarm: None,
        }
    }

    #[test]
    fn current_and_previous_skip_reverts() {
        let h = vec![
            entry("v0.1.0", Outcome::Deployed),
            entry("v0.2.0", Outcome::Deployed),
            entry("v0.2.0", Outcome::Deployed),
            entry("v0.3.0", Outcome::Reverted),
        ];
        assert_eq!(current(&h).unwrap().version, "v0.2.0");
        assert_eq!(previous(&h).unwrap().version, "v0.1.0");
        let h = vec![entry("v0.1.0", Outcome::Deployed)];
        assert!(previous(&h).is_none());
        assert!(current(&[]).is_none());
        let h = vec![
            entry("v0.1.0", Outcome::Deployed),
            entry("v0.2.0", Outcome::Deployed),
            entry("v0.1.0", Outcome::RolledBack),
        ];
        assert_eq!(current(&h).unwrap().version, "v0.1.0");
        assert_eq!(previous(&h).unwrap().version, "v0.2.0");
    }

    #[test]
    fn appended_lines_read_back_in_order() {
        let dir = crate::fsx::TempDir::new("history").unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let a = entry("v0.1.0", Outcome::Deployed);
        let b = entry("v0.2.0", Outcome::Reverted);
        append(dir.path(), &a).unwrap();
        append(dir.path(), &b).unwrap();
        assert_eq!(load(dir.path()).unwrap(), vec![a, b]);
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(text.contains("\"outcome\":\"reverted\""), "{text}");
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn a_bad_line_is_one_line_naming_file_and_line() {
        let e = format!("{:#}", parse("\n{}\n", "h.jsonl").unwrap_err());
        assert!(e.starts_with("h.jsonl:2 is not a deployment record"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
