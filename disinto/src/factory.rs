//! A factory directory (`.env`, `docker-compose.yml`, `projects/`, `state/`) and the compose
//! calls on it. Not a source checkout: a factory may be a directory holding only `.env`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::compose::{generate, ComposeInput, AGENTS_DOCKERFILE};
use crate::config::{FactoryConfig, Settings};
use crate::fsx::{self, Written};
use crate::image_ref::AgentsImage;

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
    pub fn open(dir: &Path) -> Result<Factory> {
        if !dir.exists() {
            bail!("factory directory {} does not exist", dir.display());
        }
        if !dir.is_dir() {
            bail!("factory directory {} is not a directory", dir.display());
        }
        let dir = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let config = FactoryConfig::from_settings(&Settings::load(&dir)?)?;
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

    /// Waits until `container` reports healthy; fails early when it exits or turns unhealthy.
    pub fn wait_healthy(&self, sh: &Shell, container: &str, limit: Duration) -> Result<()> {
        let start = Instant::now();
        let format =
            "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}";
        loop {
            let state = cmd!(sh, "docker inspect --format {format} {container}")
                .quiet()
                .read()
                .with_context(|| format!("cannot inspect container {container}"))?;
            match state.split_whitespace().collect::<Vec<_>>().as_slice() {
                [_, "healthy"] => return Ok(()),
                ["running", "none"] => return Ok(()),
                [_, "unhealthy"] => bail!(
                    "container {} turned unhealthy: see `docker logs {container}`",
                    short(container)
                ),
                ["exited" | "dead", _] => bail!(
                    "container {} exited: see `docker logs {container}`",
                    short(container)
                ),
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
            std::thread::sleep(Duration::from_millis(250));
        }
    }
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
