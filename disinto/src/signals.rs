//! Process signals, for both programs. A closed pipe ends the program quietly, as it does
//! every Unix tool (`cargo xtask release --dry-run | head -1`), instead of a panic on the
//! next print. SIGINT and SIGTERM, where a command holds a secret on disk (a registry
//! login), set a flag instead of ending the process on the spot: the command stops at the
//! next check and unwinds, and unwinding deletes the secret. A second signal ends it at once.
//!
//! `signal(2)` from the C library std already links; the numbers are Linux's.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

const SIGINT: i32 = 2;
const SIGPIPE: i32 = 13;
const SIGTERM: i32 = 15;
const SIG_DFL: usize = 0;

extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
}

extern "C" fn on_interrupt(signum: i32) {
    // Only async-signal-safe work here: an atomic store, and signal(2) itself.
    INTERRUPTED.store(true, Ordering::SeqCst);
    // SAFETY: restoring the default action is async-signal-safe; the next signal ends us.
    unsafe {
        signal(signum, SIG_DFL);
    }
}

/// A write to a closed pipe ends the process (SIGPIPE's default), as for any Unix tool.
pub fn quiet_broken_pipe() {
    // SAFETY: setting a signal's default action has no preconditions.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

/// From now on, SIGINT and SIGTERM make [`check`] fail instead of ending the process.
pub fn defer_interrupts() {
    let handler = on_interrupt as extern "C" fn(i32) as usize;
    // SAFETY: the handler only stores an atomic and calls signal(2).
    unsafe {
        signal(SIGINT, handler);
        signal(SIGTERM, handler);
    }
}

/// Whether SIGINT or SIGTERM arrived since [`defer_interrupts`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails once a deferred signal arrived, so the caller unwinds and cleans up.
pub fn check() -> Result<()> {
    if interrupted() {
        bail!("interrupted (SIGINT or SIGTERM): stopped cleanly, nothing left behind; run the same command again to go on");
    }
    Ok(())
}

/// Sleeps `duration`, waking early (with an error) when a deferred signal arrives.
pub fn sleep(duration: std::time::Duration) -> Result<()> {
    let end = std::time::Instant::now() + duration;
    while std::time::Instant::now() < end {
        check()?;
        std::thread::sleep(std::time::Duration::from_millis(50).min(duration));
    }
    check()
}
