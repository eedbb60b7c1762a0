//! A factory directory (`.env`, `docker-compose.yml`, `projects/`) and the compose calls on
//! it that `release` and `bin/disinto` share.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::compose::{generate, ComposeInput};
use crate::fsx::{self, Written};
use crate::settings::Settings;

pub struct Factory {
    pub dir: PathBuf,
    pub settings: Settings,
}

impl Factory {
    pub fn open(dir: &Path) -> Result<Factory> {
        if !dir.is_dir() {
            bail!("factory directory {} does not exist", dir.display());
        }
        let dir = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let settings = Settings::load(&dir)?;
        Ok(Factory { dir, settings })
    }

    pub fn compose_file(&self) -> PathBuf {
        self.dir.join("docker-compose.yml")
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

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
