//! Our images on this host, shared by every rollout (`up`, `rollback`, `swarm deploy`, the
//! release's restart-agents): verify their signatures ([`super::trust`]), pull what is
//! missing by its verified digest and pin it by that digest; keep
//! the images of recent deployments under a local tag so a revert or rollback needs no
//! registry.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};

use super::trust::{Passed, Trust};
use crate::engine::{docker, registry, Runner};
use crate::model::config::FactoryConfig;
use crate::model::history::{Deployment, Outcome};
use crate::model::image_ref::{ImageRef, OurImage, AGENTS};

pub use crate::model::image_ref::KEEP_REPOSITORY;

/// How many deployments' images stay tagged under [`KEEP_REPOSITORY`], so a rollback to
/// them needs no registry (and survives `docker image prune`).
const KEPT_DEPLOYMENTS: usize = 3;

/// What [`pull_and_pin`] gives a rollout: the exact references to run, by image name (none
/// in dev mode), and how they passed the gate.
#[derive(Debug, Default)]
pub struct Pinned {
    pub refs: BTreeMap<&'static str, String>,
    pub passed: Passed,
}

/// Verifies, pulls what is not here yet, and pins by registry digest each of `images`.
/// Nothing is pulled before its signature checks out (see [`super::trust`]); a refusal is one
/// line naming the image and the reason, and nothing has been changed. A dry run prints the
/// pulls it would make and pins nothing (it asks no registry).
pub fn pull_and_pin(
    runner: &Runner<'_>,
    config: &FactoryConfig,
    images: impl IntoIterator<Item = OurImage>,
    trust: &mut Trust,
) -> Result<Pinned> {
    let mut pinned = Pinned::default();
    let mut dev = vec![];
    let mut agents_key = None;
    let mut first_key = None;
    // Pulled once every image has passed: a refusal pulls nothing at all.
    let mut to_pull = vec![];
    let refuse = |reference: &str, why: anyhow::Error| {
        anyhow!(
            "{reference}: refused, {why:#}; nothing was changed and nothing pulled (AGENTS_IMAGE={})",
            config.agents.as_setting()
        )
    };
    for image in images {
        let Some(reference) = config.agents.resolved_for(image, &config.registry) else {
            dev.push(image.name);
            continue;
        };
        let parsed = ImageRef::parse(&reference).map_err(|e| refuse(&reference, e))?;
        if trust.skip || runner.dry_run {
            if runner.dry_run && !trust.skip {
                runner.note(&format!(
                    "verify the cosign signature of {reference} ({} trusted key(s)), by the digest the registry names, before it is pulled",
                    trust.keys.len()
                ));
            }
            if !docker::image_present(&reference) {
                let sh = runner.sh;
                let pull = xshell::cmd!(sh, "docker pull --quiet {reference}");
                if let Err(why) = runner.exec_captured(pull) {
                    bail!(
                        "AGENTS_IMAGE={}: cannot pull {reference} ({why:#}); nothing was changed, the running factory is as it was",
                        config.agents.as_setting()
                    );
                }
            }
            if !runner.dry_run {
                pinned.refs.insert(image.name, pin(&reference));
            }
            continue;
        }
        let (run, key) = verified_reference(trust, &parsed).map_err(|e| refuse(&reference, e))?;
        eprintln!("verified {run} (signed by {key})");
        to_pull.push((parsed, run.clone()));
        if image.name == AGENTS.name {
            agents_key = Some(key.clone());
        }
        first_key.get_or_insert(key);
        pinned.refs.insert(image.name, run);
    }
    for (image, run) in to_pull {
        if let Err(why) = pull_verified(runner, &image, &run) {
            bail!(
                "AGENTS_IMAGE={}: {why:#}; nothing was changed, the running factory is as it was",
                config.agents.as_setting()
            );
        }
    }
    if !dev.is_empty() {
        let line = format!(
            "dev mode: {} built from this checkout, not verified (no signature to check)",
            dev.join(", ")
        );
        match runner.dry_run {
            true => runner.note(&line),
            false => eprintln!("{line}"),
        }
    }
    pinned.passed = match (trust.skip, agents_key.or(first_key)) {
        (true, _) => Passed::Skipped,
        (false, Some(key)) => Passed::Verified(key),
        (false, None) => Passed::Dev,
    };
    if trust.skip && !runner.dry_run && !pinned.refs.is_empty() {
        eprintln!(
            "WARNING: --insecure-skip-verify: the signatures of {} were NOT checked; the history records this rollout as unverified",
            pinned.refs.values().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(pinned)
}

/// The verified, digest-pinned reference to run for `image`, and the key id that signed it.
/// A digest already here and remembered as verified needs no registry; any other is looked
/// up and verified there first.
fn verified_reference(trust: &mut Trust, image: &ImageRef) -> Result<(String, String)> {
    let reference = image.to_string();
    // The digests that name what is here under this reference, in its repository (a keep
    // tag's image: in any repository it came from).
    let candidates: Vec<(String, String)> = match image.digest() {
        Some(digest) => vec![(image.repository().to_string(), digest.to_string())],
        None => local_repo_digests(&reference)
            .into_iter()
            .filter_map(|d| {
                let (repo, digest) = d.split_once('@')?;
                (image.repository() == KEEP_REPOSITORY || repo == image.repository())
                    .then(|| (repo.to_string(), digest.to_string()))
            })
            .collect(),
    };
    let is_keep = image.repository() == KEEP_REPOSITORY;
    // The repository is the image's own, but for a keep tag's (where it came from).
    let (digest, key) = match trust.remembered(&candidates) {
        Some((i, key)) => (candidates[i].1.clone(), key),
        None => {
            // Resolving a tag fetches its manifest: the gate reads the kind from it.
            let (repo, digest, manifest) = match candidates.first() {
                Some((repo, digest)) => (repo.clone(), digest.clone(), None),
                None if is_keep => {
                    bail!("a kept image whose origin is unknown: roll back by version")
                }
                None => {
                    let fetched = registry::resolve_manifest(image)?;
                    let digest = fetched.digest.clone();
                    (image.repository().to_string(), digest, Some(fetched))
                }
            };
            let at = ImageRef::parse(&repo)?;
            let key = trust.verify(&at, &digest, manifest.as_ref())?;
            (digest, key)
        }
    };
    if is_keep {
        // The kept image is the verified one: run it by its keep tag, as before.
        return Ok((reference, key));
    }
    Ok((image.with_digest(&digest), key))
}

/// Pulls `run` (`repo:tag@sha256:…`, verified) unless it is here: by the verified digest (a
/// tag may have moved since), naming the tag the operator asked for in what it prints; the
/// tag then stays a name for it here, as a pull by tag leaves it.
fn pull_verified(runner: &Runner<'_>, image: &ImageRef, run: &str) -> Result<()> {
    if image.repository() == KEEP_REPOSITORY || docker::image_present(run) {
        return Ok(());
    }
    let sh = runner.sh;
    runner
        .exec_captured(xshell::cmd!(sh, "docker pull --quiet {run}"))
        .with_context(|| format!("cannot pull {run}"))?;
    if image.tag().is_some() && image.digest().is_none() {
        let tag = image.without_digest();
        runner
            .exec_captured(xshell::cmd!(sh, "docker tag {run} {tag}"))
            .with_context(|| format!("cannot tag {run} as {tag}"))?;
    }
    Ok(())
}

/// The `RepoDigests` (`repo@sha256:…`) of the local image `reference` names; none when there
/// is no such image.
fn local_repo_digests(reference: &str) -> Vec<String> {
    docker::run(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        reference,
    ])
    .ok()
    .and_then(|json| serde_json::from_str::<Vec<String>>(json.trim()).ok())
    .unwrap_or_default()
}

/// `reference` pinned to the registry digest the local image carries (`repo:tag@sha256:…`),
/// so a tag moved later never changes what runs. A local-only image stays as given.
pub fn pin(reference: &str) -> String {
    let Ok(parsed) = ImageRef::parse(reference) else {
        return reference.to_string();
    };
    if parsed.digest().is_some() {
        return reference.to_string();
    }
    let digests = local_repo_digests(reference);
    registry_digest(&parsed, &digests)
        .map(|digest| parsed.with_digest(digest))
        .unwrap_or_else(|| reference.to_string())
}

/// The digest among an image's `RepoDigests` (`repo@sha256:…`) that belongs to `reference`'s
/// repository.
pub fn registry_digest<'a>(reference: &ImageRef, repo_digests: &'a [String]) -> Option<&'a str> {
    repo_digests.iter().find_map(|d| {
        let (repo, digest) = d.split_once('@')?;
        (repo == reference.repository()).then_some(digest)
    })
}

/// The keep tag of an image id: `disinto-keep/agents:<first 12 hex digits>`.
pub fn keep_tag(image_id: &str) -> String {
    let hex: String = image_id
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect();
    format!("{KEEP_REPOSITORY}:{hex}")
}

/// The local references that still name a deployment's exact image here, in the order a
/// rollback tries them: the reference it ran by, then its keep tag. Either spares the
/// registry.
pub fn local_references(d: &Deployment) -> impl Iterator<Item = String> + '_ {
    [d.image.clone(), keep_tag(&d.image_id)]
        .into_iter()
        .filter(move |r| {
            !r.is_empty()
                && docker::image_id(r).is_some_and(|id| d.image_id.is_empty() || id == d.image_id)
        })
}

/// Tags the images of the last few deployments under [`KEEP_REPOSITORY`] and removes the
/// keep tags of this factory's older deployments. Best effort: a failure here costs disk
/// space, not the rollout.
pub fn keep_recent(deployments: &[Deployment]) {
    let ids = recent_images(deployments);
    for id in &ids {
        let _ = docker::run(&["tag", id, &keep_tag(id)]);
    }
    let listed = docker::run(&[
        "image",
        "ls",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        KEEP_REPOSITORY,
    ])
    .unwrap_or_default();
    for tag in stale_keep_tags(deployments, &ids, listed.lines()) {
        let _ = docker::run(&["rmi", "--no-prune", &tag]);
    }
}

/// The image ids of the last [`KEPT_DEPLOYMENTS`] deployments that ran, newest first.
fn recent_images(deployments: &[Deployment]) -> Vec<&str> {
    let mut ids: Vec<&str> = vec![];
    for d in deployments.iter().rev().filter(|d| d.runs()) {
        if !d.image_id.is_empty() && !ids.contains(&d.image_id.as_str()) {
            ids.push(&d.image_id);
        }
        if ids.len() == KEPT_DEPLOYMENTS {
            break;
        }
    }
    ids
}

/// The keep tags among `listed` to remove: those of images this factory ran once (and so
/// kept), no longer among its `recent` ones. The repository is the host's, shared by every
/// factory on it: another factory's keep tags are its own (a revert of its may be using one
/// now), and so is the keep tag of an image this factory only tried.
fn stale_keep_tags(
    deployments: &[Deployment],
    recent: &[&str],
    listed: impl Iterator<Item = impl AsRef<str>>,
) -> Vec<String> {
    let wanted: Vec<String> = recent.iter().map(|id| keep_tag(id)).collect();
    let ours: Vec<String> = deployments
        .iter()
        // An interrupted rollout's image may have run, and been kept by the next rollout.
        .filter(|d| d.runs() || d.outcome == Outcome::Interrupted)
        .filter(|d| !d.image_id.is_empty())
        .map(|d| keep_tag(&d.image_id))
        .collect();
    listed
        .map(|t| t.as_ref().to_string())
        .filter(|t| ours.contains(t) && !wanted.contains(t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::history::Outcome;

    #[test]
    fn only_this_factorys_older_keep_tags_are_removed() {
        let id = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let row = |c: char, outcome: Outcome| Deployment {
            image_id: id(c),
            outcome,
            ..Deployment::default()
        };
        let history = [
            row('a', Outcome::Deployed),
            row('b', Outcome::Deployed),
            row('c', Outcome::Reverted),
            row('d', Outcome::Deployed),
            row('e', Outcome::RolledBack),
            row('f', Outcome::Deployed),
        ];
        let recent = recent_images(&history);
        assert_eq!(recent, [id('f'), id('e'), id('d')]);
        let listed = ['a', 'b', 'c', 'd', 'e', 'f', '9'].map(|c| keep_tag(&id(c)));
        // '9' is another factory's, and 'c' was only tried here: neither is ours to remove.
        assert_eq!(
            stale_keep_tags(&history, &recent, listed.iter()),
            [keep_tag(&id('a')), keep_tag(&id('b'))]
        );
    }

    #[test]
    fn the_digest_of_the_references_repository_is_picked() {
        let digest = format!("sha256:{}", "c".repeat(64));
        let reference = ImageRef::parse("127.0.0.1:5000/d/agents:v1").unwrap();
        let digests = vec![
            format!("other/agents@sha256:{}", "d".repeat(64)),
            format!("127.0.0.1:5000/d/agents@{digest}"),
        ];
        assert_eq!(registry_digest(&reference, &digests), Some(digest.as_str()));
        assert_eq!(registry_digest(&reference, &digests[..1]), None);
        assert_eq!(
            keep_tag("sha256:0123456789abcdef"),
            "disinto-keep/agents:0123456789ab"
        );
        // Not a panic, whatever the id holds.
        assert_eq!(
            keep_tag("ßßßßßßßßßßßßßß"),
            "disinto-keep/agents:ßßßßßßßßßßßß"
        );
    }
}
