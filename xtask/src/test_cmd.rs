//! `cargo xtask test`: the one test command (README, `.ci/run`).
//! Provisions the real bench, then runs fmt, clippy and every test, end-to-end ones included.

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::check_volumes::check_file;
use crate::testbed;
use disinto::fsx::TempDir;
use disinto::model::compose::{generate, ComposeInput};
use disinto::model::image_ref::AgentsImage;

/// `cargo xtask test`.
#[derive(Debug, Clone, clap::Args)]
pub struct Test {
    /// Only run tests whose name contains this filter (fmt and clippy still run)
    pub filter: Option<String>,
}

impl Test {
    pub fn run(self, sh: &Shell) -> Result<()> {
        testbed::provision(sh).context("provisioning the test bench failed")?;
        cmd!(sh, "cargo fmt --all -- --check")
            .run()
            .context("formatting differs: run `cargo fmt --all`")?;
        cmd!(
            sh,
            "cargo clippy --workspace --all-targets --locked --quiet -- -D warnings"
        )
        .run()
        .context("clippy found problems")?;
        check_generated_volumes(sh)?;
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

/// check-volumes on the generated compose file in both modes (dev and pinned).
fn check_generated_volumes(sh: &Shell) -> Result<()> {
    let root = sh.current_dir();
    let dir = TempDir::new("check-volumes")?;
    for agents in [AgentsImage::Dev, AgentsImage::Release("v0.1.1".into())] {
        let file = dir.path().join("docker-compose.yml");
        let input = ComposeInput {
            agents: agents.clone(),
            agent_cli: None,
            pinned: Default::default(),
        };
        std::fs::write(&file, generate(&input)?)?;
        let problems = check_file(&file, Some(&root), &root)?;
        if let Some(first) = problems.first() {
            anyhow::bail!("check-volumes on the generated file ({agents}): {first}");
        }
        eprintln!("check-volumes: generated file ({agents}): every VOLUME is mounted");
    }
    Ok(())
}
