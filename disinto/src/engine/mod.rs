//! The only floor that starts processes: the `docker` CLI (client, daemon, images), compose
//! and swarm queries, health, one polling helper, the registry client (signatures), and the [`Runner`] that runs (or, in a dry
//! run, prints) every command that changes something, for both programs.

pub mod compose;
pub mod container;
pub mod docker;
pub mod health;
pub mod poll;
pub mod registry;
pub mod runner;
pub mod swarm;
pub mod volume;
pub mod work;

pub use runner::Runner;
