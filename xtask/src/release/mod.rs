//! `cargo xtask release vX.Y.Z`: runs `formulas/release.toml` step by step, resumably.
//! The plan (what this invocation runs) is fixed before the first step; the state (progress,
//! the registry session) changes as steps run; one runner prints or executes every command.

mod bundle;
pub mod config;
mod formula;
mod index;
pub mod latest;
pub(crate) mod packages;
pub mod provenance;
pub mod refname;
pub mod registry;
pub mod sbom;
pub(crate) mod sign;
mod state;
pub mod step;
mod steps;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use disinto::engine::Runner;
use disinto::model::config::Settings;
use disinto::model::image_ref::{parse_version, OurImage, OUR_IMAGES};
use disinto::model::platform::Platform;
use disinto::model::time::now_rfc3339;
use xshell::{cmd, Shell};

use crate::{Checkout, RELEASE_PROGRESS, RELEASE_RECORDS};
use config::ReleaseConfig;
use formula::{Formula, FormulaStep};
use latest::Latest;
use registry::Session;
pub use state::{Attestation, BaseImage, Progress, Record, RecordStep, Signature, StepRecord};
use step::{Status, Step};
pub use steps::build_lock;

/// `cargo xtask release`.
#[derive(Debug, Clone, clap::Args)]
pub struct Release {
    /// The version to release: 'v' plus a semantic version, e.g. v0.2.0
    pub version: String,
    /// Print every command the release would run, in order, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Start at STEP (earlier steps must be done or are left out)
    #[arg(long, value_name = "STEP", conflicts_with = "only")]
    pub from: Option<String>,
    /// Run STEP alone
    #[arg(long, value_name = "STEP")]
    pub only: Option<String>,
    /// Leave STEP out (repeatable), e.g. --skip restart-agents in CI
    #[arg(long, value_name = "STEP")]
    pub skip: Vec<String>,
    /// Release from a branch other than the primary one
    #[arg(long)]
    pub allow_branch: bool,
    /// Build on the local base image instead of pulling a fresh one
    #[arg(long)]
    pub no_pull: bool,
    /// Rebuild every layer, packages included (--no-cache); by default the previous
    /// release's unchanged layers are reused, and a new base image rebuilds them anyway
    #[arg(long)]
    pub refresh_packages: bool,
    /// Release without signing: no signature, SBOM or provenance, no key built into the
    /// disinto binary, and the record says unsigned (COSIGN_PRIVATE_KEY is then not needed)
    #[arg(long)]
    pub unsigned: bool,
    /// Accepted for older scripts: reusing cached layers is now the default
    #[arg(long, hide = true)]
    pub cache: bool,
    /// The factory directory restart-agents restarts [default: this checkout]
    #[arg(long, value_name = "DIR", env = "DISINTO_ROOT")]
    pub factory: Option<PathBuf>,
    /// Seconds restart-agents waits for the new agents to turn healthy
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub health_timeout: u64,
    /// Seconds restart-agents watches the new agents once healthy (0: no watch)
    #[arg(
        long,
        value_name = "SECONDS",
        env = "DISINTO_WATCH",
        default_value_t = 30
    )]
    pub watch: u64,
}

/// `cargo xtask push vX.Y.Z`: the push-image step alone, for CI jobs that build elsewhere.
#[derive(Debug, Clone, clap::Args)]
pub struct Push {
    /// The version whose images (${DISINTO_REGISTRY}/{agents,edge,reproduce}:vX.Y.Z) are pushed
    pub version: String,
    /// Print the commands and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

impl Push {
    /// The release loop restricted to push-image, on an image that is already tagged.
    pub fn run(self, sh: &Shell) -> Result<()> {
        let checkout = Checkout::of(sh);
        parse_release_version(&self.version)?;
        // The tags of this checkout and its records only: a push touches no git remote.
        let released = released_versions(sh, checkout.root(), false)?;
        let platforms = Formula::load(&checkout.formula())?.platforms;
        let plan = Plan::new(
            checkout,
            &self.version,
            vec![Step::PushImage],
            &released,
            platforms,
        )?;
        eprintln!("{}", plan.latest);
        let mut run = Run::new(sh, plan, Options::push(self.dry_run));
        steps::run(Step::PushImage, &mut run)?;
        for image in &run.plan.images {
            if let Some(digest) = run.state.progress.image(image.name()).digest {
                println!("{}@{digest}", image.repository);
            }
        }
        Ok(())
    }
}

/// How the steps behave, beyond which of them run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub dry_run: bool,
    pub allow_branch: bool,
    pub no_pull: bool,
    pub refresh_packages: bool,
    /// `--unsigned`: sign-image is left out and nothing needs the key.
    pub unsigned: bool,
    pub factory: Option<PathBuf>,
    pub health_timeout: u64,
    pub watch: u64,
}

impl Options {
    fn push(dry_run: bool) -> Options {
        Options {
            dry_run,
            allow_branch: true,
            no_pull: true,
            refresh_packages: false,
            // `cargo xtask push` pushes alone; `release --only sign-image` signs.
            unsigned: true,
            factory: None,
            health_timeout: 0,
            watch: 0,
        }
    }
}

/// One image the release builds, tags and pushes.
pub(crate) struct ReleaseImage {
    pub image: OurImage,
    /// `${DISINTO_REGISTRY}/NAME`, resolved.
    pub repository: String,
    /// The tag `build-image` gives the image before it gets registry names.
    pub local_tag: String,
    /// `REPOSITORY:vX.Y.Z`.
    pub version_ref: String,
    /// `REPOSITORY:latest`, when this release moves latest (see [`Latest`]).
    pub latest_ref: Option<String>,
}

impl ReleaseImage {
    pub fn name(&self) -> &'static str {
        self.image.name
    }

    /// The local tag build-image gives `unit`'s image: the plain one for a one-platform
    /// release, else one per platform (`disinto-agents:linux-arm64-v0.2.0`).
    pub fn local_tag_of(&self, unit: &Unit) -> String {
        match unit.multi {
            false => self.local_tag.clone(),
            true => state::platform_reference(&self.local_tag, &unit.platform),
        }
    }

    /// Where `unit`'s image goes: the version tag for a one-platform release, else the
    /// platform's own (`REPOSITORY:linux-arm64-v0.2.0`).
    pub fn unit_ref(&self, unit: &Unit) -> String {
        match unit.multi {
            false => self.version_ref.clone(),
            true => state::platform_reference(&self.version_ref, &unit.platform),
        }
    }

    /// Every tag `unit`'s image gets: its reference and, when latest moves, the platform's
    /// latest (`REPOSITORY:linux-arm64-latest`, where the next release finds its packages).
    pub fn unit_refs(&self, unit: &Unit) -> Vec<String> {
        match unit.multi {
            false => self.refs(),
            true => {
                let mut refs = vec![self.unit_ref(unit)];
                if let Some(latest) = &self.latest_ref {
                    refs.push(state::platform_reference(latest, &unit.platform));
                }
                refs
            }
        }
    }

    /// The version tag and, for a full release, latest.
    pub fn refs(&self) -> Vec<String> {
        let mut refs = vec![self.version_ref.clone()];
        refs.extend(self.latest_ref.clone());
        refs
    }
}

/// One image for one platform: what build-image builds, tag-image tags and push-image pushes.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    /// The image's index in [`Plan::images`].
    pub image: usize,
    pub platform: Platform,
    /// Whether the release has several platforms (per-platform tags and an image index).
    pub multi: bool,
}

impl Unit {
    /// `TAG` of this platform: `linux-arm64-TAG`.
    pub fn tag(&self, tag: &str) -> String {
        format!("{}-{tag}", self.platform.tag_part())
    }

    /// The key of its progress among the image's platforms; none for a one-platform release.
    pub fn key(&self) -> Option<String> {
        self.multi.then(|| self.platform.to_string())
    }
}

/// What this invocation does: fixed before the first step runs.
pub(crate) struct Plan {
    pub checkout: Checkout,
    pub config: ReleaseConfig,
    pub version: String,
    /// Whether latest moves to this release: only when it is the highest full release.
    pub latest: Latest,
    /// Every image of the release, agents first.
    pub images: Vec<ReleaseImage>,
    /// The platforms each image is built for, in order (DISINTO_PLATFORMS, else the
    /// formula's, else linux/amd64).
    pub platforms: Vec<Platform>,
    /// The steps this invocation runs, in release order.
    pub steps: Vec<Step>,
}

impl Plan {
    /// The plan of releasing `version`, given the versions released so far.
    fn new(
        checkout: Checkout,
        version: &str,
        steps: Vec<Step>,
        released: &[semver::Version],
        formula_platforms: Option<Vec<Platform>>,
    ) -> Result<Plan> {
        let semver = parse_release_version(version)?;
        let config = ReleaseConfig::from_settings(&Settings::load(checkout.root())?)?;
        let latest = Latest::decide(&semver, released);
        let images = OUR_IMAGES
            .into_iter()
            .map(|image| {
                let repository = format!("{}/{}", config.registry, image.name);
                ReleaseImage {
                    image,
                    local_tag: format!("disinto-{}:{version}", image.name),
                    version_ref: format!("{repository}:{version}"),
                    latest_ref: latest.moves().then(|| format!("{repository}:latest")),
                    repository,
                }
            })
            .collect();
        let platforms = match (&config.platforms, formula_platforms) {
            (Some(set), _) => set.clone(),
            (None, Some(formula)) => formula,
            (None, None) => vec![Platform::parse("linux/amd64")?],
        };
        Ok(Plan {
            checkout,
            config,
            version: version.to_string(),
            latest,
            images,
            platforms,
            steps,
        })
    }

    /// The registry host every image goes to.
    pub fn registry_host(&self) -> String {
        disinto::model::image_ref::registry_host(&self.config.registry)
    }

    /// Each image's name and version reference, for the record.
    pub fn references(&self) -> Vec<(&'static str, String)> {
        self.images
            .iter()
            .map(|i| (i.name(), i.version_ref.clone()))
            .collect()
    }

    /// Whether images are built for several platforms (and pushed as image indexes).
    pub fn multi(&self) -> bool {
        self.platforms.len() > 1
    }

    /// Every image for every platform: agents first, each image's platforms in order.
    pub fn units(&self) -> Vec<Unit> {
        (0..self.images.len())
            .flat_map(|image| {
                self.platforms.iter().map(move |p| Unit {
                    image,
                    platform: p.clone(),
                    multi: self.multi(),
                })
            })
            .collect()
    }

    pub fn will_run(&self, step: Step) -> bool {
        self.steps.contains(&step)
    }

    pub fn root(&self) -> &Path {
        self.checkout.root()
    }

    fn progress_path(&self) -> PathBuf {
        self.root()
            .join(RELEASE_PROGRESS)
            .join(format!("{}.json", self.version))
    }

    pub fn record_relative(&self) -> String {
        format!("{RELEASE_RECORDS}/{}.json", self.version)
    }

    pub fn record_path(&self) -> PathBuf {
        self.root().join(self.record_relative())
    }
}

/// What changes while the steps run.
#[derive(Default)]
pub(crate) struct State {
    pub progress: Progress,
    pub session: Option<Session>,
    /// Preflight looked the version up in the registry and found nothing.
    pub version_absent: bool,
    /// In a dry run: what would stop the real run (the plan is still printed to the end).
    pub would_fail: Vec<String>,
    /// The release key's public half, once cosign has been asked for it.
    pub key: Option<sign::ReleaseKey>,
}

/// One invocation: the plan, its state, and the runner.
pub(crate) struct Run<'a> {
    pub plan: Plan,
    pub opts: Options,
    pub state: State,
    pub runner: Runner<'a>,
}

impl<'a> Run<'a> {
    fn new(sh: &'a Shell, plan: Plan, opts: Options) -> Run<'a> {
        Run {
            runner: Runner::new(sh, opts.dry_run),
            plan,
            opts,
            state: State::default(),
        }
    }

    pub fn sh(&self) -> &'a Shell {
        self.runner.sh
    }

    /// Reads git state; git reads are harmless, so they run in a dry run too.
    pub fn git(&self, args: &[&str]) -> Result<String> {
        let sh = self.sh();
        let out = cmd!(sh, "git {args...}").quiet().ignore_stderr().read();
        out.with_context(|| format!("git {} failed", args.join(" ")))
    }

    /// The registry session (logged in with the token on stdin), opened on first use.
    pub fn session(&mut self) -> Result<&Session> {
        if self.state.session.is_none() {
            let host = self.plan.registry_host().to_string();
            let credentials = self.plan.config.credentials()?;
            let attempts = self.plan.config.push_attempts;
            self.state.session = Some(Session::login(&host, credentials, attempts)?);
        }
        self.state.session.as_ref().context("no registry session")
    }

    pub fn local_image_id(&self, reference: &str) -> Result<String> {
        disinto::engine::docker::image_id(reference).with_context(|| {
            format!("image {reference} is not in the local image store: build and tag it first (cargo xtask release {} --only build-image, then --only tag-image)", self.plan.version)
        })
    }

    /// The images whose progress lacks something (`lacks` says what), by name, in order.
    pub fn images_lacking(
        &self,
        lacks: impl Fn(&state::ImageProgress) -> bool,
    ) -> Vec<&'static str> {
        self.plan
            .images
            .iter()
            .map(|i| i.name())
            .filter(|name| lacks(&self.state.progress.image(name)))
            .collect()
    }

    /// Whether every image build-image made is still in the local store.
    fn built_images_present(&self) -> bool {
        self.opts.dry_run
            || self.plan.units().iter().all(|u| {
                self.state
                    .progress
                    .unit(self.plan.images[u.image].name(), u.key().as_deref())
                    .image_id
                    .as_deref()
                    .is_some_and(disinto::engine::docker::image_present)
            })
    }
}

/// Parses a version to release: a release version ([`parse_version`]: semver, a Docker tag)
/// that git can also tag, or a one-line error naming it.
pub fn parse_release_version(version: &str) -> Result<semver::Version> {
    let semver = parse_version(version)?;
    if let Some(why) = refname::tag_problem(version) {
        bail!("version {version:?} cannot be a git tag ({why}): release another version");
    }
    Ok(semver)
}

/// The versions released so far, as far as this checkout can tell: its tags, origin's tags
/// (with `read_origin`) and its release records (`release/*.json`). Tags come first because
/// they are the repository's, whatever branch is checked out: a backport is released from a
/// maintenance branch that lacks main's newer records, but sees their tags. Names that are not
/// release versions are left out.
fn released_versions(sh: &Shell, root: &Path, read_origin: bool) -> Result<Vec<semver::Version>> {
    let git = |args: &[&str]| cmd!(sh, "git {args...}").quiet().ignore_stderr().read();
    let tags = git(&["tag", "--list"])
        .context("cannot list the git tags: run the release from a git checkout")?;
    let mut names: Vec<String> = tags.lines().map(str::to_string).collect();
    let remotes = git(&["remote"]).unwrap_or_default();
    if read_origin && remotes.lines().any(|r| r.trim() == "origin") {
        let listed = git(&["ls-remote", "--tags", "--refs", "origin"]).map_err(|_| {
            anyhow::anyhow!("cannot read origin's tags (git ls-remote --tags origin): latest only moves to the highest release, so the release must know every release; check the remote and your access")
        })?;
        names.extend(listed.lines().filter_map(|line| {
            let (_, name) = line.split_once('\t')?;
            name.strip_prefix("refs/tags/").map(str::to_string)
        }));
    }
    let records = root.join(RELEASE_RECORDS);
    if let Ok(entries) = std::fs::read_dir(&records) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(version) = file.strip_suffix(".json") {
                names.push(version.to_string());
            }
        }
    }
    Ok(names
        .iter()
        .filter_map(|name| parse_version(name.trim()).ok())
        .collect())
}

/// Parses a `--from`/`--only`/`--skip` value.
fn parse_step(flag: &str, id: &str) -> Result<Step> {
    Step::from_id(id).with_context(|| format!("{flag} {id}: no such step (steps: {})", Step::ids()))
}

/// The steps of `formula` this invocation runs, given --from/--only/--skip.
pub fn select(formula: &Formula, opts: &Release) -> Result<Vec<Step>> {
    let skip = opts
        .skip
        .iter()
        .map(|s| parse_step("--skip", s))
        .collect::<Result<Vec<_>>>()?;
    if let Some(only) = &opts.only {
        let only = parse_step("--only", only)?;
        if only == Step::SignImage && opts.unsigned {
            bail!("--only sign-image and --unsigned contradict each other: leave one out");
        }
        return Ok(vec![only]);
    }
    let from = match &opts.from {
        Some(from) => Some(parse_step("--from", from)?),
        None => None,
    };
    Ok(formula
        .steps
        .iter()
        .map(|s| s.step)
        .filter(|s| from.is_none_or(|from| *s >= from))
        .filter(|s| !skip.contains(s))
        .filter(|s| !(opts.unsigned && *s == Step::SignImage))
        .collect())
}

impl Release {
    fn options(&self) -> Options {
        Options {
            dry_run: self.dry_run,
            allow_branch: self.allow_branch,
            no_pull: self.no_pull,
            refresh_packages: self.refresh_packages,
            unsigned: self.unsigned,
            factory: self.factory.clone(),
            health_timeout: self.health_timeout,
            watch: self.watch,
        }
    }

    pub fn run(self, sh: &Shell) -> Result<()> {
        let checkout = Checkout::of(sh);
        let formula = Formula::load(&checkout.formula())?;
        let steps = select(&formula, &self)?;
        parse_release_version(&self.version)?;
        let released = released_versions(sh, checkout.root(), true)?;
        let plan = Plan::new(
            checkout,
            &self.version,
            steps,
            &released,
            formula.platforms.clone(),
        )?;
        let mut run = Run::new(sh, plan, self.options());
        let git_sha = run
            .git(&["rev-parse", "HEAD"])
            .context("not a git checkout with a commit: run the release from the repository")?
            .trim()
            .to_string();
        let progress_path = run.plan.progress_path();
        run.state.progress = self.resume_or_start(&run.plan, &progress_path, git_sha)?;
        if self.dry_run {
            println!(
                "# dry run: cargo xtask release {} (nothing is changed)",
                self.version
            );
            println!("# {}", run.plan.latest);
        }
        let total = formula.steps.len();
        for (index, fstep) in formula.steps.iter().enumerate() {
            disinto::signals::check()?;
            let label = format!("[{}/{total}] {}", index + 1, fstep.step);
            if needs_running(&mut run, fstep.step, &label) {
                self.run_step(&mut run, fstep, &label, &progress_path)?;
            }
        }
        self.finish(&run)
    }

    /// The progress of an unfinished release of this version at `git_sha`, or a fresh one;
    /// refuses a finished version and a release started at another commit.
    fn resume_or_start(
        &self,
        plan: &Plan,
        progress_path: &Path,
        git_sha: String,
    ) -> Result<Progress> {
        Ok(match Progress::load(progress_path)? {
            Some(p) if p.done(Step::CommitResult) => bail!(
                "{} is already released (see {}): versions are immutable, release a new one",
                self.version,
                plan.record_path().display()
            ),
            Some(p) if p.git_sha != git_sha => bail!(
                "a release of {} was started at {} but HEAD is now {}: check out {} to finish it, or delete {} to start over",
                self.version,
                short(&p.git_sha),
                short(&git_sha),
                short(&p.git_sha),
                progress_path.display()
            ),
            Some(p) => {
                eprintln!("resuming {} (progress: {})", self.version, progress_path.display());
                p
            }
            None => Progress {
                version: self.version.clone(),
                git_sha,
                ..Progress::default()
            },
        })
    }

    /// Runs `fstep`, recording its outcome in the progress (saved unless this is a dry run
    /// or a failed preflight); a failure says how to resume.
    fn run_step(
        &self,
        run: &mut Run,
        fstep: &FormulaStep,
        label: &str,
        progress_path: &Path,
    ) -> Result<()> {
        let step = fstep.step;
        if self.dry_run {
            println!("\n# {label}: {}", fstep.title);
        } else {
            eprintln!("{label}: {}", fstep.title);
        }
        let started = now_rfc3339();
        run.state.progress.steps.insert(
            step,
            StepRecord {
                status: Status::Failed,
                started: Some(started.clone()),
                finished: None,
            },
        );
        let result = steps::run(step, run);
        let status = if result.is_ok() {
            Status::Done
        } else {
            Status::Failed
        };
        run.state.progress.steps.insert(
            step,
            StepRecord {
                status,
                started: Some(started),
                finished: Some(now_rfc3339()),
            },
        );
        // A failed preflight changed nothing: leave no progress behind either.
        let nothing_done = step == Step::Preflight && result.is_err();
        if !self.dry_run && !nothing_done {
            run.state.progress.save(progress_path)?;
        }
        result.map_err(|e| {
            if self.dry_run || nothing_done {
                return e;
            }
            e.context(format!(
                "step {step} failed; fix the cause and run `cargo xtask release {}` again to resume from it",
                self.version
            ))
        })
    }

    /// The closing lines: what a dry run found, or the references released.
    fn finish(&self, run: &Run) -> Result<()> {
        if self.dry_run {
            if let Some(first) = run.state.would_fail.first() {
                println!("\n# dry run complete: nothing was changed, but the release would fail");
                bail!(
                    "dry run: the release would fail ({} problem(s)): {first}",
                    run.state.would_fail.len()
                );
            }
            println!("\n# dry run complete: nothing was changed");
        } else {
            let refs: Vec<&str> = run
                .plan
                .images
                .iter()
                .map(|i| i.version_ref.as_str())
                .collect();
            eprintln!("release {}: {}", self.version, refs.join(", "));
        }
        Ok(())
    }
}

/// Whether `step` runs now: not when the plan leaves it out (recorded as skipped) or it was
/// done earlier, unless its image has to be built again.
fn needs_running(run: &mut Run, step: Step, label: &str) -> bool {
    if !run.plan.will_run(step) {
        run.state
            .progress
            .steps
            .entry(step)
            .or_insert_with(StepRecord::skipped);
        eprintln!("{label}: skipped");
        return false;
    }
    // A built image that vanished from the local store before it was pushed is built
    // again, and tagged again; once pushed, the registry has it and nothing needs it.
    let progress = &run.state.progress;
    let rebuild = step == Step::BuildImage
        && progress.done(step)
        && !progress.done(Step::PushImage)
        && !run.built_images_present();
    let progress = &mut run.state.progress;
    if rebuild {
        eprintln!("  the image built earlier is gone from the local store: building it again");
        progress.steps.remove(&Step::TagImage);
    }
    if progress.done(step) && !rebuild {
        eprintln!("{label}: done earlier");
        return false;
    }
    true
}

fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Release {
        Release {
            version: "v0.2.0".into(),
            dry_run: true,
            from: None,
            only: None,
            skip: vec![],
            allow_branch: false,
            no_pull: false,
            refresh_packages: false,
            unsigned: false,
            cache: false,
            factory: None,
            health_timeout: 1,
            watch: 0,
        }
    }

    fn formula() -> Formula {
        Formula::load(&crate::project_root().join(crate::FORMULA)).unwrap()
    }

    fn ids(steps: Vec<Step>) -> Vec<&'static str> {
        steps.into_iter().map(Step::id).collect()
    }

    #[test]
    fn selection_follows_the_formula_and_the_flags() {
        let f = formula();
        assert_eq!(select(&f, &opts()).unwrap(), Step::ALL);
        let o = Release {
            skip: vec!["restart-agents".into(), "push-mirrors".into()],
            ..opts()
        };
        assert_eq!(
            ids(select(&f, &o).unwrap()),
            [
                "preflight",
                "tag-main",
                "build-image",
                "tag-image",
                "push-image",
                "sign-image",
                "commit-result",
                "publish-bundle"
            ]
        );
        let o = Release {
            from: Some("push-image".into()),
            ..opts()
        };
        assert_eq!(
            ids(select(&f, &o).unwrap()),
            [
                "push-image",
                "sign-image",
                "restart-agents",
                "commit-result",
                "publish-bundle"
            ]
        );
        let o = Release {
            from: Some("push-image".into()),
            unsigned: true,
            ..opts()
        };
        assert_eq!(
            ids(select(&f, &o).unwrap()),
            [
                "push-image",
                "restart-agents",
                "commit-result",
                "publish-bundle"
            ]
        );
        let o = Release {
            only: Some("tag-image".into()),
            ..opts()
        };
        assert_eq!(ids(select(&f, &o).unwrap()), ["tag-image"]);
    }

    #[test]
    fn unknown_step_flags_are_one_line_errors() {
        let f = formula();
        for o in [
            Release {
                skip: vec!["restart".into()],
                ..opts()
            },
            Release {
                only: Some("push".into()),
                ..opts()
            },
            Release {
                from: Some("nope".into()),
                ..opts()
            },
        ] {
            let e = format!("{:#}", select(&f, &o).unwrap_err());
            assert!(
                e.contains(": no such step (steps: preflight, tag-main"),
                "{e}"
            );
        }
    }

    #[test]
    fn unsigned_leaves_sign_image_out_and_cannot_be_asked_to_sign() {
        let f = formula();
        let unsigned = Release {
            unsigned: true,
            ..opts()
        };
        assert!(!select(&f, &unsigned).unwrap().contains(&Step::SignImage));
        let only = Release {
            only: Some("sign-image".into()),
            unsigned: true,
            ..opts()
        };
        let e = format!("{:#}", select(&f, &only).unwrap_err());
        assert!(e.contains("contradict"), "{e}");
    }
}
