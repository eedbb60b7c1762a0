//! Small wrappers over the `docker` CLI that need more than `cmd!`: secrets on stdin,
//! a throwaway client config, and output we parse.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

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
    let mut child = Command::new("docker")
        .env("DOCKER_CONFIG", config_dir)
        .args(["login", host, "--username", user, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run docker login")?;
    child
        .stdin
        .take()
        .context("docker login has no stdin")?
        .write_all(secret.as_bytes())
        .context("cannot hand the token to docker login")?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).replace(secret, "***");
        bail!(
            "docker login to {host} as {user} failed: {}",
            stderr.trim().lines().last().unwrap_or("no output")
        );
    }
    Ok(())
}

/// The host part of an image reference or registry namespace (`ghcr.io/disinto` → `ghcr.io`).
pub fn registry_host(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
