//! One module per command of `disinto`: each plans with the [`crate::model`] first, then
//! applies through the [`crate::engine::Runner`]. Commands never import each other (a test
//! holds them to it); what several share lives in the shared modules: `rollout` (the
//! health-gated rollout), `back` (going back to an earlier deployment), `drain` (letting the
//! session in flight end), `images` (pull, pin, keep), `snapshot` (the agents' volumes, copied and put back) and
//! `table`.

// Commands.
pub(crate) mod backup;
pub(crate) mod doctor;
pub(crate) mod down;
pub(crate) mod freeze;
pub(crate) mod history;
pub(crate) mod init;
pub(crate) mod restore;
pub(crate) mod rollback;
pub(crate) mod status;
pub(crate) mod swarm;
pub(crate) mod up;
pub(crate) mod update;
pub(crate) mod upgrade;
pub(crate) mod verify;
pub(crate) mod watch;

// Shared by the commands (and `rollout` by the release's restart-agents).
pub(crate) mod back;
pub(crate) mod drain;
pub(crate) mod images;
pub mod rollout;
pub(crate) mod snapshot;
pub(crate) mod table;
pub(crate) mod trust;
