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
    read_busy(out.status.code(), &said, &out.stderr)
        .map_err(|why| anyhow::anyhow!("the work probe of {container} failed ({why})"))
}

/// What `busy`'s exit status and output say. Only the probe's own answers count: 0 with the
/// session, 1 with nothing on stderr (idle), 127 (`exec busy` in an image without the
/// probe: not found). Anything else is Docker's own failure (a container restarting or gone,
/// an exec the runtime refused), never taken for idle: a drain must not end mid-session.
fn read_busy(code: Option<i32>, said: &str, stderr: &[u8]) -> std::result::Result<Work, String> {
    let quiet = String::from_utf8_lossy(stderr).trim().is_empty();
    match code {
        Some(0) => Ok(Work::Busy(said.replace('\n', ", "))),
        Some(1) if quiet => Ok(Work::Idle),
        Some(127) => Ok(Work::NoProbe),
        code => Err(format!(
            "{}: {}",
            code.map_or("killed".into(), |c| format!("exit {c}")),
            docker::last_line(stderr)
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_probes_own_answers_count() {
        assert_eq!(
            read_busy(Some(0), "started=t\npid=7", b""),
            Ok(Work::Busy("started=t, pid=7".into()))
        );
        assert_eq!(read_busy(Some(1), "", b""), Ok(Work::Idle));
        assert_eq!(
            read_busy(Some(127), "", b"exec: busy: not found"),
            Ok(Work::NoProbe)
        );
        // Docker's own failures are never idle.
        assert!(read_busy(
            Some(1),
            "",
            b"Error response from daemon: container is restarting"
        )
        .is_err());
        assert!(read_busy(Some(126), "", b"OCI runtime exec failed").is_err());
        assert!(read_busy(None, "", b"").is_err());
    }
}
