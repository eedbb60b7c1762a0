//! A factory directory (`.env`, `docker-compose.yml`, `projects/`, `state/`), opened with its
//! configuration. Not a source checkout: a factory may be a directory holding only `.env`.
//! The compose calls on it are the engine's ([`crate::engine::compose`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use std::collections::BTreeMap;

use crate::fsx::{self, Written};
use crate::model::compose::{
    project_name, render, Compose, ComposeInput, AGENTS_DOCKERFILE, PROJECT, PROJECT_NAME_VAR,
};
use crate::model::config::{FactoryConfig, Settings};
use crate::model::image_ref::{AgentsImage, ImageRef, OurImage, KEEP_REPOSITORY, OUR_IMAGES};

/// The compose file of a factory, relative to its directory.
pub const COMPOSE_FILE: &str = "docker-compose.yml";
/// The operator's settings file, relative to the factory directory.
pub const DOTENV_FILE: &str = ".env";
/// The agents' project configuration, bind-mounted into agents and runner.
pub const PROJECTS_DIR: &str = "projects";

/// A factory directory, opened: its path, its settings (read once: process environment,
/// then `.env`) and the configuration validated from them.
pub struct Factory {
    pub dir: PathBuf,
    pub settings: Settings,
    pub config: FactoryConfig,
}

impl Factory {
    /// Opens `dir` and validates its configuration (one line naming a bad variable).
    pub fn open(dir: &Path) -> Result<Factory> {
        let settings = Settings::load(&checked_dir(dir)?)?;
        Factory::with_settings(dir, settings)
    }

    /// The factory in `dir` with `settings` already read (`init` reads them before it writes
    /// `.env`).
    pub fn with_settings(dir: &Path, settings: Settings) -> Result<Factory> {
        let dir = checked_dir(dir)?;
        let config = FactoryConfig::from_settings(&settings)?;
        Ok(Factory {
            dir,
            settings,
            config,
        })
    }

    /// Opens `dir` for `rollback`, which rewrites AGENTS_IMAGE: that setting is not read, so
    /// a typo in it never blocks the command that repairs it; every other setting is
    /// validated as [`Factory::open`] does. `config.agents` is dev mode until the caller
    /// sets what to run.
    pub fn open_to_set_agents(dir: &Path) -> Result<Factory> {
        let dir = checked_dir(dir)?;
        let settings = Settings::load(&dir)?;
        let config = FactoryConfig::with_agents(&settings, AgentsImage::Dev)?;
        Ok(Factory {
            dir,
            settings,
            config,
        })
    }

    /// Opens `dir` for commands that only stop the factory or read its state (`down`,
    /// `history`): a bad setting in `.env` must not keep the operator from stopping it. The
    /// configuration is the validated one when it is valid, else dev mode's defaults,
    /// which such commands do not use.
    pub fn open_to_stop(dir: &Path) -> Result<Factory> {
        Factory::open_to_look(dir).map(|(factory, _)| factory)
    }

    /// [`Factory::open_to_stop`], and why the configuration is not valid when it is not, for
    /// a command that looks (`status`) to warn of what the next `up` will refuse.
    pub fn open_to_look(dir: &Path) -> Result<(Factory, Option<anyhow::Error>)> {
        let dir = checked_dir(dir)?;
        let (settings, problem) = match Settings::load(&dir) {
            Ok(settings) => (settings, None),
            Err(e) => (
                Settings::new(Default::default(), Default::default()),
                Some(e),
            ),
        };
        let (config, problem) = match FactoryConfig::from_settings(&settings) {
            Ok(config) => (config, problem),
            Err(e) => (
                FactoryConfig {
                    agents: AgentsImage::Dev,
                    agents_origin: crate::model::config::Origin::Unset,
                    agents_in_dotenv: None,
                    registry: crate::model::image_ref::DEFAULT_REGISTRY.to_string(),
                    agent_cli: None,
                },
                problem.or(Some(e)),
            ),
        };
        Ok((
            Factory {
                dir,
                settings,
                config,
            },
            problem,
        ))
    }

    pub fn compose_file(&self) -> PathBuf {
        self.dir.join(COMPOSE_FILE)
    }

    pub fn dotenv_file(&self) -> PathBuf {
        self.dir.join(DOTENV_FILE)
    }

    /// The pins the compose file holds now, for the images `keep` selects: what a partial
    /// rollout leaves running as it is. A pin is what a rollout writes: a digest; a keep tag
    /// (`disinto-keep/agents:…`, an exact local image), which a revert or a rollback puts on
    /// agents; or, for an image no registry gave a digest (built or loaded here), the
    /// configured reference as given. Anything else (a hand edit) is not read as a pin.
    pub fn current_pins(&self, keep: impl Fn(&OurImage) -> bool) -> BTreeMap<&'static str, String> {
        let Ok(text) = std::fs::read_to_string(self.compose_file()) else {
            return BTreeMap::new();
        };
        let Ok(compose) = serde_yaml::from_str::<Compose>(&text) else {
            return BTreeMap::new();
        };
        OUR_IMAGES
            .into_iter()
            .filter(|image| keep(image))
            .filter_map(|image| {
                let service = compose.services.get(image.name)?;
                let reference = service.image.as_ref()?;
                let parsed = ImageRef::parse(reference).ok()?;
                let as_given = self
                    .config
                    .agents
                    .resolved_for(image, &self.config.registry);
                let pinned = parsed.digest().is_some()
                    || parsed.repository() == KEEP_REPOSITORY
                    || as_given.as_deref() == Some(reference.as_str());
                (pinned && service.build.is_none()).then(|| (image.name, reference.clone()))
            })
            .collect()
    }

    /// The compose project this factory runs as (see [`project_name_in`]).
    pub fn project_name(&self) -> Result<String> {
        project_name_in(&self.dir, &self.settings)
    }

    /// Whether this factory can build from source (dev mode, and services with `build:`).
    pub fn is_checkout(&self) -> bool {
        self.dir.join(AGENTS_DOCKERFILE).is_file()
    }

    /// Dev mode needs the sources; say so before anything is written or started.
    pub fn require_build_context(&self) -> Result<()> {
        require_build_context(&self.dir, &self.config.agents)
    }

    /// Writes the compose file of `model`, built from `input` (atomically, only when it
    /// changes).
    pub fn write_compose(&self, input: &ComposeInput, model: &Compose) -> Result<Written> {
        let written = fsx::write_if_changed(&self.compose_file(), &render(input, model)?)?;
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
}

/// The compose project of the factory in `dir` with `settings`, as compose names it when
/// disinto runs it ([`project_name`]): COMPOSE_PROJECT_NAME (environment, then `.env`), else
/// the compose file's `name:` (interpolated, as compose does), else the directory's name. With
/// no compose file yet, the `name:` is the one disinto will write ([`PROJECT`]).
pub fn project_name_in(dir: &Path, settings: &Settings) -> Result<String> {
    let file = dir.join(COMPOSE_FILE);
    let cannot =
        |why: String| anyhow::anyhow!("cannot read the project name in {}: {why}", file.display());
    let file_name = match std::fs::metadata(&file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(PROJECT.to_string()),
        Err(e) => return Err(cannot(fsx::reason(&e))),
        // A FIFO or a device would hang or feed anything; compose reads a regular file.
        Ok(meta) if !meta.is_file() => return Err(cannot("it is not a regular file".into())),
        Ok(_) => {
            let text = std::fs::read(&file).map_err(|e| cannot(fsx::reason(&e)))?;
            let yaml: serde_yaml::Value =
                serde_yaml::from_slice(&text).map_err(|e| cannot(e.to_string()))?;
            match yaml.get("name") {
                None | Some(serde_yaml::Value::Null) => None,
                Some(serde_yaml::Value::String(name)) => Some(
                    crate::model::dotenv::interpolate(name, &|k| {
                        Ok(settings.get(k)?.map(str::to_string))
                    })
                    .map_err(|e| cannot(format!("{e:#}")))?,
                ),
                Some(_) => return Err(cannot("name: is not a string".into())),
            }
        }
    };
    project_name(settings.get(PROJECT_NAME_VAR)?, file_name.as_deref(), dir)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::image_ref::AGENTS;

    #[test]
    fn what_a_rollout_pins_is_read_back_as_a_pin_and_a_hand_edit_is_not() {
        let dir = fsx::TempDir::new("factory").unwrap();
        let settings = Settings::from_maps(
            BTreeMap::new(),
            [
                ("AGENTS_IMAGE".to_string(), "v0.1.0".to_string()),
                (
                    "DISINTO_REGISTRY".to_string(),
                    "127.0.0.1:5000/d".to_string(),
                ),
            ]
            .into(),
        );
        let factory = Factory::with_settings(dir.path(), settings).unwrap();
        let mut input = ComposeInput::from(&factory.config);
        let digest = format!("sha256:{}", "a".repeat(64));
        let pins = [
            // A revert's or a rollback's.
            format!("{KEEP_REPOSITORY}:0123456789ab"),
            format!("127.0.0.1:5000/d/agents:v0.1.0@{digest}"),
            // An image built or loaded here, which no registry gave a digest.
            "127.0.0.1:5000/d/agents:v0.1.0".to_string(),
        ];
        let write = |input: &ComposeInput| {
            let model = crate::model::compose::model(input);
            factory.write_compose(input, &model).unwrap();
        };
        for agents in pins {
            input.pinned = [(AGENTS.name, agents.clone())].into();
            write(&input);
            assert_eq!(factory.current_pins(|_| true), input.pinned, "{agents}");
        }
        // The model's own reference (the registry interpolated by compose), or a tag another
        // hand wrote, is no pin.
        for agents in [None, Some("127.0.0.1:5000/d/agents:v0.2.0")] {
            input.pinned = agents
                .map(|a| (AGENTS.name, a.to_string()))
                .into_iter()
                .collect();
            write(&input);
            assert!(factory.current_pins(|_| true).is_empty(), "{agents:?}");
        }
    }
}
