//! `cargo xtask bench`: the figures that say whether the pipeline is fast, measured side by
//! side in one run (medians and min–max), written as JSON and Markdown under `target/bench/`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use disinto::model::history::{Outcome, HISTORY_FILE};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use crate::build_log::parse_context_size;
use crate::scratch;
use crate::testbed::{self, Registry};
use disinto::fsx::TempDir;

/// One benchmark figure: the only list of figure ids. Table order is declaration order; the
/// exhaustive matches below make a figure without a description or a setup a compile error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FigureId {
    ColdBuild,
    DisintoSize,
    WarmStart,
    GenCompose,
    BuildContext,
    Rebuild,
    PackageRebuild,
    ReleaseOverhead,
    UpgradeDownload,
    ReleaseTime,
    Rollback,
    Revert,
    PeakMemory,
    LockOverhead,
    DrainOverhead,
    Doctor,
    Verify,
    Snapshot,
    UpgradeOverhead,
    Arm64Share,
    Arm64Download,
}

/// What a figure needs before it can be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// The release binaries alone.
    Binaries,
    /// Docker, to build the agents image.
    Image,
    /// Docker, a registry and a staged factory.
    Stage,
}

impl FigureId {
    /// Every figure, in table order.
    pub(crate) const ALL: [FigureId; 21] = [
        FigureId::ColdBuild,
        FigureId::DisintoSize,
        FigureId::WarmStart,
        FigureId::GenCompose,
        FigureId::BuildContext,
        FigureId::Rebuild,
        FigureId::PackageRebuild,
        FigureId::ReleaseOverhead,
        FigureId::UpgradeDownload,
        FigureId::ReleaseTime,
        FigureId::Rollback,
        FigureId::Revert,
        FigureId::PeakMemory,
        FigureId::LockOverhead,
        FigureId::DrainOverhead,
        FigureId::Doctor,
        FigureId::Verify,
        FigureId::Snapshot,
        FigureId::UpgradeOverhead,
        FigureId::Arm64Share,
        FigureId::Arm64Download,
    ];

    /// The id bench.json and `--only` use.
    pub fn id(self) -> &'static str {
        match self {
            FigureId::ColdBuild => "cold-build",
            FigureId::DisintoSize => "disinto-size",
            FigureId::WarmStart => "warm-start",
            FigureId::GenCompose => "gen-compose",
            FigureId::BuildContext => "build-context",
            FigureId::Rebuild => "rebuild",
            FigureId::PackageRebuild => "package-rebuild",
            FigureId::ReleaseOverhead => "release-overhead",
            FigureId::UpgradeDownload => "upgrade-download",
            FigureId::ReleaseTime => "release-time",
            FigureId::Rollback => "rollback",
            FigureId::Revert => "revert",
            FigureId::PeakMemory => "peak-memory",
            FigureId::LockOverhead => "lock-overhead",
            FigureId::DrainOverhead => "drain-overhead",
            FigureId::Doctor => "doctor",
            FigureId::Verify => "verify",
            FigureId::Snapshot => "snapshot",
            FigureId::UpgradeOverhead => "upgrade-overhead",
            FigureId::Arm64Share => "arm64-share",
            FigureId::Arm64Download => "arm64-download",
        }
    }

    /// What the figure measures, and in which unit: the table's first column.
    pub(crate) fn what(self) -> &'static str {
        match self {
            FigureId::ColdBuild => {
                "cold build of both binaries, disinto and xtask (deps included), s"
            }
            FigureId::DisintoSize => {
                "size of the release disinto binary (what every agents image carries), MB"
            }
            FigureId::WarmStart => "`cargo xtask --help`, everything built, s",
            FigureId::GenCompose => "gen-compose with the built binary, ms",
            FigureId::BuildContext => "bytes Docker receives for the agents image",
            FigureId::Rebuild => {
                "image rebuild after a one-file change, s (ratio: to a --no-cache build)"
            }
            FigureId::ReleaseOverhead => {
                "release (cached build, local registry) / the same builds, tags, pushes and signatures by hand"
            }
            FigureId::PackageRebuild => {
                "agents' package stage rebuilt with --no-cache from the same inputs: layers identical to the first build, %"
            }
            FigureId::UpgradeDownload => {
                "upgrade download after a one-script change, build cache polluted, % of the agents image (compressed; ratio: to the changed script's and disinto's layers)"
            }
            FigureId::ReleaseTime => {
                "release wall time after a one-script change (all images, local registry), s"
            }
            FigureId::Rollback => "AGENTS_IMAGE=<previous> disinto up agents until healthy, s",
            FigureId::Revert => {
                "a rollout whose agents never turns healthy, reverted and healthy again, s beyond its timeout"
            }
            FigureId::PeakMemory => "peak RSS of the xtask process during a release, MiB",
            FigureId::LockOverhead => "the factory lock taken and let go (flock, holder written), ms",
            FigureId::DrainOverhead => {
                "draining an idle agents before a rollout (probe, drain, probe) and lifting it, s"
            }
            FigureId::Doctor => "disinto doctor on a running factory, s",
            FigureId::Verify => {
                "disinto verify of one signed image (signature and attestations), local registry, s"
            }
            FigureId::Snapshot => {
                "disinto backup with 100 MB (random) in agent-data, s (ratio: archive / data size)"
            }
            FigureId::UpgradeOverhead => {
                "disinto upgrade beyond the rollout itself (drain, snapshot, migrate, checks), s"
            }
            FigureId::Arm64Download => {
                "upgrade download after a one-script change, two-platform release, % of the arm64 agents image (ratio: to the changed layers)"
            }
            FigureId::Arm64Share => {
                "arm64's share of build-image in a two-platform release after a one-script change, % (ratio: the release's time to a one-platform release's)"
            }
        }
    }

    fn needs(self) -> Needs {
        match self {
            FigureId::ColdBuild
            | FigureId::DisintoSize
            | FigureId::WarmStart
            | FigureId::GenCompose
            | FigureId::LockOverhead => Needs::Binaries,
            FigureId::BuildContext | FigureId::Rebuild | FigureId::PackageRebuild => Needs::Image,
            FigureId::ReleaseOverhead
            | FigureId::UpgradeDownload
            | FigureId::ReleaseTime
            | FigureId::Rollback
            | FigureId::Revert
            | FigureId::PeakMemory
            | FigureId::DrainOverhead
            | FigureId::Doctor
            | FigureId::Verify
            | FigureId::Snapshot
            | FigureId::UpgradeOverhead
            | FigureId::Arm64Share
            | FigureId::Arm64Download => Needs::Stage,
        }
    }

    pub(crate) fn from_id(id: &str) -> Option<FigureId> {
        FigureId::ALL.into_iter().find(|f| f.id() == id)
    }

    /// Every id, comma-separated, for help and error messages.
    pub(crate) fn ids() -> String {
        FigureId::ALL.map(FigureId::id).join(", ")
    }

    /// The figures `--only` names (every figure when it names none), in table order; a bad
    /// id is a one-line error that names it.
    fn select(only: &[String]) -> Result<BTreeSet<FigureId>> {
        if only.is_empty() {
            return Ok(FigureId::ALL.into());
        }
        only.iter()
            .map(|id| {
                FigureId::from_id(id).with_context(|| {
                    format!("--only {id}: no such figure (figures: {})", FigureId::ids())
                })
            })
            .collect()
    }
}

impl fmt::Display for FigureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub id: FigureId,
    pub what: String,
    pub samples: Vec<f64>,
    /// A ratio derived from the medians, where the figure is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    pub target: String,
    pub met: Option<bool>,
}

/// Median of `samples` (mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    Some(if s.len().is_multiple_of(2) {
        (s[mid - 1] + s[mid]) / 2.0
    } else {
        s[mid]
    })
}

fn min_max(samples: &[f64]) -> Option<(f64, f64)> {
    let min = samples.iter().copied().reduce(f64::min)?;
    let max = samples.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

fn fmt(x: f64) -> String {
    if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// The Markdown table of `figures`.
pub fn markdown(figures: &[Figure]) -> String {
    let mut out = String::from(
        "| figure | median | min–max | runs | ratio | target | met |\n|---|---|---|---|---|---|---|\n",
    );
    for f in figures {
        let (median, range) = match (median(&f.samples), min_max(&f.samples)) {
            (Some(m), Some((lo, hi))) => (fmt(m), format!("{}–{}", fmt(lo), fmt(hi))),
            _ => ("-".into(), "-".into()),
        };
        out.push_str(&format!(
            "| {} | {median} | {range} | {} | {} | {} | {} |\n",
            f.what,
            f.samples.len(),
            f.ratio
                .map(|r| format!("{r:.3}"))
                .unwrap_or_else(|| "-".into()),
            f.target,
            match f.met {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            }
        ));
    }
    out
}

/// Reads back a `bench.json`, checking it is one of ours (an unknown figure id is refused).
pub fn parse_json(text: &str) -> Result<Vec<Figure>> {
    serde_json::from_str(text).context("not a bench.json")
}

/// `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Bench {
    /// Fewer repetitions, to fit in CI
    #[arg(long)]
    pub quick: bool,
    // The help lists the ids from `FigureId`, so it cannot fall behind the figures.
    #[arg(long, value_delimiter = ',', value_name = "IDS", help = only_help())]
    pub only: Vec<String>,
    /// Where to write bench.json and bench.md [default: target/bench]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

fn only_help() -> String {
    format!(
        "Measure only these figures (comma-separated: {})",
        FigureId::ids()
    )
}

fn seconds(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn timed(cmd: &mut Command) -> Result<f64> {
    let start = Instant::now();
    run_ok(cmd)?;
    Ok(seconds(start))
}

/// Runs `cmd`, sampling its peak resident set (VmHWM) until it exits; returns bytes.
fn peak_rss(cmd: &mut Command) -> Result<u64> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb * 1024);
            }
        }
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{cmd:?} failed while measuring its memory");
            }
            return Ok(peak);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the Docker-heavy figures share: a registry, a scratch checkout, a factory.
struct Stage {
    _tmp: TempDir,
    work: PathBuf,
    factory: PathBuf,
    registry: Registry,
    project: String,
    released: Vec<String>,
    xtask: PathBuf,
    disinto: PathBuf,
    /// The source checkout the scratch checkout was made from.
    root: PathBuf,
    /// The release key the stage's releases sign with, which its factory trusts.
    key: testbed::SigningKey,
    /// The operator's Docker client config, logged in to the registry (the gate reads
    /// signatures with it).
    docker_config: TempDir,
}

impl Stage {
    fn new(root: &Path, xtask: &Path, disinto: &Path) -> Result<Stage> {
        let tmp = TempDir::new("bench-stage")?;
        let work = scratch::checkout(root, tmp.path(), "v0.0.1")?;
        let factory = tmp.path().join("factory");
        std::fs::create_dir_all(factory.join("projects"))?;
        let registry = Registry::start()?;
        let docker_config = TempDir::new("bench-operator")?;
        registry.login(docker_config.path())?;
        Ok(Stage {
            work,
            factory,
            registry,
            key: testbed::SigningKey::generate()?,
            docker_config,
            project: format!("bench{}", &testbed::random_token()?[..8]),
            released: vec![],
            xtask: xtask.to_path_buf(),
            disinto: disinto.to_path_buf(),
            root: root.to_path_buf(),
            _tmp: tmp,
        })
    }

    fn release_cmd(&self, version: &str) -> Command {
        let mut x = Command::new(&self.xtask);
        scratch::with_identity(&mut x);
        x.env("CARGO_TARGET_DIR", scratch::shared_target(&self.root))
            .arg("-C")
            .arg(&self.work)
            .args([
                "release",
                version,
                "--no-pull",
                "--cache",
                "--skip",
                "restart-agents",
            ])
            .env("DISINTO_PLATFORMS", "linux/amd64")
            .env_remove("DISINTO_MIRRORS");
        self.registry.release_env(&mut x);
        self.key.sign_env(&mut x);
        x
    }

    /// Bumps VERSION and runs a release of it (measured by `measure`).
    fn next_release<T>(&mut self, measure: impl FnOnce(&mut Command) -> Result<T>) -> Result<T> {
        let version = format!("v0.0.{}", self.released.len() + 1);
        if !self.released.is_empty() {
            scratch::bump(&self.work, &version)?;
        }
        let result = measure(&mut self.release_cmd(&version))?;
        self.released.push(version);
        Ok(result)
    }

    /// Releases until at least `n` versions are released.
    fn release_until(&mut self, n: usize) -> Result<()> {
        while self.released.len() < n {
            self.next_release(|cmd| run_ok(cmd).map(|_| ()))?;
        }
        Ok(())
    }

    /// The work of release number `i` done by hand: the binary from a new revision, then
    /// every image built, tagged, pushed (with the client config `config`) and signed; what
    /// the release adds to this is its bookkeeping. Returns seconds.
    fn bare_release(&self, config: &Path, i: usize) -> Result<f64> {
        let start = Instant::now();
        let shared = scratch::shared_target(&self.root);
        run_ok(
            Command::new("cargo")
                .current_dir(&self.work)
                .env("CARGO_TARGET_DIR", &shared)
                .env("DISINTO_REVISION", format!("bare{i}"))
                .args(["build", "--quiet", "--release", "--locked", "-p", "disinto"]),
        )?;
        std::fs::copy(
            shared.join("release/disinto"),
            self.work.join("docker/agents/dist/disinto"),
        )?;
        let docker = |args: &[&str]| {
            run_ok(
                Command::new("docker")
                    .current_dir(&self.work)
                    .env("DOCKER_CONFIG", config)
                    .args(args),
            )
        };
        for image in disinto::model::image_ref::OUR_IMAGES {
            let local = format!("disinto-{}:bare", image.name);
            let remote = format!("{}/{}-bare", self.registry.namespace(), image.name);
            docker(&[
                "build",
                "--file",
                image.dockerfile,
                "--tag",
                &local,
                "--build-arg",
                &format!("VERSION=bare{i}"),
                ".",
            ])?;
            let mut digest = None;
            for tag in [format!("bare{i}"), "latest".into()] {
                docker(&["tag", &local, &format!("{remote}:{tag}")])?;
                let pushed = docker(&["push", &format!("{remote}:{tag}")])?;
                digest = digest.or(crate::release::registry::parse_push_digest(&pushed));
            }
            let digest = digest.context("docker push reported no digest")?;
            self.sign_by_hand(config, &local, &format!("{remote}@{digest}"), image.name)?;
        }
        Ok(seconds(start))
    }

    /// What sign-image does, by hand: the packages listed, the digest signed, an SBOM and a
    /// provenance attested (the documents' generation is microseconds of Rust, left out).
    fn sign_by_hand(&self, config: &Path, local: &str, reference: &str, name: &str) -> Result<()> {
        let dpkg = run_ok(&mut crate::release::sign::dpkg_cmd(local))?;
        if name == disinto::model::image_ref::AGENTS.name {
            run_ok(Command::new("cargo").current_dir(&self.work).args([
                "tree", "--quiet", "--locked", "-p", "disinto", "-e", "normal",
            ]))?;
        }
        let dir = TempDir::new("bench-predicate")?;
        let predicate = dir.path().join("predicate.json");
        std::fs::write(
            &predicate,
            serde_json::json!({ "packages": dpkg }).to_string(),
        )?;
        let cosign = |args: &[&str]| {
            let mut cmd = Command::new("cosign");
            cmd.env("DOCKER_CONFIG", config)
                .args(args)
                .args([
                    "--key",
                    "env://COSIGN_PRIVATE_KEY",
                    "--tlog-upload=false",
                    "--yes",
                ])
                .args(["--allow-http-registry", reference]);
            run_ok(self.key.sign_env(&mut cmd))
        };
        let predicate = predicate.to_string_lossy();
        cosign(&["sign"])?;
        for kind in ["spdxjson", "custom"] {
            cosign(&["attest", "--type", kind, "--predicate", &predicate])?;
        }
        Ok(())
    }

    /// Builds `<namespace>/agents:broken` on the released `good`, with a health check that
    /// decides nothing for an hour; returns its reference.
    fn build_never_healthy(&self, good: &str) -> Result<String> {
        // Never healthy, never unhealthy either (first check in an hour): the worst case,
        // where only the timeout ends the wait.
        let ns = self.registry.namespace();
        let broken = format!("{ns}/agents:broken");
        let dockerfile = format!(
            "FROM {ns}/agents:{good}\nHEALTHCHECK --interval=1h --start-period=1h CMD false\n"
        );
        let mut child = Command::new("docker")
            .args(["build", "-q", "-t", &broken, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            std::io::Write::write_all(&mut stdin, dockerfile.as_bytes())?;
        }
        if !child.wait()?.success() {
            bail!("cannot build {broken}");
        }
        Ok(broken)
    }

    /// Changes one of the factory's own scripts and commits it: the change an upgrade is
    /// measured on.
    fn edit_script(&self) -> Result<()> {
        let script = self.work.join("lib/agent-loop.sh");
        let mut text = std::fs::read_to_string(&script)?;
        text.push_str(&format!(
            "# bench: release {} {}\n",
            self.released.len() + 1,
            testbed::random_token()?
        ));
        std::fs::write(&script, text)?;
        run_ok(scratch::with_identity(&mut scratch::git(&self.work)).args([
            "commit",
            "--quiet",
            "-am",
            "bench: one script changed",
        ]))?;
        Ok(())
    }

    /// A warm, polluted machine: the agents image built again as contributors and tests do,
    /// plainly and with `--no-cache`, and its package stage from scratch with the release's
    /// own inputs, so BuildKit holds several results of the package steps to choose from.
    fn pollute_cache(&self) -> Result<()> {
        let epoch = package_epoch()?;
        let builds: [&[&str]; 3] = [
            &[],
            &["--no-cache"],
            &["--no-cache", "--target", "packages", "--build-arg", &epoch],
        ];
        for extra in builds {
            run_ok(
                Command::new("docker")
                    .current_dir(&self.work)
                    .args(["build", "--quiet", "-f", "docker/agents/Dockerfile"])
                    .args(extra)
                    .arg("."),
            )?;
        }
        Ok(())
    }

    /// What a host running agents `old` downloads to run `new`, from both manifests (the
    /// registry's compressed layer sizes), and what it must download at least: the layers
    /// of the factory's scripts (`lib/`) and of the disinto binary (`dist/`).
    fn upgrade(&self, old: &str, new: &str) -> Result<Upgrade> {
        let credentials = crate::release::config::Credentials {
            user: self.registry.user.clone(),
            token: self.registry.password.clone(),
        };
        let session =
            crate::release::registry::Session::login(&self.registry.addr, &credentials, 4)?;
        let sh = Shell::new()?;
        let ns = self.registry.namespace();
        let remote = |v: &str| -> Result<crate::release::registry::Remote> {
            session
                .inspect(&sh, &format!("{ns}/agents:{v}"))?
                .with_context(|| format!("the registry has no {ns}/agents:{v}"))
        };
        let (old, new) = (remote(old)?, remote(new)?);
        let dockerfile = std::fs::read_to_string(self.work.join("docker/agents/Dockerfile"))?;
        let (count, wanted) = last_stage_layers(&dockerfile, &["lib/", "dist/"]);
        let first = new
            .layers
            .len()
            .checked_sub(count)
            .context("the agents image has fewer layers than its last stage makes")?;
        let changed = wanted
            .iter()
            .filter_map(|i| new.layers.get(first + i))
            .map(|(_, size)| size)
            .sum();
        Ok(Upgrade {
            downloaded: new.download_from(&old),
            size: new.size(),
            changed,
        })
    }

    fn disinto_up_cmd(&self, version: &str) -> Command {
        let mut cmd = Command::new(&self.disinto);
        cmd.arg("--root")
            .arg(&self.factory)
            // The figures are "until healthy": the watch after the gate is not timed here.
            .args(["up", "agents", "--watch", "0"])
            .env("AGENTS_IMAGE", version)
            .env("DISINTO_REGISTRY", self.registry.namespace())
            .env("COMPOSE_PROJECT_NAME", &self.project);
        self.operator_env(&mut cmd);
        cmd
    }

    /// What the stage's operator has: the registry login and the release key trusted.
    fn operator_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env("DOCKER_CONFIG", self.docker_config.path())
            .env("DISINTO_TRUSTED_KEYS", self.key.public_key_file())
    }

    fn doctor_cmd(&self) -> Command {
        let mut cmd = Command::new(&self.disinto);
        cmd.arg("--root")
            .arg(&self.factory)
            .arg("doctor")
            .env("COMPOSE_PROJECT_NAME", &self.project)
            .env("DISINTO_REGISTRY", self.registry.namespace());
        self.operator_env(&mut cmd);
        cmd
    }

    /// The id of the agents container of the staged factory.
    fn agents(&self) -> Result<String> {
        let out = run_ok(
            Command::new("docker")
                .args(["ps", "--quiet", "--filter"])
                .arg(format!("label=com.docker.compose.project={}", self.project))
                .args(["--filter", "label=com.docker.compose.service=agents"]),
        )?;
        match out.trim() {
            "" => bail!("no agents container runs in the staged factory"),
            id => Ok(id.to_string()),
        }
    }

    fn disinto_up(&self, version: &str) -> Result<f64> {
        timed(&mut self.disinto_up_cmd(version))
    }

    /// `disinto up` of an image whose health check never passes, which must fail and
    /// revert: seconds from start until it exits, less the health timeout.
    fn bad_rollout(&self, broken: &str, timeout: u64) -> Result<f64> {
        let start = Instant::now();
        let out = self
            .disinto_up_cmd(broken)
            .args(["--health-timeout", &timeout.to_string()])
            .output()?;
        let took = seconds(start);
        // The factory's history says how it ended; the words on stderr are for people.
        let history = std::fs::read_to_string(self.factory.join(HISTORY_FILE))?;
        let last = history
            .lines()
            .last()
            .and_then(|l| disinto::model::history::parse(l, HISTORY_FILE).ok()?.pop());
        let reverted = last.is_some_and(|d| d.outcome == Outcome::Reverted);
        if out.status.success() || !reverted {
            let stderr = String::from_utf8_lossy(&out.stderr);
            bail!("the bad rollout of {broken} was not reverted: {stderr}");
        }
        Ok(took - timeout as f64)
    }
}

/// What an upgrade downloads, in compressed bytes.
struct Upgrade {
    downloaded: u64,
    /// The new image's whole size.
    size: u64,
    /// What changed in truth: the layers of the changed files.
    changed: u64,
}

/// The layer-making instructions (COPY, ADD, RUN) of a Dockerfile's last stage: how many,
/// and which of them (0-based, in order) name one of `sources`.
fn last_stage_layers(dockerfile: &str, sources: &[&str]) -> (usize, Vec<usize>) {
    let lines: Vec<&str> = dockerfile.lines().map(str::trim_start).collect();
    let word = |l: &str| {
        l.split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase()
    };
    let last_from = lines.iter().rposition(|l| word(l) == "FROM").unwrap_or(0);
    let layers: Vec<&str> = lines[last_from..]
        .iter()
        .copied()
        .filter(|l| matches!(word(l).as_str(), "COPY" | "ADD" | "RUN"))
        .collect();
    let wanted = layers
        .iter()
        .enumerate()
        .filter(|(_, l)| sources.iter().any(|s| l.contains(s)))
        .map(|(i, _)| i)
        .collect();
    (layers.len(), wanted)
}

/// `SOURCE_DATE_EPOCH=…` as a release passes it to the package stage built on the local
/// base image.
fn package_epoch() -> Result<String> {
    let created = disinto::engine::docker::read(
        &[
            "image",
            "inspect",
            "--format",
            "{{.Created}}",
            testbed::BASE_IMAGE,
        ],
        "reading the base image's creation time",
    )?;
    Ok(format!(
        "SOURCE_DATE_EPOCH={}",
        crate::release::packages::source_date_epoch(&created)
    ))
}

/// The layer digests of a local image, bottom first.
fn image_layers(image: &str) -> Result<Vec<String>> {
    let json = disinto::engine::docker::read(
        &[
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            image,
        ],
        "reading an image's layers",
    )?;
    serde_json::from_str(json.trim()).context("docker image inspect printed no layer list")
}

impl Drop for Stage {
    fn drop(&mut self) {
        testbed::compose_down(&self.project, &self.factory.join("docker-compose.yml"));
    }
}

impl Bench {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let wanted = FigureId::select(&self.only)?;
        let root = sh.current_dir();
        let out_dir = self
            .out
            .clone()
            .unwrap_or_else(|| root.join("target/bench"));
        std::fs::create_dir_all(&out_dir)?;

        // The binaries every figure but cold-build uses: release builds, as bin/disinto runs.
        run_ok(Command::new("cargo").current_dir(&root).args([
            "build",
            "--quiet",
            "--release",
            "--locked",
            "--workspace",
        ]))?;
        let release_dir = crate::target_dir(&root).join("release");
        let mut run = Run {
            quick: self.quick,
            wanted,
            root: root.clone(),
            xtask: release_dir.join("xtask"),
            disinto: release_dir.join("disinto"),
            figures: Vec::new(),
        };
        run.measure(sh)?;
        write_results(sh, &out_dir, &run.figures)
    }
}

/// Writes bench.json, engine.json and bench.md into `out_dir`, and prints the table.
fn write_results(sh: &Shell, out_dir: &Path, figures: &[Figure]) -> Result<()> {
    let json = serde_json::to_string_pretty(figures)?;
    disinto::fsx::write_atomic(&out_dir.join("bench.json"), format!("{json}\n").as_bytes())?;
    // Which engine the figures were measured on: they are not comparable across engines.
    let engine = testbed::Engine::read(sh);
    let engine_json = serde_json::to_string_pretty(&engine)?;
    disinto::fsx::write_atomic(
        &out_dir.join("engine.json"),
        format!("{engine_json}\n").as_bytes(),
    )?;
    let table = format!("Measured on {engine}.\n\n{}", markdown(figures));
    disinto::fsx::write_atomic(&out_dir.join("bench.md"), table.as_bytes())?;
    println!("{table}");
    eprintln!(
        "bench: wrote {}, bench.md and engine.json",
        out_dir.join("bench.json").display()
    );
    Ok(())
}

/// One benchmark run: what every figure's measurement needs, and the figures so far.
struct Run {
    quick: bool,
    /// The figures to measure.
    wanted: BTreeSet<FigureId>,
    root: PathBuf,
    xtask: PathBuf,
    disinto: PathBuf,
    figures: Vec<Figure>,
}

impl Run {
    fn wants(&self, id: FigureId) -> bool {
        self.wanted.contains(&id)
    }

    fn wants_any(&self, needs: Needs) -> bool {
        self.wanted.iter().any(|f| f.needs() == needs)
    }

    /// Measures the wanted figures, the cheap ones first.
    fn measure(&mut self, sh: &Shell) -> Result<()> {
        if self.wants(FigureId::ColdBuild) {
            self.cold_build()?;
        }
        if self.wants(FigureId::DisintoSize) {
            self.disinto_size()?;
        }
        if self.wants(FigureId::WarmStart) {
            self.warm_start()?;
        }
        if self.wants(FigureId::GenCompose) {
            self.gen_compose()?;
        }
        if self.wants(FigureId::LockOverhead) {
            self.lock_overhead()?;
        }
        if self.wants_any(Needs::Image) || self.wants_any(Needs::Stage) {
            testbed::require(sh)?;
        }
        if self.wants_any(Needs::Image) {
            self.image_figures()?;
        }
        if self.wants_any(Needs::Stage) {
            self.stage_figures()?;
        }
        Ok(())
    }

    /// Repetitions: `quick` with --quick, else `full`.
    fn reps(&self, quick: usize, full: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }

    fn push(
        &mut self,
        id: FigureId,
        samples: Vec<f64>,
        ratio: Option<f64>,
        target: &str,
        met: Option<bool>,
    ) {
        let what = id.what();
        eprintln!("bench: {what}: {samples:?}");
        self.figures.push(Figure {
            id,
            what: what.into(),
            samples,
            ratio,
            target: target.into(),
            met,
        });
    }

    /// Both binaries built into an empty target directory, dependencies included.
    fn cold_build(&mut self) -> Result<()> {
        let mut samples = vec![];
        for _ in 0..self.reps(1, 3) {
            let target = TempDir::new("bench-target")?;
            samples.push(timed(
                Command::new("cargo")
                    .current_dir(&self.root)
                    .args(["build", "--quiet", "--locked", "--workspace"])
                    .env("CARGO_TARGET_DIR", target.path()),
            )?);
        }
        let met = median(&samples).map(|m| m <= 25.0);
        self.push(FigureId::ColdBuild, samples, None, "≤ 25 s", met);
        Ok(())
    }

    /// The release disinto binary, which every agents image carries.
    fn disinto_size(&mut self) -> Result<()> {
        let bytes = std::fs::metadata(&self.disinto)
            .with_context(|| format!("cannot read {}", self.disinto.display()))?
            .len();
        let mb = bytes as f64 / 1e6;
        self.push(
            FigureId::DisintoSize,
            vec![mb],
            None,
            "≤ 4 MB",
            Some(mb <= 4.0),
        );
        Ok(())
    }

    /// `cargo xtask --help` with everything built: a contributor's every command.
    fn warm_start(&mut self) -> Result<()> {
        run_ok(
            Command::new("cargo")
                .current_dir(&self.root)
                .args(["xtask", "--help"]),
        )?;
        let samples = (0..self.reps(3, 10))
            .map(|_| {
                timed(
                    Command::new("cargo")
                        .current_dir(&self.root)
                        .args(["xtask", "--help"]),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let met = median(&samples).map(|m| m <= 0.5);
        self.push(FigureId::WarmStart, samples, None, "≤ 0.5 s", met);
        Ok(())
    }

    /// gen-compose with the built binary.
    fn gen_compose(&mut self) -> Result<()> {
        let dir = TempDir::new("bench-compose")?;
        let file = dir.path().join("docker-compose.yml");
        let samples = (0..self.reps(5, 30))
            .map(|_| {
                timed(
                    Command::new(&self.xtask)
                        .args(["gen-compose", "--output"])
                        .arg(&file)
                        .env("AGENTS_IMAGE", "v0.1.1"),
                )
                .map(|s| s * 1000.0)
            })
            .collect::<Result<Vec<_>>>()?;
        let met = median(&samples).map(|m| m <= 5.0);
        self.push(FigureId::GenCompose, samples, None, "≤ 5 ms", met);
        Ok(())
    }

    /// The agents image's build context, and a rebuild after a one-file change.
    fn image_figures(&mut self) -> Result<()> {
        let ctx = TempDir::new("bench-context")?;
        for dir in ["docker", "lib", "bin"] {
            scratch::copy_tree(&self.root.join(dir), &ctx.path().join(dir))?;
        }
        std::fs::copy(
            self.root.join(".dockerignore"),
            ctx.path().join(".dockerignore"),
        )?;
        // A contributor's checkout has a target/ directory; it must not be sent.
        std::fs::create_dir_all(ctx.path().join("target"))?;
        std::fs::write(ctx.path().join("target/big"), vec![0u8; 64 << 20])?;
        let tag = format!("disinto-agents:bench-{}", &testbed::random_token()?[..8]);
        let build = |extra: &[&str]| -> Result<(f64, String)> {
            let start = Instant::now();
            let log = run_ok(
                Command::new("docker")
                    .current_dir(ctx.path())
                    // BuildKit, as releases build; the plain log says what was cached.
                    .args([
                        "build",
                        "--progress=plain",
                        "-f",
                        "docker/agents/Dockerfile",
                        "-t",
                        &tag,
                    ])
                    .args(extra)
                    .arg("."),
            )?;
            Ok((seconds(start), log))
        };
        let (_, log) = build(&[])?;
        if self.wants(FigureId::BuildContext) {
            let size =
                parse_context_size(&log).context("the build log states no context size")? as f64;
            self.push(
                FigureId::BuildContext,
                vec![size],
                None,
                "≤ 2 MB",
                Some(size <= 2e6),
            );
        }
        if self.wants(FigureId::Rebuild) {
            let mut cold = vec![];
            let mut warm = vec![];
            for i in 0..self.reps(1, 3) {
                cold.push(build(&["--no-cache"])?.0);
                let launcher = ctx.path().join("bin/disinto");
                let mut text = std::fs::read_to_string(&launcher)?;
                // Unique to this run: BuildKit's cache outlives images, and an edit an
                // earlier run made would be a cache hit, not a rebuild.
                text.push_str(&format!("# bench edit {i} {}\n", testbed::random_token()?));
                std::fs::write(&launcher, text)?;
                warm.push(build(&[])?.0);
            }
            let ratio = median(&warm).zip(median(&cold)).map(|(w, c)| w / c);
            self.push(
                FigureId::Rebuild,
                warm,
                ratio,
                "≤ 10% of a cold build",
                ratio.map(|r| r <= 0.10),
            );
        }
        let _ = Command::new("docker").args(["rmi", &tag]).output();
        if self.wants(FigureId::PackageRebuild) {
            self.package_rebuild(ctx.path())?;
        }
        Ok(())
    }

    /// The agents package stage built from scratch again and again with the release's
    /// inputs: how many of its layers (the base's aside) are the first build's, byte for byte.
    fn package_rebuild(&mut self, ctx: &Path) -> Result<()> {
        let epoch = package_epoch()?;
        let token = &testbed::random_token()?[..8];
        let build = |tag: &str| -> Result<Vec<String>> {
            run_ok(
                Command::new("docker")
                    .current_dir(ctx)
                    .args(["build", "--quiet", "--no-cache", "--target", "packages"])
                    .args([
                        "--build-arg",
                        &epoch,
                        "-f",
                        "docker/agents/Dockerfile",
                        "-t",
                        tag,
                    ])
                    .arg("."),
            )?;
            image_layers(tag)
        };
        let first_tag = format!("disinto-agents:bench-pk-{token}-0");
        let first = build(&first_tag)?;
        let mut samples = vec![];
        for i in 0..self.reps(1, 3) {
            let tag = format!("disinto-agents:bench-pk-{token}-{}", i + 1);
            let again = build(&tag)?;
            let _ = Command::new("docker").args(["rmi", &tag]).output();
            let own = first.len().saturating_sub(1).max(1);
            let same = first
                .iter()
                .zip(&again)
                .skip(1)
                .filter(|(a, b)| a == b)
                .count();
            samples.push(100.0 * same as f64 / own as f64);
        }
        let _ = Command::new("docker").args(["rmi", &first_tag]).output();
        let met = median(&samples).map(|m| m >= 100.0);
        self.push(FigureId::PackageRebuild, samples, None, "100 %", met);
        Ok(())
    }

    /// The figures of a staged factory and registry: releases, upgrade download, rollback,
    /// revert and the release's memory.
    fn stage_figures(&mut self) -> Result<()> {
        let mut stage = Stage::new(&self.root, &self.xtask, &self.disinto)?;
        // A first release fills the build cache and the registry's blobs.
        stage.next_release(|cmd| run_ok(cmd).map(|_| ()))?;
        if self.wants(FigureId::PeakMemory) {
            self.peak_memory(&mut stage)?;
        }
        if self.wants(FigureId::ReleaseOverhead) {
            self.release_overhead(&mut stage)?;
        }
        if self.wants(FigureId::UpgradeDownload) || self.wants(FigureId::ReleaseTime) {
            self.upgrade_figures(&mut stage)?;
        }
        if self.wants(FigureId::Rollback) {
            self.rollback(&mut stage)?;
        }
        if self.wants(FigureId::Revert) {
            self.revert(&mut stage)?;
        }
        if self.wants(FigureId::DrainOverhead) || self.wants(FigureId::Doctor) {
            self.work_figures(&mut stage)?;
        }
        if self.wants(FigureId::Verify) {
            self.verify_time(&mut stage)?;
        }
        if self.wants(FigureId::Snapshot) || self.wants(FigureId::UpgradeOverhead) {
            self.upgrade_command_figures(&mut stage)?;
        }
        // Last: its release of two platforms is the stage's only one.
        if self.wants(FigureId::Arm64Share) || self.wants(FigureId::Arm64Download) {
            self.arm64_share(&mut stage)?;
        }
        Ok(())
    }

    /// A release of linux/amd64 and linux/arm64 after a one-script change: arm64's share of
    /// build-image (its binary, cross-built, and its images, built under qemu), and the
    /// whole release's time against a one-platform release's.
    fn arm64_share(&mut self, stage: &mut Stage) -> Result<()> {
        stage.release_until(1)?;
        stage.edit_script()?;
        let one = stage.next_release(timed)?;
        // The first release of two platforms builds arm64's package stages; the next one,
        // after a script change, is what every later release costs.
        let both = |cmd: &mut Command| {
            cmd.env("DISINTO_PLATFORMS", "linux/amd64,linux/arm64");
            timed(cmd)
        };
        stage.edit_script()?;
        stage.next_release(both)?;
        stage.edit_script()?;
        let two = stage.next_release(both)?;
        let version = stage.released.last().cloned().unwrap_or_default();
        let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
            stage
                .work
                .join(crate::RELEASE_RECORDS)
                .join(format!("{version}.json")),
        )?)?;
        let ms = |p: &str| record["build_ms"][p].as_f64().unwrap_or(0.0);
        let (amd, arm) = (ms("linux/amd64"), ms("linux/arm64"));
        if arm <= 0.0 {
            bail!("the release of two platforms recorded no arm64 build time");
        }
        self.push(
            FigureId::Arm64Share,
            vec![100.0 * arm / (amd + arm)],
            Some(two / one.max(0.001)),
            "(no target; tracked)",
            None,
        );
        // Between the two releases of two platforms: what an arm64 host downloads.
        let n = stage.released.len();
        let tag = |v: &str| format!("linux-arm64-{v}");
        let upgrade = stage.upgrade(&tag(&stage.released[n - 2]), &tag(&stage.released[n - 1]))?;
        let percent = 100.0 * upgrade.downloaded as f64 / upgrade.size.max(1) as f64;
        let ratio = upgrade.downloaded as f64 / (upgrade.changed as f64).max(1.0);
        self.push(
            FigureId::Arm64Download,
            vec![percent],
            Some(ratio),
            "≤ 1 %",
            Some(percent <= 1.0),
        );
        Ok(())
    }

    /// With agents up on the first release and 100 MB in agent-data: `disinto backup`, and
    /// what `disinto upgrade` to the second adds to the same rollout done by `up`.
    fn upgrade_command_figures(&mut self, stage: &mut Stage) -> Result<()> {
        stage.release_until(2)?;
        let (v1, v2) = (stage.released[0].clone(), stage.released[1].clone());
        stage.disinto_up(&v1)?;
        let agents = stage.agents()?;
        const DATA_MB: u64 = 100;
        run_ok(Command::new("docker").args([
            "exec",
            "-u",
            "agent",
            &agents,
            "dd",
            "if=/dev/urandom",
            "of=/home/agent/data/bench-snapshot",
            "bs=1M",
            &format!("count={DATA_MB}"),
        ]))?;
        let bin = self.disinto.clone();
        let disinto = |args: &[&str], version: &str| {
            let mut cmd = Command::new(&bin);
            cmd.arg("--root")
                .arg(&stage.factory)
                .args(args)
                .env("AGENTS_IMAGE", version)
                .env("DISINTO_REGISTRY", stage.registry.namespace())
                .env("COMPOSE_PROJECT_NAME", &stage.project);
            stage.operator_env(&mut cmd);
            cmd
        };
        if self.wants(FigureId::Snapshot) {
            let mut samples = vec![];
            for _ in 0..self.reps(1, 3) {
                samples.push(timed(&mut disinto(&["backup", "--keep", "1"], &v1))?);
            }
            let newest = std::fs::read_dir(stage.factory.join("backups"))?
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.gz"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0);
            let ratio = newest as f64 / (DATA_MB * 1024 * 1024) as f64;
            let met = median(&samples).map(|m| m <= 10.0);
            self.push(FigureId::Snapshot, samples, Some(ratio), "≤ 10 s", met);
        }
        if self.wants(FigureId::UpgradeOverhead) {
            let upgrade = timed(&mut disinto(
                &["upgrade", &v2, "--yes", "--watch", "0"],
                &v1,
            ))?;
            stage.disinto_up(&v1)?;
            let rollout = stage.disinto_up(&v2)?;
            let overhead = (upgrade - rollout).max(0.0);
            stage.disinto_up(&v1)?;
            let met = Some(overhead <= 15.0);
            self.push(
                FigureId::UpgradeOverhead,
                vec![overhead],
                None,
                "≤ 15 s",
                met,
            );
        }
        let agents = stage.agents()?;
        run_ok(Command::new("docker").args([
            "exec",
            &agents,
            "rm",
            "-f",
            "/home/agent/data/bench-snapshot",
        ]))?;
        Ok(())
    }

    /// `disinto verify` of one released image, signed here with a throwaway key by `cosign
    /// sign --key`: what the gate adds to every image of a rollout that asks the registry.
    fn verify_time(&mut self, stage: &mut Stage) -> Result<()> {
        stage.release_until(1)?;
        let image = format!(
            "{}/agents:{}",
            stage.registry.namespace(),
            stage.released[0]
        );
        // Signed here too: a signature more is harmless, and the figure needs one.
        let key = &stage.key;
        run_ok(&mut key.cosign_sign(&image, stage.docker_config.path()))?;
        let mut samples = vec![];
        for _ in 0..self.reps(3, 10) {
            samples.push(timed(
                stage
                    .operator_env(&mut Command::new(&self.disinto))
                    .args(["verify", &image, "--json"])
                    .current_dir(&stage.factory)
                    .env_remove("DISINTO_ROOT"),
            )?);
        }
        let met = median(&samples).map(|m| m <= 1.0);
        self.push(FigureId::Verify, samples, None, "≤ 1 s", met);
        Ok(())
    }

    /// The factory's lock, taken and let go, in this process (what every changing command
    /// adds to its run).
    fn lock_overhead(&mut self) -> Result<()> {
        let dir = TempDir::new("bench-lock")?;
        let mut samples = vec![];
        for _ in 0..self.reps(20, 100) {
            let start = Instant::now();
            let lock = disinto::lock::Lock::acquire(dir.path(), "bench", Duration::ZERO)?;
            drop(lock);
            samples.push(seconds(start) * 1000.0);
        }
        let met = median(&samples).map(|m| m <= 5.0);
        self.push(FigureId::LockOverhead, samples, None, "≤ 5 ms", met);
        Ok(())
    }

    /// With agents up and idle: what draining adds to a rollout, and `doctor`'s run.
    fn work_figures(&mut self, stage: &mut Stage) -> Result<()> {
        stage.release_until(1)?;
        let latest = stage.released[stage.released.len() - 1].clone();
        stage.disinto_up(&latest)?;
        if self.wants(FigureId::DrainOverhead) {
            let agents = stage.agents()?;
            let mut samples = vec![];
            for _ in 0..self.reps(3, 10) {
                let start = Instant::now();
                use disinto::engine::work::{busy, drain, Work};
                if busy(&agents)? != Work::Idle {
                    bail!("agents {agents} is not idle: the drain figure needs an idle factory");
                }
                drain(&agents, true)?;
                busy(&agents)?;
                drain(&agents, false)?;
                samples.push(seconds(start));
            }
            let met = median(&samples).map(|m| m <= 0.3);
            self.push(FigureId::DrainOverhead, samples, None, "≤ 0.3 s", met);
        }
        if self.wants(FigureId::Doctor) {
            let mut samples = vec![];
            for _ in 0..self.reps(3, 10) {
                let start = Instant::now();
                // Its verdict (clean or drift) does not matter here, only how long it takes.
                stage.doctor_cmd().output()?;
                samples.push(seconds(start));
            }
            let met = median(&samples).map(|m| m <= 2.0);
            self.push(FigureId::Doctor, samples, None, "≤ 2 s", met);
        }
        Ok(())
    }

    /// The xtask process's peak memory during one release.
    fn peak_memory(&mut self, stage: &mut Stage) -> Result<()> {
        let peak = stage.next_release(peak_rss)? as f64 / (1024.0 * 1024.0);
        self.push(
            FigureId::PeakMemory,
            vec![peak],
            None,
            "(no target; tracked)",
            None,
        );
        Ok(())
    }

    /// Releases, each against the same builds, tags and pushes done by hand.
    fn release_overhead(&mut self, stage: &mut Stage) -> Result<()> {
        let config = TempDir::new("bench-docker-config")?;
        stage.registry.login(config.path())?;
        let mut released = vec![];
        let mut bare = vec![];
        for i in 0..self.reps(2, 5) {
            released.push(stage.next_release(timed)?);
            bare.push(stage.bare_release(config.path(), i)?);
        }
        let ratio = median(&released).zip(median(&bare)).map(|(r, b)| r / b);
        self.push(
            FigureId::ReleaseOverhead,
            released,
            ratio,
            "ratio ≤ 1.05",
            ratio.map(|r| r <= 1.05),
        );
        Ok(())
    }

    /// Releases after a one-script change on a machine whose build cache holds several
    /// results of the package steps: their wall time, and what an upgrade downloads, against
    /// what truly changed (the script's layer and the disinto binary's).
    fn upgrade_figures(&mut self, stage: &mut Stage) -> Result<()> {
        stage.release_until(1)?;
        stage.pollute_cache()?;
        let mut times = vec![];
        let mut percents = vec![];
        let mut downloaded = vec![];
        let mut changed = vec![];
        for _ in 0..self.reps(1, 3) {
            stage.edit_script()?;
            times.push(stage.next_release(timed)?);
            let n = stage.released.len();
            let (old, new) = (&stage.released[n - 2], &stage.released[n - 1]);
            let upgrade = stage.upgrade(old, new)?;
            percents.push(100.0 * upgrade.downloaded as f64 / upgrade.size.max(1) as f64);
            downloaded.push(upgrade.downloaded as f64);
            changed.push(upgrade.changed as f64);
        }
        let ratio = median(&downloaded)
            .zip(median(&changed))
            .map(|(d, c)| d / c.max(1.0));
        self.push(
            FigureId::UpgradeDownload,
            percents,
            ratio,
            "ratio ≤ 1.05",
            ratio.map(|r| r <= 1.05),
        );
        self.push(
            FigureId::ReleaseTime,
            times,
            None,
            "(no target; tracked)",
            None,
        );
        Ok(())
    }

    /// `disinto up` of the previous release, from the latest, and back between samples.
    fn rollback(&mut self, stage: &mut Stage) -> Result<()> {
        stage.release_until(2)?;
        let n = stage.released.len();
        let (previous, latest) = (stage.released[n - 2].clone(), stage.released[n - 1].clone());
        stage.disinto_up(&latest)?;
        let mut samples = vec![];
        for i in 0..self.reps(1, 3) {
            samples.push(stage.disinto_up(&previous)?);
            if i + 1 < self.reps(1, 3) {
                stage.disinto_up(&latest)?;
            }
        }
        let met = median(&samples).map(|m| m <= 3.0);
        self.push(FigureId::Rollback, samples, None, "≤ 3 s", met);
        Ok(())
    }

    /// A rollout of an image that never turns healthy, reverted to the latest release.
    fn revert(&mut self, stage: &mut Stage) -> Result<()> {
        stage.release_until(1)?;
        let good = stage.released[stage.released.len() - 1].clone();
        stage.disinto_up(&good)?;
        let broken = stage.build_never_healthy(&good)?;
        let samples = (0..self.reps(1, 3))
            .map(|_| stage.bad_rollout(&broken, 10))
            .collect::<Result<Vec<_>>>()?;
        let met = median(&samples).map(|m| m <= 3.0);
        self.push(FigureId::Revert, samples, None, "≤ timeout + 3 s", met);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changed_layers_are_found_in_the_last_stage() {
        let file = "FROM x AS packages\nRUN apt-get install\nFROM ${PACKAGES}\nCOPY a /a\ncopy lib/ /lib/\nENV X=1\nCOPY bin/ /bin/\nCOPY docker/agents/dist/ /dist/\n";
        assert_eq!(last_stage_layers(file, &["lib/", "dist/"]), (4, vec![1, 3]));
        let ours = std::fs::read_to_string(crate::project_root().join("docker/agents/Dockerfile"))
            .unwrap();
        let (count, wanted) = last_stage_layers(&ours, &["lib/", "dist/"]);
        assert_eq!(
            wanted.len(),
            2,
            "agents copies lib/ and dist/ in its last stage"
        );
        assert!(wanted.iter().all(|i| *i < count));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
    }

    #[test]
    fn figure_ids_round_trip_and_serde_agrees() {
        for figure in FigureId::ALL {
            assert_eq!(FigureId::from_id(figure.id()), Some(figure));
            let json = serde_json::to_string(&figure).unwrap();
            assert_eq!(json, format!("\"{}\"", figure.id()));
            assert!(!figure.what().is_empty());
        }
        let mut sorted = FigureId::ALL;
        sorted.sort();
        assert_eq!(sorted, FigureId::ALL, "declaration order is table order");
        let whats: BTreeSet<&str> = FigureId::ALL.map(FigureId::what).into();
        assert_eq!(
            whats.len(),
            FigureId::ALL.len(),
            "every description is its own"
        );
        assert_eq!(FigureId::from_id("gen-compos"), None);
    }

    #[test]
    fn only_selects_figures_and_names_a_bad_id() {
        let only =
            |ids: &[&str]| FigureId::select(&ids.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(only(&[]).unwrap(), FigureId::ALL.into());
        assert_eq!(
            only(&["rollback", "cold-build", "rollback"]).unwrap(),
            [FigureId::ColdBuild, FigureId::Rollback].into()
        );
        let err = only(&["gen-compose", "gen-compos"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "--only gen-compos: no such figure (figures: {})",
                FigureId::ids()
            )
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn table_and_json_round_trip() {
        let figures = vec![
            Figure {
                id: FigureId::GenCompose,
                what: "gen-compose with the built binary, ms".into(),
                samples: vec![1.5, 1.0, 2.0],
                ratio: None,
                target: "≤ 5 ms".into(),
                met: Some(true),
            },
            Figure {
                id: FigureId::ReleaseOverhead,
                what: "release / bare".into(),
                samples: vec![],
                ratio: Some(1.234),
                target: "ratio ≤ 1.05".into(),
                met: Some(false),
            },
        ];
        let table = markdown(&figures);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2], "| gen-compose with the built binary, ms | 1.500 | 1.000–2.000 | 3 | - | ≤ 5 ms | yes |");
        assert_eq!(
            lines[3],
            "| release / bare | - | - | 0 | 1.234 | ratio ≤ 1.05 | no |"
        );
        let json = serde_json::to_string(&figures).unwrap();
        // bench.json keeps its ids as the strings it always had.
        assert!(
            json.starts_with("[{\"id\":\"gen-compose\",\"what\":"),
            "{json}"
        );
        assert_eq!(parse_json(&json).unwrap(), figures);
        assert!(parse_json(
            "[{\"id\":\"x\",\"what\":\"\",\"samples\":[],\"target\":\"\",\"met\":null}]"
        )
        .is_err());
    }
}
