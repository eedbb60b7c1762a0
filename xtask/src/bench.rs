//! `cargo xtask bench`: the figures that say whether the pipeline is fast, measured side by
//! side in one run (medians and min–max), written as JSON and Markdown under `target/bench/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::Shell;

use crate::build_log::parse_context_size;
use crate::scratch;
use crate::testbed::{self, Registry};
use disinto::fsx::TempDir;

/// Every figure, in table order: (id, what it measures).
pub const FIGURES: [(&str, &str); 12] = [
    (
        "cold-build",
        "cold build of both binaries, disinto and xtask (deps included), s",
    ),
    (
        "disinto-size",
        "size of the release disinto binary (what every agents image carries), MB",
    ),
    ("warm-start", "`cargo xtask --help`, everything built, s"),
    ("gen-compose", "gen-compose with the built binary, ms"),
    (
        "build-context",
        "bytes Docker receives for the agents image",
    ),
    (
        "rebuild",
        "image rebuild after a one-file change, s (ratio: to a --no-cache build)",
    ),
    (
        "release-overhead",
        "release (cached build, local registry) / the same builds, tags and pushes by hand",
    ),
    (
        "upgrade-download",
        "upgrade download after a one-script change, % of the agents image (compressed)",
    ),
    (
        "release-time",
        "release wall time after a one-script change (all images, local registry), s",
    ),
    (
        "rollback",
        "AGENTS_IMAGE=<previous> disinto up agents until healthy, s",
    ),
    (
        "revert",
        "a rollout whose agents never turns healthy, reverted and healthy again, s beyond its timeout",
    ),
    (
        "peak-memory",
        "peak RSS of the xtask process during a release, MiB",
    ),
];

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub id: String,
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

/// Reads back a `bench.json`, checking it is one of ours.
pub fn parse_json(text: &str) -> Result<Vec<Figure>> {
    let figures: Vec<Figure> = serde_json::from_str(text).context("not a bench.json")?;
    for f in &figures {
        if !FIGURES.iter().any(|(id, _)| *id == f.id) {
            bail!("bench.json has an unknown figure {:?}", f.id);
        }
    }
    Ok(figures)
}

/// `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Bench {
    /// Fewer repetitions, to fit in CI
    #[arg(long)]
    pub quick: bool,
    /// Measure only these figures (comma-separated ids: cold-build, warm-start, gen-compose,
    /// build-context, rebuild, release-overhead, rollback, peak-memory)
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub only: Vec<String>,
    /// Where to write bench.json and bench.md [default: target/bench]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
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
}

impl Stage {
    fn new(root: &Path, xtask: &Path, disinto: &Path) -> Result<Stage> {
        let tmp = TempDir::new("bench-stage")?;
        let work = scratch::checkout(root, tmp.path(), "v0.0.1")?;
        let factory = tmp.path().join("factory");
        std::fs::create_dir_all(factory.join("projects"))?;
        Ok(Stage {
            work,
            factory,
            registry: Registry::start()?,
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
            .env_remove("DISINTO_MIRRORS");
        self.registry.release_env(&mut x);
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

    /// What a host running agents `old` downloads to run `new`, as % of `new`'s size: the
    /// registry's compressed layer sizes, from both manifests.
    fn download_percent(&self, old: &str, new: &str) -> Result<f64> {
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
        Ok(100.0 * new.download_from(&old) as f64 / new.size().max(1) as f64)
    }

    fn disinto_up_cmd(&self, version: &str) -> Command {
        let mut cmd = Command::new(&self.disinto);
        cmd.arg("--root")
            .arg(&self.factory)
            .args(["up", "agents"])
            .env("AGENTS_IMAGE", version)
            .env("DISINTO_REGISTRY", self.registry.namespace())
            .env("COMPOSE_PROJECT_NAME", &self.project);
        cmd
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
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains("reverted") {
            bail!("the bad rollout of {broken} was not reverted: {stderr}");
        }
        Ok(took - timeout as f64)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        testbed::compose_down(&self.project, &self.factory.join("docker-compose.yml"));
    }
}

impl Bench {
    fn wants(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == id)
    }

    pub fn run(self, sh: &Shell) -> Result<()> {
        for id in &self.only {
            if !FIGURES.iter().any(|(f, _)| f == id) {
                let ids: Vec<&str> = FIGURES.iter().map(|(f, _)| *f).collect();
                bail!("--only {id}: no such figure (figures: {})", ids.join(", "));
            }
        }
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
        let xtask = release_dir.join("xtask");
        let disinto = release_dir.join("disinto");
        let mut run = Run {
            bench: &self,
            root: root.clone(),
            xtask,
            disinto,
            figures: Vec::new(),
        };

        if self.wants("cold-build") {
            run.cold_build()?;
        }
        if self.wants("disinto-size") {
            run.disinto_size()?;
        }
        if self.wants("warm-start") {
            run.warm_start()?;
        }
        if self.wants("gen-compose") {
            run.gen_compose()?;
        }

        if ["build-context", "rebuild"]
            .iter()
            .chain(&STAGE_FIGURES)
            .any(|f| self.wants(f))
        {
            testbed::require(sh)?;
        }
        if self.wants("build-context") || self.wants("rebuild") {
            run.image_figures()?;
        }
        if STAGE_FIGURES.iter().any(|f| self.wants(f)) {
            run.stage_figures()?;
        }

        let figures = run.figures;
        let json = serde_json::to_string_pretty(&figures)?;
        disinto::fsx::write_atomic(&out_dir.join("bench.json"), format!("{json}\n").as_bytes())?;
        // Which engine the figures were measured on: they are not comparable across engines.
        let engine = testbed::Engine::read(sh);
        let engine_json = serde_json::to_string_pretty(&engine)?;
        disinto::fsx::write_atomic(
            &out_dir.join("engine.json"),
            format!("{engine_json}\n").as_bytes(),
        )?;
        let table = format!("Measured on {engine}.\n\n{}", markdown(&figures));
        disinto::fsx::write_atomic(&out_dir.join("bench.md"), table.as_bytes())?;
        println!("{table}");
        eprintln!(
            "bench: wrote {}, bench.md and engine.json",
            out_dir.join("bench.json").display()
        );
        Ok(())
    }
}

/// The figures that need a staged factory and registry.
const STAGE_FIGURES: [&str; 6] = [
    "release-overhead",
    "upgrade-download",
    "release-time",
    "rollback",
    "revert",
    "peak-memory",
];

/// One benchmark run: what every figure's measurement needs, and the figures so far.
struct Run<'a> {
    bench: &'a Bench,
    root: PathBuf,
    xtask: PathBuf,
    disinto: PathBuf,
    figures: Vec<Figure>,
}

impl Run<'_> {
    /// Repetitions: `quick` with --quick, else `full`.
    fn reps(&self, quick: usize, full: usize) -> usize {
        if self.bench.quick {
            quick
        } else {
            full
        }
    }

    fn push(
        &mut self,
        id: &str,
        samples: Vec<f64>,
        ratio: Option<f64>,
        target: &str,
        met: Option<bool>,
    ) {
        let what = FIGURES
            .iter()
            .find(|(f, _)| *f == id)
            .map(|(_, w)| *w)
            .unwrap_or(id);
        eprintln!("bench: {what}: {samples:?}");
        self.figures.push(Figure {
            id: id.into(),
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
        self.push("cold-build", samples, None, "≤ 25 s", met);
        Ok(())
    }

    /// The release disinto binary, which every agents image carries.
    fn disinto_size(&mut self) -> Result<()> {
        let bytes = std::fs::metadata(&self.disinto)
            .with_context(|| format!("cannot read {}", self.disinto.display()))?
            .len();
        let mb = bytes as f64 / 1e6;
        self.push("disinto-size", vec![mb], None, "≤ 10 MB", Some(mb <= 10.0));
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
        self.push("warm-start", samples, None, "≤ 0.5 s", met);
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
        self.push("gen-compose", samples, None, "≤ 5 ms", met);
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
        if self.bench.wants("build-context") {
            let size =
                parse_context_size(&log).context("the build log states no context size")? as f64;
            self.push(
                "build-context",
                vec![size],
                None,
                "≤ 2 MB",
                Some(size <= 2e6),
            );
        }
        if self.bench.wants("rebuild") {
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
                "rebuild",
                warm,
                ratio,
                "≤ 10% of a cold build",
                ratio.map(|r| r <= 0.10),
            );
        }
        let _ = Command::new("docker").args(["rmi", &tag]).output();
        Ok(())
    }

    /// The figures of a staged factory and registry: releases, upgrade download, rollback,
    /// revert and the release's memory.
    fn stage_figures(&mut self) -> Result<()> {
        let mut stage = Stage::new(&self.root, &self.xtask, &self.disinto)?;
        // A first release fills the build cache and the registry's blobs.
        stage.next_release(|cmd| run_ok(cmd).map(|_| ()))?;
        if self.bench.wants("peak-memory") {
            let peak = stage.next_release(peak_rss)? as f64 / (1024.0 * 1024.0);
            self.push(
                "peak-memory",
                vec![peak],
                None,
                "(no target; tracked)",
                None,
            );
        }
        if self.bench.wants("release-overhead") {
            let config = TempDir::new("bench-docker-config")?;
            crate::secret::login(
                config.path(),
                &stage.registry.addr,
                &stage.registry.user,
                &stage.registry.password,
            )?;
            let mut released = vec![];
            let mut bare = vec![];
            for i in 0..self.reps(2, 5) {
                released.push(stage.next_release(timed)?);
                // The same work by hand: the binary from a new revision, then every image
                // built, tagged and pushed; what the release adds is its bookkeeping.
                let start = Instant::now();
                let shared = scratch::shared_target(&stage.root);
                run_ok(
                    Command::new("cargo")
                        .current_dir(&stage.work)
                        .env("CARGO_TARGET_DIR", &shared)
                        .env("DISINTO_REVISION", format!("bare{i}"))
                        .args(["build", "--quiet", "--release", "--locked", "-p", "disinto"]),
                )?;
                std::fs::copy(
                    shared.join("release/disinto"),
                    stage.work.join("docker/agents/dist/disinto"),
                )?;
                let docker = |args: &[&str]| {
                    run_ok(
                        Command::new("docker")
                            .current_dir(&stage.work)
                            .env("DOCKER_CONFIG", config.path())
                            .args(args),
                    )
                };
                for image in disinto::model::image_ref::OUR_IMAGES {
                    let local = format!("disinto-{}:bare", image.name);
                    let remote = format!("{}/{}-bare", stage.registry.namespace(), image.name);
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
                    for tag in [format!("bare{i}"), "latest".into()] {
                        docker(&["tag", &local, &format!("{remote}:{tag}")])?;
                        docker(&["push", &format!("{remote}:{tag}")])?;
                    }
                }
                bare.push(seconds(start));
            }
            let ratio = median(&released).zip(median(&bare)).map(|(r, b)| r / b);
            self.push(
                "release-overhead",
                released,
                ratio,
                "ratio ≤ 1.05",
                ratio.map(|r| r <= 1.05),
            );
        }
        if self.bench.wants("upgrade-download") || self.bench.wants("release-time") {
            if stage.released.is_empty() {
                stage.next_release(|cmd| run_ok(cmd).map(|_| ()))?;
            }
            let mut times = vec![];
            let mut percents = vec![];
            for _ in 0..self.reps(1, 3) {
                stage.edit_script()?;
                times.push(stage.next_release(timed)?);
                let n = stage.released.len();
                let (old, new) = (&stage.released[n - 2], &stage.released[n - 1]);
                percents.push(stage.download_percent(old, new)?);
            }
            let met = median(&percents).map(|p| p <= 1.0);
            self.push("upgrade-download", percents, None, "≤ 1 %", met);
            self.push("release-time", times, None, "(no target; tracked)", None);
        }
        if self.bench.wants("rollback") {
            if stage.released.len() < 2 {
                stage.next_release(|cmd| run_ok(cmd).map(|_| ()))?;
            }
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
            self.push("rollback", samples, None, "≤ 3 s", met);
        }
        if self.bench.wants("revert") {
            if stage.released.is_empty() {
                stage.next_release(|cmd| run_ok(cmd).map(|_| ()))?;
            }
            let good = stage.released[stage.released.len() - 1].clone();
            stage.disinto_up(&good)?;
            // Never healthy, never unhealthy either (first check in an hour): the worst
            // case, where only the timeout ends the wait.
            let ns = stage.registry.namespace();
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
            let samples = (0..self.reps(1, 3))
                .map(|_| stage.bad_rollout(&broken, 10))
                .collect::<Result<Vec<_>>>()?;
            let met = median(&samples).map(|m| m <= 3.0);
            self.push("revert", samples, None, "≤ timeout + 3 s", met);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
    }

    #[test]
    fn table_and_json_round_trip() {
        let figures = vec![
            Figure {
                id: "gen-compose".into(),
                what: "gen-compose with the built binary, ms".into(),
                samples: vec![1.5, 1.0, 2.0],
                ratio: None,
                target: "≤ 5 ms".into(),
                met: Some(true),
            },
            Figure {
                id: "release-overhead".into(),
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
        assert_eq!(parse_json(&json).unwrap(), figures);
        assert!(parse_json(
            "[{\"id\":\"x\",\"what\":\"\",\"samples\":[],\"target\":\"\",\"met\":null}]"
        )
        .is_err());
    }
}
