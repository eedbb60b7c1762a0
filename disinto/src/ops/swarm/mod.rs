//! `disinto swarm`: the pinned factory on a Docker Swarm, from the stack file ([`crate::model::stack`]).
//! `deploy` waits until agents runs its new image healthy, or until Swarm has rolled it back
//! itself; `status`, `rollback` (`docker service rollback`) and `rm` work on the stack.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use xshell::{cmd, Shell};

use crate::engine::docker;
use crate::factory::{Factory, PROJECTS_DIR};
use crate::fsx::{self, Written};
use crate::model::compose::ComposeInput;
use crate::model::config::Settings;
use crate::model::image_ref::{tag_of, AgentsImage, OUR_IMAGES};
use crate::model::stack::{self, Node, StackInput, STACK_FILE, VOLUMES_LABEL};
use crate::ops::rollout::pull_and_pin;

/// The label Docker puts on every service, container and volume `docker stack deploy` makes.
const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// Docker's name of a stack's service (`disinto_agents`).
/// A stack name Swarm takes, checked before anything changes: lower-case letters, digits,
/// '_' and '-', starting with a letter or digit, short enough for `<stack>_woodpecker-agent`
/// to stay a valid service name (63 characters).
fn check_stack_name(name: &str) -> Result<()> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= 46;
    if !ok {
        bail!("--stack {name:?} is not a stack name Swarm takes: lower-case letters, digits, '_' and '-', starting with a letter or digit, at most 46 characters (e.g. disinto)");
    }
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

fn service_name(stack: &str, service: &str) -> String {
    format!("{stack}_{service}")
}

/// `disinto swarm deploy`: pull and pin our images, write the stack file, deploy it, and wait
/// until agents has settled: on its new image, healthy, or rolled back by Swarm (an error).
pub(crate) fn deploy(
    sh: &Shell,
    root: &Path,
    stack_name: &str,
    dry_run: bool,
    timeout: Duration,
) -> Result<()> {
    check_stack_name(stack_name)?;
    let factory = Factory::open(root)?;
    let config = &factory.config;
    if config.agents == AgentsImage::Dev {
        bail!(stack::DEV_REFUSED);
    }
    if !dry_run {
        refuse_if_compose_runs(stack_name)?;
    }
    let settings = Settings::load(&factory.dir)?;
    let mut input = StackInput::new(ComposeInput::from(config), &factory.dir, &settings)?;
    // What a swarm cannot run (a host address on edge's port, ...) is refused before anything
    // is pulled, labelled or written.
    stack::generate(&input)?;
    // A dry run asks the swarm what it would label, when there is one to ask.
    let is_manager = if dry_run {
        manager().is_ok()
    } else {
        docker::require_daemon()?;
        manager()?;
        true
    };
    let to_label: Option<Node> = match is_manager {
        true => stack::volume_node(&nodes()?)?.cloned(),
        false => None,
    };
    input.compose.pinned = pull_and_pin(config, OUR_IMAGES, dry_run)?;
    // Every node must run the same bytes: an image with no registry digest (built or tagged
    // only here) could be something else on another node.
    if let Some((name, reference)) = input
        .compose
        .pinned
        .iter()
        .find(|(_, r)| !r.contains("@sha256:"))
    {
        bail!("{name} would run {reference}, which has no registry digest (built or tagged only on this host): a swarm deploys what a registry holds; push a release and deploy that");
    }

    let file = factory.dir.join(STACK_FILE);
    let label_arg = format!("{VOLUMES_LABEL}=true");
    let label = to_label.as_ref().map(|node| {
        let id = &node.id;
        cmd!(sh, "docker node update --label-add {label_arg} {id}")
    });
    // --resolve-image never: the file pins our images by digest already, and asking a registry
    // for the third-party images' digests would only fail where no registry is reachable.
    let deploy = cmd!(
        sh,
        "docker stack deploy --compose-file {file} --with-registry-auth --resolve-image never --prune {stack_name}"
    );
    let agents = service_name(stack_name, "agents");
    if dry_run {
        if !is_manager {
            println!("# (no swarm manager answers here: on a single-node swarm, the node gets {label_arg}:)");
            println!("$ docker node update --label-add {label_arg} NODE");
        }
        if let Some(label) = label {
            println!("$ {}", docker::shell_line(label));
        }
        println!(
            "# write {} (agents: {})",
            file.display(),
            input.compose.agents
        );
        println!("$ {}", docker::shell_line(deploy));
        println!(
            "# wait until {agents} runs its new image, healthy and watched for {}, or Swarm has rolled it back (at most {}s); then runner follows agents' image",
            stack::MONITOR,
            timeout.as_secs()
        );
        return Ok(());
    }

    if let (Some(label), Some(node)) = (label, &to_label) {
        label
            .ignore_stdout()
            .run()
            .with_context(|| format!("cannot label node {}", node.hostname))?;
        eprintln!(
            "Labelled node {} {label_arg}: the factory's named volumes live there",
            node.hostname
        );
    }
    // Swarm, unlike compose, does not create a missing bind source: the task would be rejected.
    let projects = factory.dir.join(PROJECTS_DIR);
    std::fs::create_dir_all(&projects)
        .with_context(|| format!("cannot create {}", projects.display()))?;
    let written = fsx::write_private_if_changed(&file, &stack::generate(&input)?)?;
    // Private whatever it was before: it holds every variable, secrets included, resolved.
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", file.display()))?;
    let verb = match written {
        Written::Generated => "Generated",
        Written::Unchanged => "Unchanged",
    };
    eprintln!("{verb} {} ({})", file.display(), input.compose.agents);
    deploy
        .run()
        .with_context(|| format!("docker stack deploy refused {}", file.display()))?;

    let rolled_back = settle(&agents, timeout)?;
    let runs = follow(sh, stack_name)?;
    if rolled_back {
        let tried = input
            .compose
            .pinned
            .get("agents")
            .cloned()
            .unwrap_or_else(|| input.compose.agents.to_string());
        bail!(
            "Swarm rolled {agents} back: {tried} failed its update (see `docker service ps --no-trunc {agents}`); it runs {runs} again, and runner with it; AGENTS_IMAGE={} still names the failed release: change it before the next deploy",
            config.agents.as_setting()
        );
    }
    eprintln!("{agents} runs {runs}, healthy");
    Ok(())
}

/// Fails, saying what to do, unless this Docker engine is a manager of a swarm.
fn manager() -> Result<()> {
    let info = docker::read(
        &[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ],
        "ask Docker whether it is in a swarm",
    )?;
    match info.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["active", "true"] => Ok(()),
        ["active", _] => bail!(
            "this Docker engine is a swarm worker: run `disinto swarm` on a manager (`docker node ls` there lists the nodes)"
        ),
        [state, ..] => bail!(
            "this Docker engine is not in a swarm (state: {state}): `docker swarm init` makes a single-node swarm; then retry"
        ),
        [] => bail!("docker info printed no swarm state: is the daemon a Docker Engine?"),
    }
}

/// The swarm's nodes, with whether each carries the volumes label.
fn nodes() -> Result<Vec<Node>> {
    let ids = docker::read(&["node", "ls", "--quiet"], "list the swarm's nodes")?;
    let format = format!(
        "{{{{.ID}}}}\t{{{{.Description.Hostname}}}}\t{{{{index .Spec.Labels \"{VOLUMES_LABEL}\"}}}}"
    );
    let mut args = vec!["node", "inspect", "--format", &format];
    args.extend(ids.split_whitespace());
    Ok(parse_nodes(&docker::read(
        &args,
        "inspect the swarm's nodes",
    )?))
}

/// `ID<TAB>HOSTNAME<TAB>LABEL` lines as nodes.
fn parse_nodes(text: &str) -> Vec<Node> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let id = fields.next()?.trim();
            let hostname = fields.next().unwrap_or(id).trim();
            let label = fields.next().unwrap_or("").trim();
            (!id.is_empty()).then(|| Node {
                id: id.to_string(),
                hostname: hostname.to_string(),
                labelled: label == "true",
            })
        })
        .collect()
}

/// What `docker service inspect` says about one service, as far as a rollout cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ServiceState {
    name: String,
    /// The image of the spec Swarm works towards.
    image: String,
    /// The image of the spec before it, which `docker service rollback` returns to.
    previous_image: Option<String>,
    replicas: Option<u64>,
    /// `UpdateStatus.State`: updating, completed, paused, rollback_started,
    /// rollback_completed, rollback_paused; none when nothing changed the tasks.
    update: Option<String>,
    message: String,
}

fn parse_service(v: &serde_json::Value) -> ServiceState {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let image_of = |spec: &serde_json::Value| text(&spec["TaskTemplate"]["ContainerSpec"]["Image"]);
    ServiceState {
        name: text(&v["Spec"]["Name"]).unwrap_or_default(),
        image: image_of(&v["Spec"]).unwrap_or_default(),
        previous_image: image_of(&v["PreviousSpec"]),
        replicas: v["Spec"]["Mode"]["Replicated"]["Replicas"].as_u64(),
        update: text(&v["UpdateStatus"]["State"]),
        message: text(&v["UpdateStatus"]["Message"]).unwrap_or_default(),
    }
}

fn inspect(service: &str) -> Result<ServiceState> {
    let json = docker::run(&["service", "inspect", service]).map_err(|why| {
        anyhow!("cannot inspect service {service} ({why}): deploy it with `disinto swarm deploy`, or name the stack with --stack")
    })?;
    let all: Vec<serde_json::Value> = serde_json::from_str(&json)
        .with_context(|| format!("docker service inspect {service} printed no JSON list"))?;
    all.first()
        .map(parse_service)
        .with_context(|| format!("docker service inspect {service} printed nothing"))
}

/// A task Swarm wants running: its image and its state (`running` only once healthy).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Task {
    image: String,
    state: String,
    error: String,
}

fn tasks(service: &str) -> Result<Vec<Task>> {
    let ids = docker::read(
        &[
            "service",
            "ps",
            "--quiet",
            "--no-trunc",
            "--filter",
            "desired-state=running",
            service,
        ],
        &format!("list the tasks of {service}"),
    )?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut args = vec![
        "inspect",
        "--type",
        "task",
        "--format",
        "{{.Spec.ContainerSpec.Image}}\t{{.Status.State}}\t{{.Status.Err}}",
    ];
    args.extend(ids);
    let out = docker::read(&args, &format!("inspect the tasks of {service}"))?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(Task {
                image: f.next()?.to_string(),
                state: f.next().unwrap_or("").to_string(),
                error: f.next().unwrap_or("").trim().to_string(),
            })
        })
        .collect())
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
    let start = Instant::now();
    loop {
        let state = inspect(service)?;
        let last = match tasks(service) {
            Ok(tasks) => match progress(&state, &tasks) {
                Progress::Settled { rolled_back } => return Ok(rolled_back),
                Progress::Stuck(why) => bail!(
                    "{service} is paused ({why}): Swarm waits for a person; see `docker service ps --no-trunc {service}`"
                ),
                Progress::Waiting(why) => why,
            },
            // A task can go between listing and inspecting it: look again.
            Err(e) => format!("{e:#}"),
        };
        if start.elapsed() >= timeout {
            bail!(
                "{service} has not settled after {}s ({last}): see `docker service ps --no-trunc {service}`",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// runner runs agents' image, always (compose's rule): after Swarm rolled agents back, runner
/// (no tasks, so nothing failed) would stay on the failed image. Returns agents' image.
fn follow(sh: &Shell, stack_name: &str) -> Result<String> {
    let agents = inspect(&service_name(stack_name, "agents"))?;
    let runner_name = service_name(stack_name, "runner");
    let runner = inspect(&runner_name)?;
    if runner.image != agents.image {
        let image = &agents.image;
        cmd!(
            sh,
            "docker service update --detach --with-registry-auth --image {image} {runner_name}"
        )
        .ignore_stdout()
        .run()
        .with_context(|| format!("cannot put {runner_name} on agents' image {image}"))?;
        eprintln!("{runner_name} follows agents: {image}");
    }
    Ok(agents.image)
}

/// `disinto swarm rollback`: agents back to the spec before the last change
/// (`docker service rollback`), runner with it.
pub(crate) fn rollback(
    sh: &Shell,
    root: &Path,
    stack_name: &str,
    dry_run: bool,
    timeout: Duration,
) -> Result<()> {
    check_stack_name(stack_name)?;
    let agents = service_name(stack_name, "agents");
    let rollback = cmd!(sh, "docker service rollback --detach {agents}");
    if dry_run {
        println!("$ {}", docker::shell_line(rollback));
        println!(
            "# wait until {agents} runs its previous image, healthy (at most {}s); then runner follows agents' image",
            timeout.as_secs()
        );
        return Ok(());
    }
    docker::require_daemon()?;
    manager()?;
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
    rollback
        .ignore_stdout()
        .run()
        .with_context(|| format!("docker service rollback {agents} failed"))?;
    settle(&agents, timeout)?;
    let runs = follow(sh, stack_name)?;
    println!("rolled back: {agents} {} → {runs}", before.image);
    // Swarm's rollback is not written into .env (the operator's file): say what to change.
    let setting = Factory::open(root).map(|f| f.config.agents.as_setting().to_string());
    if let (Ok(setting), Some(tag)) = (setting, tag_of(&runs)) {
        if setting != tag {
            eprintln!(
                "note: AGENTS_IMAGE={setting} still names the release rolled back from: set AGENTS_IMAGE={tag} in .env so the next `disinto swarm deploy` stays here"
            );
        }
    }
    Ok(())
}

/// One row of `disinto swarm status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
struct Row {
    service: String,
    image: String,
    digest: String,
    version: String,
    replicas: String,
    update: String,
    message: String,
}

fn row(stack_name: &str, state: &ServiceState, replicas: &str, version: &str) -> Row {
    let (image, digest) = state
        .image
        .split_once('@')
        .unwrap_or((state.image.as_str(), "-"));
    let prefix = format!("{stack_name}_");
    Row {
        service: state
            .name
            .strip_prefix(&prefix)
            .unwrap_or(&state.name)
            .to_string(),
        image: image.to_string(),
        digest: digest.to_string(),
        version: if version.is_empty() || version == "<no value>" {
            "-".into()
        } else {
            version.to_string()
        },
        replicas: replicas.to_string(),
        update: state.update.clone().unwrap_or_else(|| "-".into()),
        message: state.message.clone(),
    }
}

/// The status table, aligned, with a header.
fn render(rows: &[Row]) -> String {
    let cells = |r: &Row| {
        [
            r.service.clone(),
            r.image.clone(),
            r.digest.clone(),
            r.version.clone(),
            r.replicas.clone(),
            r.update.clone(),
        ]
    };
    let header = [
        "SERVICE", "IMAGE", "DIGEST", "VERSION", "REPLICAS", "UPDATE",
    ]
    .map(String::from);
    let all: Vec<[String; 6]> = std::iter::once(header)
        .chain(rows.iter().map(cells))
        .collect();
    let widths: Vec<usize> = (0..6)
        .map(|i| all.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    all.iter()
        .map(|r| {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:w$}"))
                .collect();
            format!("{}\n", line.join("  ").trim_end())
        })
        .collect()
}

/// `disinto swarm status`: per service of the stack, image, digest, version, replicas and
/// where its last update stands.
pub(crate) fn status(stack_name: &str, json: bool) -> Result<()> {
    check_stack_name(stack_name)?;
    docker::require_daemon()?;
    manager()?;
    let filter = format!("label={NAMESPACE_LABEL}={stack_name}");
    let listed = docker::read(
        &[
            "service",
            "ls",
            "--filter",
            &filter,
            "--format",
            "{{.ID}}\t{{.Replicas}}",
        ],
        "list the stack's services",
    )?;
    let replicas: BTreeMap<&str, &str> =
        listed.lines().filter_map(|l| l.split_once('\t')).collect();
    let mut rows = Vec::new();
    if !replicas.is_empty() {
        let mut args = vec!["service", "inspect"];
        args.extend(replicas.keys());
        let all: Vec<serde_json::Value> =
            serde_json::from_str(&docker::read(&args, "inspect the stack's services")?)
                .context("docker service inspect printed no JSON list")?;
        for v in &all {
            let state = parse_service(v);
            let id = v["ID"].as_str().unwrap_or("");
            let running = replicas
                .iter()
                .find(|(k, _)| id.starts_with(**k))
                .map_or("-", |(_, r)| *r);
            // The version label of the image, when this node has it (it pulled it to pin it).
            let version = docker::run(&[
                "image",
                "inspect",
                "--format",
                "{{index .Config.Labels \"org.opencontainers.image.version\"}}",
                &state.image,
            ])
            .unwrap_or_default();
            rows.push(row(stack_name, &state, running, version.trim()));
        }
    }
    rows.sort_by(|a, b| a.service.cmp(&b.service));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no services in stack {stack_name}: `disinto swarm deploy` starts it");
    } else {
        print!("{}", render(&rows));
    }
    Ok(())
}

/// `disinto swarm rm`: remove the stack; its named volumes stay unless `volumes`, and then the
/// command names them first.
pub(crate) fn rm(sh: &Shell, stack_name: &str, volumes: bool, dry_run: bool) -> Result<()> {
    check_stack_name(stack_name)?;
    let rm = cmd!(sh, "docker stack rm {stack_name}");
    let names = stack::volume_names(stack_name);
    if volumes {
        eprintln!(
            "--volumes: deleting the named volumes {} on this node, and all data in them",
            names.join(", ")
        );
    }
    if dry_run {
        println!("$ {}", docker::shell_line(rm));
        if volumes {
            println!("# wait until the stack's containers are gone (volumes in use cannot go)");
            println!(
                "$ {}",
                docker::shell_line(cmd!(sh, "docker volume rm {names...}"))
            );
        }
        return Ok(());
    }
    docker::require_daemon()?;
    manager()?;
    // `docker stack rm` of no stack succeeds; --volumes would then delete volumes of the
    // same names that belong to something else (a stopped compose factory).
    let services = docker::read(
        &[
            "service",
            "ls",
            "--quiet",
            "--filter",
            &format!("label={NAMESPACE_LABEL}={stack_name}"),
        ],
        "list the stack's services",
    )?;
    if services.trim().is_empty() {
        bail!("no stack {stack_name} runs on this swarm: nothing to remove (and no volume is deleted)");
    }
    rm.ignore_stdout().run()?;
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
    cmd!(sh, "docker volume rm {present...}")
        .ignore_stdout()
        .run()?;
    Ok(())
}

/// Waits until no container of the stack is left on this node (Swarm stops them after
/// `docker stack rm` returns).
fn wait_gone(stack_name: &str, limit: Duration) -> Result<()> {
    let filter = format!("label={NAMESPACE_LABEL}={stack_name}");
    let start = Instant::now();
    loop {
        let left = docker::read(
            &["ps", "--all", "--quiet", "--filter", &filter],
            "list the stack's containers",
        )?;
        if left.trim().is_empty() {
            return Ok(());
        }
        if start.elapsed() >= limit {
            bail!(
                "containers of stack {stack_name} are still here after {}s ({}): volumes kept; retry `disinto swarm rm --volumes`",
                limit.as_secs(),
                left.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
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

    #[test]
    fn service_inspect_json_is_read() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"ID":"x","Spec":{"Name":"disinto_agents","Mode":{"Replicated":{"Replicas":1}},
                "TaskTemplate":{"ContainerSpec":{"Image":"r/agents:v2@sha256:b"}}},
               "PreviousSpec":{"TaskTemplate":{"ContainerSpec":{"Image":"r/agents:v1@sha256:a"}}},
               "UpdateStatus":{"State":"completed","Message":"update completed"}}"#,
        )
        .unwrap();
        let s = parse_service(&v);
        assert_eq!(s.image, "r/agents:v2@sha256:b");
        assert_eq!(s.previous_image.as_deref(), Some("r/agents:v1@sha256:a"));
        assert_eq!(s.replicas, Some(1));
        assert_eq!(s.update.as_deref(), Some("completed"));
        let r = row("disinto", &s, "1/1", "v2");
        assert_eq!(
            render(&[r]),
            "SERVICE  IMAGE        DIGEST    VERSION  REPLICAS  UPDATE\n\
             agents   r/agents:v2  sha256:b  v2       1/1       completed\n"
        );
        let fresh: serde_json::Value =
            serde_json::from_str(r#"{"Spec":{"Name":"s_edge"}}"#).unwrap();
        let s = parse_service(&fresh);
        assert_eq!((s.previous_image, s.update), (None, None));
    }

    #[test]
    fn node_lines_are_read() {
        let nodes = parse_nodes("a1\thost-a\ttrue\nb2\thost-b\t\n\n");
        assert_eq!(
            nodes,
            vec![
                Node {
                    id: "a1".into(),
                    hostname: "host-a".into(),
                    labelled: true
                },
                Node {
                    id: "b2".into(),
                    hostname: "host-b".into(),
                    labelled: false
                },
            ]
        );
    }
}
