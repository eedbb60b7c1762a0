//! `disinto down`: stop the factory. The agent session in flight ends first (or `--force`
//! cuts it); named volumes (all agent data) are kept unless `--volumes` says otherwise, and
//! then the command names them first.

use std::path::Path;

use anyhow::{bail, Result};
use xshell::Shell;

use super::drain::{self, DrainPolicy};
use crate::engine::{docker, Runner};
use crate::factory::Factory;

pub(crate) fn down(
    sh: &Shell,
    root: &Path,
    volumes: bool,
    dry_run: bool,
    policy: DrainPolicy,
) -> Result<()> {
    let factory = Factory::open_to_stop(root)?;
    let runner = Runner::new(sh, dry_run);
    docker::require_client()?;
    if !factory.compose_file().is_file() {
        bail!(
            "{} has no docker-compose.yml: nothing to stop (run `disinto init` to create it)",
            root.display()
        );
    }
    let mut args = vec!["--profile", "*", "down"];
    if volumes {
        let names = factory.volume_names(sh)?;
        let verb = if dry_run { "would delete" } else { "deleting" };
        eprintln!(
            "--volumes: {verb} the named volumes {} and all data in them",
            names.join(", ")
        );
        args.push("--volumes");
    }
    runner.note(&policy.plan());
    let drained = match (dry_run, factory.running(sh, "agents")) {
        (false, Some(agents)) => Some(drain::drain(&agents, policy)?),
        _ => None,
    };
    // A failed `down` drops `drained`, which lifts the drain of what still runs.
    runner.exec(factory.compose(sh, &args))?;
    if let Some(session) = drained.as_ref().and_then(|d| d.interrupted.clone()) {
        eprintln!("--force: the agent session in flight was cut ({session})");
    }
    if !volumes && !dry_run {
        eprintln!("Named volumes kept (agent data is safe); `disinto down --volumes` deletes them");
    }
    Ok(())
}
