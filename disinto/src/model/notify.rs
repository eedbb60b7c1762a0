//! What an unattended upgrade tells a webhook, once per episode: `upgraded`; `reverted` at a
//! first failure; `failing still` once, at the second failure in a row; nothing more while it
//! keeps failing; `resolved` when an upgrade succeeds after failures. The episode survives
//! between runs in `state/notify.json`: a timer that retries every quarter of an hour must not
//! page anyone every quarter of an hour.

use serde::{Deserialize, Serialize};

pub const NOTIFY_FILE: &str = "state/notify.json";

/// How the last unattended upgrades went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// Failed upgrades in a row (0: the last one succeeded, or none ran).
    pub failures: u32,
    /// The version the failures tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// One run's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Upgraded {
        from: String,
        to: String,
    },
    Failed {
        from: String,
        to: String,
        why: String,
    },
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `upgraded`, `reverted`, `failing still`, `resolved`.
    pub event: &'static str,
    pub factory: String,
    pub from: String,
    pub to: String,
    pub text: String,
}

/// The next episode and the message to send for `outcome`, if any.
pub fn next(episode: &Episode, factory: &str, outcome: &Outcome) -> (Episode, Option<Message>) {
    let message = |event: &'static str, from: &str, to: &str, text: String| Message {
        event,
        factory: factory.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        text: format!("disinto {factory}: {text}"),
    };
    match outcome {
        Outcome::Upgraded { from, to } => {
            let text = match episode.failures {
                0 => message("upgraded", from, to, format!("upgraded {from} → {to}")),
                n => message(
                    "resolved",
                    from,
                    to,
                    format!("resolved: upgraded {from} → {to} after {n} failed attempt(s)"),
                ),
            };
            (Episode::default(), Some(text))
        }
        Outcome::Failed { from, to, why } => {
            let failures = episode.failures + 1;
            let next = Episode {
                failures,
                target: Some(to.clone()),
            };
            let text = match failures {
                1 => Some(message(
                    "reverted",
                    from,
                    to,
                    format!("upgrade {from} → {to} failed and was reverted: {why}"),
                )),
                2 => Some(message(
                    "failing still",
                    from,
                    to,
                    format!("upgrade {from} → {to} is failing still ({failures} attempts, reverted each time): {why}"),
                )),
                _ => None,
            };
            (next, text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Outcome {
        Outcome::Failed {
            from: "v1.0.0".into(),
            to: "v1.1.0".into(),
            why: "agents unhealthy".into(),
        }
    }

    #[test]
    fn one_message_per_episode() {
        let up = Outcome::Upgraded {
            from: "v1.0.0".into(),
            to: "v1.1.0".into(),
        };
        let (e, m) = next(&Episode::default(), "prod", &up);
        assert_eq!(m.unwrap().event, "upgraded");
        assert_eq!(e, Episode::default());

        let mut episode = Episode::default();
        let mut events = vec![];
        for _ in 0..5 {
            let (e, m) = next(&episode, "prod", &failed());
            events.push(m.map(|m| m.event));
            episode = e;
        }
        assert_eq!(
            events,
            [Some("reverted"), Some("failing still"), None, None, None]
        );
        let (e, m) = next(&episode, "prod", &up);
        let m = m.unwrap();
        assert_eq!(m.event, "resolved");
        assert!(m.text.contains("after 5 failed attempt(s)"), "{}", m.text);
        assert!(m.text.starts_with("disinto prod: "), "{}", m.text);
        assert_eq!(e.failures, 0);
    }
}
