//! `disinto lock -m WHY` and `disinto unlock`: freeze the factory, so that every command that
//! changes it refuses (naming the freeze) until it is lifted; `--force` never overrides it.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::lock::{self, Lock};

pub(crate) fn lock(root: &Path, why: &str) -> Result<()> {
    if why.trim().is_empty() {
        bail!("disinto lock needs a reason: -m \"why\" (every refusal names it)");
    }
    if let Some(freeze) = lock::frozen(root)? {
        bail!(
            "{} is frozen already by {} since {} ({}): `disinto unlock` first",
            root.display(),
            freeze.who(),
            freeze.since,
            freeze.command
        );
    }
    // Taken while the freeze is written, so it never lands in the middle of a rollout.
    let _held = Lock::acquire(root, "lock", Duration::ZERO)?;
    let freeze = lock::freeze(root, why)?;
    eprintln!(
        "{} is frozen by {} ({why}): `disinto unlock` lifts it",
        root.display(),
        freeze.who()
    );
    Ok(())
}

pub(crate) fn unlock(root: &Path) -> Result<()> {
    match lock::unfreeze(root)? {
        Some(freeze) => eprintln!(
            "unfrozen: {} froze it since {} ({})",
            freeze.who(),
            freeze.since,
            freeze.command
        ),
        None => eprintln!("{} is not frozen: nothing to lift", root.display()),
    }
    Ok(())
}
