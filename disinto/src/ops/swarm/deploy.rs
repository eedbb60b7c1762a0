//! `disinto swarm deploy`: pull and pin our images, write the stack file, deploy it, and
//! wait until agents has settled: on its new image, healthy, or rolled back by Swarm (an
//! error). Either way the rollout goes into the factory's history.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use super::{check_stack_name, follow, settle};
use crate::engine::swarm::{nodes, require_manager, service_name};
use crate::engine::{docker, Runner};
use crate::factory::{Factory, PROJECTS_DIR};
use crate::fsx::{self, Written};
use crate::model::compose::ComposeInput;
use crate::model::history::{History, Outcome};
use crate::model::image_ref::{AgentsImage, ImageRef, OUR_IMAGES};
use crate::model::stack::{self, Node, StackInput, STACK_FILE, VOLUMES_LABEL};
use crate::ops::images::pull_and_pin;
use crate::ops::rollout::record;

pub(crate) fn deploy(
    sh: &Shell,
    root: &Path,
    stack_name: &str,
    dry_run: bool,
    timeout: Duration,
) -> Result<()> {
    check_stack_name(stack_name)?;
    let runner = Runner::new(sh, dry_run);
    let factory = Factory::open(root)?;
    let config = &factory.config;
    if config.agents == AgentsImage::Dev {
        bail!(stack::DEV_REFUSED);
    }
    if !dry_run {
        refuse_if_compose_runs(stack_name)?;
    }
    let mut input = StackInput::new(ComposeInput::from(config), &factory.dir, &factory.settings)?;
    // What a swarm cannot run (a host address on edge's port, ...) is refused before anything
    // is pulled, labelled or written.
    stack::generate(&input)?;
    // A dry run asks the swarm what it would label, when there is one to ask.
    let is_manager = if dry_run {
        require_manager().is_ok()
    } else {
        docker::require_daemon()?;
        require_manager()?;
        true
    };
    let to_label: Option<Node> = match is_manager {
        true => stack::volume_node(&nodes()?)?.cloned(),
        false => None,
    };
    input.compose.pinned = pull_and_pin(&runner, config, OUR_IMAGES)?;
    // Every node must run the same bytes: an image with no registry digest (built or tagged
    // only here) could be something else on another node.
    let undigested = input
        .compose
        .pinned
        .iter()
        .find(|(_, r)| ImageRef::parse(r).map_or(true, |r| r.digest().is_none()));
    if let Some((name, reference)) = undigested {
        bail!("{name} would run {reference}, which has no registry digest (built or tagged only on this host): a swarm deploys what a registry holds; push a release and deploy that");
    }

    let file = factory.dir.join(STACK_FILE);
    let label_arg = format!("{VOLUMES_LABEL}=true");
    if !is_manager {
        runner.note(&format!(
            "(no swarm manager answers here: on a single-node swarm, the node gets {label_arg}:)"
        ));
        runner.exec(cmd!(sh, "docker node update --label-add {label_arg} NODE"))?;
    }
    if let Some(node) = &to_label {
        let id = &node.id;
        runner
            .exec(cmd!(sh, "docker node update --label-add {label_arg} {id}").ignore_stdout())
            .with_context(|| format!("cannot label node {}", node.hostname))?;
        if !dry_run {
            eprintln!(
                "Labelled node {} {label_arg}: the factory's named volumes live there",
                node.hostname
            );
        }
    }
    runner.note(&format!(
        "write {} (agents: {})",
        file.display(),
        input.compose.agents
    ));
    if !dry_run {
        write_stack(&factory, &file, &input)?;
    }
    // --resolve-image never: the file pins our images by digest already, and asking a registry
    // for the third-party images' digests would only fail where no registry is reachable.
    runner
        .exec(cmd!(
            sh,
            "docker stack deploy --compose-file {file} --with-registry-auth --resolve-image never --prune {stack_name}"
        ))
        .with_context(|| format!("docker stack deploy refused {}", file.display()))?;
    let agents = service_name(stack_name, "agents");
    runner.note(&format!(
        "wait until {agents} runs its new image, healthy and watched for {}, or Swarm has rolled it back (at most {}s); then runner follows agents' image",
        stack::MONITOR,
        timeout.as_secs()
    ));
    if dry_run {
        return Ok(());
    }

    let rolled_back = settle(&agents, timeout)?;
    let runs = follow(&runner, stack_name)?;
    let tried = input
        .compose
        .pinned
        .get("agents")
        .cloned()
        .unwrap_or_else(|| input.compose.agents.to_string());
    let version = config.agents.as_setting();
    let (outcome, image) = match rolled_back {
        true => (Outcome::Reverted, &tried),
        false => (Outcome::Deployed, &runs),
    };
    let mut entry = record(
        version,
        image,
        &docker::image_id(image).unwrap_or_default(),
        outcome,
    );
    entry.swarm = Some(stack_name.to_string());
    History::load(&factory.dir)?.append(entry)?;
    if rolled_back {
        bail!(
            "Swarm rolled {agents} back: {tried} failed its update (see `docker service ps --no-trunc {agents}`); it runs {runs} again, and runner with it; AGENTS_IMAGE={version} still names the failed release: change it before the next deploy"
        );
    }
    eprintln!("{agents} runs {runs}, healthy");
    Ok(())
}

/// Two containers must never write one volume: the compose factory of the same name shares
/// the stack's volume names (that is how its data moves to the swarm), so it must be down.
fn refuse_if_compose_runs(stack_name: &str) -> Result<()> {
    let running = docker::read(
        &[
            "ps",
            "--quiet",
            "--filter",
            &format!("label=com.docker.compose.project={stack_name}"),
        ],
        "list the compose factory's containers",
    )?;
    if !running.trim().is_empty() {
        bail!("the compose factory {stack_name} runs on this host and shares the stack's volumes: stop it with `disinto down` first (two containers must never write one volume)");
    }
    Ok(())
}

/// Writes the stack file, private, and the `projects/` its bind needs.
fn write_stack(factory: &Factory, file: &Path, input: &StackInput) -> Result<()> {
    // Swarm, unlike compose, does not create a missing bind source: the task would be rejected.
    let projects = factory.dir.join(PROJECTS_DIR);
    std::fs::create_dir_all(&projects)
        .with_context(|| format!("cannot create {}", projects.display()))?;
    let written = fsx::write_private_if_changed(file, &stack::generate(input)?)?;
    // Private whatever it was before: it holds every variable, secrets included, resolved.
    std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", file.display()))?;
    let verb = match written {
        Written::Generated => "Generated",
        Written::Unchanged => "Unchanged",
    };
    eprintln!("{verb} {} ({})", file.display(), input.compose.agents);
    Ok(())
}
