//! `disinto swarm rollback`: agents back to the spec before the last change (`docker service
//! rollback`), runner with it, edge and reproduce to the same release; recorded in the
//! factory's history.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use super::{check_stack_name, companions, drain_agents, follow, put_back, settle};
use crate::engine::swarm::{inspect, require_manager, service_name};
use crate::engine::{docker, Runner};
use crate::factory::Factory;
use crate::model::history::{History, Outcome};
use crate::model::image_ref::ImageRef;
use crate::ops::drain::DrainPolicy;
use crate::ops::rollout::record;

pub(crate) fn rollback(
    sh: &Shell,
    root: &Path,
    stack_name: &str,
    dry_run: bool,
    timeout: Duration,
    policy: DrainPolicy,
) -> Result<()> {
    check_stack_name(stack_name)?;
    let runner = Runner::new(sh, dry_run);
    let agents = service_name(stack_name, "agents");
    let wait = format!(
        "wait until {agents} runs its previous image, healthy (at most {}s); then runner follows agents' image, and edge and reproduce go back to that release where Swarm kept its spec",
        timeout.as_secs()
    );
    if dry_run {
        drain_agents(&runner, stack_name, policy)?;
        runner.exec(cmd!(sh, "docker service rollback --detach {agents}"))?;
        runner.note(&wait);
        return Ok(());
    }
    docker::require_daemon()?;
    require_manager()?;
    let before = inspect(&agents)?;
    let instead = "deploy a version instead, e.g. AGENTS_IMAGE=v0.1.0 disinto swarm deploy";
    // After a rollback, Swarm keeps either no earlier spec or the one it left (the failed
    // one): going "back" would go forward.
    if before.update.as_deref() == Some("rollback_completed") {
        bail!(
            "{agents} was rolled back already (it runs {}): Swarm has no earlier spec to go back to from there; {instead}",
            before.image
        );
    }
    let Some(previous) = before.previous_image.clone() else {
        bail!("{agents} has no earlier spec to go back to: {instead}");
    };
    if previous == before.image {
        bail!("{agents}'s earlier spec runs the same image ({previous}): nothing to go back to; {instead}");
    }
    // Held until the rollback has settled; dropping it lifts the drain of a task left running.
    let drained = drain_agents(&runner, stack_name, policy)?;
    runner
        .exec(cmd!(sh, "docker service rollback --detach {agents}").ignore_stdout())
        .with_context(|| format!("docker service rollback {agents} failed"))?;
    settle(&agents, timeout)?;
    let runs = follow(&runner, stack_name)?;
    println!("rolled back: {agents} {} → {runs}", before.image);
    let tag = tag_of(&runs);
    // edge and reproduce go back to the release agents now runs, when the spec Swarm kept
    // before theirs is of it; else they stay, and a deploy of that release moves them.
    let mut back = BTreeMap::new();
    for service in companions(stack_name) {
        let Ok(state) = inspect(&service) else {
            continue;
        };
        match state.previous_image {
            Some(previous) if tag.is_some() && tag_of(&previous) == tag => {
                back.insert(service, previous);
            }
            _ if tag_of(&state.image) != tag => eprintln!(
                "note: {service} stays on {}: Swarm kept no spec of {} for it; `disinto swarm deploy` of that release moves it",
                state.image,
                tag.as_deref().unwrap_or(&runs)
            ),
            _ => {}
        }
    }
    // The history says what runs now, whatever `.env` says; a factory whose `.env` does not
    // read still gets its row.
    let factory = Factory::open_to_stop(root)?;
    let mut entry = record(
        tag.as_deref().unwrap_or(&runs),
        &runs,
        &docker::image_id(&runs).unwrap_or_default(),
        Outcome::RolledBack,
    );
    entry.swarm = Some(stack_name.to_string());
    entry.interrupted_session = drained.as_ref().and_then(|d| d.interrupted.clone());
    History::load(&factory.dir)?.append(entry)?;
    // After the row: agents went back, whatever becomes of its companions.
    let companions_back = put_back(&runner, &back);
    // Swarm's rollback is not written into .env (the operator's file): say what to change.
    let setting = Factory::open(root).map(|f| f.config.agents.as_setting().to_string());
    if let (Ok(setting), Some(tag)) = (setting, tag) {
        if setting != tag {
            eprintln!(
                "note: AGENTS_IMAGE={setting} still names the release rolled back from: set AGENTS_IMAGE={tag} in .env so the next `disinto swarm deploy` stays here"
            );
        }
    }
    companions_back
}

/// The tag of an image reference (`v0.1.0` of `REPO/agents:v0.1.0@sha256:…`).
fn tag_of(image: &str) -> Option<String> {
    ImageRef::parse(image)
        .ok()
        .and_then(|r| r.tag().map(str::to_string))
}
