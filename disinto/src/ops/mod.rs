//! One module per command of `disinto`: each plans with the [`crate::model`] first, then
//! applies through the [`crate::engine::Runner`]. Commands never import each other; what
//! several share lives in the shared modules here (`rollout`, `images`, `table`).

pub(crate) mod down;
pub(crate) mod init;
pub(crate) mod rollback;
pub mod rollout;
pub(crate) mod status;
pub(crate) mod swarm;
