//! Going back, shared by `disinto rollback` and `disinto watch --revert`: put an earlier
//! version back (by default the one deployed before the current one), from the local image
//! when it is there, and keep it: the AGENTS_IMAGE line of `.env` is changed in place, so the
//! next plain `up` stays on it.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use xshell::Shell;

use super::images::local_references;
use super::rollout::Rollout;
use crate::engine::Runner;
use crate::factory::Factory;
use crate::fsx;
use crate::model::config::{read_dotenv_file, set_in_dotenv, var};
use crate::model::history::{Deployment, History, Outcome};
use crate::model::image_ref::AgentsImage;

/// Puts `version` (default: the previous deployment) back through `rollout`.
pub(crate) fn back_to(
    sh: &Shell,
    root: &Path,
    version: Option<String>,
    rollout: Rollout,
) -> Result<()> {
    let dry_run = rollout.dry_run;
    // AGENTS_IMAGE is the line this command rewrites: a typo there must not block the
    // repair, so it is not read. Every other setting is, as for `up`.
    let mut factory = Factory::open_to_set_agents(root)?;
    let history = History::load(&factory.dir)?;
    let from = history
        .current()
        .map(|d| d.version.clone())
        .unwrap_or_else(|| "(no recorded deployment)".into());
    let target = match version {
        Some(v) => v,
        None => history.previous().map(|d| d.version.clone()).with_context(|| {
            format!(
                "{} records no earlier version to go back to: name one, e.g. `disinto rollback v0.1.0`",
                history.path().display()
            )
        })?,
    };
    if target.is_empty() {
        bail!("the deployment to go back to was dev mode (built from source): empty AGENTS_IMAGE in .env and run `disinto up` in the source checkout");
    }
    let mut agents = AgentsImage::parse(Some(&target))?;
    // The exact image that ran, when the history has it and it is still here: no registry
    // needed, and no tag that may have moved since.
    if let Some(exact) = recorded_image(history.entries(), &target) {
        agents = AgentsImage::Reference(exact);
    }
    // The new .env is worked out, and found writable, before anything changes: a rollback
    // that runs the version but cannot keep it would be undone by the next plain `up`.
    let env_path = factory.dotenv_file();
    let new_env = dotenv_with(&env_path, &target)?;
    fsx::check_writable(&env_path, new_env.as_bytes()).with_context(|| {
        format!("rollback keeps its choice in .env (AGENTS_IMAGE={target}), which cannot be written; nothing was changed")
    })?;
    let was = factory.config.agents_in_dotenv.clone();
    let runs = agents
        .resolved(&factory.config.registry)
        .unwrap_or_default();
    factory.config.agents = agents;
    let rollout = Rollout {
        outcome: Outcome::RolledBack,
        version: Some(target.clone()),
        ..rollout
    };
    rollout.run(sh, &factory)?;

    // Only now that it runs healthy: the choice is kept for the next plain `up`.
    let runner = Runner::new(sh, dry_run);
    runner.note(&format!(
        "write {}: AGENTS_IMAGE={target}, every other byte kept",
        env_path.display()
    ));
    if dry_run {
        return Ok(());
    }
    // A new .env (there was none) is private from the start, as `init` makes it.
    let written = match env_path.exists() {
        true => fsx::write_atomic(&env_path, new_env.as_bytes()),
        false => fsx::write_atomic_private(&env_path, new_env.as_bytes()),
    };
    if let Err(e) = written {
        let next = match was {
            Some(was) => format!("AGENTS_IMAGE={was:?}"),
            None => "what AGENTS_IMAGE says then".into(),
        };
        bail!(
            "agents runs {target} ({runs}) and is healthy, but {} was not changed ({e:#}): set AGENTS_IMAGE={target} in it by hand, or the next plain `disinto up` runs {next}",
            env_path.display()
        );
    }
    println!(
        "rolled back: {from} → {target} ({} now says AGENTS_IMAGE={target})",
        env_path.display()
    );
    Ok(())
}

/// The text of `.env` at `path` with AGENTS_IMAGE set to `target`.
fn dotenv_with(path: &Path, target: &str) -> Result<String> {
    let text = read_dotenv_file(path)?.unwrap_or_default();
    let text = String::from_utf8(text).map_err(|_| {
        anyhow!(
            "{} is not UTF-8 text: set AGENTS_IMAGE={target} in it by hand",
            path.display()
        )
    })?;
    set_in_dotenv(&text, var::AGENTS_IMAGE, target)
        .with_context(|| format!("{} left unchanged", path.display()))
}

/// The local reference of the image the last deployment of `version` ran: its digest-pinned
/// reference, else its keep tag, if either is still in the local store.
fn recorded_image(deployments: &[Deployment], version: &str) -> Option<String> {
    let d = deployments
        .iter()
        .rev()
        .find(|d| d.runs() && d.version == version)?;
    local_references(d).find(|r| AgentsImage::parse(Some(r)).is_ok())
}
