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

    /// The id of the container of `service`, running or stopped, if there is one.
    pub fn any_container(&self, sh: &Shell, service: &str) -> Option<String> {
        let ids = self
            .compose(sh, &["ps", "--all", "--quiet", service])
            .quiet()
            .ignore_stderr()
            .read()
            .ok()?;
        ids.split_whitespace().next().map(str::to_string)
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

    /// The named volumes `down --volumes` deletes, by the names Docker knows them by
    /// (`prod_agent-data`): compose itself says them (`config --format json`), so the project
    /// name (COMPOSE_PROJECT_NAME, the file's `name:`) and a volume's own `name:` are applied
    /// as compose applies them. Every profile's, external ones left out, as `down` does.
    pub fn volume_names(&self, sh: &Shell) -> Result<Vec<String>> {
        Ok(self
            .volumes(sh)?
            .into_iter()
            .map(|(_, name)| name)
            .collect())
    }

    /// The factory's named volumes as `(compose key, Docker's name)`, external ones left out.
    pub fn volumes(&self, sh: &Shell) -> Result<Vec<(String, String)>> {
        let json = self
            .compose(sh, &["--profile", "*", "config", "--format", "json"])
            .quiet()
            .read()
            .context("cannot list the factory's volumes")?;
        removable_volumes(&json)
    }
}

/// The volumes `down --volumes` removes, from `docker compose config --format json`, as
/// `(compose key, Docker's name)`.
fn removable_volumes(json: &str) -> Result<Vec<(String, String)>> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        volumes: std::collections::BTreeMap<String, Volume>,
    }
    #[derive(serde::Deserialize)]
    struct Volume {
        name: Option<String>,
        #[serde(default)]
        external: bool,
    }
    let config: Config = serde_json::from_str(json)
        .context("cannot read the volumes in `docker compose config --format json`")?;
    config
        .volumes
        .into_iter()
        .filter(|(_, v)| !v.external)
        .map(|(key, v)| {
            v.name
                .map(|name| (key.clone(), name))
                .with_context(|| format!("compose gives volume {key} no name"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_volumes_down_removes_are_named_as_docker_names_them() {
        let json = r#"{"name": "prod", "volumes": {
            "agent-data": {"name": "prod_agent-data"},
            "own": {"name": "explicit"},
            "ext": {"name": "ext", "external": true}}}"#;
        assert_eq!(
            removable_volumes(json).unwrap(),
            [
                ("agent-data".to_string(), "prod_agent-data".to_string()),
                ("own".to_string(), "explicit".to_string())
            ]
        );
        assert!(removable_volumes(r#"{"name": "p"}"#).unwrap().is_empty());
        assert!(removable_volumes(r#"{"volumes": {"v": {}}}"#).is_err());
    }
}
