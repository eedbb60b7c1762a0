//! `disinto watch`: a one-shot look at agents for a timer or cron, after the rollout's own
//! watch has ended. Compared with the last look (kept in `state/watch.json`), has agents
//! restarted, exited or turned unhealthy since the last deployment? One line, and an exit
//! status a timer can act on: 0 fine, 3 failing, 4 failing and reverted; `--json` for
//! scripts. `--revert` goes back to the previous deployment ([`super::back`]) when the
//! current one is failing and was deployed within `--since` seconds: an old deployment that
//! fails now is a person's to look at, not a timer's to undo.

use std::path::Path;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use super::back::back_to;
use super::rollout::Rollout;
use crate::engine::{container, docker};
use crate::factory::Factory;
use crate::fsx;
use crate::model::history::{History, Outcome};
use crate::model::time::{now_rfc3339, parse_rfc3339};
use crate::Exit;

/// Where the last look is kept, relative to the factory directory.
pub const WATCH_FILE: &str = "state/watch.json";

/// The exit status of a look that found agents failing.
pub const FAILING: u8 = 3;
/// The exit status of a look that found agents failing and went back to the previous
/// deployment.
pub const REVERTED: u8 = 4;

/// What one look saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Look {
    time: String,
    /// The agents container looked at (a new one after a rollout starts the count anew).
    container: String,
    restarts: u64,
    state: String,
    health: String,
    /// The deployment it belongs to (its time in the history).
    deployed: Option<String>,
    /// Restarts since the last look (or since the deployment, on a first look).
    new_restarts: u64,
    failing: bool,
    why: String,
}

/// What `--revert` may do.
#[derive(Debug, Clone)]
pub(crate) struct Revert {
    /// Only a deployment at most this old is reverted.
    pub since: Duration,
    /// How the rollout back goes (health timeout, drain, watch).
    pub rollout: Rollout,
}

pub(crate) fn watch(sh: &Shell, root: &Path, json: bool, revert: Option<Revert>) -> Result<()> {
    let factory = Factory::open_to_stop(root)?;
    docker::require_daemon()?;
    let history = History::load(&factory.dir)?;
    let deployed = history.current().map(|d| d.time.clone());
    let id = factory.running(sh, "agents");
    let last = read_last(&factory.dir.join(WATCH_FILE));
    let look = match id {
        None => Look {
            time: now_rfc3339(),
            container: String::new(),
            restarts: 0,
            state: "missing".into(),
            health: "-".into(),
            deployed,
            new_restarts: 0,
            failing: true,
            why: "no agents container runs: `disinto up` starts it".into(),
        },
        Some(id) => {
            let c = container::inspect(&id)?;
            // Docker counts restarts per container; a rollout makes a new container.
            let before = last
                .as_ref()
                .filter(|l| l.container == c.id)
                .map_or(0, |l| l.restarts);
            let new_restarts = c.restarts.saturating_sub(before);
            let why = match (c.state.as_str(), c.health.as_str(), new_restarts) {
                ("running", "unhealthy", _) => "agents is unhealthy".to_string(),
                ("running", _, 0) => String::new(),
                ("running", _, n) => format!("agents restarted {n} times since the last look"),
                (state, _, _) => format!("agents is {state}"),
            };
            Look {
                time: now_rfc3339(),
                container: c.id,
                restarts: c.restarts,
                state: c.state,
                health: c.health,
                deployed,
                new_restarts,
                failing: !why.is_empty(),
                why,
            }
        }
    };
    let text = serde_json::to_string(&look)? + "\n";
    // A dry run of --revert changes nothing, the last look included: the next look counts
    // restarts from the last real one.
    let dry_run = revert.as_ref().is_some_and(|r| r.rollout.dry_run);
    if !dry_run {
        let path = factory.dir.join(WATCH_FILE);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        fsx::write_atomic(&path, text.as_bytes())?;
    }
    if json {
        print!("{text}");
    } else if look.failing {
        println!(
            "failing: {} (deployed {})",
            look.why,
            look.deployed.as_deref().unwrap_or("-")
        );
    } else {
        println!(
            "fine: agents {} ({}), no restart since the last look",
            look.state, look.health
        );
    }
    if !look.failing {
        return Ok(());
    }
    let Some(revert) = revert else {
        return Err(Exit(FAILING).into());
    };
    let Some(deployed) = history.current() else {
        eprintln!("not reverted: no deployment is recorded to go back from");
        return Err(Exit(FAILING).into());
    };
    let at = parse_rfc3339(&deployed.time).with_context(|| {
        format!(
            "the last deployment's time {:?} does not read: not reverting",
            deployed.time
        )
    })?;
    let now = parse_rfc3339(&now_rfc3339()).unwrap_or(0);
    if at > now {
        bail!(
            "the last deployment ({}) is later than this machine's clock ({}): the clock went back; not reverting",
            deployed.time,
            now_rfc3339()
        );
    }
    if now - at > revert.since.as_secs() {
        eprintln!(
            "not reverted: {} was deployed {}s ago, more than --since {}s",
            deployed.shown_version(),
            now - at,
            revert.since.as_secs()
        );
        return Err(Exit(FAILING).into());
    }
    // A deployment that is itself a going back is not gone back from again: a failure with
    // a cause outside the image would flip the factory between two versions for ever.
    if deployed.outcome == Outcome::RolledBack {
        eprintln!(
            "not reverted: {} is itself a rollback; what fails now is for a person to look at",
            deployed.shown_version()
        );
        return Err(Exit(FAILING).into());
    }
    let dry_run = revert.rollout.dry_run;
    back_to(sh, root, None, revert.rollout)?;
    match dry_run {
        true => Err(Exit(FAILING).into()),
        false => Err(Exit(REVERTED).into()),
    }
}

/// The last look, if one was kept and reads; a bad file is a first look.
fn read_last(path: &Path) -> Option<Look> {
    fsx::read_record(path)
}
