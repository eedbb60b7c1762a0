//! What a release remembers: its progress between runs (`target/release-progress/`), so a
//! re-run resumes, and the finished record committed as `release/vX.Y.Z.json`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use disinto::fsx;
use serde::{Deserialize, Serialize};

use super::step::{Status, Step};
use disinto::model::platform::Platform;

/// One step's outcome, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

impl StepRecord {
    pub fn skipped() -> StepRecord {
        StepRecord {
            status: Status::Skipped,
            started: None,
            finished: None,
        }
    }
}

/// One image of the release, as far as the release got with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageProgress {
    /// The local image id build-image made (what tag-image tags, by id).
    #[serde(default)]
    pub image_id: Option<String>,
    /// The manifest digest the registry answered the push with.
    #[serde(default)]
    pub digest: Option<String>,
    /// What happened to the package layers, and why (see `release::packages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<String>,
    /// The package image the image is built on (`REPOSITORY:packages-vX.Y.Z`), and the
    /// digest push-image got for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages_digest: Option<String>,
    /// The base image build-image built on, for the provenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseImage>,
    /// The signature sign-image made of `digest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// The attestations sign-image attached to `digest`, in the order made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<Attestation>,
    /// A release of several platforms: each platform's image (`linux/arm64`: its id,
    /// digest, packages, signature...); `digest` and `signature` above are then the image
    /// index's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<String, ImageProgress>,
}

impl ImageProgress {
    /// Whether it, or one of its platforms, lacks something (`lacks` says what).
    pub fn lacks(&self, lacks: impl Fn(&ImageProgress) -> bool) -> bool {
        lacks(self) || self.platforms.values().any(lacks)
    }
}

/// The image a Dockerfile's `FROM` named, as the local engine had it at build time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImage {
    /// As the Dockerfile names it (`debian:bookworm-slim`).
    pub name: String,
    /// Its image id (config digest); a registry digest when the engine knows one.
    pub digest: String,
}

/// A cosign signature of an image digest, as the record lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing key's id (`disinto::model::keys::key_id`).
    pub key_id: String,
    /// Where cosign stores it: `REPOSITORY:sha256-<hex>.sig`.
    pub tag: String,
    /// The manifest digest of that tag after signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One signed attestation (a DSSE envelope in the `.att` tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// cosign's `--type` (`spdxjson`, `slsaprovenance1`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The in-toto predicate type it stands for (`https://spdx.dev/Document`, ...).
    pub predicate_type: String,
    /// Where cosign stores it: `REPOSITORY:sha256-<hex>.att`.
    pub tag: String,
    /// The envelope's digest (its layer in the `.att` manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// SHA-256 of the predicate as generated (the SBOM or provenance document).
    pub predicate_sha256: String,
    /// What it says in brief: packages in an SBOM, the commit of a provenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// What survives between runs of the same release, so a re-run resumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub version: String,
    pub git_sha: String,
    /// Per image name (`agents`, `edge`, `reproduce`).
    #[serde(default)]
    pub images: BTreeMap<String, ImageProgress>,
    #[serde(default)]
    pub steps: BTreeMap<Step, StepRecord>,
    /// The id of the public key build-image built into the disinto binary (none: unsigned),
    /// so sign-image never signs with a key the shipped binary does not trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_key_id: Option<String>,
    /// The release bundle publish-bundle pushed and signed (`…/factory:vX.Y.Z@sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// A release of several platforms: how long build-image took for each (the binary and
    /// every image of that platform), in milliseconds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_ms: BTreeMap<String, u64>,
}

impl Progress {
    pub fn image(&self, name: &str) -> ImageProgress {
        self.images.get(name).cloned().unwrap_or_default()
    }

    pub fn image_mut(&mut self, name: &str) -> &mut ImageProgress {
        self.images.entry(name.to_string()).or_default()
    }

    /// One platform's progress of an image (`platform` none: the image's own, as a
    /// one-platform release keeps it).
    pub fn unit(&self, name: &str, platform: Option<&str>) -> ImageProgress {
        let image = self.image(name);
        match platform {
            None => image,
            Some(p) => image.platforms.get(p).cloned().unwrap_or_default(),
        }
    }

    pub fn unit_mut(&mut self, name: &str, platform: Option<&str>) -> &mut ImageProgress {
        let image = self.image_mut(name);
        match platform {
            None => image,
            Some(p) => image.platforms.entry(p.to_string()).or_default(),
        }
    }

    pub fn done(&self, step: Step) -> bool {
        self.steps
            .get(&step)
            .is_some_and(|s| s.status == Status::Done)
    }

    pub fn load(path: &Path) -> Result<Option<Progress>> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
                format!(
                    "{} is not a release progress file: delete it to start the release over",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_json(path, self)
    }
}

/// The release record committed as `release/vX.Y.Z.json`. `image`, `digest` and `image_id`
/// are agents' (what the first records held); `images` has every image of the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: String,
    pub git_sha: String,
    pub image: String,
    pub digest: Option<String>,
    pub image_id: Option<String>,
    #[serde(default)]
    pub images: BTreeMap<String, RecordImage>,
    /// Whether this release moved `latest` to itself: only the highest full release does
    /// (a backport or a pre-release does not). Absent in records older than the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<bool>,
    /// Whether every image is signed; false for an `--unsigned` release. Absent in records
    /// older than signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<bool>,
    /// The id of the key that signed the release (and that its disinto binary trusts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// A release of several platforms: build-image's time for each, in milliseconds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_ms: BTreeMap<String, u64>,
    pub steps: Vec<RecordStep>,
}

/// One released image in the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordImage {
    /// `${DISINTO_REGISTRY}/NAME:vX.Y.Z`.
    pub reference: String,
    pub digest: Option<String>,
    pub image_id: Option<String>,
    /// Whether the package layers were reused from the previous release or rebuilt, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<String>,
    /// Whether this image is signed (`signature` then says by which key, where).
    #[serde(default)]
    pub signed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// The SBOM and the provenance, signed by the same key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<Attestation>,
    /// The base image the Dockerfile built on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseImage>,
    /// The package image its layers below the factory's files are
    /// (`REPOSITORY:packages-vX.Y.Z@sha256:…`): the next release reuses it while the base
    /// image and the package steps stay the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages_image: Option<String>,
    /// A release of several platforms: each platform's image, by platform (`linux/arm64`);
    /// `digest` and `signature` above are then the image index's, which lists them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<String, RecordImage>,
}

impl RecordImage {
    fn of(reference: String, p: ImageProgress) -> RecordImage {
        let platforms: BTreeMap<String, RecordImage> = p
            .platforms
            .into_iter()
            .map(|(platform, progress)| {
                // Keys are the platforms the release wrote; one that does not parse is kept
                // as it is rather than dropped from the record.
                let reference = match Platform::parse(&platform) {
                    Ok(p) => platform_reference(&reference, &p),
                    Err(_) => reference.clone(),
                };
                (platform, RecordImage::of(reference, progress))
            })
            .collect();
        RecordImage {
            reference,
            digest: p.digest,
            image_id: p.image_id,
            packages: p.packages,
            signed: p.signature.is_some() && platforms.values().all(|i| i.signed),
            signature: p.signature,
            attestations: p.attestations,
            base: p.base,
            packages_image: p.packages_image.map(|r| match p.packages_digest {
                Some(d) => format!("{r}@{d}"),
                None => r,
            }),
            platforms,
        }
    }
}

/// `REPOSITORY:TAG` of one platform: `REPOSITORY:linux-arm64-TAG`, the one place a
/// platform's tags and local build tags are named.
pub fn platform_reference(reference: &str, platform: &Platform) -> String {
    match reference
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
    {
        Some((repository, tag)) => format!("{repository}:{}-{tag}", platform.tag_part()),
        None => format!("{reference}:{}", platform.tag_part()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordStep {
    pub id: Step,
    #[serde(flatten)]
    pub record: StepRecord,
}

impl Record {
    /// The record of `progress`, with every step in release order; `references` maps each
    /// image name to its version reference, agents first; `latest`: whether latest moved.
    pub fn of(progress: &Progress, references: &[(&str, String)], latest: bool) -> Record {
        let images: BTreeMap<String, RecordImage> = references
            .iter()
            .map(|(name, reference)| {
                let image = RecordImage::of(reference.clone(), progress.image(name));
                (name.to_string(), image)
            })
            .collect();
        let agents = references.first().and_then(|(name, _)| images.get(*name));
        let signed = !images.is_empty() && images.values().all(|i| i.signed);
        let key_id = agents
            .and_then(|a| a.signature.as_ref())
            .map(|s| s.key_id.clone());
        Record {
            version: progress.version.clone(),
            git_sha: progress.git_sha.clone(),
            image: agents.map(|a| a.reference.clone()).unwrap_or_default(),
            digest: agents.and_then(|a| a.digest.clone()),
            image_id: agents.and_then(|a| a.image_id.clone()),
            images,
            latest: Some(latest),
            signed: Some(signed),
            key_id,
            build_ms: progress.build_ms.clone(),
            // The steps up to the one that writes it: publish-bundle comes after, and
            // carries this record inside the bundle.
            steps: Step::ALL
                .iter()
                .filter(|id| **id <= Step::CommitResult)
                .map(|id| RecordStep {
                    id: *id,
                    record: progress
                        .steps
                        .get(id)
                        .cloned()
                        .unwrap_or_else(StepRecord::skipped),
                })
                .collect(),
        }
    }
}

/// Pretty JSON with a final newline, written atomically (directories created).
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value)?;
    fsx::write_atomic(path, format!("{text}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_round_trips() {
        let dir = fsx::TempDir::new("progress").unwrap();
        let path = dir.path().join("a/b/v0.2.0.json");
        assert_eq!(Progress::load(&path).unwrap(), None);
        let mut p = Progress {
            version: "v0.2.0".into(),
            git_sha: "abc".into(),
            ..Progress::default()
        };
        p.steps.insert(
            Step::Preflight,
            StepRecord {
                status: Status::Done,
                started: Some("t0".into()),
                finished: Some("t1".into()),
            },
        );
        p.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"preflight\": {"), "{text}");
        let back = Progress::load(&path).unwrap().unwrap();
        assert_eq!(back, p);
        assert!(back.done(Step::Preflight) && !back.done(Step::TagMain));
        std::fs::write(&path, "{").unwrap();
        assert!(format!("{:#}", Progress::load(&path).unwrap_err()).contains("delete it"));
    }

    #[test]
    fn the_record_lists_every_step_in_order() {
        let p = Progress {
            version: "v0.2.0".into(),
            ..Progress::default()
        };
        let r = Record::of(
            &p,
            &[
                ("agents", "r/agents:v0.2.0".into()),
                ("edge", "r/edge:v0.2.0".into()),
            ],
            false,
        );
        assert_eq!(r.image, "r/agents:v0.2.0");
        assert_eq!(r.images["edge"].reference, "r/edge:v0.2.0");
        let ids: Vec<Step> = r.steps.iter().map(|s| s.id).collect();
        assert_eq!(ids, Step::ALL[..Step::ALL.len() - 1]);
        assert_eq!(ids.last(), Some(&Step::CommitResult));
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"latest\":false"), "{json}");
        assert!(json.contains("\"signed\":false"), "{json}");
        assert!(!json.contains("key_id"), "{json}");
        assert!(
            json.contains("{\"id\":\"preflight\",\"status\":\"skipped\"}"),
            "{json}"
        );
        assert!(!json.contains("platforms"), "{json}");
    }

    #[test]
    fn a_release_of_several_platforms_is_signed_only_when_the_index_and_each_platform_are() {
        let signature = |tag: &str| Signature {
            key_id: "k".into(),
            tag: tag.into(),
            digest: None,
        };
        let mut p = Progress {
            version: "v0.2.0".into(),
            ..Progress::default()
        };
        p.unit_mut("agents", None).digest = Some("sha256:index".into());
        p.unit_mut("agents", None).signature = Some(signature("index"));
        for platform in ["linux/amd64", "linux/arm64"] {
            let unit = p.unit_mut("agents", Some(platform));
            unit.digest = Some(format!("sha256:{platform}"));
            unit.signature = Some(signature(platform));
        }
        let refs = [("agents", "r/agents:v0.2.0".to_string())];
        let r = Record::of(&p, &refs, true);
        assert_eq!(r.digest.as_deref(), Some("sha256:index"));
        assert_eq!(r.signed, Some(true));
        let arm = &r.images["agents"].platforms["linux/arm64"];
        assert_eq!(arm.reference, "r/agents:linux-arm64-v0.2.0");
        assert_eq!(arm.digest.as_deref(), Some("sha256:linux/arm64"));
        p.unit_mut("agents", Some("linux/arm64")).signature = None;
        assert_eq!(Record::of(&p, &refs, true).signed, Some(false));
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(
            platform_reference("127.0.0.1:5000/ns/edge:v1.0.0-rc.1", &v7),
            "127.0.0.1:5000/ns/edge:linux-arm-v7-v1.0.0-rc.1"
        );
        assert_eq!(
            platform_reference("127.0.0.1:5000/ns/edge", &v7),
            "127.0.0.1:5000/ns/edge:linux-arm-v7"
        );
    }
}
