//! Shared helpers of the end-to-end tests: every one of them runs against the real bench.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use xtask::fsx::TempDir;

/// A shell at the repository root, after checking the bench is there (panics if not:
/// an end-to-end test must never pass without the real engine).
pub fn bench() -> xshell::Shell {
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(xtask::project_root());
    if let Err(e) = xtask::bench::require(&sh) {
        panic!("{e:#}");
    }
    sh
}

pub fn root() -> PathBuf {
    xtask::project_root()
}

/// Runs a command, returning its output whatever the exit status.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed and returns its stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `docker ...` with a private client config directory (never root's ~/.docker).
pub fn docker(config: &Path) -> Command {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_CONFIG", config);
    cmd
}

/// The xtask binary Cargo built for these tests.
pub fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(root());
    cmd
}

/// A name unique to this test run, for images, projects and containers.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &xtask::bench::random_token().unwrap()[..10])
}
