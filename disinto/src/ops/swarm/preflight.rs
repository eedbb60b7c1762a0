//! Before a deploy on several nodes: asks Swarm itself whether every node that may run a task
//! can pull the release, and whether the labelled node has the `projects` bind's source. Each
//! question is a one-off job service (`true` in agents' pinned image), removed afterwards: the
//! manager cannot see another node's registry access or file system any other way, and a
//! stack deployed first would be left half-way when a node turns out unable to run its part.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use xshell::cmd;

use crate::engine::poll::{self, Look};
use crate::engine::swarm::{job_tasks, JobTask};
use crate::engine::{docker, Runner};
use crate::model::stack::Node;

/// Where the `projects` bind's source is checked: the job mounts it here, read-only.
const PROBE_TARGET: &str = "/mnt/disinto-projects";

/// The two questions, asked at once; Ok when every node answered yes. `projects` is the bind
/// source and the labelled node, when that node is not this one (here `deploy` creates it).
pub(crate) fn check(
    runner: &Runner<'_>,
    stack_name: &str,
    image: &str,
    nodes: &[Node],
    projects: Option<(&str, &Node)>,
    timeout: Duration,
) -> Result<()> {
    // Refused before any job is made.
    if let Some((source, _)) = projects {
        if source.contains([',', '"', '\n']) {
            bail!("the factory directory's path {source:?} holds a ',' or '\"', which docker service create --mount cannot take: move the factory to a plain path");
        }
    }
    let sh = runner.sh;
    let pull = Job::new(runner, format!("{stack_name}-check-pull"));
    runner.note("every node that takes tasks pulls agents' image, with this client's login:");
    let name = &pull.name;
    runner.exec(
        cmd!(
            sh,
            "docker service create --detach --quiet --name {name} --mode global-job --restart-condition none --with-registry-auth --entrypoint true {image}"
        )
        .ignore_stdout(),
    )?;
    let bind = match projects {
        None => None,
        Some((source, node)) => {
            let job = Job::new(runner, format!("{stack_name}-check-bind"));
            let mount = format!("type=bind,src={source},dst={PROBE_TARGET},readonly");
            let constraint = format!("node.id=={}", node.id);
            runner.note(&format!(
                "{} holds the volumes and is not this node: {source} must exist there",
                node.hostname
            ));
            let name = &job.name;
            runner.exec(
                cmd!(
                    sh,
                    "docker service create --detach --quiet --name {name} --mode replicated-job --restart-condition none --constraint {constraint} --with-registry-auth --mount {mount} --entrypoint true {image}"
                )
                .ignore_stdout(),
            )?;
            Some((job, source, node))
        }
    };
    if runner.dry_run {
        return Ok(());
    }
    let takers: Vec<&Node> = nodes.iter().filter(|n| n.ready && n.active).collect();
    let hostname = |id: &str| {
        nodes
            .iter()
            .find(|n| n.id == id)
            .map_or(id.to_string(), |n| n.hostname.clone())
    };
    // A node that cannot pull is the first thing to say: the bind's check pulls too.
    let done = wait(&pull.name, &takers, timeout)?;
    if let Some(failed) = done.iter().find(|t| t.state != "complete") {
        bail!(
            "node {} cannot pull {image} ({} {}): every node that may run a task must reach the registry (it gets this client's login through --with-registry-auth); nothing was deployed",
            hostname(&failed.node),
            failed.state,
            failed.error
        );
    }
    if let Some((job, source, node)) = &bind {
        let done = wait(&job.name, &[*node], timeout)?;
        if let Some(failed) = done.iter().find(|t| t.state != "complete") {
            if failed.error.contains("does not exist") {
                bail!(
                    "{source} does not exist on node {}, which holds the factory's volumes: ./projects (the operator's configuration) is bound from that path there; run disinto on {} (make it a manager), or copy projects/ to the same path on it; nothing was deployed",
                    node.hostname,
                    node.hostname
                );
            }
            bail!(
                "node {} cannot start agents' image with {source} bound ({} {}): nothing was deployed",
                node.hostname,
                failed.state,
                failed.error
            );
        }
    }
    Ok(())
}

/// A job service, removed on drop (failure included): it is a question, not part of the stack.
struct Job {
    name: String,
    dry_run: bool,
}

impl Job {
    /// A job left by a deploy that was killed is removed first: the name must be free.
    fn new(runner: &Runner<'_>, name: String) -> Job {
        if !runner.dry_run {
            let _ = docker::run(&["service", "rm", &name]);
        }
        Job {
            name,
            dry_run: runner.dry_run,
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.dry_run {
            let _ = docker::run(&["service", "rm", &self.name]);
        }
    }
}

/// Waits until every one of `nodes` has a task of `job` that ended; those tasks.
fn wait(job: &str, nodes: &[&Node], timeout: Duration) -> Result<Vec<JobTask>> {
    let ended = poll::until(timeout, Duration::from_millis(500), |_| {
        let tasks = job_tasks(job)?;
        Ok(match answers(&tasks, nodes) {
            Ok(done) => Look::Done(done),
            Err(waiting) => Look::Wait(waiting),
        })
    })?;
    ended.map_err(|last| {
        anyhow!(
            "the check {job} has not ended after {}s (waiting for {last}): see `docker service ps --no-trunc {job}`; nothing was deployed",
            timeout.as_secs()
        )
    })
}

/// The ended task of each node, or the hostnames still waited for.
fn answers(tasks: &[JobTask], nodes: &[&Node]) -> std::result::Result<Vec<JobTask>, String> {
    let ended = |t: &&JobTask| {
        matches!(
            t.state.as_str(),
            "complete" | "failed" | "rejected" | "shutdown" | "orphaned"
        )
    };
    let mut done = vec![];
    let mut waiting = vec![];
    for node in nodes {
        match tasks.iter().filter(|t| t.node == node.id).find(ended) {
            Some(t) => done.push(t.clone()),
            None => waiting.push(node.hostname.as_str()),
        }
    }
    match waiting.is_empty() {
        true => Ok(done),
        false => Err(waiting.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> Node {
        Node {
            id: id.into(),
            hostname: format!("host-{id}"),
            labelled: false,
            ready: true,
            active: true,
        }
    }

    fn task(node: &str, state: &str, error: &str) -> JobTask {
        JobTask {
            node: node.into(),
            state: state.into(),
            error: error.into(),
        }
    }

    #[test]
    fn a_check_ends_when_every_node_has_answered() {
        let (a, b) = (node("a"), node("b"));
        let nodes = [&a, &b];
        assert_eq!(
            answers(&[task("a", "complete", "")], &nodes),
            Err("host-b".into())
        );
        assert_eq!(
            answers(
                &[task("a", "complete", ""), task("b", "preparing", "")],
                &nodes
            ),
            Err("host-b".into())
        );
        let done = answers(
            &[
                task("a", "complete", ""),
                task("b", "rejected", "No such image: r/agents:v1"),
            ],
            &nodes,
        )
        .unwrap();
        assert_eq!(done[1].state, "rejected");
        // A node that takes no tasks is not waited for.
        assert!(answers(&[task("a", "complete", "")], &[&a]).is_ok());
    }
}
