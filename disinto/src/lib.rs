//! disinto, the operator's program: run a factory (init, up, down, status; or on a swarm) on
//! versioned images.
//! The library behind the `disinto` binary; `cargo xtask` uses the same compose model,
//! configuration and rollout, so the two never disagree.

pub mod cli;
pub mod compose;
pub mod config;
pub mod docker;
pub mod dotenv;
pub mod factory;
pub mod fsx;
pub mod history;
pub mod image_ref;
pub mod rollout;
pub mod signals;
pub mod stack;
pub mod time;

mod down;
mod init;
mod rollback;
mod status;
mod swarm;
