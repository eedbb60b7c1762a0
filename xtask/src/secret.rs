//! Secrets on standard input, never on a command line: `docker login` into a throwaway client
//! config (the release, the testbed's registry) and any command fed a secret (htpasswd).
//! Contributors' tooling only: the operator's program logs in to nothing itself.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};
use disinto::engine::docker::{last_line, require_client};

/// `docker login HOST --username USER --password-stdin`, with the Docker client config in
/// `config_dir`. The secret only ever travels on standard input.
pub fn login(config_dir: &Path, host: &str, user: &str, secret: &str) -> Result<()> {
    require_client()?;
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_CONFIG", config_dir)
        .args(login_args(host, user));
    let out = output_with_secret(&mut cmd, secret)?;
    if !out.status.success() {
        bail!(
            "docker login to {host} as {user} failed: {}",
            last_line(&out.stderr).replace(secret, "***")
        );
    }
    Ok(())
}

/// The arguments of `docker login`: the secret is never among them.
pub fn login_args<'a>(host: &'a str, user: &'a str) -> [&'a str; 5] {
    ["login", host, "--username", user, "--password-stdin"]
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
