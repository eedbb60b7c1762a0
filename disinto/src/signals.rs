//! Process signals, for both programs. A closed pipe ends the program quietly, as it does
//! every Unix tool (`cargo xtask release --dry-run | head -1`), instead of a panic on the
//! next print. SIGINT and SIGTERM, where a command holds a secret on disk (a registry
//! login), set a flag instead of ending the process on the spot: the command stops at the
//! next check and unwinds, and unwinding deletes the secret. A second signal ends it at once.
//!
//! The handlers are signal-hook's, whose flag actions are async-signal-safe by construction;
//! only SIGPIPE's default action, which it has no call for, is set through libc.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A write to a closed pipe ends the process (SIGPIPE's default), as for any Unix tool.
pub fn quiet_broken_pipe() {
    // Rust starts every program with SIGPIPE ignored, so a closed pipe turns into an error on
    // the next print; signal-hook only installs handlers, and cannot give the default back.
    // SAFETY: setting a signal's default action has no preconditions and touches no memory.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// From now on, SIGINT and SIGTERM make [`check`] fail instead of ending the process; a
/// second one of either ends it as its default action would.
pub fn defer_interrupts() {
    for signal in [SIGINT, SIGTERM] {
        // Actions run in the order registered: the default action is armed only by a signal
        // that came before this one, so it must be registered ahead of the flag.
        if signal_hook::flag::register_conditional_default(signal, &INTERRUPTED).is_err() {
            // The handler was not installed: the signal keeps ending the process at once,
            // which is what it did before this call. Nothing better is left to do.
            continue;
        }
        // A second action for a signal that already has one only joins a list: it cannot
        // fail once the first was installed.
        let _ = signal_hook::flag::register(signal, &INTERRUPTED);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Output};

    /// Set in the child this test binary starts to run one test's body on its own (`--exact`
    /// runs no other): the handlers and the flag are process-wide, and a signal raised here
    /// would stop every other test that calls `check`.
    const CHILD: &str = "DISINTO_SIGNALS_TEST_CHILD";

    /// Runs the test `name` of this module in a new process of this test binary, with
    /// [`CHILD`] set to `role`, and returns how it ended.
    fn in_a_child(name: &str, role: &str) -> Output {
        // libtest names a test by its path without the crate: signals::tests::<name>.
        let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &format!("{module}::{name}"), "--nocapture"])
            .env(CHILD, role)
            .output()
            .unwrap()
    }

    fn say(line: &str) {
        let mut out = std::io::stdout();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    }

    #[test]
    fn a_first_signal_sets_the_flag_and_a_second_ends_the_process() {
        // Each order once, so each signal is shown deferred, and either one counts as the second.
        let orders = [(SIGINT, SIGTERM), (SIGTERM, SIGINT)];
        if let Some(role) = std::env::var_os(CHILD) {
            let (first, second) = orders[role.to_string_lossy().parse::<usize>().unwrap()];
            defer_interrupts();
            assert!(!interrupted() && check().is_ok());
            signal_hook::low_level::raise(first).unwrap();
            // raise() runs the handler on this thread before it returns.
            assert!(interrupted() && check().is_err());
            say("alive after the first signal");
            signal_hook::low_level::raise(second).unwrap();
            say("alive after the second signal");
            return;
        }
        for (role, (first, second)) in orders.into_iter().enumerate() {
            let name = "a_first_signal_sets_the_flag_and_a_second_ends_the_process";
            let out = in_a_child(name, &role.to_string());
            let stdout = String::from_utf8_lossy(&out.stdout);
            let case = format!("signal {first} then {second}: {out:?}");
            assert!(stdout.contains("alive after the first signal"), "{case}");
            assert!(!stdout.contains("alive after the second signal"), "{case}");
            assert_eq!(out.status.signal(), Some(second), "{case}");
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_process_quietly() {
        if std::env::var_os(CHILD).is_some() {
            quiet_broken_pipe();
            let (reader, mut writer) = std::io::pipe().unwrap();
            drop(reader);
            let result = writer.write_all(b"x");
            say(&format!("alive after writing to a closed pipe: {result:?}"));
            return;
        }
        let out = in_a_child("a_closed_pipe_ends_the_process_quietly", "pipe");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("alive after writing"), "{out:?}");
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{out:?}");
    }
}
