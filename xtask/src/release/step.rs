//! The release steps as one enum: the only list of step ids. The formula is held to it, the
//! flags parse into it, and the runner dispatches on it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One step of `formulas/release.toml`, in the order the release runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Preflight,
    TagMain,
    PushMirrors,
    BuildImage,
    TagImage,
    PushImage,
    SignImage,
    RestartAgents,
    CommitResult,
}

impl Step {
    /// Every step, in release order.
    pub const ALL: [Step; 9] = [
        Step::Preflight,
        Step::TagMain,
        Step::PushMirrors,
        Step::BuildImage,
        Step::TagImage,
        Step::PushImage,
        Step::SignImage,
        Step::RestartAgents,
        Step::CommitResult,
    ];

    /// The id the formula and the command line use.
    pub fn id(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::TagMain => "tag-main",
            Step::PushMirrors => "push-mirrors",
            Step::BuildImage => "build-image",
            Step::TagImage => "tag-image",
            Step::PushImage => "push-image",
            Step::SignImage => "sign-image",
            Step::RestartAgents => "restart-agents",
            Step::CommitResult => "commit-result",
        }
    }

    pub fn from_id(id: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Every id, comma-separated, for error messages.
    pub fn ids() -> String {
        Step::ALL.map(Step::id).join(", ")
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A step's outcome, as recorded in the progress file and the release record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
    Skipped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_serde_agrees() {
        for step in Step::ALL {
            assert_eq!(Step::from_id(step.id()), Some(step));
            let json = serde_json::to_string(&step).unwrap();
            assert_eq!(json, format!("\"{}\"", step.id()));
        }
        assert_eq!(Step::from_id("push"), None);
        let mut sorted = Step::ALL;
        sorted.sort();
        assert_eq!(sorted, Step::ALL, "declaration order is release order");
        assert_eq!(serde_json::to_string(&Status::Done).unwrap(), "\"done\"");
    }
}
