//! `disinto doctor`: a read-only verdict on a factory. Does the compose file say what this
//! binary makes from `.env`; do the running images equal its pins; are the images kept for
//! rollback still here; does any service of ours write into an anonymous volume; is the
//! factory locked or frozen; was a rollout killed before it ended; is agents left drained by
//! a command that is gone; has agents restarted since the last deployment; is there room for
//! the next pull. Exit 0 clean, 1 drift, 2 when it could not look.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use xshell::Shell;

use super::images::{keep_tag, local_references};
use crate::engine::{container, docker, work};
use crate::factory::Factory;
use crate::lock;
use crate::model::compose::{render, Compose, ComposeInput};
use crate::model::history::{Deployment, History, InFlight, IN_FLIGHT_FILE};
use crate::model::image_ref::{ImageRef, AGENTS, OUR_IMAGES};
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
    // A bad setting is one finding, not a blindfold: the lock, the freeze, a killed rollout,
    // a drain left behind and the history are looked at whatever `.env` says.
    let checks = match Factory::open_to_look(root) {
        Ok((factory, None)) => look(sh, &factory),
        Ok((factory, Some(problem))) => {
            let mut checks = vec![check("config", Verdict::Error, format!("{problem:#}"))];
            checks.extend(look(sh, &factory));
            checks
        }
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
    // What runs, by the history: a revert's pin (the kept image) stands for it.
    let current = History::load(&factory.dir)
        .ok()
        .and_then(|h| h.current().cloned());
    let mut checks = vec![compose_file(factory, current.as_ref())];
    checks.extend(lock_and_freeze(factory));
    checks.push(in_flight(factory));
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
    if let Some(agents) = containers
        .iter()
        .find(|c| c.service == "agents" && c.state == "running")
    {
        checks.push(drained(factory, &agents.id));
    }
    checks.push(disk(factory));
    checks
}

fn compose_file(factory: &Factory, current: Option<&Deployment>) -> Check {
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
    // A pin (the exact image a rollout ran, by digest or as the local tag it found) stands
    // for what `.env` names only when it is that repository and tag: a pin of another
    // version (a rollout killed after it wrote the file, `AGENTS_IMAGE=... up` over `.env`)
    // is what the next plain `up` changes.
    let mut other = vec![];
    let mut reverted = None;
    for (name, pin) in file_images(&text) {
        // A revert pins agents to the kept image of the deployment that runs by the history,
        // while `.env` still names the release that failed: consistent, and worth saying.
        let revert_pin = current
            .filter(|d| name == AGENTS.name && !d.image_id.is_empty())
            .filter(|d| pin == keep_tag(&d.image_id));
        if let Some(d) = revert_pin {
            reverted = Some(d.shown_version().to_string());
            input.pinned.insert(name, pin);
            continue;
        }
        let want = OUR_IMAGES
            .into_iter()
            .find(|i| i.name == name)
            .and_then(|i| {
                factory
                    .config
                    .agents
                    .resolved_for(i, &factory.config.registry)
            });
        if want.as_deref().is_some_and(|want| same_version(&pin, want)) {
            input.pinned.insert(name, pin);
        } else {
            other.push(format!(
                "{name} is pinned to {pin}, .env makes {}",
                want.as_deref().unwrap_or("a build from source")
            ));
        }
    }
    if !other.is_empty() {
        return check(
            "compose",
            Verdict::Drift,
            format!(
                "{}: {}; `disinto up` rewrites it as .env says",
                path.display(),
                other.join("; ")
            ),
        );
    }
    match render(&input, &crate::model::compose::model(&input)) {
        Ok(want) if want == text && reverted.is_some() => check(
            "compose",
            Verdict::Info,
            format!(
                "agents runs the kept image of {} (a rollout was reverted), and .env still names {}: set AGENTS_IMAGE there, or `disinto rollback {}`, before the next `disinto up`",
                reverted.as_deref().unwrap_or("-"),
                factory.config.agents.as_setting(),
                reverted.as_deref().unwrap_or("-"),
            ),
        ),
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

/// The image references of our images' services in the compose file `text` that name an
/// exact image (a reference, not an interpolated `${DISINTO_REGISTRY}` one nor a build).
fn file_images(text: &str) -> Vec<(&'static str, String)> {
    let Ok(compose) = serde_yaml::from_str::<Compose>(text) else {
        return vec![];
    };
    OUR_IMAGES
        .into_iter()
        .filter_map(|image| {
            let service = compose.services.get(image.name)?;
            let reference = service.image.as_ref()?;
            (service.build.is_none() && ImageRef::parse(reference).is_ok())
                .then(|| (image.name, reference.clone()))
        })
        .collect()
}

/// Whether the reference `pin` is `want` (repository and tag), pinned or not.
fn same_version(pin: &str, want: &str) -> bool {
    match (ImageRef::parse(pin), ImageRef::parse(want)) {
        (Ok(pin), Ok(want)) => {
            pin.repository() == want.repository()
                && pin.tag() == want.tag()
                && want.digest().is_none_or(|d| pin.digest() == Some(d))
        }
        _ => false,
    }
}

/// A rollout marked in flight (`state/rollout.json`): one running now, whose process holds
/// the lock, or one whose process was killed before it wrote its row; the next rollout
/// records that one as interrupted.
fn in_flight(factory: &Factory) -> Check {
    let path = factory.dir.join(IN_FLIGHT_FILE);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return check("rollout", Verdict::Ok, "no rollout in flight")
        }
        Err(e) => {
            return check(
                "rollout",
                Verdict::Error,
                format!("cannot read {}: {e}", path.display()),
            )
        }
        Ok(_) => {}
    }
    let Some(marker) = InFlight::find(&factory.dir) else {
        return check(
            "rollout",
            Verdict::Drift,
            format!("{} is not a rollout marker: remove it", path.display()),
        );
    };
    let what = format!(
        "the rollout of AGENTS_IMAGE={} ({}) started {} by {}",
        marker.version, marker.image, marker.started, marker.by
    );
    match lock::holder(&factory.dir) {
        Some(holder) if Some(holder.pid) == marker.pid() => check(
            "rollout",
            Verdict::Info,
            format!("{what} is in flight ({holder})"),
        ),
        _ => check(
            "rollout",
            Verdict::Drift,
            format!(
                "{what} was killed before it ended, so agents may run either image: the next `disinto up` records it as interrupted and rolls out what .env says"
            ),
        ),
    }
}

/// Agents asked to start no new session while no command holds the lock: the command that
/// drained it was killed, and no session starts until a rollout (or `undrain`) lifts it.
fn drained(factory: &Factory, agents: &str) -> Check {
    let short = crate::engine::health::short(agents);
    match (work::draining(agents), lock::holder(&factory.dir)) {
        (Ok(Some(true)), Some(holder)) => check(
            "drain",
            Verdict::Info,
            format!("agents starts no new session while {holder} changes the factory"),
        ),
        (Ok(Some(true)), None) => check(
            "drain",
            Verdict::Drift,
            format!(
                "agents starts no new session (drained), and no command holds the lock: the one that drained it was stopped; `disinto up` lifts it (or `docker exec {short} disinto-entrypoint undrain`)"
            ),
        ),
        (Ok(Some(false)), _) => check("drain", Verdict::Ok, "agents starts sessions"),
        (Ok(None), _) => check(
            "drain",
            Verdict::Info,
            "agents runs an image without the drain probe (released before it)",
        ),
        (Err(e), _) => check("drain", Verdict::Error, format!("{e:#}")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_stands_for_env_only_when_it_is_the_same_version() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let want = "127.0.0.1:5000/d/agents:v0.1.0";
        assert!(same_version(want, want));
        assert!(same_version(&format!("{want}@{digest}"), want));
        // A killed rollout's pin, or an image kept for a revert, is not what .env makes.
        assert!(!same_version("127.0.0.1:5000/d/agents:v0.2.0", want));
        assert!(!same_version("disinto-keep/agents:0123456789ab", want));
        // A digest .env names must be the one pinned.
        let other = format!("{want}@sha256:{}", "b".repeat(64));
        assert!(!same_version(&other, &format!("{want}@{digest}")));
        assert!(!same_version("${DISINTO_REGISTRY:-x}/agents:v0.1.0", want));
    }

    #[test]
    fn the_files_exact_images_are_read_and_templates_and_builds_left_out() {
        let text = "services:\n  agents:\n    image: r/agents:v0.2.0\n  edge:\n    image: ${DISINTO_REGISTRY:-ghcr.io/disinto}/edge:v0.1.0\n  reproduce:\n    image: r/reproduce:v0.1.0\n    build:\n      context: .\n";
        assert_eq!(
            file_images(text),
            vec![("agents", "r/agents:v0.2.0".to_string())]
        );
        assert!(file_images("not: [yaml").is_empty());
    }
}
