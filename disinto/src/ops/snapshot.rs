//! Shared by `backup`, `restore` (and upgrades): a snapshot of the agents' volumes taken
//! with agents drained, and put back with agents stopped. Taking one checks the disk first
//! and writes the archive atomically (a temp file renamed once complete and hashed);
//! putting one back checks the manifest and the checksum before anything stops.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use super::drain::{self, DrainPolicy};
use crate::engine::volume::{self, Volume};
use crate::engine::{container, docker, health, Runner};
use crate::factory::Factory;
use crate::fsx;
use crate::model::snapshot::{
    manifest_name, to_prune, Manifest, BACKUPS_DIR, MANIFEST_MAX_BYTES, OPTIONAL_VOLUME, VOLUMES,
};
use crate::model::time::now_rfc3339;

/// The services that mount the agents volumes (runner shares the agents image and data).
const USERS: [&str; 2] = ["agents", "runner"];
/// Room kept free beyond the snapshot's own size, so a backup never fills the disk.
const SPARE_BYTES: u64 = 64 * 1024 * 1024;

/// The version a factory runs, as its snapshots name it: AGENTS_IMAGE as given, or `dev`.
pub fn version_of(factory: &Factory) -> String {
    match factory.config.agents.as_setting() {
        "" => "dev".to_string(),
        v => v.to_string(),
    }
}

pub fn backups_dir(factory: &Factory) -> PathBuf {
    factory.dir.join(BACKUPS_DIR)
}

/// The agents volumes a snapshot holds, by the names Docker knows them by.
fn snapshot_volumes(sh: &Shell, factory: &Factory, keys: &[&str]) -> Result<Vec<Volume>> {
    let known = factory.volumes(sh)?;
    keys.iter()
        .map(|key| {
            known
                .iter()
                .find(|(k, _)| k == key)
                .map(|(k, name)| Volume {
                    key: k.clone(),
                    name: name.clone(),
                })
                .with_context(|| {
                    format!("the compose file has no volume {key}: run `disinto init` to write it again")
                })
        })
        .collect()
}

/// An image to run `tar` in: the one agents runs (or ran), else the configured one if it is
/// here. Never pulled: a snapshot must work with the registry down.
fn tool_image(sh: &Shell, factory: &Factory) -> Result<String> {
    if let Some(id) = factory.any_container(sh, "agents") {
        if let Ok(image) = docker::read(
            &["inspect", "--format", "{{.Image}}", &id],
            "inspect agents",
        ) {
            return Ok(image.trim().to_string());
        }
    }
    if let Some(image) = factory.config.agents.compose_image() {
        if docker::image_present(&image) {
            return Ok(image);
        }
    }
    bail!("no agents image is here to copy the volumes with: run `disinto up` first")
}

/// Takes a snapshot, prunes this factory's older ones beyond `keep`, and returns its
/// manifest. Agents is drained while it copies: by this, with `policy`, or (None) by the
/// caller, who holds the drain across more steps (an upgrade).
pub fn take(
    sh: &Shell,
    factory: &Factory,
    include_repos: bool,
    keep: usize,
    reason: &str,
    policy: Option<DrainPolicy>,
) -> Result<Manifest> {
    let mut keys: Vec<&str> = VOLUMES.to_vec();
    if include_repos {
        keys.push(OPTIONAL_VOLUME);
    }
    let volumes = snapshot_volumes(sh, factory, &keys)?;
    let image = tool_image(sh, factory)?;
    let dir = backups_dir(factory);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let needed = volume::bytes_used(&image, &volumes)?;
    let free = container::free_bytes_at(&dir)?;
    if free < needed + SPARE_BYTES {
        bail!(
            "{} has {} MB free but the snapshot may need {} MB (and {} MB spare): free some space or move backups/ to a bigger disk (a symlink works)",
            dir.display(),
            free / 1_000_000,
            needed / 1_000_000,
            SPARE_BYTES / 1_000_000
        );
    }
    let _drained = match (policy, factory.running(sh, "agents")) {
        (Some(policy), Some(agents)) => Some(drain::drain(&agents, policy)?),
        _ => None,
    };
    let project = factory.project_name()?;
    let version = version_of(factory);
    let created = now_rfc3339();
    // Named by the host (unique, removed on every error path), written by tar in the
    // container through the bind mount, renamed once complete and hashed.
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".snapshot.")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?
        .into_temp_path();
    let tmp_name = tmp
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the snapshot's temp file has no name")?;
    let (sha, bytes) = volume::archive(&image, &volumes, &dir, &tmp_name)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    let manifest = Manifest::new(
        &project,
        &version,
        factory
            .config
            .agents
            .compose_image()
            .as_deref()
            .unwrap_or(&image),
        &created,
        &keys,
        &sha,
        bytes,
        reason,
    );
    if dir.join(&manifest.archive).exists() {
        bail!(
            "a snapshot named {} exists already (taken this second): retry",
            manifest.archive
        );
    }
    tmp.persist(dir.join(&manifest.archive))
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", manifest.archive))?;
    let json = serde_json::to_string_pretty(&manifest)? + "\n";
    fsx::write_atomic(&dir.join(manifest_name(&manifest.archive)), json.as_bytes())?;
    prune(&dir, &project, keep);
    Ok(manifest)
}

/// Every readable manifest in `dir` (others are not ours, or broken: left alone).
fn manifests(dir: &Path) -> Vec<Manifest> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.gz.json"))
        .filter_map(|e| {
            let bytes = fsx::read_regular(&e.path(), MANIFEST_MAX_BYTES).ok()??;
            Manifest::parse(&bytes, &e.path().display().to_string()).ok()
        })
        .collect()
}

fn prune(dir: &Path, project: &str, keep: usize) {
    for archive in to_prune(&manifests(dir), project, keep) {
        for name in [manifest_name(&archive), archive.clone()] {
            if let Err(e) = std::fs::remove_file(dir.join(&name)) {
                eprintln!("warning: cannot delete the old snapshot {name}: {e}");
            }
        }
        eprintln!("  deleted the old snapshot {archive}");
    }
}

/// Finds and checks a snapshot to restore: `given` is an archive or its manifest, a path or a
/// name in `backups/`. Its manifest must be ours and its archive must match its checksum.
pub fn check(factory: &Factory, given: &str, any_version: bool) -> Result<(PathBuf, Manifest)> {
    let dir = backups_dir(factory);
    let path = match Path::new(given) {
        p if p.components().count() > 1 || p.exists() => p.to_path_buf(),
        p => dir.join(p),
    };
    let manifest_path = match path.to_string_lossy().ends_with(".json") {
        true => path.clone(),
        false => PathBuf::from(format!("{}.json", path.display())),
    };
    let origin = manifest_path.display().to_string();
    let bytes = fsx::read_regular(&manifest_path, MANIFEST_MAX_BYTES)
        .with_context(|| format!("cannot read {origin}"))?
        .with_context(|| {
            format!("{origin} does not exist: give an archive in backups/ (`ls backups/`) that disinto wrote")
        })?;
    let manifest = Manifest::parse(&bytes, &origin)?;
    manifest.check_for(&factory.project_name()?, &version_of(factory), any_version)?;
    let archive_dir = manifest_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let archive_dir = archive_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", archive_dir.display()))?;
    let archive = archive_dir.join(&manifest.archive);
    let meta = std::fs::metadata(&archive).with_context(|| {
        format!(
            "{} is missing: the snapshot is incomplete",
            archive.display()
        )
    })?;
    if !meta.is_file() {
        bail!("{} is not a regular file", archive.display());
    }
    if meta.len() != manifest.bytes || volume::sha256_file(&archive)? != manifest.sha256 {
        bail!(
            "{} does not match its checksum: it is corrupt or truncated; restore another snapshot",
            archive.display()
        );
    }
    Ok((archive_dir, manifest))
}

/// Puts a checked snapshot back: agents drained and stopped (runner too), the volumes
/// replaced, what ran started again and agents waited on until healthy.
pub fn restore(
    sh: &Shell,
    factory: &Factory,
    archive_dir: &Path,
    manifest: &Manifest,
    policy: DrainPolicy,
    health_timeout: Duration,
) -> Result<()> {
    let keys: Vec<&str> = manifest.volumes.iter().map(String::as_str).collect();
    let volumes = snapshot_volumes(sh, factory, &keys)?;
    let image = tool_image(sh, factory)?;
    let running: Vec<&str> = USERS
        .into_iter()
        .filter(|s| factory.running(sh, s).is_some())
        .collect();
    let drained = match factory.running(sh, "agents") {
        Some(agents) => Some(drain::drain(&agents, policy)?),
        None => None,
    };
    let runner = Runner::new(sh, false);
    if !running.is_empty() {
        runner
            .exec(factory.compose(sh, &[&["stop"][..], &running].concat()))
            .context("cannot stop agents to restore its volumes")?;
    }
    let restored = volume::restore(&image, &volumes, archive_dir, &manifest.archive);
    if !running.is_empty() {
        runner
            .exec(factory.compose(sh, &[&["start"][..], &running].concat()))
            .context("cannot start agents again after the restore: run `disinto up`")?;
    }
    drop(drained);
    restored?;
    if running.contains(&"agents") {
        let agents = factory.container(sh, "agents")?;
        health::wait_healthy(&agents, health_timeout)
            .context("agents is not healthy after the restore: see `disinto status`")?;
    }
    Ok(())
}
