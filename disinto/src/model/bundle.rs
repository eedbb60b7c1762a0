//! The release bundle, `${DISINTO_REGISTRY}/factory:vX.Y.Z`: an OCI artifact (OCI 1.1's
//! empty config, one layer per file, each named by its `org.opencontainers.image.title`)
//! holding what a new factory needs of a release besides its images: the release record, the
//! `.env.example` of that release, the compose file pinned by digest, and the release's
//! `.env` migrations. Signed like the images, read by `disinto init --release`.

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::signature::{sha256_digest, Descriptor};

/// The repository of bundles, beside agents, edge and reproduce.
pub const REPOSITORY: &str = "factory";
pub const ARTIFACT_TYPE: &str = "application/vnd.disinto.factory.v1";
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI 1.1's empty descriptor: an artifact with no config of its own.
pub const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY: &[u8] = b"{}";
const TITLE: &str = "org.opencontainers.image.title";
/// No file of a bundle is anywhere near this.
pub const MAX_FILE: u64 = 1 << 20;

/// The files of a bundle: name (the layer's title) and media type.
pub const FILES: [(&str, &str); 4] = [
    (
        "release.json",
        "application/vnd.disinto.release.record.v1+json",
    ),
    (".env.example", "text/plain; charset=utf-8"),
    (
        "docker-compose.yml",
        "application/vnd.docker.compose.file+yaml",
    ),
    ("migrations.yml", "application/yaml"),
];

/// A blob to push: its digest and bytes.
pub type Blob = (String, Vec<u8>);

/// The manifest of a bundle of `files` (name, bytes, in [`FILES`] order), and the blobs to
/// push first (the empty config and each file).
pub fn manifest(files: &[(&str, Vec<u8>)], created: &str) -> Result<(Vec<u8>, Vec<Blob>)> {
    let mut blobs = vec![(sha256_digest(EMPTY), EMPTY.to_vec())];
    let mut layers = Vec::new();
    for (name, bytes) in files {
        let media = FILES
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| *m)
            .with_context(|| format!("{name} is not a file of the release bundle"))?;
        let digest = sha256_digest(bytes);
        layers.push(serde_json::json!({
            "mediaType": media,
            "digest": digest,
            "size": bytes.len(),
            "annotations": { TITLE: name },
        }));
        blobs.push((digest, bytes.clone()));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": { "mediaType": EMPTY_TYPE, "digest": sha256_digest(EMPTY), "size": EMPTY.len() },
        "layers": layers,
        "annotations": { "org.opencontainers.image.created": created },
    });
    Ok((serde_json::to_vec(&manifest)?, blobs))
}

/// The files a bundle's manifest lists, by name; refuses anything that is not a bundle.
pub fn files(manifest: &[u8], origin: &str) -> Result<Vec<(String, Descriptor)>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Manifest {
        #[serde(default)]
        artifact_type: Option<String>,
        layers: Vec<Descriptor>,
    }
    let m: Manifest = serde_json::from_slice(manifest)
        .with_context(|| format!("{origin} is not an OCI manifest"))?;
    if m.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        bail!(
            "{origin} is not a disinto release bundle (artifactType {:?})",
            m.artifact_type
        );
    }
    let mut out = Vec::new();
    for layer in m.layers {
        let name = layer
            .annotations
            .get(TITLE)
            .with_context(|| format!("{origin}: a layer has no title"))?;
        if !FILES.iter().any(|(n, _)| n == name) || out.iter().any(|(n, _)| n == name) {
            bail!("{origin}: holds {name:?}, which is not a file of a bundle (or twice)");
        }
        if layer.size > MAX_FILE {
            bail!(
                "{origin}: {name} is {} bytes, more than a bundle's file may be",
                layer.size
            );
        }
        out.push((name.clone(), layer.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_reads_back_and_anything_else_is_refused() {
        let files_in = vec![
            ("release.json", b"{}".to_vec()),
            (".env.example", b"AGENTS_IMAGE=\n".to_vec()),
        ];
        let (m, blobs) = manifest(&files_in, "2026-12-02T00:00:00Z").unwrap();
        assert_eq!(blobs.len(), 3);
        let read = files(&m, "factory:v1.0.0").unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].0, ".env.example");
        assert_eq!(read[1].1.size, 14);
        assert!(manifest(&[("../etc/passwd", vec![])], "x").is_err());
        let image = br#"{"schemaVersion":2,"layers":[]}"#;
        let e = files(image, "agents:v1").unwrap_err();
        assert!(
            e.to_string().contains("not a disinto release bundle"),
            "{e}"
        );
    }
}
