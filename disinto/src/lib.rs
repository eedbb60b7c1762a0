//! disinto, the operator's program: run a factory (init, up, down, status; or on a swarm) on
//! versioned images. The library behind the `disinto` binary; `cargo xtask` uses the same
//! model, engine and rollout, so the two never disagree.
//!
//! Three floors (docs/layout.md): [`model`] is pure (no process, no network), [`engine`] is
//! the only code that starts a process, and `ops` holds one module per command, which plans
//! with the model and applies through the engine's [`engine::Runner`].

pub mod cli;
pub mod engine;
pub mod factory;
pub mod fsx;
pub mod lock;
pub mod model;
pub mod ops;
pub mod signals;

/// An exit status a command chose as its verdict (`doctor`, `watch`), not an error: the
/// program exits with it and prints nothing more (the command has said what it found).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// The public key (PEM) of the release this binary was built for: it trusts the images that
/// release signed. Empty in a build that no release made (a contributor's, dev mode).
pub const RELEASE_PUBLIC_KEY: &str =
    include_str!(concat!(env!("OUT_DIR"), "/release_public_key.pem"));
