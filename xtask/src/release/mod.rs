//! `cargo xtask release vX.Y.Z`: runs `formulas/release.toml` step by step, resumably.
//! Progress lives in `target/release-progress/`; the finished record in `release/vX.Y.Z.json`.

pub mod registry;
mod steps;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use xshell::{cmd, Shell};

use crate::formula::Formula;
use crate::fsx;
use crate::image_ref::{parse_registry, parse_version, AGENTS_REPOSITORY};
use crate::settings::Settings;
use crate::time::now_rfc3339;

use registry::Session;

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
    /// Reuse cached build layers (a real release builds with --no-cache)
    #[arg(long)]
    pub cache: bool,
    /// The factory directory restart-agents restarts [default: this checkout]
    #[arg(long, value_name = "DIR", env = "DISINTO_ROOT")]
    pub factory: Option<PathBuf>,
    /// Seconds restart-agents waits for the new agents to turn healthy
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub health_timeout: u64,
}

/// `cargo xtask push vX.Y.Z`: the push-image step alone, for CI jobs that build elsewhere.
#[derive(Debug, Clone, clap::Args)]
pub struct Push {
    /// The version whose image (${DISINTO_REGISTRY}/agents:vX.Y.Z) is pushed
    pub version: String,
    /// Print the commands and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

impl Push {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let release = Release {
            version: self.version,
            dry_run: self.dry_run,
            from: None,
            only: Some("push-image".into()),
            skip: vec![],
            allow_branch: true,
            no_pull: true,
            cache: true,
            factory: None,
            health_timeout: 0,
        };
        let mut ctx = Ctx::new(sh, &release)?;
        ctx.image_id = Some(ctx.local_image_id(&ctx.version_ref())?);
        steps::push_image(&mut ctx)?;
        if let Some(digest) = &ctx.digest {
            println!("{}@{digest}", ctx.image);
        }
        Ok(())
    }
}

/// One step's outcome, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

/// What survives between runs of the same release, so a re-run resumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub version: String,
    pub git_sha: String,
    #[serde(default)]
    pub image_id: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub steps: BTreeMap<String, StepRecord>,
}

impl Progress {
    fn done(&self, id: &str) -> bool {
        self.steps.get(id).is_some_and(|s| s.status == "done")
    }
}

/// The release record committed as `release/vX.Y.Z.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: String,
    pub git_sha: String,
    pub image: String,
    pub digest: Option<String>,
    pub image_id: Option<String>,
    pub steps: Vec<RecordStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordStep {
    pub id: String,
    #[serde(flatten)]
    pub record: StepRecord,
}

/// Everything the steps share.
pub(crate) struct Ctx<'a> {
    sh: &'a Shell,
    root: PathBuf,
    opts: &'a Release,
    version: String,
    prerelease: bool,
    /// `${DISINTO_REGISTRY}/agents`, resolved.
    image: String,
    /// The tag `build-image` gives the image before it gets registry names.
    local_tag: String,
    /// The steps this invocation runs.
    selected: Vec<String>,
    session: Option<Session>,
    /// Preflight looked the version up in the registry and found nothing.
    version_absent: bool,
    image_id: Option<String>,
    digest: Option<String>,
    git_sha: String,
}

impl<'a> Ctx<'a> {
    fn new(sh: &'a Shell, opts: &'a Release) -> Result<Ctx<'a>> {
        let root = sh.current_dir();
        let semver = parse_version(&opts.version)?;
        let settings = Settings::load(&root)?;
        let registry = parse_registry(settings.get("DISINTO_REGISTRY"))?;
        Ok(Ctx {
            sh,
            root,
            opts,
            version: opts.version.clone(),
            prerelease: !semver.pre.is_empty(),
            image: format!("{registry}/{AGENTS_REPOSITORY}"),
            local_tag: format!("disinto-agents:{}", opts.version),
            selected: vec![],
            session: None,
            version_absent: false,
            image_id: None,
            digest: None,
            git_sha: String::new(),
        })
    }

    fn version_ref(&self) -> String {
        format!("{}:{}", self.image, self.version)
    }

    fn latest_ref(&self) -> Option<String> {
        (!self.prerelease).then(|| format!("{}:latest", self.image))
    }

    fn will_run(&self, id: &str) -> bool {
        self.selected.iter().any(|s| s == id)
    }

    /// Runs a command that changes something, or only prints it in a dry run.
    fn exec(&self, cmd: xshell::Cmd<'_>) -> Result<()> {
        if self.opts.dry_run {
            println!("$ {cmd}");
            return Ok(());
        }
        cmd.run()?;
        Ok(())
    }

    /// Reads git state; git reads are harmless, so they run in a dry run too.
    fn git(&self, args: &[&str]) -> Result<String> {
        let out = cmd!(self.sh, "git {args...}")
            .quiet()
            .ignore_stderr()
            .read();
        out.with_context(|| format!("git {} failed", args.join(" ")))
    }

    fn local_image_id(&self, reference: &str) -> Result<String> {
        let format = "{{.Id}}";
        let out = cmd!(
            self.sh,
            "docker image inspect --format {format} {reference}"
        )
        .quiet()
        .ignore_stderr()
        .read();
        out.map(|s| s.trim().to_string()).map_err(|_| {
            anyhow::anyhow!("image {reference} is not in the local image store: build and tag it first (cargo xtask release {} --only build-image, then --only tag-image)", self.version)
        })
    }

    fn progress_path(&self) -> PathBuf {
        self.root
            .join("target/release-progress")
            .join(format!("{}.json", self.version))
    }

    fn record_path(&self) -> PathBuf {
        self.root
            .join("release")
            .join(format!("{}.json", self.version))
    }
}

fn load_progress(path: &Path) -> Result<Option<Progress>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "{} is not a release progress file: delete it to start the release over",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save_progress(path: &Path, progress: &Progress) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(progress)?;
    fsx::write_atomic(path, format!("{text}\n").as_bytes())
}

/// The steps of `formula` this invocation runs, given --from/--only/--skip.
pub fn select(formula: &Formula, opts: &Release) -> Result<Vec<String>> {
    let ids = formula.ids();
    let known = |flag: &str, id: &str| -> Result<()> {
        if ids.contains(&id) {
            Ok(())
        } else {
            bail!("{flag} {id}: no such step (steps: {})", ids.join(", "))
        }
    };
    for s in &opts.skip {
        known("--skip", s)?;
    }
    if let Some(only) = &opts.only {
        known("--only", only)?;
        return Ok(vec![only.clone()]);
    }
    let start = match &opts.from {
        Some(from) => {
            known("--from", from)?;
            ids.iter().position(|id| id == from).unwrap_or(0)
        }
        None => 0,
    };
    Ok(ids[start..]
        .iter()
        .filter(|id| !opts.skip.iter().any(|s| s == *id))
        .map(|id| id.to_string())
        .collect())
}

impl Release {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let mut ctx = Ctx::new(sh, &self)?;
        let formula = Formula::load(&ctx.root.join("formulas/release.toml"))?;
        ctx.selected = select(&formula, &self)?;
        ctx.git_sha = ctx
            .git(&["rev-parse", "HEAD"])
            .context("not a git checkout with a commit: run the release from the repository")?;

        let progress_path = ctx.progress_path();
        let mut progress = match load_progress(&progress_path)? {
            Some(p) if p.done("commit-result") => bail!(
                "{} is already released (see {}): versions are immutable, release a new one",
                self.version,
                ctx.record_path().display()
            ),
            Some(p) if p.git_sha != ctx.git_sha => bail!(
                "a release of {} was started at {} but HEAD is now {}: check out {} to finish it, or delete {} to start over",
                self.version,
                short(&p.git_sha),
                short(&ctx.git_sha),
                short(&p.git_sha),
                progress_path.display()
            ),
            Some(p) => {
                eprintln!("resuming {} (progress: {})", self.version, progress_path.display());
                p
            }
            None => Progress {
                version: self.version.clone(),
                git_sha: ctx.git_sha.clone(),
                ..Progress::default()
            },
        };
        ctx.image_id = progress.image_id.clone();
        ctx.digest = progress.digest.clone();
        if self.dry_run {
            println!(
                "# dry run: cargo xtask release {} (nothing is changed)",
                self.version
            );
        }

        let total = formula.steps.len();
        for (index, step) in formula.steps.iter().enumerate() {
            let id = step.id.as_str();
            let n = index + 1;
            if !ctx.will_run(id) {
                if !progress.steps.contains_key(id) {
                    progress.steps.insert(
                        id.to_string(),
                        StepRecord {
                            status: "skipped".into(),
                            started: None,
                            finished: None,
                        },
                    );
                }
                eprintln!("[{n}/{total}] {id}: skipped");
                continue;
            }
            // A built image that vanished from the local store before it was pushed is built
            // again, and tagged again; once pushed, the registry has it and nothing needs it.
            let rebuild = id == "build-image"
                && progress.done(id)
                && !progress.done("push-image")
                && !ctx.built_image_present();
            if rebuild {
                eprintln!(
                    "  the image built earlier is gone from the local store: building it again"
                );
                progress.steps.remove("tag-image");
            }
            if progress.done(id) && !rebuild {
                eprintln!("[{n}/{total}] {id}: done earlier");
                continue;
            }
            if self.dry_run {
                println!("\n# [{n}/{total}] {id}: {}", step.title);
            } else {
                eprintln!("[{n}/{total}] {id}: {}", step.title);
            }
            let started = now_rfc3339();
            let result = steps::run(id, &mut ctx, &mut progress, &started);
            progress.image_id = ctx.image_id.clone();
            progress.digest = ctx.digest.clone();
            let status = if result.is_ok() { "done" } else { "failed" };
            progress.steps.insert(
                id.to_string(),
                StepRecord {
                    status: status.into(),
                    started: Some(started),
                    finished: Some(now_rfc3339()),
                },
            );
            // A failed preflight changed nothing: leave no progress behind either.
            let nothing_done = id == "preflight" && result.is_err();
            if !self.dry_run && !nothing_done {
                save_progress(&progress_path, &progress)?;
            }
            if let Err(e) = result {
                if self.dry_run || nothing_done {
                    return Err(e);
                }
                return Err(e.context(format!(
                    "step {id} failed; fix the cause and run `cargo xtask release {}` again to resume from it",
                    self.version
                )));
            }
        }
        if self.dry_run {
            println!("\n# dry run complete: nothing was changed");
        } else {
            eprintln!("release {}: {}", self.version, ctx.version_ref());
        }
        Ok(())
    }
}

impl Ctx<'_> {
    fn built_image_present(&self) -> bool {
        self.opts.dry_run
            || self
                .image_id
                .as_deref()
                .is_some_and(|id| self.local_image_id(id).is_ok())
    }

    /// The release record as it stands, with every formula step in order.
    fn record(&self, progress: &Progress, order: &[String]) -> Record {
        Record {
            version: self.version.clone(),
            git_sha: self.git_sha.clone(),
            image: self.version_ref(),
            digest: self.digest.clone(),
            image_id: self.image_id.clone(),
            steps: order
                .iter()
                .map(|id| RecordStep {
                    id: id.clone(),
                    record: progress.steps.get(id).cloned().unwrap_or(StepRecord {
                        status: "skipped".into(),
                        started: None,
                        finished: None,
                    }),
                })
                .collect(),
        }
    }
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
            cache: false,
            factory: None,
            health_timeout: 1,
        }
    }

    fn formula() -> Formula {
        Formula::load(&crate::project_root().join("formulas/release.toml")).unwrap()
    }

    #[test]
    fn selection_follows_the_formula_and_the_flags() {
        let f = formula();
        assert_eq!(select(&f, &opts()).unwrap().len(), 8);
        let o = Release {
            skip: vec!["restart-agents".into(), "push-mirrors".into()],
            ..opts()
        };
        assert_eq!(
            select(&f, &o).unwrap(),
            [
                "preflight",
                "tag-main",
                "build-image",
                "tag-image",
                "push-image",
                "commit-result"
            ]
        );
        let o = Release {
            from: Some("push-image".into()),
            ..opts()
        };
        assert_eq!(
            select(&f, &o).unwrap(),
            ["push-image", "restart-agents", "commit-result"]
        );
        let o = Release {
            only: Some("tag-image".into()),
            ..opts()
        };
        assert_eq!(select(&f, &o).unwrap(), ["tag-image"]);
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
    fn progress_round_trips() {
        let dir = fsx::TempDir::new("progress").unwrap();
        let path = dir.path().join("a/b/v0.2.0.json");
        assert_eq!(load_progress(&path).unwrap(), None);
        let mut p = Progress {
            version: "v0.2.0".into(),
            git_sha: "abc".into(),
            ..Progress::default()
        };
        p.steps.insert(
            "preflight".into(),
            StepRecord {
                status: "done".into(),
                started: Some("t0".into()),
                finished: Some("t1".into()),
            },
        );
        save_progress(&path, &p).unwrap();
        let back = load_progress(&path).unwrap().unwrap();
        assert_eq!(back, p);
        assert!(back.done("preflight") && !back.done("tag-main"));
        std::fs::write(&path, "{").unwrap();
        assert!(format!("{:#}", load_progress(&path).unwrap_err()).contains("delete it"));
    }
}
