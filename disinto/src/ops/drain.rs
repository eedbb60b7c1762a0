//! Shared by every command that stops or replaces agents: let the session in flight end
//! first. The loop is asked to start no new session, then the probe is asked until it is
//! idle (printing what it waits for once in a while), up to the drain timeout; then the
//! command refuses, naming the work, or with `--force` goes ahead and says what it cut.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::engine::poll::{self, Look};
use crate::engine::work::{self, Work};

/// How long to wait for the work, and whether to cut it when the time is up.
#[derive(Debug, Clone, Copy)]
pub struct DrainPolicy {
    pub timeout: Duration,
    pub force: bool,
}

impl Default for DrainPolicy {
    fn default() -> DrainPolicy {
        DrainPolicy {
            timeout: Duration::from_secs(15 * 60),
            force: false,
        }
    }
}

/// A container asked to drain: lift it when the change does not happen (a failed or refused
/// rollout), so the loop runs on.
#[derive(Debug)]
pub struct Drained {
    container: String,
    /// The session `--force` went ahead over, as the probe described it.
    pub interrupted: Option<String>,
}

impl Drained {
    /// The container asked to drain.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The loop in the container starts sessions again (best effort: it says when it cannot).
    pub fn lift(&self) {
        if let Err(e) = work::drain(&self.container, false) {
            eprintln!(
                "warning: {e:#}; run `docker exec {} disinto-entrypoint undrain`",
                self.container
            );
        }
    }
}

/// Drains `container`: returns once it is idle (or `--force` cut the work), else refuses in
/// one line naming the session, with the drain lifted.
pub fn drain(container: &str, policy: DrainPolicy) -> Result<Drained> {
    let mut drained = Drained {
        container: container.to_string(),
        interrupted: None,
    };
    match work::busy(container)? {
        Work::NoProbe => {
            eprintln!(
                "agents runs an image without the work probe (released before it): taken as idle"
            );
            return Ok(drained);
        }
        Work::Idle => {
            // Asked anyway: a session must not start between this look and the stop.
            work::drain(container, true)?;
            if work::busy(container)? == Work::Idle {
                return Ok(drained);
            }
        }
        Work::Busy(_) => work::drain(container, true)?,
    }
    let start = Instant::now();
    let mut told = None::<Instant>;
    let waited = poll::until(policy.timeout, Duration::from_secs(1), |_| {
        Ok(match work::busy(container)? {
            Work::Busy(session) => {
                if told.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                    told = Some(Instant::now());
                    eprintln!(
                        "waiting for the agent session in flight to end ({session}; {}s of at most {}s)",
                        start.elapsed().as_secs(),
                        policy.timeout.as_secs()
                    );
                }
                Look::Wait(session)
            }
            Work::Idle | Work::NoProbe => Look::Done(()),
        })
    });
    let session = match waited {
        Ok(Ok(())) => return Ok(drained),
        Ok(Err(session)) => session,
        Err(e) => {
            drained.lift();
            return Err(e);
        }
    };
    if policy.force {
        eprintln!("--force: going ahead over the agent session in flight ({session})");
        drained.interrupted = Some(session);
        return Ok(drained);
    }
    drained.lift();
    bail!(
        "an agent session is still running after {}s ({session}): nothing was changed; wait, raise --drain-timeout, or --force to cut it",
        policy.timeout.as_secs()
    )
}
