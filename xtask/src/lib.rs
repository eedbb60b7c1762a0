//! disinto's contributor tasks behind `cargo xtask ...`: compose generation and checks, the
//! release, the testbed and the benchmark. A library too, so the end-to-end tests in
//! `xtask/tests/` drive the same code the CLI runs. Operator logic lives in the `disinto` crate.

pub mod bench;
pub mod build_log;
pub mod check_volumes;
pub mod cross;
pub mod dockerfile;
pub mod gen_compose;
pub mod release;
pub mod release_request;
pub mod scratch;
pub mod secret;
pub mod test_cmd;
pub mod testbed;

use std::path::{Path, PathBuf};

/// The repository root. Assumes this crate lives one level below it (`<root>/xtask`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Cargo's target directory for the checkout at `root`: `CARGO_TARGET_DIR` when set
/// (relative to `root`, as cargo reads it from there), else `root/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// A disinto source checkout: where the Dockerfiles, the formula and `VERSION` live.
/// Not a factory directory (`disinto::factory::Factory`), though a checkout can serve as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    root: PathBuf,
}

impl Checkout {
    /// The checkout a command runs on: the shell's directory, which `main` set once.
    pub fn of(sh: &xshell::Shell) -> Checkout {
        Checkout {
            root: sh.current_dir(),
        }
    }

    pub fn at(root: &Path) -> Checkout {
        Checkout {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The release formula.
    pub fn formula(&self) -> PathBuf {
        self.root.join(FORMULA)
    }
}

/// Paths inside a checkout, defined once.
pub const FORMULA: &str = "formulas/release.toml";
/// Where finished release records are committed.
pub const RELEASE_RECORDS: &str = "release";
/// Where an unfinished release keeps its progress (under the target directory's parent).
pub const RELEASE_PROGRESS: &str = "target/release-progress";
