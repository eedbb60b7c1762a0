//! The publish-bundle step: `${DISINTO_REGISTRY}/factory:vX.Y.Z`, an OCI artifact of the
//! release record, the `.env.example` of this release, the compose file pinned by digest and
//! `migrations.yml` (see `disinto::model::bundle`), pushed with the release's token through
//! disinto's own registry client and signed like the images. Immutable like them: a bundle
//! already there with other contents is an error, the same one is done.

use anyhow::{bail, Context, Result};
use disinto::model::bundle::{self, ARTIFACT_TYPE, MANIFEST_TYPE};
use disinto::model::compose::{self, ComposeInput};
use disinto::model::image_ref::AgentsImage;
use disinto::model::time::now_rfc3339;
use std::collections::BTreeMap;

use super::Run;

/// `${DISINTO_REGISTRY}/factory:vX.Y.Z`.
pub(crate) fn reference(run: &Run<'_>) -> String {
    format!(
        "{}/{}:{}",
        run.plan.config.registry,
        bundle::REPOSITORY,
        run.plan.version
    )
}

/// The compose file of this release: every image of ours pinned to the digest pushed.
fn pinned_compose(run: &Run<'_>) -> Result<String> {
    let mut pinned = BTreeMap::new();
    for image in &run.plan.images {
        let digest = run
            .state
            .progress
            .image(image.name())
            .digest
            .with_context(|| {
                format!("push-image has not recorded the digest of {}", image.name())
            })?;
        pinned.insert(image.name(), format!("{}@{digest}", image.version_ref));
    }
    let input = ComposeInput {
        agents: AgentsImage::Release(run.plan.version.clone()),
        agent_cli: None,
        pinned,
    };
    compose::render(&input, &compose::model(&input))
}

pub(super) fn publish_bundle(run: &mut Run<'_>) -> Result<()> {
    let reference = reference(run);
    if let Some(done) = &run.state.progress.bundle {
        eprintln!("  {done}: published and signed before");
        return Ok(());
    }
    let names: Vec<&str> = bundle::FILES.iter().map(|(n, _)| *n).collect();
    if run.opts.dry_run {
        println!(
            "# push {reference}: an OCI artifact of {} (the record commit-result wrote, this checkout's files, the compose file pinned by digest)",
            names.join(", ")
        );
        if !run.opts.unsigned {
            println!(
                "$ {}",
                disinto::engine::runner::shell_line(super::sign::sign_cmd(&format!(
                    "{reference}@DIGEST"
                )))
            );
        }
        return Ok(());
    }
    let root = run.plan.root().to_path_buf();
    let read = |path: std::path::PathBuf| {
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    // The record commit-result wrote; the same record, made here, when it was skipped.
    let record = match run.plan.record_path().is_file() {
        true => read(run.plan.record_path())?,
        false => {
            let record = super::Record::of(
                &run.state.progress,
                &run.plan.references(),
                run.plan.latest.moves(),
            );
            (serde_json::to_string_pretty(&record)? + "\n").into_bytes()
        }
    };
    let files = vec![
        ("release.json", record),
        (".env.example", read(root.join(".env.example"))?),
        ("docker-compose.yml", pinned_compose(run)?.into_bytes()),
        ("migrations.yml", read(root.join("migrations.yml"))?),
    ];
    let (manifest, blobs) = bundle::manifest(&files, &now_rfc3339())?;
    let repository = reference
        .rsplit_once(':')
        .map_or(reference.as_str(), |(r, _)| r);
    let path = super::registry::repository_path(&run.plan.config, repository)?;
    let registry = super::registry::client(&run.plan.config)?;
    // Immutable: the same bundle counts as published, another one is an error.
    let digest = disinto::model::signature::sha256_digest(&manifest);
    match registry.manifest(&path, &run.plan.version, MANIFEST_TYPE)? {
        Some((_, there)) if there == digest => {
            eprintln!("  {reference}: the registry holds this bundle already")
        }
        Some((body, there)) => {
            // Only the creation time may differ on a resumed run: the files must not.
            let theirs = bundle::files(&body, &reference)?;
            let ours = bundle::files(&manifest, &reference)?;
            let same = theirs.len() == ours.len()
                && theirs
                    .iter()
                    .zip(&ours)
                    .all(|(a, b)| a.0 == b.0 && a.1.digest == b.1.digest);
            if !same {
                bail!("the registry holds a different bundle under {reference} ({there}): versions are immutable, release a new one");
            }
            eprintln!("  {reference}: the registry holds this bundle already ({there})");
            sign(run, &format!("{reference}@{there}"))?;
            run.state.progress.bundle = Some(format!("{reference}@{there}"));
            return Ok(());
        }
        None => {
            for (_, bytes) in &blobs {
                registry.push_blob(&path, bytes)?;
            }
            registry.push_manifest(&path, &run.plan.version, MANIFEST_TYPE, &manifest)?;
            eprintln!(
                "  pushed {reference}@{digest} ({ARTIFACT_TYPE}: {})",
                names.join(", ")
            );
        }
    }
    sign(run, &format!("{reference}@{digest}"))?;
    run.state.progress.bundle = Some(format!("{reference}@{digest}"));
    Ok(())
}

/// Signs the bundle as the images are signed (unless the release is unsigned).
fn sign(run: &mut Run<'_>, pinned: &str) -> Result<()> {
    if run.opts.unsigned {
        return Ok(());
    }
    super::sign::release_key(run)?;
    let session = run.session()?;
    eprintln!(
        "$ {}",
        disinto::engine::runner::shell_line(super::sign::sign_cmd(pinned))
    );
    session
        .run(&format!("cosign sign {pinned}"), || {
            super::sign::sign_cmd(pinned)
        })
        .map(drop)
}
