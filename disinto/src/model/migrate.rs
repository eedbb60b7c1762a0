//! The `.env` changes a release needs, declared by the release (`migrations.yml`) and applied
//! by an upgrade: keys added with a default, renamed, removed. Applied to the text, every
//! other byte kept: an added key is appended only when the operator has not set it, a renamed
//! key keeps its value and its place, a removed key is commented out (its value stays
//! readable). A rename onto a key the operator already set is refused: which value wins is
//! the operator's call, not ours.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::dotenv::{self, Statement};

/// Where a checkout (and a release bundle) keeps its migrations.
pub const MIGRATIONS_FILE: &str = "migrations.yml";

/// The changes one release makes to `.env`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// The release that needs them (`v0.3.0`).
    pub version: String,
    /// New keys and their defaults.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Old key to new key.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    migrations: Vec<Migration>,
}

/// One change made (or, for an added key already set, left alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added { key: String, value: String },
    AlreadySet { key: String },
    Renamed { from: String, to: String },
    Removed { key: String },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added { key, value } => write!(f, "+ {key}={value}"),
            Change::AlreadySet { key } => write!(f, "= {key} (already set: kept)"),
            Change::Renamed { from, to } => write!(f, "~ {from} -> {to} (value kept)"),
            Change::Removed { key } => write!(f, "- {key} (commented out)"),
        }
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit())
}

/// Reads `migrations.yml` (named `origin` in errors): versions are releases, in ascending
/// order, once each; keys are plain `.env` names; a key is changed once per release.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Migration>> {
    let file: File = serde_yaml::from_str(text)
        .map_err(|e| anyhow::anyhow!("{origin}: not a migrations file ({e})"))?;
    let mut previous: Option<semver::Version> = None;
    for m in &file.migrations {
        let v = semver::Version::parse(m.version.trim_start_matches('v'))
            .ok()
            .filter(|_| m.version.starts_with('v'))
            .with_context(|| {
                format!(
                    "{origin}: {:?} is not a release version (vX.Y.Z)",
                    m.version
                )
            })?;
        if previous.as_ref().is_some_and(|p| p >= &v) {
            bail!(
                "{origin}: {} is out of order: list releases oldest first, once each",
                m.version
            );
        }
        previous = Some(v);
        let mut seen = std::collections::BTreeSet::new();
        let keys = m
            .add
            .keys()
            .chain(m.rename.keys())
            .chain(m.rename.values())
            .chain(m.remove.iter());
        for key in keys {
            if !valid_key(key) {
                bail!(
                    "{origin}: {} names {key:?}, which is not a .env key",
                    m.version
                );
            }
            if !seen.insert(key) {
                bail!("{origin}: {} changes {key} twice", m.version);
            }
        }
    }
    Ok(file.migrations)
}

/// The migrations an upgrade from `from` to `to` applies: those of the releases after `from`
/// up to `to`, oldest first. A version that is not a release (dev, a reference) applies none.
pub fn between<'a>(all: &'a [Migration], from: &str, to: &str) -> Vec<&'a Migration> {
    let version = |v: &str| semver::Version::parse(v.trim_start_matches('v')).ok();
    let (Some(from), Some(to)) = (version(from), version(to)) else {
        return Vec::new();
    };
    all.iter()
        .filter(|m| version(&m.version).is_some_and(|v| v > from && v <= to))
        .collect()
}

/// `text` (`.env`) with `migrations` applied, and what changed. Refuses, changing nothing, a
/// rename onto a key that is set, or a file it cannot read as compose does.
pub fn apply(text: &str, migrations: &[&Migration], origin: &str) -> Result<(String, Vec<Change>)> {
    let mut text = text.to_string();
    let mut changes = Vec::new();
    for m in migrations {
        for (from, to) in &m.rename {
            let all = dotenv::statements(text.as_bytes(), origin)?;
            let has = |k: &str| all.iter().any(|s| s.key == k);
            if !has(from) {
                continue;
            }
            if has(to) {
                bail!(
                    "{origin}: {} renames {from} to {to}, but both are set: keep one (remove the other line) and run the upgrade again",
                    m.version
                );
            }
            text = rename(&text, &all, from, to);
            changes.push(Change::Renamed {
                from: from.clone(),
                to: to.clone(),
            });
        }
        for key in &m.remove {
            let all = dotenv::statements(text.as_bytes(), origin)?;
            if !all.iter().any(|s| &s.key == key) {
                continue;
            }
            text = comment_out(&text, &all, key, &m.version);
            changes.push(Change::Removed { key: key.clone() });
        }
        for (key, value) in &m.add {
            let all = dotenv::statements(text.as_bytes(), origin)?;
            if all.iter().any(|s| &s.key == key) {
                changes.push(Change::AlreadySet { key: key.clone() });
                continue;
            }
            text = dotenv::set(&text, key, value, origin)?;
            changes.push(Change::Added {
                key: key.clone(),
                value: value.clone(),
            });
        }
    }
    // What is written reads as compose reads it.
    dotenv::statements(text.as_bytes(), origin).with_context(|| {
        format!("{origin}: the migrated file would not read back: nothing changed")
    })?;
    Ok((text, changes))
}

/// Every statement of `from` renamed to `to`, its `export` and value bytes as they were.
fn rename(text: &str, all: &[Statement], from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for s in all.iter().filter(|s| s.key == from) {
        // From the statement's start to its value is `[export ]KEY` and the separator: the
        // key is the last occurrence of its name there.
        let head = &text[s.start..s.rest.start];
        let Some(offset) = head.rfind(from) else {
            continue;
        };
        let key_at = s.start + offset;
        out.push_str(&text[at..key_at]);
        out.push_str(to);
        at = key_at + from.len();
    }
    out.push_str(&text[at..]);
    out
}

/// Every statement of `key` commented out line by line, with a note of why.
fn comment_out(text: &str, all: &[Statement], key: &str, version: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for s in all.iter().filter(|s| s.key == key) {
        let line_start = text[..s.start].rfind('\n').map_or(0, |i| i + 1);
        out.push_str(&text[at..line_start]);
        out.push_str(&format!("# {key} is no longer used since {version}:\n"));
        for line in text[line_start..s.rest.end].split_inclusive('\n') {
            out.push_str("# ");
            out.push_str(line);
        }
        at = s.rest.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "migrations:
  - version: v0.2.0
    add: { FORGE_TIMEOUT: \"30\" }
    rename: { POLL_SECONDS: POLL_INTERVAL }
  - version: v0.3.0
    remove: [OLD_FLAG]
";

    fn values(text: &str) -> BTreeMap<String, String> {
        dotenv::parse(text.as_bytes(), ".env", &|_| Ok(None))
            .unwrap()
            .values
    }

    #[test]
    fn an_upgrade_applies_the_releases_after_the_running_one_keeping_every_other_byte() {
        let all = parse(FILE, "migrations.yml").unwrap();
        assert_eq!(between(&all, "v0.1.0", "v0.3.0").len(), 2);
        assert_eq!(between(&all, "v0.2.0", "v0.3.0").len(), 1);
        assert!(between(&all, "v0.3.0", "v0.3.0").is_empty());
        assert!(between(&all, "dev", "v0.3.0").is_empty());

        let before = "# my factory\nexport POLL_SECONDS=5 # fast\nAGENTS_IMAGE=v0.1.0\nOLD_FLAG='a\nb'\nKEEP=x\n";
        let (after, changes) = apply(before, &between(&all, "v0.1.0", "v0.3.0"), ".env").unwrap();
        assert_eq!(
            after,
            "# my factory\nexport POLL_INTERVAL=5 # fast\nAGENTS_IMAGE=v0.1.0\n# OLD_FLAG is no longer used since v0.3.0:\n# OLD_FLAG='a\n# b'\nKEEP=x\nFORGE_TIMEOUT=30\n"
        );
        let v = values(&after);
        assert_eq!(v["POLL_INTERVAL"], "5");
        assert!(!v.contains_key("OLD_FLAG") && !v.contains_key("POLL_SECONDS"));
        assert_eq!(changes.len(), 3);
        assert_eq!(
            changes[0].to_string(),
            "~ POLL_SECONDS -> POLL_INTERVAL (value kept)"
        );
    }

    #[test]
    fn an_added_key_the_operator_set_is_kept_and_a_rename_onto_a_set_key_refused() {
        let all = parse(FILE, "migrations.yml").unwrap();
        let v2 = between(&all, "v0.1.0", "v0.2.0");
        let (after, changes) = apply("FORGE_TIMEOUT=90\n", &v2, ".env").unwrap();
        assert_eq!(after, "FORGE_TIMEOUT=90\n");
        assert_eq!(
            changes,
            [Change::AlreadySet {
                key: "FORGE_TIMEOUT".into()
            }]
        );
        let e = apply("POLL_SECONDS=5\nPOLL_INTERVAL=9\n", &v2, ".env").unwrap_err();
        assert!(e.to_string().contains("both are set"), "{e}");
    }

    #[test]
    fn the_project_s_own_migrations_read() {
        parse(include_str!("../../../migrations.yml"), MIGRATIONS_FILE).unwrap();
    }

    #[test]
    fn a_bad_migrations_file_is_refused_in_one_line() {
        for (text, says) in [
            ("migrations: [{version: 0.2.0}]", "not a release version"),
            (
                "migrations: [{version: v0.3.0}, {version: v0.2.0}]",
                "out of order",
            ),
            (
                "migrations: [{version: v0.2.0, add: {'A B': x}}]",
                "not a .env key",
            ),
            (
                "migrations: [{version: v0.2.0, add: {A: x}, remove: [A]}]",
                "changes A twice",
            ),
            (
                "migrations: [{version: v0.2.0, drop: [A]}]",
                "not a migrations file",
            ),
        ] {
            let e = parse(text, "migrations.yml").unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
