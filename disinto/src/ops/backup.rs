//! `disinto backup`: a snapshot of the agents' volumes by hand (agents drained while it
//! copies), kept under `backups/` with its manifest; the newest `--keep` stay.

use std::path::Path;

use anyhow::Result;
use xshell::Shell;

use super::drain::DrainPolicy;
use super::snapshot;
use crate::engine::docker;
use crate::factory::Factory;

pub(crate) fn backup(
    sh: &Shell,
    root: &Path,
    include_repos: bool,
    keep: usize,
    dry_run: bool,
    policy: DrainPolicy,
) -> Result<()> {
    let factory = Factory::open_to_stop(root)?;
    let dir = snapshot::backups_dir(&factory);
    if dry_run {
        eprintln!("{}", policy.plan());
        eprintln!(
            "copy agent-state, agent-data{} to {}/ as a .tar.gz with its manifest; keep the newest {keep}",
            if include_repos { ", agent-repos" } else { "" },
            dir.display()
        );
        return Ok(());
    }
    docker::require_daemon()?;
    let m = snapshot::take(sh, &factory, include_repos, keep, "backup", Some(policy))?;
    println!(
        "{} ({} bytes, sha256 {}): {} of {}",
        dir.join(&m.archive).display(),
        m.bytes,
        &m.sha256[..12],
        m.volumes.join(", "),
        m.version
    );
    Ok(())
}
