//! disinto's xtask: every piece of logic behind `cargo xtask ...` and `bin/disinto`.
//! A library too, so the end-to-end tests in `xtask/tests/` drive the same code the CLI runs.

pub mod bench;
pub mod benchmark;
pub mod check_volumes;
pub mod compose;
pub mod disinto;
pub mod docker;
pub mod dockerfile;
pub mod factory;
pub mod formula;
pub mod fsx;
pub mod image_ref;
pub mod release;
pub mod release_request;
pub mod scratch;
pub mod settings;
pub mod test_cmd;
pub mod time;

use std::path::{Path, PathBuf};

/// The repository root. Assumes this crate lives one level below it (`<root>/xtask`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
