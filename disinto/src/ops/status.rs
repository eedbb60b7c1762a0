//! `disinto status`: per service, the image, its registry digest, version, state and health,
//! and what the deployment history says runs since when; `disinto history` lists it all.

use std::path::Path;

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use crate::factory::Factory;
use crate::model::history::{self, Deployment};

/// One row of `disinto status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Row {
    pub service: String,
    pub image: String,
    pub digest: String,
    pub version: String,
    pub state: String,
    pub health: String,
}

/// The status table, aligned, with a header.
pub(crate) fn render(rows: &[Row]) -> String {
    let header = Row {
        service: "SERVICE".into(),
        image: "IMAGE".into(),
        digest: "DIGEST".into(),
        version: "VERSION".into(),
        state: "STATE".into(),
        health: "HEALTH".into(),
    };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let width = |f: fn(&Row) -> &str| all.iter().map(|r| f(r).len()).max().unwrap_or(0);
    let w = [
        width(|r| &r.service),
        width(|r| &r.image),
        width(|r| &r.digest),
        width(|r| &r.version),
        width(|r| &r.state),
    ];
    all.iter()
        .map(|r| {
            format!(
                "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {:w4$}  {}\n",
                r.service,
                r.image,
                r.digest,
                r.version,
                r.state,
                r.health,
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4]
            )
        })
        .collect()
}

pub(crate) fn status(sh: &Shell, root: &Path, json: bool) -> Result<()> {
    let factory = Factory::open(root)?;
    crate::engine::docker::require_daemon()?;
    if !factory.compose_file().is_file() {
        bail!(
            "{} has no docker-compose.yml: run `disinto init` first",
            root.display()
        );
    }
    let ids = factory
        .compose(sh, &["--profile", "*", "ps", "--all", "--quiet"])
        .quiet()
        .read()?;
    let mut rows = Vec::new();
    for id in ids.split_whitespace() {
        let format = "{{index .Config.Labels \"com.docker.compose.service\"}}\t{{.Config.Image}}\t{{.Image}}\t{{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}";
        let line = cmd!(sh, "docker inspect --format {format} {id}")
            .quiet()
            .read()?;
        let f: Vec<&str> = line.split('\t').collect();
        let [service, image, image_id, state, health] = f.as_slice() else {
            continue;
        };
        let format =
            "{{json .RepoDigests}}\t{{index .Config.Labels \"org.opencontainers.image.version\"}}";
        let info = cmd!(sh, "docker image inspect --format {format} {image_id}")
            .quiet()
            .read()
            .unwrap_or_default();
        let (digests, version) = info.split_once('\t').unwrap_or(("[]", ""));
        let digests: Vec<String> = serde_json::from_str(digests).unwrap_or_default();
        let repo = crate::model::image_ref::repository_of(image);
        let digest = digests
            .iter()
            .find(|d| d.starts_with(&format!("{repo}@")))
            .and_then(|d| d.split_once('@'))
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| "(local-build)".into());
        rows.push(Row {
            service: service.to_string(),
            // The digest has its own column.
            image: image.split('@').next().unwrap_or(image).to_string(),
            digest,
            version: if version.is_empty() || version == "<no value>" {
                "-".into()
            } else {
                version.to_string()
            },
            state: state.to_string(),
            health: health.trim().to_string(),
        });
    }
    rows.sort_by(|a, b| a.service.cmp(&b.service));
    let deployments = history::load(&factory.dir)?;
    let current = history::current(&deployments);
    let previous = history::previous(&deployments);
    if json {
        let value = serde_json::json!({
            "services": rows,
            "deployed": current,
            "previous": previous,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no containers: `disinto up` starts the factory");
    } else {
        print!("{}", render(&rows));
    }
    if let Some(line) = summary(current, previous) {
        println!("{line}");
    }
    Ok(())
}

/// One line: what the history says runs, since when, and what `rollback` would go back to.
fn summary(current: Option<&Deployment>, previous: Option<&Deployment>) -> Option<String> {
    let now = current?;
    let before = match previous {
        Some(p) => format!(
            "previous: {} (`disinto rollback` returns to it)",
            shown(&p.version)
        ),
        None => "previous: none".into(),
    };
    Some(format!(
        "deployed: {} since {} ({}); {before}",
        shown(&now.version),
        now.time,
        now.image
    ))
}

fn shown(version: &str) -> &str {
    if version.is_empty() {
        "dev"
    } else {
        version
    }
}

/// `disinto history`: every rollout, oldest first.
pub(crate) fn history(root: &Path, json: bool) -> Result<()> {
    let factory = Factory::open_to_stop(root)?;
    let deployments = history::load(&factory.dir)?;
    if deployments.is_empty() {
        println!(
            "no deployments recorded in {}",
            history::path(&factory.dir).display()
        );
        return Ok(());
    }
    for d in &deployments {
        if json {
            println!("{}", serde_json::to_string(d)?);
        } else {
            let outcome = serde_json::to_value(d.outcome)?;
            println!(
                "{}  {:<11}  {:<10}  {}",
                d.time,
                outcome.as_str().unwrap_or("-"),
                shown(&d.version),
                d.image
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_is_aligned() {
        let rows = vec![Row {
            service: "agents".into(),
            image: "r/agents:v0.2.0".into(),
            digest: "sha256:ab".into(),
            version: "v0.2.0".into(),
            state: "running".into(),
            health: "healthy".into(),
        }];
        let table = render(&rows);
        assert_eq!(
            table,
            "SERVICE  IMAGE            DIGEST     VERSION  STATE    HEALTH\n\
             agents   r/agents:v0.2.0  sha256:ab  v0.2.0   running  healthy\n"
        );
    }
}
