//! The package stage of each image, reused from the previous release by construction: a
//! release builds its final stage `FROM` a package image, and when the package inputs equal
//! the previous release's, that image IS the previous release's (same image id), whatever
//! the local build cache holds. Pure: the inputs, the decision and the record's wording.

use std::collections::BTreeMap;

use anyhow::Result;

/// The stage of our Dockerfiles that holds the packages (`--target`), and the build argument
/// naming what the last stage is built on (its default is this stage).
pub(crate) const STAGE: &str = "packages";
pub(crate) const ARG: &str = "PACKAGES";

/// Labels on every released image: what its package image was made of, and which it is.
pub(crate) const LABEL_INPUTS: &str = "org.disinto.packages.inputs";
pub(crate) const LABEL_BASE: &str = "org.disinto.packages.base";
pub(crate) const LABEL_IMAGE: &str = "org.disinto.packages.image";
pub(crate) const LABEL_TAG: &str = "org.disinto.packages.tag";
const LABEL_VERSION: &str = "org.opencontainers.image.version";

/// Bumped when the way package images are made changes, so no release reuses one made the
/// old way.
const SCHEME: &str = "disinto-packages/1";

/// What decides an image's package layers: the base image and the package stage's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inputs {
    /// The base image's id (its config digest: a new base is a new id).
    pub base: String,
    /// `sha256:` of the scheme, the base id and the package stage's lines.
    pub hash: String,
}

impl Inputs {
    /// The inputs of `dockerfile` (its text) built on the base image `base_id`.
    pub fn of(dockerfile: &str, base_id: &str) -> Result<Inputs> {
        let stages = crate::dockerfile::package_stages(dockerfile)?;
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [SCHEME, base_id, &stages] {
            hasher.update(part.as_bytes());
            hasher.update(&[0]);
        }
        let hash: String = hasher
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Inputs {
            base: base_id.to_string(),
            hash: format!("sha256:{hash}"),
        })
    }

    /// The labels that carry these inputs and the package image to the next release.
    pub fn labels(&self, image_id: &str, tag: &str) -> Vec<String> {
        [
            (LABEL_INPUTS, self.hash.as_str()),
            (LABEL_BASE, self.base.as_str()),
            (LABEL_IMAGE, image_id),
            (LABEL_TAG, tag),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
    }
}

/// What the previous release's labels say of its package image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Previous {
    pub version: Option<String>,
    pub inputs: Option<String>,
    pub base: Option<String>,
    /// The package image's id.
    pub image: Option<String>,
    /// Its tag in the release's repository (`packages-vX.Y.Z`).
    pub tag: Option<String>,
}

impl Previous {
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Previous {
        let get = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
        Previous {
            version: get(LABEL_VERSION),
            inputs: get(LABEL_INPUTS),
            base: get(LABEL_BASE),
            image: get(LABEL_IMAGE),
            tag: get(LABEL_TAG),
        }
    }

    fn name(&self) -> String {
        match &self.version {
            Some(v) => format!("the previous release ({v})"),
            None => "the previous release".into(),
        }
    }
}

/// What build-image does for an image's package layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Build the final stage on the previous release's package image, this one.
    Reuse {
        image: String,
        tag: String,
        /// The release it comes from, for the record.
        from: String,
    },
    /// Build the package stage (`no_cache`: every step run again); `why` is the record's note.
    Build { no_cache: bool, why: String },
}

/// Reuse the previous release's package image exactly when its inputs are these.
pub(crate) fn decide(inputs: &Inputs, previous: Option<&Previous>, refresh: bool) -> Decision {
    let build = |why: String| Decision::Build {
        no_cache: refresh,
        why,
    };
    if refresh {
        return build("rebuilt: --refresh-packages".into());
    }
    let Some(previous) = previous else {
        return build("built: no previous release to reuse".into());
    };
    let (Some(prev_inputs), Some(image), Some(tag)) =
        (&previous.inputs, &previous.image, &previous.tag)
    else {
        return build(format!(
            "built: {} names no package image to reuse",
            previous.name()
        ));
    };
    if previous.base.as_deref() != Some(inputs.base.as_str()) {
        return build(format!(
            "rebuilt: the base image changed since {} ({} → {})",
            previous.name(),
            short(previous.base.as_deref().unwrap_or("unknown")),
            short(&inputs.base)
        ));
    }
    if *prev_inputs != inputs.hash {
        return build(format!(
            "rebuilt: the package steps of the Dockerfile changed since {}",
            previous.name()
        ));
    }
    Decision::Reuse {
        image: image.clone(),
        tag: tag.clone(),
        from: previous.name(),
    }
}

/// The record's note for a reuse that was carried out: `shared` of the image's `total`
/// layers are the package image's.
pub(crate) fn reused_note(from: &str, tag: &str, shared: usize, total: usize) -> String {
    format!(
        "reused from {from}: its package image {tag} ({shared} of {total} layers), because the base image and the package steps are unchanged"
    )
}

/// The first 12 hex digits of an id, as Docker shows them.
fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// `SOURCE_DATE_EPOCH` for a package stage: the base image's creation time (Docker's
/// `Created`, RFC 3339 with fractions), so the same inputs date their files alike; 0 when
/// the base states none.
pub(crate) fn source_date_epoch(created: &str) -> u64 {
    let created = created.trim();
    let whole = created.get(..19).map(|s| format!("{s}Z"));
    whole
        .as_deref()
        .and_then(disinto::model::time::parse_rfc3339)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "ARG B=x\nARG PACKAGES=packages\nFROM ${B} AS packages\nRUN apt-get install jq\nFROM ${PACKAGES}\nCOPY lib/ /lib/\n";

    fn previous(inputs: &Inputs) -> Previous {
        let labels: BTreeMap<String, String> = inputs
            .labels("sha256:pk", "packages-v0.1.0")
            .iter()
            .chain(std::iter::once(&format!("{LABEL_VERSION}=v0.1.0")))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Previous::from_labels(&labels)
    }

    #[test]
    fn inputs_change_with_the_base_and_the_package_lines_only() {
        let a = Inputs::of(FILE, "sha256:base1").unwrap();
        assert!(a.hash.starts_with("sha256:") && a.hash.len() == 71);
        assert_eq!(Inputs::of(FILE, "sha256:base1").unwrap(), a);
        let script_edit = FILE.replace("COPY lib/", "COPY bin/");
        assert_eq!(Inputs::of(&script_edit, "sha256:base1").unwrap(), a);
        assert_ne!(Inputs::of(FILE, "sha256:base2").unwrap().hash, a.hash);
        let package_edit = FILE.replace("jq", "jq curl");
        assert_ne!(
            Inputs::of(&package_edit, "sha256:base1").unwrap().hash,
            a.hash
        );
    }

    #[test]
    fn reuse_exactly_when_the_previous_release_had_the_same_inputs() {
        let inputs = Inputs::of(FILE, "sha256:base1").unwrap();
        let prev = previous(&inputs);
        assert_eq!(
            decide(&inputs, Some(&prev), false),
            Decision::Reuse {
                image: "sha256:pk".into(),
                tag: "packages-v0.1.0".into(),
                from: "the previous release (v0.1.0)".into()
            }
        );
        let why = |d: Decision| match d {
            Decision::Build { why, no_cache } => (why, no_cache),
            Decision::Reuse { .. } => panic!("reused"),
        };
        assert_eq!(
            why(decide(&inputs, Some(&prev), true)),
            ("rebuilt: --refresh-packages".into(), true)
        );
        assert_eq!(
            why(decide(&inputs, None, false)).0,
            "built: no previous release to reuse"
        );
        let old_style = Previous {
            version: Some("v0.0.9".into()),
            ..Previous::default()
        };
        assert_eq!(
            why(decide(&inputs, Some(&old_style), false)).0,
            "built: the previous release (v0.0.9) names no package image to reuse"
        );
        let new_base = Inputs::of(FILE, "sha256:base2222222222222").unwrap();
        assert_eq!(
            why(decide(&new_base, Some(&prev), false)),
            (
                "rebuilt: the base image changed since the previous release (v0.1.0) (base1 → base22222222)".into(),
                false
            )
        );
        let edited = Inputs::of(&FILE.replace("jq", "jq curl"), "sha256:base1").unwrap();
        assert_eq!(
            why(decide(&edited, Some(&prev), false)).0,
            "rebuilt: the package steps of the Dockerfile changed since the previous release (v0.1.0)"
        );
    }

    #[test]
    fn the_epoch_is_the_base_images_creation_second() {
        assert_eq!(source_date_epoch("1970-01-01T00:00:10.123456789Z"), 10);
        assert_eq!(source_date_epoch("2023-11-14T22:13:20Z\n"), 1_700_000_000);
        assert_eq!(source_date_epoch(""), 0);
        assert_eq!(source_date_epoch("yesterday"), 0);
    }
}
