//! The agents image's work probe (`disinto-entrypoint busy|drain|undrain|draining`, run in
//! the container): is a session in flight, asking the loop to start no new one, and whether
//! it is asked. An image older than the probe answers none; it is taken as idle, and the
//! caller says so.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use super::docker;

/// What the probe says of a container's work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// A session runs: what `busy` printed (started, pid, command).
    Busy(String),
    Idle,
    /// The image has no probe (released before it): nothing to ask.
    NoProbe,
}

/// How long one question to the probe may take: a hung probe must not hang a rollout.
const PROBE_LIMIT: Duration = Duration::from_secs(10);

fn entrypoint(container: &str, verb: &str) -> Result<std::process::Output> {
    docker::require_client()?;
    let mut cmd = Command::new("docker");
    cmd.args(["exec", container, "disinto-entrypoint", verb]);
    docker::output_within(&mut cmd, PROBE_LIMIT)
        .map_err(|why| anyhow::anyhow!("the work probe of {container} ({verb}): {why}"))
}

/// Whether `container` is working now.
pub fn busy(container: &str) -> Result<Work> {
    let out = entrypoint(container, "busy")?;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(match out.status.code() {
        Some(0) => Work::Busy(said.replace('\n', ", ")),
        Some(1) => Work::Idle,
        // `exec busy` in an image without the probe: command not found (127) or not
        // executable (126).
        Some(126 | 127) => Work::NoProbe,
        code => bail!(
            "the work probe of {container} failed ({}): {}",
            code.map_or("killed".into(), |c| format!("exit {c}")),
            docker::last_line(&out.stderr)
        ),
    })
}

/// Asks the loop in `container` to start no new session (`undrain` lifts it).
pub fn drain(container: &str, on: bool) -> Result<()> {
    let verb = if on { "drain" } else { "undrain" };
    let out = entrypoint(container, verb)?;
    match out.status.code() {
        Some(0 | 126 | 127) => Ok(()),
        _ => bail!(
            "cannot {verb} {container}: {}",
            docker::last_line(&out.stderr)
        ),
    }
}

/// Whether a container of that id (running or not) is still there.
pub fn exists(container: &str) -> bool {
    docker::run(&[
        "inspect",
        "--type",
        "container",
        "--format",
        "{{.Id}}",
        container,
    ])
    .is_ok()
}

/// Whether the loop in `container` is asked to start no new session (`None`: the image has
/// no such probe, being older than it).
pub fn draining(container: &str) -> Result<Option<bool>> {
    let out = entrypoint(container, "draining")?;
    Ok(match out.status.code() {
        Some(0) => Some(true),
        Some(1) => Some(false),
        Some(126 | 127) => None,
        code => bail!(
            "the work probe of {container} (draining) failed ({}): {}",
            code.map_or("killed".into(), |c| format!("exit {c}")),
            docker::last_line(&out.stderr)
        ),
    })
}
