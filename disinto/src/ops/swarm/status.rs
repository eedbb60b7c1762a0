//! `disinto swarm status`: per service of the stack, image, digest, version, replicas and
//! where its last update stands.

use anyhow::Result;

use super::check_stack_name;
use crate::engine::docker;
use crate::engine::swarm::{require_manager, stack_services, tasks, ServiceState, Task};
use crate::model::image_ref::ImageRef;
use crate::ops::table::{self, or_dash};

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
    /// Why fewer tasks run than Swarm wants (a task's state and error), else empty.
    why: String,
}

const HEADER: [&str; 6] = [
    "SERVICE", "IMAGE", "DIGEST", "VERSION", "REPLICAS", "UPDATE",
];

impl Row {
    fn new(stack_name: &str, state: &ServiceState, replicas: &str, version: &str) -> Row {
        let (image, digest) = match ImageRef::parse(&state.image) {
            Ok(r) => (r.without_digest(), r.digest().unwrap_or("-").to_string()),
            Err(_) => (state.image.clone(), "-".into()),
        };
        let prefix = format!("{stack_name}_");
        Row {
            service: state
                .name
                .strip_prefix(&prefix)
                .unwrap_or(&state.name)
                .to_string(),
            image,
            digest,
            version: or_dash(version),
            replicas: replicas.to_string(),
            update: state.update.clone().unwrap_or_else(|| "-".into()),
            message: state.message.clone(),
            why: String::new(),
        }
    }

    fn cells(&self) -> [String; 6] {
        [
            self.service.clone(),
            self.image.clone(),
            self.digest.clone(),
            self.version.clone(),
            self.replicas.clone(),
            self.update.clone(),
        ]
    }
}

/// How many of the tasks Swarm wants running do run.
fn running(tasks: &[Task]) -> usize {
    tasks.iter().filter(|t| t.state == "running").count()
}

/// Why a service's wanted task does not run: the state and error of the first that does not
/// (`pending: no suitable node (scheduling constraints not satisfied on 3 nodes)`).
fn why(tasks: &[Task]) -> String {
    tasks
        .iter()
        .find(|t| t.state != "running")
        .map(|t| match t.error.as_str() {
            "" => t.state.clone(),
            e => format!("{}: {e}", t.state),
        })
        .unwrap_or_default()
}

pub(crate) fn status(stack_name: &str, json: bool) -> Result<()> {
    check_stack_name(stack_name)?;
    docker::require_daemon()?;
    require_manager()?;
    let mut rows: Vec<Row> = stack_services(stack_name)?
        .iter()
        .map(|(state, replicas)| {
            // The version label of the image, when this node has it (it pulled it to pin it).
            let version = docker::run(&[
                "image",
                "inspect",
                "--format",
                "{{index .Config.Labels \"org.opencontainers.image.version\"}}",
                &state.image,
            ])
            .unwrap_or_default();
            // `docker service ls` counts a task on a node that went down as running until
            // the node comes back: the tasks Swarm wants running say what runs.
            let (replicas, why) = match (tasks(&state.name), state.replicas) {
                (Ok(tasks), Some(wanted)) => (format!("{}/{wanted}", running(&tasks)), why(&tasks)),
                (Ok(tasks), None) => (replicas.clone(), why(&tasks)),
                (Err(_), _) => (replicas.clone(), String::new()),
            };
            let mut row = Row::new(stack_name, state, &replicas, &version);
            row.why = why;
            row
        })
        .collect();
    rows.sort_by(|a, b| a.service.cmp(&b.service));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        eprintln!("no services in stack {stack_name}: `disinto swarm deploy` starts it");
    } else {
        let cells: Vec<[String; 6]> = rows.iter().map(Row::cells).collect();
        print!("{}", table::render(HEADER, &cells));
        for row in rows.iter().filter(|r| !r.why.is_empty()) {
            println!("{} runs {}: {}", row.service, row.replicas, row.why);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_short_of_tasks_says_why() {
        let pending = Task {
            image: "r/agents:v2".into(),
            state: "pending".into(),
            error: "no suitable node (scheduling constraints not satisfied on 3 nodes)".into(),
        };
        assert_eq!(running(std::slice::from_ref(&pending)), 0);
        assert_eq!(
            why(&[pending]),
            "pending: no suitable node (scheduling constraints not satisfied on 3 nodes)"
        );
        assert_eq!(why(&[]), "");
    }

    #[test]
    fn a_row_splits_image_and_digest() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let state = ServiceState {
            name: "disinto_agents".into(),
            image: format!("r/agents:v2@{digest}"),
            update: Some("completed".into()),
            ..ServiceState::default()
        };
        let row = Row::new("disinto", &state, "1/1", "v2");
        assert_eq!(
            (
                row.service.as_str(),
                row.image.as_str(),
                row.digest.as_str()
            ),
            ("agents", "r/agents:v2", digest.as_str())
        );
        assert_eq!(
            table::render(HEADER, &[row.cells()])
                .lines()
                .nth(1)
                .unwrap(),
            format!("agents   r/agents:v2  {digest}  v2       1/1       completed")
        );
    }
}
