//! One change at a time: the factory's deploy lock and its freeze. Every command that
//! changes a factory holds an exclusive kernel lock (`flock`) on `state/lock` for its whole
//! run; the kernel drops it when the process ends, however it ends (`kill -9` included), and
//! std opens the file close-on-exec, so a child such as `docker pull` never keeps it. The
//! holder writes who it is into the file, so a second command can name it. A freeze
//! (`disinto lock -m why`, `state/freeze`) stops every change until `disinto unlock`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::engine::poll::{self, Look};
use crate::model::time::now_rfc3339;

/// The lock file, relative to the factory directory.
pub const LOCK_FILE: &str = "state/lock";
/// The freeze, relative to the factory directory: while it exists, nothing changes.
pub const FREEZE_FILE: &str = "state/freeze";
/// Bigger than any holder record; a larger file is not ours and is not read whole.
const MAX_RECORD: u64 = 64 * 1024;

/// Who holds the lock (or froze the factory), and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The command (`up`, `rollback`, `release restart-agents`, ...), or why, for a freeze.
    pub command: String,
    pub pid: u32,
    pub user: String,
    pub host: String,
    pub since: String,
    /// The holder's start time, in clock ticks since boot (`/proc/PID/stat`): with the pid it
    /// names one process, so a pid reused after a `kill -9` is not taken for the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
}

impl Holder {
    /// This process, running `command`, now.
    pub fn me(command: &str) -> Holder {
        Holder {
            command: command.to_string(),
            pid: std::process::id(),
            user: user(),
            host: host(),
            since: now_rfc3339(),
            started: start_time(std::process::id()),
        }
    }

    /// `user@host`, as history rows and messages name who ran something.
    pub fn who(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` (pid {}, {}, since {})",
            self.command,
            self.pid,
            self.who(),
            self.since
        )
    }
}

/// The factory's lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// Takes the lock of the factory in `dir` for `command`: at once, or within `wait`; else a
    /// one-line refusal naming the holder. A frozen factory is refused whatever the wait.
    pub fn acquire(dir: &Path, command: &str, wait: Duration) -> Result<Lock> {
        let path = dir.join(LOCK_FILE);
        let state = dir.join("state");
        std::fs::create_dir_all(&state)
            .with_context(|| format!("cannot create {}", state.display()))?;
        refuse_symlink(&path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock {}", path.display()))?;
        let got = poll::until(wait, Duration::from_millis(200), |_| {
            match file.try_lock() {
                Ok(()) => Ok(Look::Done(())),
                Err(TryLockError::WouldBlock) => Ok(Look::Wait(String::new())),
                Err(TryLockError::Error(e)) => Err(anyhow!("cannot lock {}: {e}", path.display())),
            }
        })?;
        if got.is_err() {
            let holder = read_holder(&path)
                .map(|h| h.to_string())
                .unwrap_or_else(|| "another command".into());
            let waited = match wait.is_zero() {
                true => String::new(),
                false => format!(" after waiting {}s", wait.as_secs()),
            };
            bail!(
                "{} is locked by {holder}{waited}: wait for it, or run again with --lock-wait SECONDS",
                dir.display()
            );
        }
        let mut lock = Lock { file, path };
        if let Some(freeze) = frozen(dir)? {
            bail!(
                "{} is frozen by {} since {} ({}): nothing changes until `disinto unlock`",
                dir.display(),
                freeze.who(),
                freeze.since,
                freeze.command
            );
        }
        lock.write_holder(&Holder::me(command))?;
        Ok(lock)
    }

    fn write_holder(&mut self, holder: &Holder) -> Result<()> {
        let text = serde_json::to_string(holder)? + "\n";
        self.file
            .set_len(0)
            .and_then(|()| self.file.rewind())
            .and_then(|()| self.file.write_all(text.as_bytes()))
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Who held it goes with it; the kernel lock goes when the file closes.
        let _ = self.file.set_len(0);
    }
}

/// Who holds the lock of the factory in `dir` now, if a live process does.
pub fn holder(dir: &Path) -> Option<Holder> {
    let holder = read_holder(&dir.join(LOCK_FILE))?;
    // A holder killed with -9 leaves its record; the kernel lock went with it. The pid may
    // have been given to another process since: its start time tells them apart.
    let alive = holder.host != host()
        || (holder.started.is_some() && start_time(holder.pid) == holder.started);
    alive.then_some(holder)
}

/// The freeze of the factory in `dir`, if it is frozen.
pub fn frozen(dir: &Path) -> Result<Option<Holder>> {
    let path = dir.join(FREEZE_FILE);
    let Some(bytes) = crate::fsx::read_regular(&path, MAX_RECORD).with_context(|| {
        format!(
            "{} must be disinto's freeze record: remove it",
            path.display()
        )
    })?
    else {
        return Ok(None);
    };
    // A freeze that does not read is still a freeze: nothing may change behind it.
    Ok(Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        Holder {
            command: format!("unreadable freeze record: {}", path.display()),
            pid: 0,
            user: "?".into(),
            host: "?".into(),
            since: "?".into(),
            started: None,
        }
    })))
}

/// Freezes the factory in `dir` (the caller holds its lock): recorded who, when, why.
pub fn freeze(dir: &Path, why: &str) -> Result<Holder> {
    let holder = Holder::me(why);
    let text = serde_json::to_string(&holder)? + "\n";
    crate::fsx::write_atomic(&dir.join(FREEZE_FILE), text.as_bytes())?;
    Ok(holder)
}

/// Lifts the freeze of the factory in `dir`; the freeze it lifted, if there was one.
pub fn unfreeze(dir: &Path) -> Result<Option<Holder>> {
    let was = frozen(dir)?;
    if was.is_some() {
        let path = dir.join(FREEZE_FILE);
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(was)
}

fn read_holder(path: &Path) -> Option<Holder> {
    crate::fsx::read_record(path)
}

/// The lock must be a file of ours: a link could point the lock (and its truncation) at
/// anything on the host.
fn refuse_symlink(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() => bail!(
            "{} is not a regular file: remove it (disinto makes it)",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// When process `pid` started, in clock ticks since boot (field 22 of `/proc/PID/stat`,
/// counted after the command name, which may hold spaces and parentheses).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Who runs this: the user behind sudo, else the login name, else the uid.
fn user() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("?");
            format!("uid {uid}")
        })
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_first_and_goes_with_it() {
        let dir = crate::fsx::TempDir::new("lock").unwrap();
        let first = Lock::acquire(dir.path(), "up", Duration::ZERO).unwrap();
        assert_eq!(holder(dir.path()).unwrap().command, "up");
        let e = format!(
            "{:#}",
            Lock::acquire(dir.path(), "down", Duration::ZERO).unwrap_err()
        );
        assert!(
            e.contains("`up`") && e.contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
        drop(first);
        assert!(holder(dir.path()).is_none());
        let again = Lock::acquire(dir.path(), "down", Duration::ZERO).unwrap();
        assert_eq!(holder(dir.path()).unwrap().command, "down");
        drop(again);
    }

    #[test]
    fn a_waiting_lock_gets_it_when_it_is_let_go() {
        let dir = crate::fsx::TempDir::new("lock").unwrap();
        let first = Lock::acquire(dir.path(), "up", Duration::ZERO).unwrap();
        let path = dir.path().to_path_buf();
        let waiter =
            std::thread::spawn(move || Lock::acquire(&path, "up", Duration::from_secs(20)).is_ok());
        std::thread::sleep(Duration::from_millis(300));
        drop(first);
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn a_frozen_factory_refuses_until_unfrozen() {
        let dir = crate::fsx::TempDir::new("lock").unwrap();
        let lock = Lock::acquire(dir.path(), "lock", Duration::ZERO).unwrap();
        freeze(dir.path(), "incident 42").unwrap();
        drop(lock);
        let e = format!(
            "{:#}",
            Lock::acquire(dir.path(), "up", Duration::from_millis(300)).unwrap_err()
        );
        assert!(e.contains("frozen") && e.contains("incident 42"), "{e}");
        assert_eq!(
            unfreeze(dir.path()).unwrap().unwrap().command,
            "incident 42"
        );
        assert!(frozen(dir.path()).unwrap().is_none());
        Lock::acquire(dir.path(), "up", Duration::ZERO).unwrap();
        // A freeze that does not read still freezes.
        std::fs::write(dir.path().join(FREEZE_FILE), "garbage").unwrap();
        assert!(Lock::acquire(dir.path(), "up", Duration::ZERO).is_err());
    }

    #[test]
    fn a_holder_is_one_process_not_a_pid() {
        let me = Holder::me("up");
        assert!(me.started.is_some());
        assert_eq!(start_time(std::process::id()), me.started);
        // The same pid with another start time is a process that reused it.
        let dir = crate::fsx::TempDir::new("lock").unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let reused = Holder {
            started: me.started.map(|t| t + 1),
            ..me.clone()
        };
        std::fs::write(
            dir.path().join(LOCK_FILE),
            serde_json::to_string(&reused).unwrap(),
        )
        .unwrap();
        assert!(holder(dir.path()).is_none());
        std::fs::write(
            dir.path().join(LOCK_FILE),
            serde_json::to_string(&me).unwrap(),
        )
        .unwrap();
        assert_eq!(holder(dir.path()).map(|h| h.command), Some("up".into()));
    }

    #[test]
    fn a_lock_that_is_not_a_file_is_one_line() {
        let dir = crate::fsx::TempDir::new("lock").unwrap();
        std::fs::create_dir_all(dir.path().join(LOCK_FILE)).unwrap();
        let e = format!(
            "{:#}",
            Lock::acquire(dir.path(), "up", Duration::ZERO).unwrap_err()
        );
        assert!(e.contains("not a regular file"), "{e}");
    }
}
