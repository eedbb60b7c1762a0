//! `disinto doctor`: a read-only verdict on a factory. Does the compose file say what this
//! binary makes from `.env`; do the running images equal its pins; are the images kept for
//! rollback still here; does any service of ours write into an anonymous volume; is the
//! factory locked or frozen; has agents restarted since the last deployment; is there room
//! for the next pull. Exit 0 clean, 1 drift, 2 when it could not look.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use xshell::Shell;

use super::images::{keep_tag, local_references};
use crate::engine::{container, docker};
use crate::factory::Factory;
use crate::lock;
use crate::model::compose::{render, ComposeInput};
use crate::model::history::History;
use crate::model::image_ref::OUR_IMAGES;
use crate::Exit;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Ok,
    /// Worth knowing, not wrong (a freeze, a lock held).
    Info,
    Drift,
    /// The check could not look.
    Error,
}

#[derive(Debug, Clone, Serialize)]
struct Check {
    check: &'static str,
    verdict: Verdict,
    detail: String,
}

fn check(check: &'static str, verdict: Verdict, detail: impl Into<String>) -> Check {
    Check {
        check,
        verdict,
        detail: detail.into(),
    }
}

pub(crate) fn doctor(sh: &Shell, root: &Path, json: bool) -> Result<()> {
    let checks = match Factory::open(root) {
        Ok(factory) => look(sh, &factory),
        Err(e) => vec![check("config", Verdict::Error, format!("{e:#}"))],
    };
    let worst = checks
        .iter()
        .map(|c| c.verdict)
        .max_by_key(|v| match v {
            Verdict::Ok | Verdict::Info => 0,
            Verdict::Drift => 1,
            Verdict::Error => 2,
        })
        .unwrap_or(Verdict::Ok);
    if json {
        let value = serde_json::json!({ "verdict": worst, "checks": checks });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        for c in &checks {
            let word = serde_json::to_value(c.verdict)?;
            println!(
                "{:<5}  {:<10}  {}",
                word.as_str().unwrap_or("?"),
                c.check,
                c.detail
            );
        }
    }
    match worst {
        Verdict::Ok | Verdict::Info => Ok(()),
        Verdict::Drift => Err(Exit(1).into()),
        Verdict::Error => Err(Exit(2).into()),
    }
}

/// Every check on an opened factory; each says what it found, none stops the others.
fn look(sh: &Shell, factory: &Factory) -> Vec<Check> {
    let mut checks = vec![compose_file(factory)];
    checks.extend(lock_and_freeze(factory));
    if !factory.compose_file().is_file() {
        // Nothing was brought up from it: nothing runs to check.
        return checks;
    }
    if let Err(e) = docker::require_daemon() {
        checks.push(check("docker", Verdict::Error, format!("{e:#}")));
        return checks;
    }
    let containers: Vec<container::Container> = match factory.containers(sh) {
        Ok(ids) => ids
            .iter()
            .filter_map(|id| container::inspect(id).ok())
            .collect(),
        Err(e) => {
            checks.push(check("containers", Verdict::Error, format!("{e:#}")));
            return checks;
        }
    };
    checks.push(pins(factory, &containers));
    checks.push(anonymous(&containers));
    let history = History::load(&factory.dir);
    match &history {
        Ok(history) => checks.push(kept(history)),
        Err(e) => checks.push(check("history", Verdict::Error, format!("{e:#}"))),
    }
    checks.push(restarts(&containers));
    checks.push(disk(factory));
    checks
}

fn compose_file(factory: &Factory) -> Check {
    let path = factory.compose_file();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return check(
            "compose",
            Verdict::Drift,
            format!(
                "{} is missing or unreadable: `disinto init` writes it",
                path.display()
            ),
        );
    };
    let mut input = ComposeInput::from(&factory.config);
    input.pinned = factory.current_pins(|_| true);
    match render(&input, &crate::model::compose::model(&input)) {
        Ok(want) if want == text => check(
            "compose",
            Verdict::Ok,
            format!("{} is what .env makes ({})", path.display(), input.agents),
        ),
        Ok(_) => check(
            "compose",
            Verdict::Drift,
            format!(
                "{} is not what .env makes ({}): `disinto up` (or `disinto init`) rewrites it",
                path.display(),
                input.agents
            ),
        ),
        Err(e) => check("compose", Verdict::Error, format!("{e:#}")),
    }
}

fn lock_and_freeze(factory: &Factory) -> Vec<Check> {
    let mut checks = vec![];
    match lock::holder(&factory.dir) {
        Some(holder) => checks.push(check("lock", Verdict::Info, format!("held by {holder}"))),
        None => checks.push(check("lock", Verdict::Ok, "free")),
    }
    match lock::frozen(&factory.dir) {
        Ok(Some(f)) => checks.push(check(
            "freeze",
            Verdict::Info,
            format!("frozen by {} since {} ({})", f.who(), f.since, f.command),
        )),
        Ok(None) => checks.push(check("freeze", Verdict::Ok, "not frozen")),
        Err(e) => checks.push(check("freeze", Verdict::Error, format!("{e:#}"))),
    }
    checks
}

/// Each service of ours that runs, runs the reference the compose file pins.
fn pins(factory: &Factory, containers: &[container::Container]) -> Check {
    let pins = factory.current_pins(|_| true);
    let mut off = vec![];
    for c in containers.iter().filter(|c| c.state == "running") {
        let image = match c.service.as_str() {
            "runner" => "agents",
            s => s,
        };
        if !OUR_IMAGES.iter().any(|i| i.name == image) {
            continue;
        }
        if let Some(pin) = pins.get(image) {
            if &c.image != pin {
                off.push(format!("{} runs {} (pinned: {pin})", c.service, c.image));
            }
        }
    }
    match off.is_empty() {
        true => check(
            "pins",
            Verdict::Ok,
            format!("{} pinned images run as pinned", pins.len()),
        ),
        false => check("pins", Verdict::Drift, off.join("; ")),
    }
}

fn anonymous(containers: &[container::Container]) -> Check {
    let found: Vec<String> = containers
        .iter()
        .filter(|c| !c.anonymous.is_empty())
        .map(|c| format!("{}: {}", c.service, c.anonymous.join(", ")))
        .collect();
    match found.is_empty() {
        true => check("volumes", Verdict::Ok, "no anonymous volume"),
        false => check(
            "volumes",
            Verdict::Drift,
            format!(
                "anonymous volumes (lost on the next down/up): {}",
                found.join("; ")
            ),
        ),
    }
}

/// The images of the deployments a rollback goes back to are still here, by a reference
/// the rollback finds them by (their own, or their keep tag).
fn kept(history: &History) -> Check {
    let missing: Vec<String> = history
        .entries()
        .iter()
        .rev()
        .filter(|d| d.runs() && d.swarm.is_none() && !d.image_id.is_empty())
        .take(3)
        .filter(|d| local_references(d).next().is_none())
        .map(|d| format!("{} ({})", d.shown_version(), keep_tag(&d.image_id)))
        .collect();
    match missing.is_empty() {
        true => check(
            "kept",
            Verdict::Ok,
            "the recent deployments' images are kept for rollback",
        ),
        false => check(
            "kept",
            Verdict::Drift,
            format!(
                "not kept here (a rollback to them needs the registry): {}",
                missing.join(", ")
            ),
        ),
    }
}

fn restarts(containers: &[container::Container]) -> Check {
    let Some(agents) = containers.iter().find(|c| c.service == "agents") else {
        return check(
            "restarts",
            Verdict::Drift,
            "no agents container: `disinto up` starts it",
        );
    };
    match (agents.restarts, agents.state.as_str(), agents.health.as_str()) {
        (0, "running", "healthy" | "-" | "starting") => check(
            "restarts",
            Verdict::Ok,
            format!("agents {} since {}, no restart", agents.health, agents.started_at),
        ),
        (n, state, health) => check(
            "restarts",
            Verdict::Drift,
            format!("agents {state} ({health}), {n} restarts since it was deployed: see `docker logs {}`", agents.id),
        ),
    }
}

fn disk(factory: &Factory) -> Check {
    let need = factory
        .config
        .agents_reference()
        .and_then(|r| container::image_size(&r))
        .unwrap_or(0);
    match container::free_bytes() {
        Ok(free) if free > need.saturating_mul(2) => check(
            "disk",
            Verdict::Ok,
            format!("{} MB free for the next pull", free / 1_000_000),
        ),
        Ok(free) => check(
            "disk",
            Verdict::Drift,
            format!(
                "{} MB free: the next pull needs about {} MB and room to spare",
                free / 1_000_000,
                need / 1_000_000
            ),
        ),
        Err(e) => check("disk", Verdict::Error, format!("{e:#}")),
    }
}
