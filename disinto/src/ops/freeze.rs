//! `disinto lock -m WHY` and `disinto unlock`: freeze the factory, so that every command that
//! changes it refuses (naming the freeze) until it is lifted; `--force` never overrides it.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::factory::Factory;
use crate::lock::{self, Lock};

pub(crate) fn lock(root: &Path, why: &str, wait: Duration) -> Result<()> {
    // A mistyped --root must not become a new factory, frozen.
    let root = Factory::open_to_stop(root)?.dir;
    let root = root.as_path();
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
    let _held = Lock::acquire(root, "lock", wait)?;
    let freeze = lock::freeze(root, why)?;
    eprintln!(
        "{} is frozen by {} ({why}): `disinto unlock` lifts it",
        root.display(),
        freeze.who()
    );
    Ok(())
}

pub(crate) fn unlock(root: &Path) -> Result<()> {
    let root = Factory::open_to_stop(root)?.dir;
    let root = root.as_path();
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
