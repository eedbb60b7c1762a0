//! One way to wait for something: look, sleep, look again, until it is done or the time is
//! up. Every wait of both programs (health, a swarm update, containers going, a child
//! process ending) goes through [`until`].

use std::time::{Duration, Instant};

use anyhow::Result;

/// What one look found.
pub enum Look<T> {
    /// Done: polling stops with this value.
    Done(T),
    /// Not yet, and why: the last reason is what a timeout reports.
    Wait(String),
}

/// What a deferred interrupt ([`crate::signals`]) does to a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// The wait stops at once, with the interrupt's error: the caller unwinds.
    Stop,
    /// The wait goes on to its end: it repairs what an interrupted command left (a revert),
    /// and stopping it would leave things worse. Its limit still bounds it.
    Finish,
}

/// Looks every `every` until `look` is done or fails, or `limit` has passed: then
/// `Ok(Err(last reason))`. `look` gets the time left, to bound what it runs itself. The
/// sleep wakes early for a deferred interrupt ([`crate::signals::sleep`]).
pub fn until<T>(
    limit: Duration,
    every: Duration,
    look: impl FnMut(Duration) -> Result<Look<T>>,
) -> Result<std::result::Result<T, String>> {
    until_with(limit, every, OnInterrupt::Stop, look)
}

/// [`until`], with what a deferred interrupt does to the wait.
pub fn until_with<T>(
    limit: Duration,
    every: Duration,
    on_interrupt: OnInterrupt,
    mut look: impl FnMut(Duration) -> Result<Look<T>>,
) -> Result<std::result::Result<T, String>> {
    let start = Instant::now();
    loop {
        match look(limit.saturating_sub(start.elapsed()))? {
            Look::Done(value) => return Ok(Ok(value)),
            Look::Wait(why) if start.elapsed() >= limit => return Ok(Err(why)),
            Look::Wait(_) => match on_interrupt {
                OnInterrupt::Stop => crate::signals::sleep(every)?,
                OnInterrupt::Finish => std::thread::sleep(every),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_when_the_look_says_so_else_the_last_reason() {
        let mut n = 0;
        let got = until(Duration::from_secs(5), Duration::from_millis(1), |_| {
            n += 1;
            Ok(match n {
                3 => Look::Done(n),
                _ => Look::Wait(format!("look {n}")),
            })
        });
        assert_eq!(got.unwrap(), Ok(3));
        let got: std::result::Result<(), String> =
            until(Duration::from_millis(30), Duration::from_millis(5), |_| {
                Ok(Look::Wait("still".into()))
            })
            .unwrap();
        assert_eq!(got, Err("still".into()));
        let failed = until::<()>(Duration::from_secs(5), Duration::from_millis(1), |_| {
            anyhow::bail!("cannot look")
        });
        assert_eq!(failed.unwrap_err().to_string(), "cannot look");
    }
}
