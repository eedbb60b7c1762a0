//! `cargo xtask test`: the one test command (README, `.ci/run`).
//! Provisions the real testbed, then runs fmt, clippy and every test, end-to-end ones
//! included (the long swarm test beside the rest).

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
        testbed::provision(sh).context("provisioning the testbed failed")?;
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
        // End-to-end tests are #[ignore]d so a plain `cargo test` lists them as not run
        // rather than passing without Docker; here the testbed is ready, so they all run.
        if let Some(filter) = &self.filter {
            return cmd!(
                sh,
                "cargo test --workspace --locked -- --include-ignored {filter}"
            )
            .run()
            .context("tests failed");
        }
        // One build for both runs below.
        cmd!(sh, "cargo test --workspace --locked --no-run --quiet")
            .run()
            .context("the tests do not build")?;
        // The swarm test spends most of its minutes waiting on Swarm, and shares nothing with
        // the others (its own registry, stack, images and volumes): it runs beside them.
        let log = crate::target_dir(&sh.current_dir()).join("e2e-swarm.log");
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let swarm = std::process::Command::new("cargo")
            .current_dir(sh.current_dir())
            .args(["test", "--locked", "-p", "xtask", "--test", "e2e_swarm"])
            .args(["--", "--include-ignored"])
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("cannot start the swarm test")?;
        let rest = cmd!(
            sh,
            "cargo test --workspace --locked -- --include-ignored --skip {SWARM_TEST}"
        )
        .run()
        .context("tests failed");
        let swarm = wait_and_show(swarm, &log);
        rest.and(swarm)
    }
}

/// The one test of `xtask/tests/e2e_swarm.rs`, run on its own beside the others.
const SWARM_TEST: &str = "swarm_rolls_a_failing_release_back_and_keeps_the_data";

/// Waits for the swarm test's run and prints what it printed.
fn wait_and_show(mut child: std::process::Child, log: &std::path::Path) -> Result<()> {
    let status = child.wait().context("cannot wait for the swarm test")?;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    eprintln!("--- the swarm test (run beside the others) ---\n{text}");
    if !status.success() {
        anyhow::bail!("the swarm test failed ({status}): see above");
    }
    Ok(())
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
        let findings = check_file(&file, Some(&root), &root)?;
        for unchecked in &findings.unchecked {
            eprintln!("warning: check-volumes: {unchecked}");
        }
        if let Some(first) = findings.unmounted.first() {
            anyhow::bail!("check-volumes on the generated file ({agents}): {first}");
        }
        eprintln!("check-volumes: generated file ({agents}): every VOLUME is mounted");
    }
    Ok(())
}
