//! `docker compose` on a factory: the command, and the queries rollouts and status make
//! (which container runs a service, every container, the named volumes).

use anyhow::{bail, Context, Result};
use xshell::{cmd, Cmd, Shell};

use crate::factory::Factory;

impl Factory {
    /// `docker compose` on this factory, with `args` appended.
    pub fn compose<'a>(&self, sh: &'a Shell, args: &[&str]) -> Cmd<'a> {
        let file = self.compose_file();
        let dir = &self.dir;
        cmd!(
            sh,
            "docker compose --file {file} --project-directory {dir} {args...}"
        )
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

    /// Every container of the factory, on-demand profiles included, running or not.
    pub fn containers(&self, sh: &Shell) -> Result<Vec<String>> {
        let ids = self
            .compose(sh, &["--profile", "*", "ps", "--all", "--quiet"])
            .quiet()
            .read()
            .context("cannot list the factory's containers")?;
        Ok(ids.split_whitespace().map(str::to_string).collect())
    }

    /// The named volumes of the factory's compose file.
    pub fn volume_names(&self, sh: &Shell) -> Result<Vec<String>> {
        let names = self
            .compose(sh, &["config", "--volumes"])
            .quiet()
            .read()
            .context("cannot list the factory's volumes")?;
        Ok(names.split_whitespace().map(str::to_string).collect())
    }
}
