//! `state/verified.json`: the image digests this factory has verified, and by which key, so
//! a rollback to an image still here needs no registry (the registry may be down: that may
//! be why the operator rolls back). A digest is only taken on the word of a key still trusted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::keys::TrustedKey;

/// Where the verified digests are kept, relative to the factory directory.
pub const VERIFIED_FILE: &str = "state/verified.json";

/// How many digests are remembered: enough for every rollback the keep tags allow and many
/// more, and the file stays far below what a state record may weigh (64 KiB).
const REMEMBERED: usize = 100;

/// The verified digests of a factory, by `repository@digest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    #[serde(default)]
    pub digests: BTreeMap<String, Proof>,
}

/// Which key verified a digest, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub key: String,
    pub time: String,
    /// For an image index: the platform whose entry was verified with it (`linux/amd64`).
    /// The proof holds on that platform only: another host runs another entry, unchecked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl Proof {
    /// Whether this proof covers what a host of `platform` runs from its digest.
    pub fn holds_on(&self, platform: &str) -> bool {
        self.platform.as_deref().is_none_or(|p| p == platform)
    }
}

impl Verified {
    pub fn path(factory_dir: &Path) -> PathBuf {
        factory_dir.join(VERIFIED_FILE)
    }

    /// The factory's verified digests; a missing or garbled file remembers nothing (the
    /// registry is asked again), and is never an error.
    pub fn load(factory_dir: &Path) -> Verified {
        crate::fsx::read_record(&Verified::path(factory_dir)).unwrap_or_default()
    }

    /// The key id that verified `digest` in `repository`, if that key is trusted still.
    pub fn remembered(&self, repository: &str, digest: &str, keys: &[TrustedKey]) -> Option<&str> {
        let proof = self.digests.get(&format!("{repository}@{digest}"))?;
        keys.iter()
            .any(|k| k.id == proof.key)
            .then_some(proof.key.as_str())
    }

    /// What was remembered of `digest` in `repository`, whoever's key it was.
    pub fn proof(&self, repository: &str, digest: &str) -> Option<&Proof> {
        self.digests.get(&format!("{repository}@{digest}"))
    }

    /// Remembers that `key` verified `digest` in `repository` at `time`; the oldest go first.
    pub fn remember(&mut self, repository: &str, digest: &str, key: &str, time: &str) {
        self.remember_for(repository, digest, key, time, None);
    }

    /// [`Verified::remember`], for an image index whose entry for `platform` was verified
    /// with it.
    pub fn remember_for(
        &mut self,
        repository: &str,
        digest: &str,
        key: &str,
        time: &str,
        platform: Option<&str>,
    ) {
        self.digests.insert(
            format!("{repository}@{digest}"),
            Proof {
                key: key.to_string(),
                time: time.to_string(),
                platform: platform.map(str::to_string),
            },
        );
        while self.digests.len() > REMEMBERED {
            let oldest = self
                .digests
                .iter()
                .min_by(|a, b| a.1.time.cmp(&b.1.time))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.digests.remove(&k),
                None => break,
            };
        }
    }

    /// Writes the file atomically (the old one or the new one, never half of either).
    pub fn save(&self, factory_dir: &Path) -> Result<()> {
        let path = Verified::path(factory_dir);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        crate::fsx::write_atomic(&path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> TrustedKey {
        crate::model::keys::testing::SigningKey::seeded(seed).trusted()
    }

    #[test]
    fn a_digest_is_remembered_only_while_its_key_is_trusted() {
        let dir = crate::fsx::TempDir::new("verified").unwrap();
        let (a, b) = (key(1), key(2));
        let mut v = Verified::load(dir.path());
        assert_eq!(v, Verified::default());
        v.remember("r/agents", "sha256:aa", &a.id, "2026-01-01T00:00:00Z");
        v.save(dir.path()).unwrap();
        let v = Verified::load(dir.path());
        assert_eq!(
            v.remembered("r/agents", "sha256:aa", &[b.clone(), a.clone()]),
            Some(a.id.as_str())
        );
        // The key rotated out: asked again.
        assert_eq!(v.remembered("r/agents", "sha256:aa", &[b]), None);
        assert_eq!(v.remembered("r/edge", "sha256:aa", &[a]), None);
        // Garbled: remembers nothing, no error.
        std::fs::write(Verified::path(dir.path()), "{garbage").unwrap();
        assert_eq!(Verified::load(dir.path()), Verified::default());
    }

    #[test]
    fn an_index_is_remembered_for_the_platform_checked_with_it() {
        let dir = crate::fsx::TempDir::new("verified").unwrap();
        let a = key(1);
        let mut v = Verified::default();
        v.remember_for(
            "r/agents",
            "sha256:ii",
            &a.id,
            "2026-01-01T00:00:00Z",
            Some("linux/amd64"),
        );
        v.remember("r/agents", "sha256:mm", &a.id, "2026-01-01T00:00:00Z");
        v.save(dir.path()).unwrap();
        let v = Verified::load(dir.path());
        let index = v.proof("r/agents", "sha256:ii").unwrap();
        assert!(index.holds_on("linux/amd64"));
        assert!(!index.holds_on("linux/arm64"));
        // A single image's proof holds wherever it runs (it is one platform's bytes).
        assert!(v
            .proof("r/agents", "sha256:mm")
            .unwrap()
            .holds_on("linux/arm64"));
        // A file written before platforms were remembered reads as proofs for any platform.
        std::fs::write(
            Verified::path(dir.path()),
            r#"{"digests":{"r@sha256:old":{"key":"k","time":"t"}}}"#,
        )
        .unwrap();
        let old = Verified::load(dir.path());
        assert!(old
            .proof("r", "sha256:old")
            .unwrap()
            .holds_on("linux/amd64"));
    }

    #[test]
    fn the_oldest_are_forgotten_first() {
        let mut v = Verified::default();
        for i in 0..(REMEMBERED + 5) {
            v.remember(
                "r",
                &format!("sha256:{i:04}"),
                "k",
                &format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60),
            );
        }
        assert_eq!(v.digests.len(), REMEMBERED);
        assert!(!v.digests.contains_key("r@sha256:0000"));
        assert!(v
            .digests
            .contains_key(&format!("r@sha256:{:04}", REMEMBERED + 4)));
    }
}
