//! The gate every rollout passes before it pulls or starts one of our images (`up`,
//! `rollback`, `watch --revert`, `swarm deploy`, the release's restart-agents): the image's
//! digest must carry a cosign signature by a trusted key (the release's key built into this
//! binary, and the keys of `DISINTO_TRUSTED_KEYS`), for that digest, in that repository. A
//! digest verified once is remembered in `state/verified.json`, so a rollback to an image
//! still here needs no registry. A digest that names an image index (a release of several
//! platforms) passes when the index is signed AND the entry this engine's platform pulls is
//! signed; an index with no entry for this platform is refused (it was not built for it). `--insecure-skip-verify` passes anything, loudly, and the
//! history says so; dev mode (built from this checkout) has nothing to verify, and says so.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

use crate::engine::docker;
use crate::engine::registry::{self, Fetched};
use crate::factory::Factory;
use crate::fsx;
use crate::model::config::Settings;
use crate::model::image_ref::ImageRef;
use crate::model::index;
use crate::model::keys::{parse_keys, TrustedKey};
use crate::model::platform::Platform;
use crate::model::time::now_rfc3339;
use crate::model::verified::Verified;

/// A file of PEM public keys the operator trusts besides the release's own.
pub const TRUSTED_KEYS_VAR: &str = "DISINTO_TRUSTED_KEYS";

/// Every key this binary trusts: the release's, then the operator's file
/// (`DISINTO_TRUSTED_KEYS`, from the environment or the factory's `.env` as every setting;
/// a relative path is the factory's). A file that is missing, unreadable or holds anything
/// but public keys is an error naming it.
pub fn trusted_keys(settings: &Settings, factory_dir: &Path) -> Result<Vec<TrustedKey>> {
    let mut keys = parse_keys(
        crate::RELEASE_PUBLIC_KEY,
        "the release key built into disinto",
    )?;
    let Some(file) = settings.get(TRUSTED_KEYS_VAR)?.filter(|f| !f.is_empty()) else {
        return Ok(keys);
    };
    let path = factory_dir.join(file);
    let named = format!("{TRUSTED_KEYS_VAR}={}", path.display());
    let bytes = fsx::read_regular(&path, 1 << 20)
        .with_context(|| named.clone())?
        .with_context(|| format!("{named}: no such file"))?;
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("{named}: not a PEM text file"))?;
    let theirs = parse_keys(&text, &named)?;
    if theirs.is_empty() {
        anyhow::bail!("{named}: holds no public key");
    }
    keys.extend(theirs);
    Ok(keys)
}

/// How the images of a rollout were let through: what its history row says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Passed {
    /// Built from this checkout: nothing to verify.
    #[default]
    Dev,
    /// `--insecure-skip-verify`: not verified.
    Skipped,
    /// Verified; the key id that signed agents (else the first image checked).
    Verified(String),
}

impl Passed {
    /// Writes how the rollout's images passed into its history row.
    pub fn stamp(&self, row: &mut crate::model::history::Deployment) {
        match self {
            Passed::Dev => {}
            Passed::Skipped => row.skip_verify = true,
            Passed::Verified(key) => row.verified_by = Some(key.clone()),
        }
    }
}

/// The gate of one rollout: the keys, the factory's verified digests, and whether it is off.
pub struct Trust {
    pub keys: Vec<TrustedKey>,
    pub skip: bool,
    factory_dir: PathBuf,
    verified: Verified,
    /// The engine's platform, asked once and only when an index needs it.
    platform: Option<Platform>,
    /// Every entry of an index must be signed, not only this engine's: a swarm's nodes may
    /// be of other platforms, and each pulls its own.
    pub every_platform: bool,
}

impl Trust {
    /// The gate for a rollout on `factory`; `skip` turns it off (loudly).
    pub fn load(factory: &Factory, skip: bool) -> Result<Trust> {
        let keys = match skip {
            true => vec![],
            false => trusted_keys(&factory.settings, &factory.dir)?,
        };
        Ok(Trust {
            keys,
            skip,
            factory_dir: factory.dir.clone(),
            verified: Verified::load(&factory.dir),
            platform: None,
            every_platform: false,
        })
    }

    /// The key id that verified one of `candidates` (`repository`, `digest`) before, if it
    /// is trusted still (and, for an index, it was verified for this engine's platform, or
    /// for every platform when every one must be): no registry needed.
    pub fn remembered(&mut self, candidates: &[(String, String)]) -> Option<(usize, String)> {
        for (i, (repo, digest)) in candidates.iter().enumerate() {
            let Some(key) = self.verified.remembered(repo, digest, &self.keys) else {
                continue;
            };
            let key = key.to_string();
            let platform = self
                .verified
                .proof(repo, digest)
                .and_then(|p| p.platform.clone());
            if let Some(platform) = platform {
                // Only this platform's entry was checked: not enough for a swarm's nodes.
                if self.every_platform {
                    continue;
                }
                // An engine that cannot say its platform: the registry is asked instead.
                match self.host_platform() {
                    Ok(host) if host.to_string() == platform => {}
                    _ => continue,
                }
            }
            return Some((i, key));
        }
        None
    }

    /// The platform of this engine, asked of the daemon once.
    fn host_platform(&mut self) -> Result<Platform> {
        if let Some(p) = &self.platform {
            return Ok(p.clone());
        }
        let p = docker::engine_platform()?;
        self.platform = Some(p.clone());
        Ok(p)
    }

    /// Verifies `digest` of `image` at its registry, and remembers it (a factory whose state
    /// cannot be written only warns: the next rollout asks the registry again). `manifest` is
    /// the manifest of `digest` when the caller fetched it already (resolving a tag): a
    /// single image then costs no request more than its signature; without it, one fetch
    /// says whether `digest` is an index. For an index, the entry of this engine's platform
    /// must be signed too (every entry, with `every_platform`).
    pub fn verify(
        &mut self,
        image: &ImageRef,
        digest: &str,
        manifest: Option<&Fetched>,
    ) -> Result<String> {
        if self.keys.is_empty() {
            anyhow::bail!("no trusted key: this disinto was not built by a release; set {TRUSTED_KEYS_VAR} to a file of cosign public keys (cosign.pub)");
        }
        let signed = registry::verify(image, digest, &self.keys)?;
        let fetched;
        let manifest = match manifest {
            Some(m) => m,
            None => {
                fetched = registry::manifest_of(image, digest)?;
                &fetched
            }
        };
        let platform = match manifest.index()? {
            None => None,
            Some(entries) => {
                let host = self.host_platform()?;
                let named = format!("{}@{digest}", image.repository());
                for entry in index::to_verify(&entries, &host, &named, self.every_platform)? {
                    registry::verify(image, &entry.digest, &self.keys).with_context(|| {
                        format!(
                            "its {} image {} (in the index {digest})",
                            entry.platform, entry.digest
                        )
                    })?;
                }
                // Every entry checked: the proof holds on any platform.
                (!self.every_platform).then(|| host.to_string())
            }
        };
        self.verified.remember_for(
            image.repository(),
            digest,
            &signed.key_id,
            &now_rfc3339(),
            platform.as_deref(),
        );
        if let Err(e) = self.verified.save(&self.factory_dir) {
            eprintln!("warning: {} verified, but it cannot be remembered ({e:#}): a rollback to it will ask the registry again", image.without_digest());
        }
        Ok(signed.key_id)
    }
}
