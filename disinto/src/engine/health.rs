//! Is a container healthy: Docker's own verdict, and the image's health command run at once
//! (Docker runs the first check one interval after start: 10 s for agents, and engines
//! before 25 have no start interval).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::docker;
use super::poll::{self, Look, OnInterrupt};

/// The first 12 characters of an id, as Docker shows it (whatever the id holds).
pub fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// Waits until `container` is healthy; fails early when it exits, restarts or turns
/// unhealthy. It also runs the image's own health command right away, once a second, and
/// takes its success as healthy. A deferred interrupt stops the wait (an error).
pub fn wait_healthy(container: &str, limit: Duration) -> Result<()> {
    wait(container, limit, OnInterrupt::Stop)
}

/// [`wait_healthy`] for a revert, which a deferred interrupt does not cut short: a revert
/// started because of an interrupt must still find out whether what it put back is healthy.
pub fn wait_healthy_to_recover(container: &str, limit: Duration) -> Result<()> {
    wait(container, limit, OnInterrupt::Finish)
}

fn wait(container: &str, limit: Duration, on_interrupt: OnInterrupt) -> Result<()> {
    let probe = health_probe(container);
    let mut last_probe: Option<Instant> = None;
    // Restarts count from now: a container compose left as it was may have recovered
    // from a crash long ago.
    let mut restarts_before: Option<String> = None;
    let format = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}}";
    let logs = format!("see `docker logs {container}`");
    let id = short(container);
    let waited = poll::until_with(limit, Duration::from_millis(200), on_interrupt, |left| {
        let state = docker::read(
            &["inspect", "--format", format, container],
            &format!("inspect container {container}"),
        )?;
        let fields: Vec<&str> = state.split_whitespace().collect();
        let before = restarts_before
            .get_or_insert_with(|| fields.get(2).map(|r| r.to_string()).unwrap_or_default());
        match fields.as_slice() {
            [_, _, restarts] if restarts != before => {
                bail!("container {id} restarted (it exited): {logs}")
            }
            [_, "healthy", _] | ["running", "none", _] => return Ok(Look::Done(())),
            [_, "unhealthy", _] => bail!("container {id} turned unhealthy: {logs}"),
            ["exited" | "dead" | "restarting", _, _] => bail!("container {id} exited: {logs}"),
            ["running", "starting", _] => {
                let due = last_probe.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if let (true, Some(args)) = (due, &probe) {
                    last_probe = Some(Instant::now());
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    // A hanging health command must not hang the rollout.
                    if docker::run_for(&args, left.min(Duration::from_secs(5))).is_ok() {
                        return Ok(Look::Done(()));
                    }
                }
            }
            _ => {}
        }
        Ok(Look::Wait(state.trim().to_string()))
    })?;
    waited.map_err(|state| {
        anyhow::anyhow!(
            "container {id} is not healthy after {}s ({state}): {logs}",
            limit.as_secs()
        )
    })
}

/// `docker exec` arguments that run `container`'s own health check command, if it has one.
fn health_probe(container: &str) -> Option<Vec<String>> {
    let json = docker::run(&[
        "inspect",
        "--format",
        "{{json .Config.Healthcheck}}",
        container,
    ])
    .ok()?;
    let value: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    let test: Vec<String> = value["Test"]
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut args = vec!["exec".to_string(), container.to_string()];
    match test.split_first()? {
        (kind, rest) if kind == "CMD" && !rest.is_empty() => args.extend(rest.iter().cloned()),
        (kind, [command]) if kind == "CMD-SHELL" => {
            args.extend(["/bin/sh".into(), "-c".into(), command.clone()])
        }
        _ => return None,
    }
    Some(args)
}

/// How many failures of the image's own health command in a row, while watching, make
/// agents unhealthy (Docker's `--retries` for agents).
const WATCH_FAILURES: u32 = 3;

/// Watches a container that passed its health gate for `span`: it fails when the container
/// restarts, exits, turns unhealthy by Docker's verdict, or fails its own health command
/// [`WATCH_FAILURES`] times in a row (Docker, between checks 10 s apart, would say so only
/// half a minute later). Zero watches nothing.
pub fn watch(container: &str, span: Duration) -> Result<()> {
    if span.is_zero() {
        return Ok(());
    }
    let probe = health_probe(container);
    let format = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}}";
    let id = short(container);
    let logs = format!("see `docker logs {container}`");
    let mut restarts_before: Option<String> = None;
    let mut failures = 0;
    let mut last_probe: Option<Instant> = None;
    let watched = poll::until(span, Duration::from_millis(500), |_| {
        let state = docker::read(
            &["inspect", "--format", format, container],
            &format!("inspect container {container}"),
        )?;
        let fields: Vec<&str> = state.split_whitespace().collect();
        let before = restarts_before
            .get_or_insert_with(|| fields.get(2).map(|r| r.to_string()).unwrap_or_default());
        match fields.as_slice() {
            [_, _, restarts] if restarts != before => {
                bail!("container {id} restarted after it turned healthy: {logs}")
            }
            [_, "unhealthy", _] => bail!("container {id} turned unhealthy after its gate: {logs}"),
            [state, _, _] if *state != "running" => {
                bail!("container {id} is {state} after it turned healthy: {logs}")
            }
            _ => {}
        }
        let due = last_probe.is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
        if let (true, Some(args)) = (due, &probe) {
            last_probe = Some(Instant::now());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match docker::run_for(&args, Duration::from_secs(5)) {
                Ok(_) => failures = 0,
                Err(_) => failures += 1,
            }
            if failures >= WATCH_FAILURES {
                bail!("container {id} failed its health command {failures} times in a row after its gate: {logs}");
            }
        }
        Ok(Look::<()>::Wait(state.trim().to_string()))
    })?;
    // The whole span went by without a failure: `Err` here is only "the time is up".
    let _ = watched;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_never_split_a_character() {
        assert_eq!(short(&"0123456789abcdef".repeat(4)), "0123456789ab");
        // Whatever a container id holds, a message about it is not a panic.
        assert_eq!(short("ßßßßßßßßßßßßßß"), "ßßßßßßßßßßßß");
        assert_eq!(short("ab"), "ab");
    }
}
