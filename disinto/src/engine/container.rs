//! What Docker says of one container, as far as disinto's checks care: its image, state,
//! health, restarts and anonymous volumes; and how much room the engine has left.

use anyhow::{Context, Result};
use serde::Serialize;

use super::docker;

/// One container, inspected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    pub id: String,
    /// The compose service it runs (its label).
    pub service: String,
    /// The image as configured (the reference compose ran).
    pub image: String,
    pub image_id: String,
    /// created, running, restarting, exited, dead, ...
    pub state: String,
    /// healthy, unhealthy, starting, or `-` without a health check.
    pub health: String,
    pub restarts: u64,
    pub started_at: String,
    /// Mount points backed by an anonymous volume (data a `down`/`up` loses).
    pub anonymous: Vec<String>,
}

/// Inspects `id`.
pub fn inspect(id: &str) -> Result<Container> {
    let json = docker::read(&["inspect", id], &format!("inspect container {id}"))?;
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&json).context("docker inspect printed no JSON list")?;
    let v = all.first().context("docker inspect printed nothing")?;
    Ok(parse(v))
}

fn parse(v: &serde_json::Value) -> Container {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    let anonymous = v["Mounts"]
        .as_array()
        .map(|mounts| {
            mounts
                .iter()
                .filter(|m| m["Type"] == "volume" && is_anonymous(m["Name"].as_str().unwrap_or("")))
                .map(|m| text(&m["Destination"]))
                .collect()
        })
        .unwrap_or_default();
    Container {
        id: text(&v["Id"]),
        service: text(&v["Config"]["Labels"]["com.docker.compose.service"]),
        image: text(&v["Config"]["Image"]),
        image_id: text(&v["Image"]),
        state: text(&v["State"]["Status"]),
        health: v["State"]["Health"]["Status"]
            .as_str()
            .unwrap_or("-")
            .to_string(),
        restarts: v["RestartCount"].as_u64().unwrap_or(0),
        started_at: text(&v["State"]["StartedAt"]),
        anonymous,
    }
}

/// Docker names an anonymous volume by 64 hex digits; a named one by its name.
fn is_anonymous(name: &str) -> bool {
    name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit())
}

/// Bytes free where the engine keeps its images (what the next pull needs room in).
pub fn free_bytes() -> Result<u64> {
    let root = docker::read(
        &["info", "--format", "{{.DockerRootDir}}"],
        "ask Docker where it keeps images",
    )?;
    free_bytes_at(std::path::Path::new(root.trim()))
}

/// Bytes free on the file system that holds `path` (`df`, as the operator would ask).
pub fn free_bytes_at(path: &std::path::Path) -> Result<u64> {
    let out = docker::output_within(
        std::process::Command::new("df").arg("-Pk").arg(path),
        std::time::Duration::from_secs(10),
    )
    .map_err(|why| anyhow::anyhow!("cannot read the free space of {}: {why}", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kb = text
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<u64>().ok())
        .with_context(|| format!("df printed no free space for {}", path.display()))?;
    Ok(kb * 1024)
}

/// The size in bytes of a local image.
pub fn image_size(reference: &str) -> Option<u64> {
    docker::run(&["image", "inspect", "--format", "{{.Size}}", reference])
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_json_is_read_and_anonymous_volumes_found() {
        let anon = "a".repeat(64);
        let v: serde_json::Value = serde_json::from_str(&format!(
            r#"{{"Id":"c1","Image":"sha256:1","RestartCount":2,
                "Config":{{"Image":"r/agents:v1","Labels":{{"com.docker.compose.service":"agents"}}}},
                "State":{{"Status":"running","StartedAt":"t","Health":{{"Status":"healthy"}}}},
                "Mounts":[{{"Type":"volume","Name":"disinto_agent-data","Destination":"/home/agent/data"}},
                          {{"Type":"volume","Name":"{anon}","Destination":"/x"}},
                          {{"Type":"bind","Source":"/p","Destination":"/p"}}]}}"#
        ))
        .unwrap();
        let c = parse(&v);
        assert_eq!(
            (c.service.as_str(), c.health.as_str(), c.restarts),
            ("agents", "healthy", 2)
        );
        assert_eq!(c.anonymous, ["/x"]);
        let bare: serde_json::Value = serde_json::from_str(r#"{"State":{}}"#).unwrap();
        assert_eq!(parse(&bare).health, "-");
    }
}
