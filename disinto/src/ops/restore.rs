//! `disinto restore BACKUP`: put a snapshot back. The manifest and checksum are checked
//! first (another factory's, another version's, a corrupt or truncated archive: refused with
//! nothing stopped); then agents is drained and stopped, its volumes replaced, and started
//! again until healthy.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use xshell::Shell;

use super::drain::DrainPolicy;
use super::snapshot;
use crate::engine::docker;
use crate::factory::Factory;

pub(crate) fn restore(
    sh: &Shell,
    root: &Path,
    backup: &str,
    any_version: bool,
    dry_run: bool,
    policy: DrainPolicy,
) -> Result<()> {
    let factory = Factory::open_to_stop(root)?;
    let (dir, manifest) = snapshot::check(&factory, backup, any_version)?;
    eprintln!(
        "{}: {} of {}, taken {} ({})",
        manifest.archive,
        manifest.volumes.join(", "),
        manifest.version,
        manifest.created,
        manifest.reason
    );
    if dry_run {
        eprintln!("{}", policy.plan());
        eprintln!(
            "stop agents and runner, replace {} with the snapshot, start them, wait for agents to be healthy",
            manifest.volumes.join(", ")
        );
        return Ok(());
    }
    docker::require_daemon()?;
    snapshot::restore(
        sh,
        &factory,
        &dir,
        &manifest,
        policy,
        Duration::from_secs(300),
    )?;
    println!(
        "restored {} into {}",
        manifest.archive,
        manifest.volumes.join(", ")
    );
    Ok(())
}
