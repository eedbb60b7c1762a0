//! Small wrappers over the `docker` CLI that need more than `cmd!`: secrets on stdin,
//! a throwaway client config, and output we parse.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};

/// Fails with instructions when the `docker` client is not on PATH.
pub fn require_client() -> Result<()> {
    which::which("docker").map(|_| ()).map_err(|_| {
        anyhow::anyhow!(
            "docker not found on PATH: install Docker Engine (Debian: apt-get install docker.io)"
        )
    })
}

/// `docker login HOST --username USER --password-stdin`, with the Docker client config in
/// `config_dir`. The secret only ever travels on standard input.
pub fn login(config_dir: &Path, host: &str, user: &str, secret: &str) -> Result<()> {
    require_client()?;
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_CONFIG", config_dir).args([
        "login",
        host,
        "--username",
        user,
        "--password-stdin",
    ]);
    let out = output_with_secret(&mut cmd, secret)?;
    if !out.status.success() {
        bail!(
            "docker login to {host} as {user} failed: {}",
            last_line(&out.stderr).replace(secret, "***")
        );
    }
    Ok(())
}

/// Runs `cmd` with `secret` on its standard input (never on its command line) and collects
/// its output.
pub fn output_with_secret(cmd: &mut Command, secret: &str) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    child
        .stdin
        .take()
        .context("no standard input to hand the secret to")?
        .write_all(secret.as_bytes())
        .context("cannot hand the secret over on standard input")?;
    Ok(child.wait_with_output()?)
}

/// The last line a command printed (its error, for the tools we run), for one-line messages.
pub fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim()
        .lines()
        .last()
        .unwrap_or("no output")
        .to_string()
}

/// The host part of an image reference or registry namespace (`ghcr.io/disinto` → `ghcr.io`).
pub fn registry_host(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// One step of a classic-builder `docker build` log, and whether it came from the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStep {
    pub instruction: String,
    pub cached: bool,
}

/// Parses the classic builder's `Step N/M : INSTRUCTION` / ` ---> Using cache` lines.
pub fn parse_build_steps(log: &str) -> Vec<BuildStep> {
    let mut steps: Vec<BuildStep> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("Step ") {
            if let Some((_, instruction)) = rest.split_once(" : ") {
                steps.push(BuildStep {
                    instruction: instruction.trim().to_string(),
                    cached: false,
                });
            }
        } else if line.trim() == "---> Using cache" {
            if let Some(last) = steps.last_mut() {
                last.cached = true;
            }
        }
    }
    steps
}

/// The context size the classic builder reports ("Sending build context to Docker daemon
/// 12.3kB"), in bytes.
pub fn parse_context_size(log: &str) -> Option<u64> {
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix("Sending build context to Docker daemon"))?;
    let value = line.trim();
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    Some((number * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_log_steps_and_cache_hits() {
        let log = "Sending build context to Docker daemon  40.96kB\r\r\n\
                   Step 1/3 : FROM debian:bookworm-slim\n ---> 9d1415948e8b\n\
                   Step 2/3 : RUN apt-get update\n ---> Using cache\n ---> 1234\n\
                   Step 3/3 : COPY bin/ /opt/disinto/bin/\n ---> 5678\nSuccessfully built 5678\n";
        let steps = parse_build_steps(log);
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[1].instruction, "RUN apt-get update");
        assert_eq!(
            steps.iter().map(|s| s.cached).collect::<Vec<_>>(),
            [false, true, false]
        );
        assert_eq!(parse_context_size(log), Some(40960));
        assert_eq!(
            parse_context_size("Sending build context to Docker daemon  2.1MB\n"),
            Some(2_100_000)
        );
        assert_eq!(parse_context_size("nothing"), None);
    }

    #[test]
    fn registry_host_of_references() {
        assert_eq!(registry_host("ghcr.io/disinto"), "ghcr.io");
        assert_eq!(
            registry_host("127.0.0.1:5000/disinto/agents:v1"),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_host("localhost/agents"), "localhost");
        assert_eq!(registry_host("disinto/agents:v1"), "docker.io");
        assert_eq!(registry_host("agents"), "docker.io");
    }
}
