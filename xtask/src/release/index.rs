//! The image index of a release of several platforms: each image's platforms, as pushed
//! (their digests, media types and sizes, read back from the registry), written as one OCI
//! image index and put under the version tag (and latest), through disinto's registry
//! client. Immutable like the images: an index already there with other contents is an error.

use anyhow::{bail, Context, Result};
use disinto::model::index::{self, Entry, DOCKER_LIST, OCI_INDEX};
use disinto::model::signature::IMAGE_MANIFEST_TYPES;

use super::Run;

/// Pushes every image's index (after its platforms are pushed) and records its digest.
pub(super) fn push_indexes(run: &mut Run<'_>) -> Result<()> {
    let registry = super::registry::client(&run.plan.config)?;
    for image in &run.plan.images {
        let name = image.name();
        let path = super::registry::repository_path(&run.plan.config, &image.repository)?;
        let progress = run.state.progress.image(name);
        let mut entries = vec![];
        for platform in &run.plan.platforms {
            let unit = progress
                .platforms
                .get(&platform.to_string())
                .and_then(|u| u.digest.clone())
                .with_context(|| {
                    format!("push-image has not recorded the {name} image for {platform}: run the release again")
                })?;
            let (bytes, _) = registry
                .manifest(&path, &unit, IMAGE_MANIFEST_TYPES)?
                .with_context(|| {
                    format!("the registry has no {}@{unit} ({platform}), which was pushed: run the release again", image.repository)
                })?;
            entries.push(Entry {
                platform: platform.clone(),
                digest: unit,
                media_type: media_type(&bytes),
                size: bytes.len() as u64,
            });
        }
        let bytes = index::render(&entries)?;
        let digest = disinto::model::signature::sha256_digest(&bytes);
        let accept = format!("{OCI_INDEX}, {DOCKER_LIST}");
        match registry.manifest(&path, &run.plan.version, &accept)? {
            Some((_, there)) if there == digest => {
                eprintln!("  {}: the registry holds this index already", image.version_ref)
            }
            Some((_, there)) => bail!(
                "the registry holds something else under {} ({there}): versions are immutable, release a new one",
                image.version_ref
            ),
            None => put(&registry, &path, &run.plan.version, &bytes, &image.version_ref)?,
        }
        if image.latest_ref.is_some() {
            put(
                &registry,
                &path,
                "latest",
                &bytes,
                &format!("{}:latest", image.repository),
            )?;
        }
        let platforms: Vec<String> = entries.iter().map(|e| e.platform.to_string()).collect();
        eprintln!(
            "  pushed {}@{digest}: an image index of {}",
            image.version_ref,
            platforms.join(", ")
        );
        let progress = run.state.progress.image_mut(name);
        if progress.digest.as_deref() != Some(digest.as_str()) {
            // Another index than the one signed before (a platform was rebuilt).
            progress.signature = None;
        }
        progress.digest = Some(digest);
    }
    Ok(())
}

fn put(
    registry: &disinto::engine::registry::Registry,
    path: &str,
    tag: &str,
    bytes: &[u8],
    reference: &str,
) -> Result<()> {
    registry
        .push_manifest(path, tag, OCI_INDEX, bytes)
        .map(drop)
        .with_context(|| {
            format!("the registry refused the image index {reference}: a registry without image indexes can only take one platform (set DISINTO_PLATFORMS=linux/amd64); the platforms are pushed, so a rerun finishes the index")
        })
}

/// A manifest's own media type (what `docker push` wrote), Docker's by default.
fn media_type(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| index::DOCKER_MANIFEST.to_string())
}
