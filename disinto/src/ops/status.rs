//! `disinto status`: per service, the image, its registry digest, version, state and health,
//! and what the deployment history says runs since when; and the platform agents runs (from
//! a release of several platforms, the engine picked its own).

use std::path::Path;

use anyhow::{bail, Result};
use xshell::Shell;

use super::images::registry_digest;
use super::table::{self, or_dash};
use crate::engine::docker;
use crate::factory::Factory;
use crate::lock;
use crate::model::history::{Deployment, History};
use crate::model::image_ref::ImageRef;

/// One row of `disinto status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
struct Row {
    service: String,
    image: String,
    digest: String,
    version: String,
    state: String,
    health: String,
    /// The platform of the image it runs (`linux/amd64`), as its image config says.
    #[serde(skip_serializing_if = "String::is_empty")]
    platform: String,
}

impl Row {
    fn cells(&self) -> [String; 6] {
        [
            self.service.clone(),
            self.image.clone(),
            self.digest.clone(),
            self.version.clone(),
            self.state.clone(),
            self.health.clone(),
        ]
    }
}

const HEADER: [&str; 6] = ["SERVICE", "IMAGE", "DIGEST", "VERSION", "STATE", "HEALTH"];

pub(crate) fn status(sh: &Shell, root: &Path, json: bool) -> Result<()> {
    // Status looks, whatever `.env` says: a bad AGENTS_IMAGE is what an operator looks at
    // the factory to repair. It is a warning of what the next `up` refuses.
    let (factory, problem) = Factory::open_to_look(root)?;
    if let Some(problem) = problem {
        eprintln!(
            "warning: {problem:#}: `disinto up` refuses it until it is fixed (`disinto rollback VERSION` sets AGENTS_IMAGE)"
        );
    }
    docker::require_daemon()?;
    if !factory.compose_file().is_file() {
        bail!(
            "{} has no docker-compose.yml: run `disinto init` first",
            root.display()
        );
    }
    let mut rows = Vec::new();
    for id in factory.containers(sh)? {
        if let Some(row) = row(&id) {
            rows.push(row);
        }
    }
    rows.sort_by(|a, b| a.service.cmp(&b.service));
    // An unreadable history hides only what it would have said.
    let history = History::load(&factory.dir)
        .map_err(|e| eprintln!("warning: {e:#}: what was deployed when is not shown"))
        .ok();
    // The platform that runs: agents', else any service's (one engine runs them all).
    let platform = rows
        .iter()
        .find(|r| r.service == "agents")
        .or(rows.first())
        .map(|r| r.platform.clone())
        .filter(|p| !p.is_empty());
    let current = history.as_ref().and_then(History::current);
    let previous = history.as_ref().and_then(History::previous);
    if json {
        let value = serde_json::json!({
            "services": rows,
            "platform": platform,
            "deployed": current,
            "verified": current.map(Deployment::verification),
            "previous": previous,
            "lock": lock::holder(&factory.dir),
            "freeze": match lock::frozen(&factory.dir) {
                Ok(freeze) => serde_json::to_value(freeze)?,
                Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
            },
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    if rows.is_empty() {
        // Words, not data: standard error, so a script reading the table reads no prose.
        eprintln!("no containers: `disinto up` starts the factory");
    } else {
        let cells: Vec<[String; 6]> = rows.iter().map(Row::cells).collect();
        print!("{}", table::render(HEADER, &cells));
    }
    if let Some(platform) = &platform {
        println!("platform: {platform}");
    }
    if let Some(line) = summary(current, previous) {
        println!("{line}");
    }
    if let Some(holder) = lock::holder(&factory.dir) {
        println!("locked: {holder} is changing the factory");
    }
    match lock::frozen(&factory.dir) {
        Ok(Some(freeze)) => println!(
            "frozen: by {} since {} ({}); `disinto unlock` lifts it",
            freeze.who(),
            freeze.since,
            freeze.command
        ),
        Ok(None) => {}
        Err(e) => eprintln!("frozen: {e:#}"),
    }
    Ok(())
}

/// The row of one container, from what Docker says of it and of its image.
fn row(id: &str) -> Option<Row> {
    let format = "{{index .Config.Labels \"com.docker.compose.service\"}}\t{{.Config.Image}}\t{{.Image}}\t{{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}";
    // A container can go between listing and inspecting it.
    let line = docker::run(&["inspect", "--format", format, id]).ok()?;
    let f: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
    let [service, image, image_id, state, health] = f.as_slice() else {
        return None;
    };
    let format = "{{json .RepoDigests}}\t{{index .Config.Labels \"org.opencontainers.image.version\"}}\t{{.Os}}/{{.Architecture}}{{with .Variant}}/{{.}}{{end}}";
    let info = docker::run(&["image", "inspect", "--format", format, image_id]).unwrap_or_default();
    let mut fields = info.trim_end().split('\t');
    let digests = fields.next().filter(|d| !d.is_empty()).unwrap_or("[]");
    let version = fields.next().unwrap_or("");
    let platform = fields.next().unwrap_or("");
    let digests: Vec<String> = serde_json::from_str(digests).unwrap_or_default();
    let parsed = ImageRef::parse(image).ok();
    let digest = parsed
        .as_ref()
        .and_then(|r| registry_digest(r, &digests))
        .unwrap_or("(local-build)");
    Some(Row {
        service: service.to_string(),
        // The digest has its own column.
        image: parsed.map_or_else(|| image.to_string(), |r| r.without_digest()),
        digest: digest.to_string(),
        version: or_dash(version),
        state: state.to_string(),
        health: health.trim().to_string(),
        platform: platform_of(platform),
    })
}

/// The platform an image inspection printed (`os/arch[/variant]`), as the platform model
/// writes it; empty when Docker said nothing usable.
fn platform_of(said: &str) -> String {
    crate::model::platform::Platform::parse(said)
        .map(|p| p.to_string())
        .unwrap_or_default()
}

/// One line: what the history says runs, since when, and what `rollback` would go back to.
fn summary(current: Option<&Deployment>, previous: Option<&Deployment>) -> Option<String> {
    let now = current?;
    let before = match previous {
        Some(p) => format!(
            "previous: {} (`disinto rollback` returns to it)",
            p.shown_version()
        ),
        None => "previous: none".into(),
    };
    Some(format!(
        "deployed: {} since {} ({}), {}; {before}",
        now.shown_version(),
        now.time,
        now.image,
        now.verification()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_is_read_as_docker_prints_it() {
        assert_eq!(platform_of("linux/amd64"), "linux/amd64");
        assert_eq!(platform_of("linux/arm/v7"), "linux/arm/v7");
        // An image that does not say (a very old one, a failed inspection).
        assert_eq!(platform_of("/"), "");
        assert_eq!(platform_of(""), "");
    }

    #[test]
    fn status_table_is_aligned() {
        let row = Row {
            service: "agents".into(),
            image: "r/agents:v0.2.0".into(),
            digest: "sha256:ab".into(),
            version: "v0.2.0".into(),
            state: "running".into(),
            health: "healthy".into(),
            platform: "linux/amd64".into(),
        };
        assert_eq!(
            table::render(HEADER, &[row.cells()]),
            "SERVICE  IMAGE            DIGEST     VERSION  STATE    HEALTH\n\
             agents   r/agents:v0.2.0  sha256:ab  v0.2.0   running  healthy\n"
        );
    }
}
