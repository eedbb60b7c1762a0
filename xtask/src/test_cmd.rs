//! `cargo xtask test`: the one test command (README, `.ci/run`).
//! Provisions the real testbed, then runs fmt, clippy and every test, end-to-end ones
//! included (the longest in lanes of their own, beside the rest).

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
        // One build for every lane below.
        cmd!(sh, "cargo test --workspace --locked --no-run --quiet")
            .run()
            .context("the tests do not build")?;
        let root = sh.current_dir();
        let background = BACKGROUND
            .iter()
            .map(|lane| Lane::start(&root, lane))
            .collect::<Result<Vec<_>>>()?;
        let targets = foreground_targets(&root)?;
        let mut args: Vec<String> = vec![];
        for target in &targets {
            args.extend(["--test".to_string(), target.clone()]);
        }
        let rest = cmd!(
            sh,
            "cargo test --workspace --locked --lib --bins {args...} -- --include-ignored"
        )
        .run()
        .context("tests failed");
        let all = background
            .into_iter()
            .map(Lane::finish)
            .fold(rest, |all, lane| all.and(lane));
        remove_untagged_release_builds();
        all
    }
}

/// The tests' releases build under local tags every checkout shares (`disinto-agents:v0.1.0`),
/// which they leave alone while others may be building (see `forget_local_images` in the
/// tests): the builds whose tag moved on are left with none. Once every lane has ended, the
/// release builds (they carry the package-stage labels) that no tag names are removed; a
/// failure here is only a warning.
fn remove_untagged_release_builds() {
    let label = format!("label={}", crate::release::packages::LABEL_IMAGE);
    let ids = match disinto::engine::docker::run(&[
        "image",
        "ls",
        "--quiet",
        "--no-trunc",
        "--filter",
        "dangling=true",
        "--filter",
        &label,
    ]) {
        Ok(ids) => ids,
        Err(e) => return eprintln!("warning: cannot list the tests' untagged release builds: {e}"),
    };
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return;
    }
    let mut args = vec!["rmi"];
    args.extend(&ids);
    match disinto::engine::docker::run(&args) {
        Ok(_) => eprintln!("removed {} untagged release builds of the tests", ids.len()),
        Err(e) => eprintln!("warning: cannot remove the tests' untagged release builds: {e}"),
    }
}

/// The test targets that run in lanes of their own beside the rest: they spend minutes
/// waiting (on Swarm) or building (releases: cargo and docker), and share nothing with the
/// others (their own registries, projects, stacks, images and volumes). Every other test
/// target runs in the foreground; a test holds the lanes to the test files.
const BACKGROUND: [&[&str]; 3] = [
    // The swarms run on engines of their own (nodes in containers): the host's engine never
    // joins or leaves a swarm under the others' containers.
    &["e2e_swarm", "bench_tiny"],
    &["e2e_swarm_nodes", "e2e_release"],
    // The builds for arm64 (under qemu, and the cross-built binary): they share the cross
    // target directory's build lock, so they run one after the other anyway.
    &["e2e_no_checkout", "e2e_cross"],
];

/// The crates whose `tests/` hold test targets.
const TEST_DIRS: [&str; 2] = ["disinto/tests", "xtask/tests"];

/// Every test target (a `tests/*.rs` file) that no background lane runs.
fn foreground_targets(root: &std::path::Path) -> Result<Vec<String>> {
    let mut targets = vec![];
    for dir in TEST_DIRS {
        let dir = root.join(dir);
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "rs") {
                if let Some(name) = path.file_stem().and_then(|s| s.to_str()) {
                    targets.push(name.to_string());
                }
            }
        }
    }
    targets.retain(|t| !BACKGROUND.iter().any(|lane| lane.contains(&t.as_str())));
    targets.sort();
    Ok(targets)
}

/// A lane of test targets run in its own process, its output kept in a file until it ends.
struct Lane {
    name: String,
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Lane {
    fn start(root: &std::path::Path, targets: &[&str]) -> Result<Lane> {
        let name = targets.join(", ");
        let log = crate::target_dir(root).join(format!("lane-{}.log", targets[0]));
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut cmd = std::process::Command::new("cargo");
        cmd.current_dir(root)
            .args(["test", "--locked", "-p", "xtask"]);
        for target in targets {
            cmd.args(["--test", target]);
        }
        let child = cmd
            .args(["--", "--include-ignored"])
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start the tests {name}"))?;
        Ok(Lane { name, child, log })
    }

    /// Waits for the lane and prints what it printed.
    fn finish(mut self) -> Result<()> {
        let status = self
            .child
            .wait()
            .with_context(|| format!("cannot wait for the tests {}", self.name))?;
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        eprintln!("--- {} (run beside the others) ---\n{text}", self.name);
        if !status.success() {
            anyhow::bail!("the tests {} failed ({status}): see above", self.name);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_test_target_runs_in_exactly_one_lane() {
        let root = crate::project_root();
        let foreground = foreground_targets(&root).unwrap();
        let mut all: Vec<String> = foreground.clone();
        for lane in BACKGROUND {
            for target in lane {
                let file = root.join("xtask/tests").join(format!("{target}.rs"));
                assert!(
                    file.is_file(),
                    "{} is in a lane but not a test file",
                    file.display()
                );
                all.push(target.to_string());
            }
        }
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len(), "a target is in two lanes: {all:?}");
        assert!(foreground.contains(&"layout".to_string()), "{foreground:?}");
        assert!(
            !foreground.contains(&"e2e_swarm".to_string()),
            "{foreground:?}"
        );
    }
}
