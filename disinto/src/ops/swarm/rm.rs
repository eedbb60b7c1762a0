//! `disinto swarm rm`: remove the stack; its named volumes stay unless `--volumes`, and then
//! the command names them first.

use std::time::Duration;

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use super::{check_stack_name, drain_agents};
use crate::engine::swarm::{require_manager, stack_services, wait_gone};
use crate::engine::{docker, Runner};
use crate::model::stack::{self, VOLUMES_LABEL};
use crate::ops::drain::DrainPolicy;

pub(crate) fn rm(
    sh: &Shell,
    stack_name: &str,
    volumes: bool,
    dry_run: bool,
    policy: DrainPolicy,
) -> Result<()> {
    check_stack_name(stack_name)?;
    let runner = Runner::new(sh, dry_run);
    let names = stack::volume_names(stack_name);
    if volumes {
        eprintln!(
            "--volumes: deleting the named volumes {} on this node, and all data in them",
            names.join(", ")
        );
    }
    if dry_run {
        drain_agents(&runner, stack_name, policy)?;
        runner.exec(cmd!(sh, "docker stack rm {stack_name}"))?;
        if volumes {
            runner.note("wait until the stack's containers are gone (volumes in use cannot go)");
            runner.exec(cmd!(sh, "docker volume rm {names...}"))?;
        }
        return Ok(());
    }
    docker::require_daemon()?;
    require_manager()?;
    // `docker stack rm` of no stack succeeds; --volumes would then delete volumes of the
    // same names that belong to something else (a stopped compose factory).
    if stack_services(stack_name)?.is_empty() {
        bail!("no stack {stack_name} runs on this swarm: nothing to remove (and no volume is deleted)");
    }
    let _drained = drain_agents(&runner, stack_name, policy)?;
    if let Err(first) = runner.exec(cmd!(sh, "docker stack rm {stack_name}").ignore_stdout()) {
        // Swarm removes the services at once but their tasks over seconds: the stack's
        // network is refused while one still stops ("is in use by task"). Once the
        // containers are gone, the same command removes what is left.
        wait_gone(stack_name, Duration::from_secs(120)).map_err(|_| first)?;
        eprintln!(
            "  the stack's network was still in use while its tasks stopped: removing it again"
        );
        runner.exec(cmd!(sh, "docker stack rm {stack_name}").ignore_stdout())?;
    }
    if !volumes {
        eprintln!(
            "Named volumes kept (agent data is safe, on the node that holds them); `disinto swarm rm --volumes` deletes them"
        );
        return Ok(());
    }
    wait_gone(stack_name, Duration::from_secs(120))?;
    let present: Vec<&String> = names
        .iter()
        .filter(|n| docker::run(&["volume", "inspect", n.as_str()]).is_ok())
        .collect();
    if present.is_empty() {
        eprintln!("none of the stack's volumes is on this node: they live on the node labelled {VOLUMES_LABEL}=true; run this there");
        return Ok(());
    }
    runner.exec(cmd!(sh, "docker volume rm {present...}").ignore_stdout())
}
