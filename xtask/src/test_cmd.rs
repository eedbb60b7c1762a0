//! `cargo xtask test`: the one test command (README, `.ci/run`).
//! Provisions the real bench, then runs fmt, clippy and every test, end-to-end ones included.

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::bench;

/// `cargo xtask test`.
#[derive(Debug, Clone, clap::Args)]
pub struct Test {
    /// Only run tests whose name contains this filter (fmt and clippy still run)
    pub filter: Option<String>,
}

impl Test {
    pub fn run(self, sh: &Shell) -> Result<()> {
        bench::provision(sh).context("provisioning the test bench failed")?;
        cmd!(sh, "cargo fmt --all -- --check")
            .run()
            .context("formatting differs: run `cargo fmt --all`")?;
        cmd!(
            sh,
            "cargo clippy --workspace --all-targets --locked --quiet -- -D warnings"
        )
        .run()
        .context("clippy found problems")?;
        let filter = self.filter.as_slice();
        // End-to-end tests are #[ignore]d so a plain `cargo test` lists them as not run
        // rather than passing without Docker; here the bench is ready, so they all run.
        cmd!(
            sh,
            "cargo test --workspace --locked -- --include-ignored {filter...}"
        )
        .run()
        .context("tests failed")?;
        Ok(())
    }
}
