//! `disinto swarm`: the pinned factory on a Docker Swarm, from the stack file
//! ([`crate::model::stack`]); one module per subcommand. What they share lives here: the
//! stack name check, waiting for an update to settle, runner following agents, and edge and
//! reproduce going back with it.

pub(crate) mod deploy;
mod preflight;
pub(crate) mod rm;
pub(crate) mod rollback;
pub(crate) mod status;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::engine::poll::{self, Look};
use crate::engine::swarm::{
    inspect, local_container, service_name, tasks, ServiceState, Task, IMAGE_LABEL,
};
use crate::engine::Runner;
use crate::factory::project_name_in;
use crate::model::config::{Environment, Settings};
use crate::model::image_ref::{AGENTS, OUR_IMAGES};
use crate::ops::drain::{self, DrainPolicy, Drained};

/// The stack `disinto swarm` works on: `--stack` (or DISINTO_STACK) when given, else the
/// factory's compose project, so a factory moved from `disinto up` to a swarm keeps its volumes
/// (compose's `PROJECT_agent-data` is the stack's `STACK_agent-data`). A `.env` that cannot be
/// read leaves the name unknown: an error, or with `lenient` (status) a warning and what the
/// process environment alone says.
pub(crate) fn stack_name(root: &Path, given: Option<String>, lenient: bool) -> Result<String> {
    if let Some(name) = given {
        return Ok(name);
    }
    let settings = match Settings::load(root) {
        Ok(settings) => settings,
        Err(e) if lenient => {
            eprintln!("warning: {e:#}: the stack's name is read without it (give --stack NAME)");
            Settings::new(Environment::current(), Default::default())
        }
        Err(e) => {
            return Err(e.context(
                "cannot tell the stack's name (the factory's compose project): give --stack NAME",
            ))
        }
    };
    project_name_in(root, &settings)
        .context("cannot tell the stack's name (the factory's compose project): give --stack NAME")
}

/// A stack name Swarm takes, checked before anything changes: lower-case letters, digits,
/// '_' and '-', starting with a letter or digit, short enough for `<stack>_woodpecker-agent`
/// to stay a valid service name (63 characters).
fn check_stack_name(name: &str) -> Result<()> {
    let ok = crate::model::compose::is_project_name(name) && name.len() <= 46;
    if !ok {
        bail!("--stack {name:?} is not a stack name Swarm takes: lower-case letters, digits, '_' and '-', starting with a letter or digit, at most 46 characters (e.g. disinto)");
    }
    Ok(())
}

/// Lets the agent session in flight end before Swarm stops agents' task, when that task runs
/// on this node (the probe is asked with `docker exec`, which reaches this node only).
fn drain_agents(
    runner: &Runner<'_>,
    stack_name: &str,
    policy: DrainPolicy,
) -> Result<Option<Drained>> {
    runner.note(&policy.plan());
    if runner.dry_run {
        return Ok(None);
    }
    let agents = service_name(stack_name, "agents");
    match local_container(&agents) {
        Some(container) => Ok(Some(drain::drain(&container, policy)?)),
        None => {
            if inspect(&agents).is_ok() {
                eprintln!("note: {agents} runs on another node: its work probe cannot be asked from here, so its session in flight is not waited for");
            }
            Ok(None)
        }
    }
}

/// Where an update of a service stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Progress {
    /// Still moving, and why we wait.
    Waiting(String),
    /// Every wanted task runs the spec's image; `rolled_back` when Swarm went back to get there.
    Settled { rolled_back: bool },
    /// Swarm paused: it waits for a person.
    Stuck(String),
}

fn progress(service: &ServiceState, tasks: &[Task]) -> Progress {
    let state = service.update.as_deref();
    match state {
        Some("paused" | "rollback_paused") => {
            return Progress::Stuck(format!("{}: {}", state.unwrap_or(""), service.message))
        }
        Some("updating" | "rollback_started") => {
            return Progress::Waiting(format!("{}: {}", state.unwrap_or(""), service.message))
        }
        _ => {}
    }
    let want = service.replicas.unwrap_or(1) as usize;
    let good = tasks
        .iter()
        .filter(|t| t.image == service.image && t.state == "running")
        .count();
    if good == want && tasks.len() == want {
        return Progress::Settled {
            rolled_back: state == Some("rollback_completed"),
        };
    }
    let seen: Vec<String> = tasks
        .iter()
        .map(|t| match t.error.as_str() {
            "" => format!("{} {}", t.state, t.image),
            e => format!("{} {} ({e})", t.state, t.image),
        })
        .collect();
    Progress::Waiting(format!(
        "{good} of {want} tasks run {}; tasks: [{}]",
        service.image,
        seen.join(", ")
    ))
}

/// Waits until `service` has settled (see [`Progress`]); true when Swarm rolled it back.
fn settle(service: &str, timeout: Duration) -> Result<bool> {
    let see = format!("see `docker service ps --no-trunc {service}`");
    let settled = poll::until(timeout, Duration::from_secs(1), |_| {
        let state = inspect(service)?;
        Ok(match tasks(service) {
            Ok(tasks) => match progress(&state, &tasks) {
                Progress::Settled { rolled_back } => Look::Done(rolled_back),
                Progress::Stuck(why) => {
                    bail!("{service} is paused ({why}): Swarm waits for a person; {see}")
                }
                Progress::Waiting(why) => Look::Wait(why),
            },
            // A task can go between listing and inspecting it: look again.
            Err(e) => Look::Wait(format!("{e:#}")),
        })
    })?;
    settled.map_err(|last| {
        anyhow!(
            "{service} has not settled after {}s ({last}): {see}",
            timeout.as_secs()
        )
    })
}

/// The services of our other images (edge, reproduce), released with agents and pinned
/// with it: what goes back when agents goes back.
fn companions(stack_name: &str) -> Vec<String> {
    OUR_IMAGES
        .iter()
        .filter(|image| **image != AGENTS)
        .map(|image| service_name(stack_name, image.name))
        .collect()
}

/// The image each companion's spec names now (those that exist): what a deploy that Swarm
/// rolls back puts back.
fn companion_images(stack_name: &str) -> BTreeMap<String, String> {
    companions(stack_name)
        .into_iter()
        .filter_map(|service| Some((service.clone(), inspect(&service).ok()?.image)))
        .collect()
}

/// Puts each service on its image, unless its spec names it already ([`move_service`]).
/// Not waited for, as a deploy does not wait for edge (its first health check comes 30 s
/// after start): `status` shows them.
fn put_back(runner: &Runner<'_>, images: &BTreeMap<String, String>) -> Result<()> {
    for (service, image) in images {
        let now = inspect(service)?.image;
        if &now != image {
            move_service(runner, service, image)
                .with_context(|| format!("cannot put {service} back on {image}"))?;
            eprintln!("{service} goes back with agents: {now} → {image}");
        }
    }
    Ok(())
}

/// runner runs agents' image, always (compose's rule): after Swarm rolled agents back, runner
/// (no tasks, so nothing failed) would stay on the failed image. Returns agents' image.
fn follow(runner: &Runner<'_>, stack_name: &str) -> Result<String> {
    let agents = inspect(&service_name(stack_name, "agents"))?;
    let runner_name = service_name(stack_name, "runner");
    let runner_state = inspect(&runner_name)?;
    if runner_state.image != agents.image {
        let image = &agents.image;
        move_service(runner, &runner_name, image)
            .with_context(|| format!("cannot put {runner_name} on agents' image {image}"))?;
        eprintln!("{runner_name} follows agents: {image}");
    }
    Ok(agents.image)
}

/// Puts `service` on `image` outside a deploy, detached. Its stack label moves with it
/// ([`IMAGE_LABEL`]), so the next deploy of the release it left moves it again.
fn move_service(runner: &Runner<'_>, service: &str, image: &str) -> Result<()> {
    let sh = runner.sh;
    runner.exec(
        xshell::cmd!(
            sh,
            "docker service update --detach --with-registry-auth --image {image} --label-add {IMAGE_LABEL}={image} {service}"
        )
        .ignore_stdout(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_are_checked_before_anything_changes() {
        for good in ["disinto", "f1", "my_factory-2"] {
            check_stack_name(good).unwrap();
        }
        for bad in ["", "Disinto", "-x", "a.b", &"a".repeat(47)] {
            let e = format!("{:#}", check_stack_name(bad).unwrap_err());
            assert!(e.starts_with("--stack "), "{e}");
            assert_eq!(e.lines().count(), 1);
        }
    }

    #[test]
    fn the_default_stack_is_the_compose_project_and_an_unreadable_env_blocks_only_changes() {
        let dir = crate::fsx::TempDir::new("stack-name").unwrap();
        let given = stack_name(dir.path(), Some("f1".into()), false).unwrap();
        assert_eq!(given, "f1");
        std::fs::write(dir.path().join(".env"), "COMPOSE_PROJECT_NAME=prod\n").unwrap();
        if std::env::var_os("COMPOSE_PROJECT_NAME").is_none() {
            assert_eq!(stack_name(dir.path(), None, false).unwrap(), "prod");
        }
        std::fs::write(dir.path().join(".env"), "A='unclosed\n").unwrap();
        let e = format!("{:#}", stack_name(dir.path(), None, false).unwrap_err());
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(stack_name(dir.path(), None, true).is_ok());
    }

    fn service(update: Option<&str>, image: &str) -> ServiceState {
        ServiceState {
            name: "disinto_agents".into(),
            image: image.into(),
            previous_image: None,
            replicas: Some(1),
            update: update.map(str::to_string),
            message: "m".into(),
        }
    }

    fn task(image: &str, state: &str) -> Task {
        Task {
            image: image.into(),
            state: state.into(),
            error: String::new(),
        }
    }

    #[test]
    fn an_update_settles_when_the_new_image_runs() {
        let s = service(None, "a:2");
        // Right after the deploy: the old task still runs, the update has not started.
        assert!(matches!(
            progress(&s, &[task("a:1", "running")]),
            Progress::Waiting(_)
        ));
        assert!(matches!(
            progress(
                &service(Some("updating"), "a:2"),
                &[task("a:2", "starting")]
            ),
            Progress::Waiting(_)
        ));
        // Healthy (Swarm says running only then), or nothing to update at all.
        assert_eq!(
            progress(
                &service(Some("completed"), "a:2"),
                &[task("a:2", "running")]
            ),
            Progress::Settled { rolled_back: false }
        );
        assert_eq!(
            progress(&s, &[task("a:2", "running")]),
            Progress::Settled { rolled_back: false }
        );
        assert!(matches!(
            progress(&s, &[task("a:2", "starting")]),
            Progress::Waiting(_)
        ));
    }

    #[test]
    fn a_rollback_by_swarm_and_a_pause_are_told_apart() {
        let back = service(Some("rollback_completed"), "a:1");
        assert_eq!(
            progress(&back, &[task("a:1", "running")]),
            Progress::Settled { rolled_back: true }
        );
        assert!(matches!(
            progress(&service(Some("rollback_started"), "a:1"), &[]),
            Progress::Waiting(_)
        ));
        assert_eq!(
            progress(&service(Some("rollback_paused"), "a:1"), &[]),
            Progress::Stuck("rollback_paused: m".into())
        );
        let zero = ServiceState {
            replicas: Some(0),
            ..service(None, "a:1")
        };
        assert_eq!(
            progress(&zero, &[]),
            Progress::Settled { rolled_back: false }
        );
    }
}
