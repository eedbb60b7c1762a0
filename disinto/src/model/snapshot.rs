//! A snapshot of the agents' volumes: one gzipped tar under the factory's `backups/`, with a
//! manifest beside it (`<archive>.json`) that says whose, of which version, what it holds and
//! its SHA-256. The manifest is what `restore` checks before it touches anything: a backup of
//! another factory or version, or an archive that no longer matches its checksum, is refused.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Where a factory keeps its snapshots, relative to its directory.
pub const BACKUPS_DIR: &str = "backups";
/// The volumes every snapshot holds: the agents' state and data.
pub const VOLUMES: [&str; 2] = ["agent-state", "agent-data"];
/// Held only when asked (`--include-repos`): clones can be made again from the forge.
pub const OPTIONAL_VOLUME: &str = "agent-repos";
/// Snapshots kept by default; older ones of the same factory are deleted.
pub const KEEP_DEFAULT: usize = 5;
/// The manifest format this binary writes and reads.
const FORMAT: u32 = 1;
/// A manifest is a few hundred bytes: anything bigger is not one.
pub const MANIFEST_MAX_BYTES: u64 = 64 * 1024;

/// What `<archive>.json` says about the archive beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The compose project of the factory it was taken from.
    pub factory: String,
    /// The version agents ran when it was taken (a release tag, or `dev`).
    pub version: String,
    /// The image that ran (the reference, as deployed).
    pub image: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// Compose volume keys held, each the top directory of the archive.
    pub volumes: Vec<String>,
    /// The archive's file name (beside this manifest).
    pub archive: String,
    pub sha256: String,
    pub bytes: u64,
    /// Why it was taken: `backup` by hand, or `upgrade to vX`.
    pub reason: String,
}

impl Manifest {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        factory: &str,
        version: &str,
        image: &str,
        created: &str,
        volumes: &[&str],
        sha256: &str,
        bytes: u64,
        reason: &str,
    ) -> Manifest {
        Manifest {
            format: FORMAT,
            factory: factory.into(),
            version: version.into(),
            image: image.into(),
            created: created.into(),
            volumes: volumes.iter().map(|v| v.to_string()).collect(),
            archive: archive_name(factory, version, created),
            sha256: sha256.into(),
            bytes,
            reason: reason.into(),
        }
    }

    /// Reads a manifest, named `origin` in errors.
    pub fn parse(text: &[u8], origin: &str) -> Result<Manifest> {
        let m: Manifest = serde_json::from_slice(text)
            .with_context(|| format!("{origin} is not a disinto backup manifest"))?;
        if m.format != FORMAT {
            bail!(
                "{origin} is a backup of format {} (this disinto reads {FORMAT}): restore it with the disinto that took it",
                m.format
            );
        }
        let expected = archive_name(&m.factory, &m.version, &m.created);
        if m.archive != expected || m.archive.contains('/') {
            bail!(
                "{origin} names the archive {:?}, not {expected:?}: the manifest was edited",
                m.archive
            );
        }
        if m.sha256.len() != 64 || !m.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("{origin} holds no SHA-256 of its archive");
        }
        for v in &m.volumes {
            if !VOLUMES.contains(&v.as_str()) && v != OPTIONAL_VOLUME {
                bail!("{origin} holds volume {v:?}, which is not an agents volume");
            }
        }
        if !VOLUMES.iter().all(|v| m.volumes.iter().any(|h| h == v)) {
            bail!(
                "{origin} lacks {}: not a snapshot disinto took",
                VOLUMES.join(" or ")
            );
        }
        Ok(m)
    }

    /// Refuses a snapshot of another factory, or of another version than `version` unless
    /// `any_version` says the operator means it.
    pub fn check_for(&self, factory: &str, version: &str, any_version: bool) -> Result<()> {
        if self.factory != factory {
            bail!(
                "{} is a backup of factory {:?}, not of this one ({factory:?}): restore it in that factory",
                self.archive,
                self.factory
            );
        }
        if self.version != version && !any_version {
            bail!(
                "{} was taken on {} but {version} runs: roll back to {} first (`disinto rollback {}`), or pass --any-version",
                self.archive,
                self.version,
                self.version,
                self.version
            );
        }
        Ok(())
    }
}

/// `<factory>-<version>-<created as 20261202T120000Z>.tar.gz`: sorts by time within a
/// factory and version, and names what it holds.
pub fn archive_name(factory: &str, version: &str, created: &str) -> String {
    let stamp: String = created
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let version: String = version
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    format!("{factory}-{version}-{stamp}.tar.gz")
}

/// The manifest file of an archive.
pub fn manifest_name(archive: &str) -> String {
    format!("{archive}.json")
}

/// The snapshots to delete so that the newest `keep` of `factory` remain (others' are left
/// alone: several factories may share a backups directory only by accident, but then their
/// snapshots are not ours to delete).
pub fn to_prune(manifests: &[Manifest], factory: &str, keep: usize) -> Vec<String> {
    let mut ours: Vec<&Manifest> = manifests.iter().filter(|m| m.factory == factory).collect();
    ours.sort_by(|a, b| b.created.cmp(&a.created));
    ours.iter().skip(keep).map(|m| m.archive.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(factory: &str, created: &str) -> Manifest {
        Manifest::new(
            factory,
            "v0.1.0",
            "ghcr.io/disinto/agents:v0.1.0",
            created,
            &VOLUMES,
            &"a".repeat(64),
            10,
            "backup",
        )
    }

    #[test]
    fn a_manifest_reads_back_and_names_its_archive() {
        let m = manifest("prod", "2026-12-02T12:00:00Z");
        assert_eq!(m.archive, "prod-v0.1.0-20261202T120000Z.tar.gz");
        let text = serde_json::to_vec(&m).unwrap();
        assert_eq!(Manifest::parse(&text, "m.json").unwrap(), m);
    }

    #[test]
    fn an_edited_or_foreign_manifest_is_refused_by_name() {
        let mut m = manifest("prod", "2026-12-02T12:00:00Z");
        m.archive = "../../etc/passwd".into();
        let e = Manifest::parse(&serde_json::to_vec(&m).unwrap(), "m.json").unwrap_err();
        assert!(e.to_string().contains("was edited"), "{e}");
        let mut m = manifest("prod", "2026-12-02T12:00:00Z");
        m.volumes = vec!["agent-data".into()];
        let e = Manifest::parse(&serde_json::to_vec(&m).unwrap(), "m.json").unwrap_err();
        assert!(e.to_string().contains("lacks"), "{e}");
        let e = Manifest::parse(b"\x1f\x8b\x08", "x.tar.gz").unwrap_err();
        assert!(
            e.to_string()
                .contains("x.tar.gz is not a disinto backup manifest"),
            "{e}"
        );
    }

    #[test]
    fn another_factory_or_version_is_refused_unless_meant() {
        let m = manifest("prod", "2026-12-02T12:00:00Z");
        let e = m.check_for("staging", "v0.1.0", true).unwrap_err();
        assert!(e.to_string().contains("factory \"prod\""), "{e}");
        let e = m.check_for("prod", "v0.2.0", false).unwrap_err();
        assert!(e.to_string().contains("disinto rollback v0.1.0"), "{e}");
        m.check_for("prod", "v0.2.0", true).unwrap();
        m.check_for("prod", "v0.1.0", false).unwrap();
    }

    #[test]
    fn pruning_keeps_the_newest_of_this_factory_only() {
        let all = vec![
            manifest("prod", "2026-12-01T00:00:00Z"),
            manifest("prod", "2026-12-03T00:00:00Z"),
            manifest("other", "2026-11-01T00:00:00Z"),
            manifest("prod", "2026-12-02T00:00:00Z"),
        ];
        assert_eq!(
            to_prune(&all, "prod", 2),
            vec!["prod-v0.1.0-20261201T000000Z.tar.gz".to_string()]
        );
        assert!(to_prune(&all, "prod", 5).is_empty());
    }
}
