//! `disinto history`: every rollout of the factory, oldest first, compose and swarm alike.

use std::path::Path;

use anyhow::Result;

use crate::factory::Factory;
use crate::model::history::History;

pub(crate) fn history(root: &Path, json: bool) -> Result<()> {
    let factory = Factory::open_to_stop(root)?;
    let history = History::load(&factory.dir)?;
    if history.entries().is_empty() {
        // Words, not data: `--json` prints no line for no deployment, and a script reading
        // either output never reads this.
        eprintln!("no deployments recorded in {}", history.path().display());
        return Ok(());
    }
    for d in history.entries() {
        if json {
            println!("{}", serde_json::to_string(d)?);
            continue;
        }
        let outcome = serde_json::to_value(d.outcome)?;
        let mut on = match &d.swarm {
            Some(stack) => format!("  (swarm stack {stack})"),
            None => String::new(),
        };
        if let Some(by) = &d.by {
            on.push_str(&format!("  by {by}"));
        }
        match (&d.verified_by, d.skip_verify) {
            (Some(key), _) => on.push_str(&format!("  verified {key}")),
            (None, true) => on.push_str("  NOT VERIFIED (--insecure-skip-verify)"),
            _ => {}
        }
        if let Some(session) = &d.interrupted_session {
            on.push_str(&format!("  (--force cut the session {session})"));
        }
        println!(
            "{}  {:<13}  {:<10}  {}{on}",
            d.time,
            outcome.as_str().unwrap_or("-"),
            d.shown_version(),
            d.image
        );
    }
    Ok(())
}
