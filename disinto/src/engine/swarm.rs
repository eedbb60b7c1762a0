//! What Docker says about a swarm: is this engine a manager, its nodes, a service's spec
//! and update state, its tasks, a stack's services and containers. Queries only; the
//! commands that change a swarm are the swarm commands', run through the [`super::Runner`].

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use super::docker;
use super::poll::{self, Look};
use crate::model::stack::{Node, VOLUMES_LABEL};

/// The label Docker puts on every service, container and volume `docker stack deploy` makes.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";

/// The label `docker stack deploy` puts on every service: its image as the stack file names
/// it. A deploy whose file names the image this label holds keeps the service's image as it
/// is, so whatever puts a service on another image outside a deploy must move this label too,
/// or the next deploy of the release it left would leave the service where it is.
pub const IMAGE_LABEL: &str = "com.docker.stack.image";

/// Docker's name of a stack's service (`disinto_agents`).
pub fn service_name(stack: &str, service: &str) -> String {
    format!("{stack}_{service}")
}

/// Fails, saying what to do, unless this Docker engine is a manager of a swarm.
pub fn require_manager() -> Result<()> {
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

/// The id of this engine's node in the swarm.
pub fn this_node() -> Result<String> {
    let id = docker::read(
        &["info", "--format", "{{.Swarm.NodeID}}"],
        "ask Docker for this node's id",
    )?;
    match id.trim() {
        "" => bail!("docker info names no swarm node here: is this engine in a swarm?"),
        id => Ok(id.to_string()),
    }
}

/// The swarm's nodes, with whether each carries the volumes label.
pub fn nodes() -> Result<Vec<Node>> {
    let ids = docker::read(&["node", "ls", "--quiet"], "list the swarm's nodes")?;
    let format = format!(
        "{{{{.ID}}}}\t{{{{.Description.Hostname}}}}\t{{{{index .Spec.Labels \"{VOLUMES_LABEL}\"}}}}\t{{{{.Status.State}}}}\t{{{{.Spec.Availability}}}}"
    );
    let mut args = vec!["node", "inspect", "--format", &format];
    args.extend(ids.split_whitespace());
    Ok(parse_nodes(&docker::read(
        &args,
        "inspect the swarm's nodes",
    )?))
}

/// `ID<TAB>HOSTNAME<TAB>LABEL<TAB>STATE<TAB>AVAILABILITY` lines as nodes.
fn parse_nodes(text: &str) -> Vec<Node> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let id = fields.next()?.trim();
            let hostname = fields.next().unwrap_or(id).trim();
            let label = fields.next().unwrap_or("").trim();
            let state = fields.next().unwrap_or("").trim();
            let availability = fields.next().unwrap_or("").trim();
            (!id.is_empty()).then(|| Node {
                id: id.to_string(),
                hostname: hostname.to_string(),
                labelled: label == "true",
                ready: state == "ready",
                active: availability == "active",
            })
        })
        .collect()
}

/// What `docker service inspect` says about one service, as far as a rollout cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceState {
    pub name: String,
    /// The image of the spec Swarm works towards.
    pub image: String,
    /// The image of the spec before it, which `docker service rollback` returns to.
    pub previous_image: Option<String>,
    pub replicas: Option<u64>,
    /// `UpdateStatus.State`: updating, completed, paused, rollback_started,
    /// rollback_completed, rollback_paused; none when nothing changed the tasks.
    pub update: Option<String>,
    pub message: String,
}

impl ServiceState {
    fn parse(v: &serde_json::Value) -> ServiceState {
        let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let image_of =
            |spec: &serde_json::Value| text(&spec["TaskTemplate"]["ContainerSpec"]["Image"]);
        ServiceState {
            name: text(&v["Spec"]["Name"]).unwrap_or_default(),
            image: image_of(&v["Spec"]).unwrap_or_default(),
            previous_image: image_of(&v["PreviousSpec"]),
            replicas: v["Spec"]["Mode"]["Replicated"]["Replicas"].as_u64(),
            update: text(&v["UpdateStatus"]["State"]),
            message: text(&v["UpdateStatus"]["Message"]).unwrap_or_default(),
        }
    }
}

/// One service's state.
pub fn inspect(service: &str) -> Result<ServiceState> {
    let json = docker::run(&["service", "inspect", service]).map_err(|why| {
        anyhow!("cannot inspect service {service} ({why}): deploy it with `disinto swarm deploy`, or name the stack with --stack")
    })?;
    let all: Vec<serde_json::Value> = serde_json::from_str(&json)
        .with_context(|| format!("docker service inspect {service} printed no JSON list"))?;
    all.first()
        .map(ServiceState::parse)
        .with_context(|| format!("docker service inspect {service} printed nothing"))
}

/// A task Swarm wants running: its image and its state (`running` only once healthy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub image: String,
    pub state: String,
    pub error: String,
}

/// The tasks of `service` that Swarm wants running.
pub fn tasks(service: &str) -> Result<Vec<Task>> {
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
    let out = inspect_tasks(
        service,
        &ids,
        "{{.Spec.ContainerSpec.Image}}\t{{.Status.State}}\t{{.Status.Err}}",
    )?;
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

/// `docker inspect --type task` of the task ids in `ids` (whitespace-separated), one line
/// each in `format`; nothing when there are none.
fn inspect_tasks(service: &str, ids: &str, format: &str) -> Result<String> {
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Ok(String::new());
    }
    let mut args = vec!["inspect", "--type", "task", "--format", format];
    args.extend(ids);
    docker::read(&args, &format!("inspect the tasks of {service}"))
}

/// A task of a job (a one-off service): the node it was given, its state and error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTask {
    pub node: String,
    pub state: String,
    pub error: String,
}

/// Every task of `service`, whatever Swarm wants of it (a job's tasks end).
pub fn job_tasks(service: &str) -> Result<Vec<JobTask>> {
    let ids = docker::read(
        &["service", "ps", "--quiet", "--no-trunc", service],
        &format!("list the tasks of {service}"),
    )?;
    let out = inspect_tasks(
        service,
        &ids,
        "{{.NodeID}}\t{{.Status.State}}\t{{.Status.Err}}",
    )?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(JobTask {
                node: f.next()?.trim().to_string(),
                state: f.next().unwrap_or("").trim().to_string(),
                error: f.next().unwrap_or("").trim().to_string(),
            })
        })
        .collect())
}

/// A stack's services: each one's state and its running/wanted replicas (`1/1`).
pub fn stack_services(stack: &str) -> Result<Vec<(ServiceState, String)>> {
    let filter = format!("label={NAMESPACE_LABEL}={stack}");
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
    if replicas.is_empty() {
        return Ok(vec![]);
    }
    let mut args = vec!["service", "inspect"];
    args.extend(replicas.keys());
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&docker::read(&args, "inspect the stack's services")?)
            .context("docker service inspect printed no JSON list")?;
    Ok(all
        .iter()
        .map(|v| {
            let id = v["ID"].as_str().unwrap_or("");
            let running = replicas
                .iter()
                .find(|(k, _)| id.starts_with(**k))
                .map_or("-", |(_, r)| *r);
            (ServiceState::parse(v), running.to_string())
        })
        .collect())
}

/// The container of `service`'s running task on this node, if one runs here.
pub fn local_container(service: &str) -> Option<String> {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let ids = docker::run(&["ps", "--quiet", "--filter", &filter]).ok()?;
    ids.split_whitespace().next().map(str::to_string)
}

/// Waits until no container of the stack is left on this node (Swarm stops them after
/// `docker stack rm` returns).
pub fn wait_gone(stack: &str, limit: Duration) -> Result<()> {
    let filter = format!("label={NAMESPACE_LABEL}={stack}");
    let gone = poll::until(limit, Duration::from_millis(500), |_| {
        let left = docker::read(
            &["ps", "--all", "--quiet", "--filter", &filter],
            "list the stack's containers",
        )?;
        Ok(match left.trim() {
            "" => Look::Done(()),
            ids => Look::Wait(ids.split_whitespace().collect::<Vec<_>>().join(" ")),
        })
    })?;
    gone.map_err(|left| {
        anyhow!(
            "containers of stack {stack} are still here after {}s ({left}): volumes kept; retry `disinto swarm rm --volumes`",
            limit.as_secs()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_inspect_json_is_read() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"ID":"x","Spec":{"Name":"disinto_agents","Mode":{"Replicated":{"Replicas":1}},
                "TaskTemplate":{"ContainerSpec":{"Image":"r/agents:v2@sha256:b"}}},
               "PreviousSpec":{"TaskTemplate":{"ContainerSpec":{"Image":"r/agents:v1@sha256:a"}}},
               "UpdateStatus":{"State":"completed","Message":"update completed"}}"#,
        )
        .unwrap();
        let s = ServiceState::parse(&v);
        assert_eq!(s.image, "r/agents:v2@sha256:b");
        assert_eq!(s.previous_image.as_deref(), Some("r/agents:v1@sha256:a"));
        assert_eq!(s.replicas, Some(1));
        assert_eq!(s.update.as_deref(), Some("completed"));
        let fresh: serde_json::Value =
            serde_json::from_str(r#"{"Spec":{"Name":"s_edge"}}"#).unwrap();
        let s = ServiceState::parse(&fresh);
        assert_eq!((s.previous_image, s.update), (None, None));
    }

    #[test]
    fn node_lines_are_read() {
        let nodes = parse_nodes("a1\thost-a\ttrue\tready\tactive\nb2\thost-b\t\tdown\tdrain\n\n");
        assert_eq!(
            nodes,
            vec![
                Node {
                    id: "a1".into(),
                    hostname: "host-a".into(),
                    labelled: true,
                    ready: true,
                    active: true,
                },
                Node {
                    id: "b2".into(),
                    hostname: "host-b".into(),
                    labelled: false,
                    ready: false,
                    active: false,
                },
            ]
        );
    }
}
