//! A factory directory (`.env`, `docker-compose.yml`, `projects/`, `state/`) and the compose
//! calls on it. Not a source checkout: a factory may be a directory holding only `.env`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::fsx::{self, Written};
use crate::model::compose::{generate, ComposeInput, AGENTS_DOCKERFILE};
use crate::model::config::{FactoryConfig, Settings};
use crate::model::image_ref::AgentsImage;

/// The compose file of a factory, relative to its directory.
pub const COMPOSE_FILE: &str = "docker-compose.yml";
/// The operator's settings file, relative to the factory directory.
pub const DOTENV_FILE: &str = ".env";
/// The agents' project configuration, bind-mounted into agents and runner.
pub const PROJECTS_DIR: &str = "projects";

/// A factory directory, opened: its path and its validated configuration.
pub struct Factory {
    pub dir: PathBuf,
    pub config: FactoryConfig,
}

impl Factory {
    /// Opens `dir` and validates its configuration (one line naming a bad variable).
    pub fn open(dir: &Path) -> Result<Factory> {
        let dir = checked_dir(dir)?;
        let config = FactoryConfig::from_settings(&Settings::load(&dir)?)?;
        Ok(Factory { dir, config })
    }

    /// Opens `dir` for commands that only stop the factory or read its state (`down`,
    /// `history`): a bad setting in `.env` must not keep the operator from stopping it. The
    /// configuration is the validated one when it is valid, else dev mode's defaults,
    /// which such commands do not use.
    pub fn open_to_stop(dir: &Path) -> Result<Factory> {
        let dir = checked_dir(dir)?;
        let config = Settings::load(&dir)
            .and_then(|s| FactoryConfig::from_settings(&s))
            .unwrap_or_else(|_| FactoryConfig {
                agents: AgentsImage::Dev,
                agents_origin: crate::model::config::Origin::Unset,
                agents_in_dotenv: None,
                registry: crate::model::image_ref::DEFAULT_REGISTRY.to_string(),
                agent_cli: None,
            });
        Ok(Factory { dir, config })
    }

    pub fn compose_file(&self) -> PathBuf {
        self.dir.join(COMPOSE_FILE)
    }

    /// Whether this factory can build from source (dev mode, and services with `build:`).
    pub fn is_checkout(&self) -> bool {
        self.dir.join(AGENTS_DOCKERFILE).is_file()
    }

    /// Dev mode needs the sources; say so before anything is written or started.
    pub fn require_build_context(&self) -> Result<()> {
        require_build_context(&self.dir, &self.config.agents)
    }

    /// `docker compose` on this factory, with `args` appended.
    pub fn compose<'a>(&self, sh: &'a Shell, args: &[&str]) -> xshell::Cmd<'a> {
        let file = self.compose_file();
        let dir = &self.dir;
        cmd!(
            sh,
            "docker compose --file {file} --project-directory {dir} {args...}"
        )
    }

    /// Writes the compose file for `input` (atomically, only when it changes).
    pub fn write_compose(&self, input: &ComposeInput) -> Result<Written> {
        let written = fsx::write_if_changed(&self.compose_file(), &generate(input)?)?;
        let verb = match written {
            Written::Generated => "Generated",
            Written::Unchanged => "Unchanged",
        };
        eprintln!(
            "{verb} {} ({})",
            self.compose_file().display(),
            input.agents
        );
        Ok(written)
    }

    /// The id of the container running `service`.
    pub fn container(&self, sh: &Shell, service: &str) -> Result<String> {
        let id = self
            .compose(sh, &["ps", "--quiet", service])
            .quiet()
            .read()
            .with_context(|| format!("cannot list the {service} container"))?;
        let id = id.trim().to_string();
        if id.is_empty() {
            bail!(
                "no {service} container is running in {}",
                self.dir.display()
            );
        }
        Ok(id)
    }

    /// The id of the container running `service`, if one runs.
    pub fn running(&self, sh: &Shell, service: &str) -> Option<String> {
        let id = self
            .compose(sh, &["ps", "--quiet", service])
            .quiet()
            .ignore_stderr()
            .read()
            .ok()?;
        let id = id.trim().to_string();
        (!id.is_empty()).then_some(id)
    }

    /// Waits until `container` is healthy; fails early when it exits, restarts or turns
    /// unhealthy. Docker runs the first health check one interval after start (10 s for
    /// agents, and engines before 25 have no start interval), so this also runs the image's
    /// own health command right away, once a second, and takes its success as healthy.
    pub fn wait_healthy(&self, sh: &Shell, container: &str, limit: Duration) -> Result<()> {
        let start = Instant::now();
        let probe = health_probe(container);
        let mut last_probe: Option<Instant> = None;
        // Restarts count from now: a container compose left as it was may have recovered
        // from a crash long ago.
        let mut restarts_before: Option<String> = None;
        let format = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}}";
        loop {
            let state = cmd!(sh, "docker inspect --format {format} {container}")
                .quiet()
                .read()
                .with_context(|| format!("cannot inspect container {container}"))?;
            let fields: Vec<&str> = state.split_whitespace().collect();
            let before = restarts_before
                .get_or_insert_with(|| fields.get(2).map(|r| r.to_string()).unwrap_or_default());
            match fields.as_slice() {
                [_, _, restarts] if restarts != before => bail!(
                    "container {} restarted (it exited): see `docker logs {container}`",
                    short(container)
                ),
                [_, "healthy", _] => return Ok(()),
                ["running", "none", _] => return Ok(()),
                [_, "unhealthy", _] => bail!(
                    "container {} turned unhealthy: see `docker logs {container}`",
                    short(container)
                ),
                ["exited" | "dead" | "restarting", _, _] => bail!(
                    "container {} exited: see `docker logs {container}`",
                    short(container)
                ),
                ["running", "starting", _] => {
                    let due = last_probe.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                    if let (true, Some(args)) = (due, &probe) {
                        last_probe = Some(Instant::now());
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        // A hanging health command must not hang the rollout.
                        let left = limit.saturating_sub(start.elapsed());
                        let budget = left.min(Duration::from_secs(5));
                        if crate::engine::docker::run_for(&args, budget).is_ok() {
                            return Ok(());
                        }
                    }
                }
                _ => {}
            }
            if start.elapsed() >= limit {
                bail!(
                    "container {} is not healthy after {}s ({}): see `docker logs {container}`",
                    short(container),
                    limit.as_secs(),
                    state.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// `docker exec` arguments that run `container`'s own health check command, if it has one.
fn health_probe(container: &str) -> Option<Vec<String>> {
    let json = crate::engine::docker::run(&[
        "inspect",
        "--format",
        "{{json .Config.Healthcheck}}",
        container,
    ])
    .ok()?;
    let value: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    let test: Vec<String> = value["Test"]
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut args = vec!["exec".to_string(), container.to_string()];
    match test.split_first()? {
        (kind, rest) if kind == "CMD" && !rest.is_empty() => args.extend(rest.iter().cloned()),
        (kind, [command]) if kind == "CMD-SHELL" => {
            args.extend(["/bin/sh".into(), "-c".into(), command.clone()])
        }
        _ => return None,
    }
    Some(args)
}

/// `dir`, resolved, when it is a directory; else one line saying what it is.
fn checked_dir(dir: &Path) -> Result<PathBuf> {
    if !dir.exists() {
        bail!("factory directory {} does not exist", dir.display());
    }
    if !dir.is_dir() {
        bail!("factory directory {} is not a directory", dir.display());
    }
    dir.canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))
}

/// Fails when dev mode is asked of a directory that holds no sources to build.
pub(crate) fn require_build_context(dir: &Path, agents: &AgentsImage) -> Result<()> {
    if *agents == AgentsImage::Dev && !dir.join(AGENTS_DOCKERFILE).is_file() {
        bail!(
            "AGENTS_IMAGE is not set and {} has no {AGENTS_DOCKERFILE}: dev mode needs a source checkout; pinned mode needs AGENTS_IMAGE (e.g. AGENTS_IMAGE=v0.1.1 in .env)",
            dir.display()
        );
    }
    Ok(())
}

pub(crate) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
