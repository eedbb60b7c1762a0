//! The factory's deployment history, `state/deployments.jsonl`: one JSON line per rollout
//! (time, version, the exact image, outcome), append-only. `rollback` with no version, and
//! `status`'s "since" and "previous", read it.
//!
//! It is the factory's memory, so nothing may make it unreadable and it may not lie:
//! - an append is one `write` of a whole line, starting on a new line, and a write cut short
//!   (a full disk) is taken back, so a record is in the file whole or not at all;
//! - a line that is not a record (torn by a writer killed mid-append, edited by hand) is
//!   skipped with a warning naming the file and line, never an error that blocks every command;
//! - a record is checked before it is trusted: one whose image is not the version it names
//!   (two rollouts writing at once, a hand edit) is skipped, so `rollback vX` never runs
//!   another image while it prints vX;
//! - only a regular file is read, and at most [`MAX_BYTES`] of it: a FIFO or `/dev/zero`
//!   in its place is a one-line error, not a hang or a machine out of memory.

use std::io::{Seek, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsx::reason;
use crate::model::image_ref::{AgentsImage, ImageRef};

/// Where the history lives, relative to the factory directory.
pub const HISTORY_FILE: &str = "state/deployments.jsonl";

/// The largest history read: some 200,000 rollouts. Anything bigger is not a history.
pub const MAX_BYTES: u64 = 64 << 20;

/// How many skipped lines are named one by one; the rest are counted.
const NAMED_SKIPS: usize = 5;

/// How a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The new agents turned healthy and runs.
    #[default]
    Deployed,
    /// The new agents did not turn healthy, or the rollout was interrupted (SIGINT,
    /// SIGTERM): the previous image runs again.
    Reverted,
    /// `disinto rollback` put an earlier version back, and it runs.
    RolledBack,
    /// The new agents did not turn healthy (or the rollout was interrupted), and what ran
    /// before could not be put back: there was nothing, or the revert itself failed.
    Failed,
    /// The new agents passed the health gate, then restarted, exited or turned unhealthy
    /// while the rollout watched it: the previous image runs again.
    RevertedLate,
    /// The rollout's process was killed (`kill -9`, a crash, a power cut) before it could
    /// record how it ended; the next command that takes the lock records it.
    Interrupted,
}

/// One rollout of agents (and runner, which shares its image).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    /// Who ran it (`user@host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The agent session `--force` went ahead over, as the work probe described it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted_session: Option<String>,
    /// The rollout attempt this records (its in-flight marker's id): a crash is recorded once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// The id of the trusted key whose signature on the image was verified before it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<String>,
    /// The rollout ran with `--insecure-skip-verify`: its images were not verified.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_verify: bool,
}

/// Where a rollout in flight is marked, relative to the factory directory: written before
/// anything running changes, removed once the rollout's row is in the history. Found with
/// the lock free, it is a rollout whose process died.
pub const IN_FLIGHT_FILE: &str = "state/rollout.json";

/// A rollout in flight: what it tried, so a crash can be recorded truthfully.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub attempt: String,
    pub started: String,
    pub version: String,
    /// The exact image it was bringing up.
    pub image: String,
    pub by: String,
}

impl InFlight {
    /// A rollout of `version` (the exact `image`) by `by`, starting now in this process. Its
    /// attempt id is the time and this process's id, so a marker names the process it
    /// belongs to.
    pub fn new(version: &str, image: &str, by: &str) -> InFlight {
        let started = crate::model::time::now_rfc3339();
        InFlight {
            attempt: format!("{started}-{}", std::process::id()),
            started,
            version: version.to_string(),
            image: image.to_string(),
            by: by.to_string(),
        }
    }

    /// The id of the process that made this marker (the end of its attempt id).
    pub fn pid(&self) -> Option<u32> {
        self.attempt.rsplit_once('-')?.1.parse().ok()
    }

    /// Marks the rollout in flight (atomically: a crash leaves the old marker or this one).
    pub fn mark(&self, factory_dir: &Path) -> Result<()> {
        let text = serde_json::to_string(self)? + "\n";
        crate::fsx::write_atomic(&factory_dir.join(IN_FLIGHT_FILE), text.as_bytes())
    }

    /// The marker of a rollout in flight (or killed), if there is one that reads.
    pub fn find(factory_dir: &Path) -> Option<InFlight> {
        crate::fsx::read_record(&factory_dir.join(IN_FLIGHT_FILE))
    }

    /// Removes the marker (the rollout's row is written).
    pub fn clear(factory_dir: &Path) {
        let _ = std::fs::remove_file(factory_dir.join(IN_FLIGHT_FILE));
    }
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

    /// How the image was let run, in words: the key that signed it, skipped, or dev mode.
    pub fn verification(&self) -> String {
        match (&self.verified_by, self.skip_verify, self.version.as_str()) {
            (Some(key), _, _) => format!("verified (key {key})"),
            (None, true, _) => "NOT verified (--insecure-skip-verify)".into(),
            (None, false, "") => "not verified (dev mode, built locally)".into(),
            (None, false, _) => "not verified (recorded before verification)".into(),
        }
    }

    /// Whether the record can be trusted, or why not: its image id is one, and its image is
    /// the version it names (or a local tag naming that very image id, as a rollback from a
    /// kept image records). `rollback` runs the image of a trusted record; a record saying
    /// v0.1.0 beside v0.2.0's image must never be one.
    pub fn check(&self) -> std::result::Result<(), String> {
        let hex = self.image_id.strip_prefix("sha256:");
        let id_ok = self.image_id.is_empty()
            || hex.is_some_and(|h| {
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            });
        if !id_ok {
            return Err(format!(
                "image id {:?} is not sha256: and 64 hex digits",
                self.image_id
            ));
        }
        // Dev mode builds from source: there is no version to hold its image to, and a dev
        // row is never where `rollback` goes.
        if self.version.is_empty() || self.image == self.version {
            return Ok(());
        }
        let disagree = || {
            format!(
                "version {:?} and image {:?} disagree",
                self.version, self.image
            )
        };
        let image = ImageRef::parse(&self.image).map_err(|_| disagree())?;
        let kept = match (image.tag(), hex, image.digest()) {
            (Some(tag), Some(hex), None) => tag.len() >= 12 && hex.starts_with(tag),
            _ => false,
        };
        let agrees = kept
            || match AgentsImage::parse(Some(&self.version)) {
                Ok(AgentsImage::Release(version)) => {
                    image.tag() == Some(version.as_str())
                        && AgentsImage::parse(Some(&self.image)).is_ok()
                }
                Ok(AgentsImage::Reference(reference)) => {
                    ImageRef::parse(&reference).is_ok_and(|r| {
                        r.repository() == image.repository()
                            && r.tag() == image.tag()
                            && r.digest().is_none_or(|d| image.digest() == Some(d))
                    })
                }
                Ok(AgentsImage::Dev) | Err(_) => false,
            };
        match agrees {
            true => Ok(()),
            false => Err(disagree()),
        }
    }
}

/// A line of the history that is not a trusted record, and why: skipped, with a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The line's number, from 1.
    pub line: usize,
    pub why: String,
}

/// A factory's history, read once per command: the one answer to "what runs now" that
/// `up`, `rollback`, `status` and `swarm` all read, and the place they append to.
#[derive(Debug, Clone)]
pub struct History {
    dir: PathBuf,
    entries: Vec<Deployment>,
    skipped: Vec<Skipped>,
}

impl History {
    /// The history of the factory in `factory_dir`; a missing file is an empty history. The
    /// lines it skips are warnings on standard error (once a command: it reads the history
    /// once).
    pub fn load(factory_dir: &Path) -> Result<History> {
        let (entries, skipped) = match read_file(&path(factory_dir))? {
            Some(bytes) => read(&bytes),
            None => (vec![], vec![]),
        };
        let history = History {
            dir: factory_dir.to_path_buf(),
            entries,
            skipped,
        };
        for warning in history.warnings() {
            eprintln!("warning: {warning}");
        }
        Ok(history)
    }

    /// Every trusted entry, oldest first.
    pub fn entries(&self) -> &[Deployment] {
        &self.entries
    }

    /// The lines that are not trusted records, which every answer here leaves out.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// The skipped lines, one warning each (the first few, then how many more).
    pub fn warnings(&self) -> Vec<String> {
        let file = self.path().display().to_string();
        let mut lines: Vec<String> = self
            .skipped
            .iter()
            .take(NAMED_SKIPS)
            .map(|s| format!("{file}:{}: {}: skipped", s.line, s.why))
            .collect();
        if self.skipped.len() > NAMED_SKIPS {
            lines.push(format!(
                "{file}: {} more lines that are not records: skipped",
                self.skipped.len() - NAMED_SKIPS
            ));
        }
        lines
    }

    /// What runs now, by the history (see [`current`]).
    pub fn current(&self) -> Option<&Deployment> {
        current(&self.entries)
    }

    /// Where `rollback` goes (see [`previous`]).
    pub fn previous(&self) -> Option<&Deployment> {
        previous(&self.entries)
    }

    /// Fails, naming the file, when a record could not be appended now: checked before a
    /// rollout changes anything, so a rollout is never left unrecorded for a reason known
    /// beforehand. Creates the (empty) file when there is none.
    pub fn check_writable(&self) -> Result<()> {
        open_for_append(&self.path()).map(drop)
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

/// The trusted entries of a history file's bytes, oldest first, and the lines skipped: blank
/// lines are nothing; a line that is not UTF-8, not a record, torn, or a record that fails
/// [`Deployment::check`] is skipped.
pub fn read(bytes: &[u8]) -> (Vec<Deployment>, Vec<Skipped>) {
    let mut entries = vec![];
    let mut skipped = vec![];
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let why = match std::str::from_utf8(line) {
            Err(_) => "not UTF-8 text, so not a deployment record".to_string(),
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => match serde_json::from_str::<Deployment>(text) {
                Ok(entry) => match entry.check() {
                    Ok(()) => {
                        entries.push(entry);
                        continue;
                    }
                    Err(why) => format!("a record that cannot be trusted: {why}"),
                },
                // The line ends before the record does: its writer was stopped mid-line.
                Err(e) if e.is_eof() => "a torn record (its writer stopped mid-line)".to_string(),
                Err(e) => format!("not a deployment record ({e})"),
            },
        };
        skipped.push(Skipped { line: n + 1, why });
    }
    (entries, skipped)
}

/// Parses the JSON lines strictly, for tools and tests that must not pass over a bad
/// record: the first line [`read`] would skip is an error naming `origin` and the line.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Deployment>> {
    let (entries, skipped) = read(text.as_bytes());
    if let Some(s) = skipped.first() {
        bail!("{origin}:{}: {}: fix or delete that line", s.line, s.why);
    }
    Ok(entries)
}

/// Every trusted entry, oldest first; a missing file is an empty history (skipped lines are
/// left out, unannounced: [`History::load`] warns of them).
pub fn load(factory_dir: &Path) -> Result<Vec<Deployment>> {
    Ok(match read_file(&path(factory_dir))? {
        Some(bytes) => read(&bytes).0,
        None => vec![],
    })
}

/// The bytes of the history file, `None` when there is none: a regular file of at most
/// [`MAX_BYTES`] ([`crate::fsx::read_regular`]).
fn read_file(path: &Path) -> Result<Option<Vec<u8>>> {
    crate::fsx::read_regular(path, MAX_BYTES).context(
        "the history must be a regular file of at most 64 MiB: move it away, and the next rollout starts a new one",
    )
}

/// Fails, in one line, unless `meta` (of `path`) is a regular file's.
fn require_regular(meta: &std::fs::Metadata, path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    bail!(
        "{} is {what}, not a regular file: the history must be one (move it away, and the next rollout starts a new one)",
        path.display()
    )
}

/// The history file opened to append (created, with its directory, when missing): a regular
/// file only, so a record never goes into a FIFO or a device.
fn open_for_append(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {}", dir.display(), reason(&e)))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        // A FIFO opens at once instead of waiting for a reader (it is then refused).
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open {} to record: {}", path.display(), reason(&e)))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot open {}", path.display()))?;
    require_regular(&meta, path)?;
    Ok(file)
}

/// Appends one entry, all or nothing: one `write` of a whole line on an O_APPEND file, so
/// concurrent writers never interleave within a line and earlier lines are never rewritten.
/// It starts on a new line when the file ends in a torn one, which would otherwise swallow
/// it; a write cut short (a full disk) is taken back.
pub fn append(factory_dir: &Path, entry: &Deployment) -> Result<()> {
    let path = path(factory_dir);
    let mut file = open_for_append(&path)?;
    let failed = |why: String| anyhow::anyhow!("cannot append to {}: {why}", path.display());
    let len = file.metadata().map_err(|e| failed(reason(&e)))?.len();
    let mut line = Vec::new();
    if len > 0 {
        let mut last = [0u8];
        file.read_exact_at(&mut last, len - 1)
            .map_err(|e| failed(reason(&e)))?;
        if last[0] != b'\n' {
            line.push(b'\n');
        }
    }
    line.extend(serde_json::to_vec(entry)?);
    line.push(b'\n');
    write_whole(&mut file, &line).map_err(failed)?;
    file.sync_all().map_err(|e| failed(reason(&e)))
}

/// One `write` of `bytes` at the end of `file`, or nothing: a write cut short is truncated
/// away again, unless another writer appended after it (then readers skip the torn line).
fn write_whole(file: &mut std::fs::File, bytes: &[u8]) -> std::result::Result<(), String> {
    let written = loop {
        match file.write(bytes) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(reason(&e)),
        }
    };
    if written == bytes.len() {
        return Ok(());
    }
    // With O_APPEND the offset is the end of what this write put there.
    let end = file.stream_position().map_err(|e| reason(&e))?;
    let start = end.saturating_sub(written as u64);
    let undone = file.metadata().is_ok_and(|m| m.len() == end) && file.set_len(start).is_ok();
    Err(format!(
        "only {written} of {} bytes could be written (is the disk full?); {}",
        bytes.len(),
        match undone {
            true => "the part written was taken back",
            false => "readers skip the torn line it left",
        }
    ))
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
            ..Deployment::default()
        }
    }

    #[test]
    fn how_an_image_was_let_run_is_recorded_and_old_rows_still_read() {
        let mut verified = entry("v0.2.0", Outcome::Deployed);
        verified.verified_by = Some("sha256:47c32c8bf45cc616".into());
        let line = serde_json::to_string(&verified).unwrap();
        assert!(
            line.contains(r#""verified_by":"sha256:47c32c8bf45cc616""#),
            "{line}"
        );
        // Not skipped: no field (rows stay as they were).
        assert!(!line.contains("skip_verify"), "{line}");
        assert_eq!(parse(&line, "h").unwrap(), vec![verified.clone()]);
        assert!(verified.verification().contains("sha256:47c32c8bf45cc616"));
        let mut skipped = entry("v0.2.0", Outcome::Deployed);
        skipped.skip_verify = true;
        let line = serde_json::to_string(&skipped).unwrap();
        assert!(line.contains(r#""skip_verify":true"#), "{line}");
        assert!(skipped.verification().starts_with("NOT verified"));
        // A row written before verification existed.
        let old = entry("v0.1.0", Outcome::Deployed);
        let line = serde_json::to_string(&old).unwrap();
        let read = parse(&line, "h").unwrap();
        assert_eq!(read[0].verified_by, None);
        assert!(!read[0].skip_verify);
        assert!(read[0].verification().contains("before verification"));
        assert!(entry("", Outcome::Deployed)
            .verification()
            .contains("dev mode"));
    }

    #[test]
    fn a_marker_names_the_process_that_made_it() {
        let marker = InFlight::new("v0.2.0", "r/agents:v0.2.0", "ops@host");
        assert_eq!(marker.pid(), Some(std::process::id()));
        assert_eq!(marker.started, marker.attempt[..marker.started.len()]);
        let other = InFlight {
            attempt: "not an attempt id".into(),
            ..marker
        };
        assert_eq!(other.pid(), None);
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
    fn a_bad_line_is_skipped_and_named_and_strict_parsing_refuses_it() {
        let good = serde_json::to_string(&entry("v0.1.0", Outcome::Deployed)).unwrap();
        let text = format!("{good}\n{{}}\n\n{good}\n");
        let (entries, skipped) = read(text.as_bytes());
        assert_eq!(entries.len(), 2);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].line, 2);
        let e = format!("{:#}", parse(&text, "h.jsonl").unwrap_err());
        assert!(e.starts_with("h.jsonl:2: "), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    /// A history file holding `text`, in a fresh factory directory.
    fn factory_with(text: &[u8]) -> crate::fsx::TempDir {
        let dir = crate::fsx::TempDir::new("history").unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::fs::write(path(dir.path()), text).unwrap();
        dir
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_next_record_starts_on_a_new_line() {
        let a = entry("v0.1.0", Outcome::Deployed);
        let whole = serde_json::to_string(&a).unwrap();
        // A writer killed mid-append (or a full disk) left half a record and no newline.
        let torn = format!("{whole}\n{}", &whole[..whole.len() / 2]);
        let dir = factory_with(torn.as_bytes());
        let history = History::load(dir.path()).unwrap();
        assert_eq!(history.entries(), std::slice::from_ref(&a));
        assert_eq!(history.skipped().len(), 1);
        assert_eq!(history.skipped()[0].line, 2);
        assert_eq!(history.warnings().len(), 1);
        assert!(history.warnings()[0].contains("deployments.jsonl:2: "));

        let b = entry("v0.2.0", Outcome::Deployed);
        append(dir.path(), &b).unwrap();
        let history = History::load(dir.path()).unwrap();
        assert_eq!(history.entries(), [a, b.clone()]);
        assert_eq!(history.current(), Some(&b));
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(text.starts_with(&torn), "an earlier byte changed: {text}");
        assert!(text.ends_with(&format!("\n{}\n", serde_json::to_string(&b).unwrap())));
    }

    #[test]
    fn many_bad_lines_are_counted_not_each_named() {
        let dir = factory_with(&b"x\n".repeat(1000));
        let history = History::load(dir.path()).unwrap();
        assert!(history.entries().is_empty());
        assert_eq!(history.skipped().len(), 1000);
        assert_eq!(history.warnings().len(), NAMED_SKIPS + 1);
    }

    #[test]
    fn lines_that_are_not_utf8_are_skipped() {
        let good = serde_json::to_string(&entry("v0.1.0", Outcome::Deployed)).unwrap();
        let mut text = b"\xff\xfe\n".to_vec();
        text.extend(good.as_bytes());
        let dir = factory_with(&text);
        let history = History::load(dir.path()).unwrap();
        assert_eq!(history.entries().len(), 1);
        assert_eq!(history.skipped()[0].line, 1);
    }

    /// Runs `f` on another thread; fails when it has not returned within `secs` seconds.
    fn within_seconds<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(secs))
            .expect("it hung")
    }

    #[test]
    fn a_fifo_or_a_device_as_the_history_is_refused_at_once() {
        let dir = crate::fsx::TempDir::new("history").unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let file = path(dir.path());
        let made = std::process::Command::new("mkfifo")
            .arg(&file)
            .status()
            .unwrap();
        assert!(made.success());
        let factory = dir.path().to_path_buf();
        let loaded = within_seconds(10, move || History::load(&factory).map(drop));
        let e = format!("{:#}", loaded.unwrap_err());
        assert!(e.contains(&file.display().to_string()), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        let factory = dir.path().to_path_buf();
        let appended = within_seconds(10, move || {
            append(&factory, &entry("v0.1.0", Outcome::Deployed)).map_err(|e| e.to_string())
        });
        assert!(appended.is_err());
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&file)
            .unwrap()
            .file_type()
            .is_fifo());

        // /dev/zero would be read for ever (and into memory): refused before a byte is read.
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
        let factory = dir.path().to_path_buf();
        let loaded = within_seconds(10, move || History::load(&factory).map(drop));
        assert!(loaded.is_err());
        let factory = dir.path().to_path_buf();
        assert!(within_seconds(10, move || History::load(&factory)
            .and_then(|h| h.check_writable())
            .is_err()));
    }

    #[test]
    fn records_whose_version_and_image_disagree_are_not_trusted() {
        let id = format!("sha256:{}", "b".repeat(64));
        let with = |version: &str, image: &str, image_id: &str| Deployment {
            image: image.into(),
            image_id: image_id.into(),
            ..entry(version, Outcome::Deployed)
        };
        let digest = format!("sha256:{}", "a".repeat(64));
        let trusted = [
            with("v0.1.0", &format!("r:5000/d/agents:v0.1.0@{digest}"), &id),
            with("v0.1.0", "r:5000/d/agents:v0.1.0", ""),
            // A rollback from a kept image: the tag names the image id itself.
            with("v0.1.0", "disinto-keep/agents:bbbbbbbbbbbb", &id),
            with(
                "ghcr.io/x/agents:v2",
                &format!("ghcr.io/x/agents:v2@{digest}"),
                &id,
            ),
            with(
                &format!("ghcr.io/x/agents:v2@{digest}"),
                &format!("ghcr.io/x/agents:v2@{digest}"),
                &id,
            ),
            // Dev mode: built from source, never a rollback target.
            with("", "disinto-agents:dev", &id),
        ];
        for d in &trusted {
            assert_eq!(d.check(), Ok(()), "{d:?}");
        }
        let untrusted = [
            with("v0.1.0", &format!("r:5000/d/agents:v0.2.0@{digest}"), &id),
            with("v0.1.0", "r:5000/d/edge:v0.1.0", &id),
            with("v0.1.0", "disinto-keep/agents:cccccccccccc", &id),
            with("v0.1.0", "disinto-keep/agents:bbbbbbbbbbbb", ""),
            with("ghcr.io/x/agents:v2", "ghcr.io/y/agents:v2", &id),
            with(
                &format!("ghcr.io/x/agents:v2@{digest}"),
                &format!("ghcr.io/x/agents:v2@sha256:{}", "c".repeat(64)),
                &id,
            ),
            with("v0.1", "r/agents:v0.1", &id),
            // Ids that are not ids; one is not ASCII, which once made rollback panic.
            with("v0.1.0", "r/agents:v0.1.0", "sha256:ßßßßßßßßßßßßßß"),
            with("v0.1.0", "r/agents:v0.1.0", &"b".repeat(64)),
        ];
        for d in &untrusted {
            assert!(d.check().is_err(), "{d:?}");
        }

        // Written by two rollouts at once, or by hand: the history leaves it out, so neither
        // `current` nor `rollback v0.1.0` takes v0.2.0's image for v0.1.0.
        let good = with("v0.1.0", &format!("r:5000/d/agents:v0.1.0@{digest}"), &id);
        let lying = untrusted[0].clone();
        let text = [&good, &lying]
            .iter()
            .map(|d| serde_json::to_string(d).unwrap() + "\n")
            .collect::<String>();
        let (entries, skipped) = read(text.as_bytes());
        assert_eq!(entries, [good]);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].line, 2);
    }

    #[test]
    fn a_write_cut_short_is_taken_back() {
        // A file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) cuts a write short exactly
        // as a full disk does. The append runs in a child process, which alone has the limit:
        // this same test, run again with DISINTO_HISTORY_CHILD naming the factory.
        if let Some(dir) = std::env::var_os("DISINTO_HISTORY_CHILD") {
            let result = append(Path::new(&dir), &entry("v0.2.0", Outcome::Deployed));
            assert!(result.is_err(), "the append fit under the limit");
            return;
        }
        let dir = crate::fsx::TempDir::new("history").unwrap();
        let probe = dir.path().join("probe");
        let shell = |script: &str| {
            let mut sh = std::process::Command::new("sh");
            sh.arg("-c")
                .arg(format!("trap '' XFSZ; ulimit -f 1; {script}"));
            sh
        };
        // The size of ulimit's block differs between shells: measure it.
        shell(&format!(
            "head -c 4096 /dev/zero > '{}' 2>/dev/null",
            probe.display()
        ))
        .status()
        .unwrap();
        let limit = std::fs::metadata(&probe).unwrap().len() as usize;
        assert!(limit == 512 || limit == 1024, "{limit}");
        // The file ends 100 bytes below the limit; the record is longer than that.
        let whole = serde_json::to_string(&entry("v0.1.0", Outcome::Deployed)).unwrap() + "\n";
        let before = format!("{whole}{}", "\n".repeat(limit - 100 - whole.len()));
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::fs::write(path(dir.path()), &before).unwrap();
        let out = shell("exec \"$0\" \"$@\"")
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "model::history::tests::a_write_cut_short_is_taken_back",
            ])
            .env("DISINTO_HISTORY_CHILD", dir.path())
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{printed}");
        assert!(printed.contains("1 passed"), "{printed}");
        assert_eq!(std::fs::read_to_string(path(dir.path())).unwrap(), before);
    }
}
