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
    let mut probe = Probe::of(container, Duration::from_secs(1));
    // Restarts count from now: a container compose left as it was may have recovered
    // from a crash long ago.
    let mut restarts = Restarts::default();
    let logs = format!("see `docker logs {container}`");
    let id = short(container);
    let waited = poll::until_with(limit, Duration::from_millis(200), on_interrupt, |left| {
        let life = Life::of(container)?;
        if restarts.grew(&life) {
            bail!("container {id} restarted (it exited): {logs}")
        }
        match (life.state.as_str(), life.health.as_str()) {
            (_, "healthy") | ("running", "none") => return Ok(Look::Done(())),
            (_, "unhealthy") => bail!("container {id} turned unhealthy: {logs}"),
            ("exited" | "dead" | "restarting", _) => bail!("container {id} exited: {logs}"),
            // A hanging health command must not hang the rollout.
            ("running", "starting")
                if probe.run(left.min(Duration::from_secs(5))) == Some(true) =>
            {
                return Ok(Look::Done(()))
            }
            _ => {}
        }
        Ok(Look::Wait(life.words))
    })?;
    waited.map_err(|state| {
        anyhow::anyhow!(
            "container {id} is not healthy after {}s ({state}): {logs}",
            limit.as_secs()
        )
    })
}

/// What Docker says of a container's life now: its state, its health (`none` without a
/// check) and its restart count, and the words as Docker gave them, for messages.
struct Life {
    state: String,
    health: String,
    restarts: String,
    words: String,
}

impl Life {
    fn of(container: &str) -> Result<Life> {
        let format = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}}";
        let words = docker::read(
            &["inspect", "--format", format, container],
            &format!("inspect container {container}"),
        )?;
        let mut fields = words.split_whitespace().map(str::to_string);
        Ok(Life {
            state: fields.next().unwrap_or_default(),
            health: fields.next().unwrap_or_default(),
            restarts: fields.next().unwrap_or_default(),
            words: words.trim().to_string(),
        })
    }
}

/// The restart count first seen, and whether it grew since.
#[derive(Default)]
struct Restarts(Option<String>);

impl Restarts {
    fn grew(&mut self, life: &Life) -> bool {
        *self.0.get_or_insert_with(|| life.restarts.clone()) != life.restarts
    }
}

/// The image's own health command, run in the container at most once every `every`.
struct Probe {
    args: Option<Vec<String>>,
    every: Duration,
    last: Option<Instant>,
}

impl Probe {
    fn of(container: &str, every: Duration) -> Probe {
        Probe {
            args: health_probe(container),
            every,
            last: None,
        }
    }

    /// Whether the command passed, when it was due (and the image has one); within `budget`.
    fn run(&mut self, budget: Duration) -> Option<bool> {
        let args = self.args.as_ref()?;
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return None;
        }
        self.last = Some(Instant::now());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Some(docker::run_for(&args, budget).is_ok())
    }
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
    let mut probe = Probe::of(container, Duration::from_secs(2));
    let mut restarts = Restarts::default();
    let mut failures = 0;
    let id = short(container);
    let logs = format!("see `docker logs {container}`");
    // The whole span going by is the good end: the "time is up" it returns is no failure.
    let _time_is_up = poll::until(span, Duration::from_millis(500), |_| {
        let life = Life::of(container)?;
        if restarts.grew(&life) {
            bail!("container {id} restarted after it turned healthy: {logs}")
        }
        match (life.state.as_str(), life.health.as_str()) {
            (_, "unhealthy") => bail!("container {id} turned unhealthy after its gate: {logs}"),
            (state, _) if state != "running" => {
                bail!("container {id} is {state} after it turned healthy: {logs}")
            }
            _ => {}
        }
        match probe.run(Duration::from_secs(5)) {
            Some(true) => failures = 0,
            Some(false) => failures += 1,
            None => {}
        }
        if failures >= WATCH_FAILURES {
            bail!("container {id} failed its health command {failures} times in a row after its gate: {logs}");
        }
        Ok(Look::<()>::Wait(life.words))
    })?;
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
