//! The rollout every command that starts agents runs (`disinto up`, `disinto rollback`, the
//! release's restart-agents): the target images are pulled and pinned by digest before
//! anything running is touched; compose brings the services up; agents must turn healthy, or
//! the image it ran before is put back and the rollout fails. Planned first, applied through
//! the [`Runner`], so `--dry-run` prints what a real run executes.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use super::images::{keep_tag, pull_and_pin};
use crate::engine::health::wait_healthy;
use crate::engine::{docker, Runner};
use crate::factory::Factory;
use crate::fsx;
use crate::model::compose::{self, Compose, ComposeInput, SERVICES};
use crate::model::history::{Deployment, History, Outcome};
use crate::model::image_ref::{AgentsImage, OurImage, AGENTS, OUR_IMAGES};
use crate::model::time::now_rfc3339;

/// What to roll out, and how long agents may take to turn healthy.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Services to bring up without their dependencies; empty means the whole stack.
    pub services: Vec<String>,
    /// Print the commands and change nothing.
    pub dry_run: bool,
    pub health_timeout: Duration,
    /// How a successful rollout is recorded: deployed, or rolled back.
    pub outcome: Outcome,
    /// The version the history records [default: AGENTS_IMAGE as configured]; a rollback
    /// runs the exact image it kept, and records the version the operator knows.
    pub version: Option<String>,
}

/// What agents ran before the rollout: enough to put it back exactly.
struct Previous {
    /// A local tag on the exact image (see [`super::images::KEEP_REPOSITORY`]).
    keep: String,
    version: String,
}

impl Rollout {
    pub fn new(services: Vec<String>, dry_run: bool, health_timeout: Duration) -> Rollout {
        Rollout {
            services,
            dry_run,
            health_timeout,
            outcome: Outcome::Deployed,
            version: None,
        }
    }

    fn touches_agents_image(&self) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s == "agents" || s == "runner")
    }

    /// Whether this rollout starts (or restarts) services that run `image`.
    fn starts(&self, image: &OurImage) -> bool {
        match image.name {
            "agents" => self.touches_agents_image(),
            name => self.services.is_empty() || self.services.iter().any(|s| s == name),
        }
    }

    fn waits_for_agents(&self) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s == "agents")
    }

    /// Runs the rollout on `factory` with the image its configuration names.
    pub fn run(&self, sh: &Shell, factory: &Factory) -> Result<()> {
        let runner = Runner::new(sh, self.dry_run);
        if !self.dry_run {
            docker::require_client()?;
        }
        factory.require_build_context()?;
        if let Some(unknown) = self
            .services
            .iter()
            .find(|s| !SERVICES.contains(&s.as_str()))
        {
            bail!(
                "no service {unknown:?} in this factory (services: {}); nothing was changed",
                SERVICES.join(", ")
            );
        }
        let config = &factory.config;
        if let (Some(saved), Outcome::Deployed) = (&config.agents_in_dotenv, self.outcome) {
            if saved != config.agents.as_setting() {
                eprintln!(
                    "warning: this rollout runs AGENTS_IMAGE={:?}, but {} says AGENTS_IMAGE={saved:?}: the next plain `disinto up` goes back to {saved:?} (change it there, or use `disinto rollback`, to keep this one)",
                    config.agents.as_setting(),
                    factory.dotenv_file().display(),
                );
            }
        }
        let mut history = History::load(&factory.dir)?;
        let mut input = ComposeInput::from(config);
        // Images this rollout does not start keep what runs now: `up agents` moves agents,
        // and nothing else.
        input.pinned = factory.current_pins(|image| !self.starts(image));
        // The target images must be here, and pinned, before any running container is touched.
        let images = OUR_IMAGES.into_iter().filter(|i| self.starts(i));
        input.pinned.extend(pull_and_pin(&runner, config, images)?);
        let model = compose::model(&input);

        let args = self.compose_args(factory, &input, &model);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if self.dry_run {
            runner.note(&format!(
                "write {} (agents: {})",
                factory.compose_file().display(),
                input.agents
            ));
            runner.exec(factory.compose(sh, &args))?;
            if self.waits_for_agents() {
                runner.note(&format!(
                    "wait until agents is healthy (at most {}s); if it is not, put the image it runs now back",
                    self.health_timeout.as_secs()
                ));
            }
            return Ok(());
        }
        let previous = match self.waits_for_agents() {
            true => self.keep_previous(sh, factory, &history)?,
            false => None,
        };
        let old_compose = std::fs::read(factory.compose_file()).ok();
        factory.write_compose(&input, &model)?;
        let up = runner
            .exec(factory.compose(sh, &args))
            .context("docker compose up failed");
        if !self.waits_for_agents() {
            if up.is_err() {
                restore_compose(factory, old_compose.as_deref());
            }
            return up;
        }
        let version = self
            .version
            .clone()
            .unwrap_or_else(|| config.agents.as_setting().to_string());
        let result = up
            .and_then(|()| factory.container(sh, "agents"))
            .and_then(|c| wait_healthy(&c, self.health_timeout).map(|()| c));
        match result {
            Ok(container) => {
                let (image, image_id) = running_image(&container)?;
                let entry = record(&version, &image, &image_id, self.outcome);
                history.append(entry)?;
                super::images::keep_recent(history.entries());
                eprintln!("agents is healthy ({})", input.agents);
                Ok(())
            }
            Err(why) => {
                let tried = input
                    .pinned
                    .get(AGENTS.name)
                    .cloned()
                    .unwrap_or_else(|| input.agents.to_string());
                let id = docker::image_id(&tried).unwrap_or_default();
                let Some(previous) = previous else {
                    restore_compose(factory, old_compose.as_deref());
                    let _ = history.append(record(&version, &tried, &id, Outcome::Failed));
                    return Err(why.context(format!(
                        "agents on {tried} is not healthy, and nothing ran before it to go back to"
                    )));
                };
                eprintln!(
                    "agents on {tried} failed ({why:#}): putting {} back",
                    previous.version
                );
                self.revert(&runner, factory, &input, &previous)?;
                history.append(record(&version, &tried, &id, Outcome::Reverted))?;
                bail!(
                    "rollout of AGENTS_IMAGE={version:?} failed ({why:#}); reverted: agents runs {} again and is healthy",
                    previous.version
                )
            }
        }
    }

    fn compose_args(
        &self,
        factory: &Factory,
        input: &ComposeInput,
        model: &Compose,
    ) -> Vec<String> {
        let mut args: Vec<String> = vec!["up".into(), "--detach".into()];
        if input.agents == AgentsImage::Dev && self.touches_agents_image() {
            // Dev mode follows the source: rebuild (from cache when nothing changed).
            args.push("--build".into());
        }
        if self.services.is_empty() {
            args.extend(startable_services(factory, model));
        } else {
            args.push("--no-deps".into());
            args.extend(self.services.iter().cloned());
        }
        args
    }

    /// Tags the image agents runs now under a keep tag, so it can be put back.
    fn keep_previous(
        &self,
        sh: &Shell,
        factory: &Factory,
        history: &History,
    ) -> Result<Option<Previous>> {
        let Some(container) = factory.running(sh, "agents") else {
            return Ok(None);
        };
        let image_id = docker::read(
            &["inspect", "--format", "{{.Image}}", &container],
            "inspect the running agents container",
        )?;
        let image_id = image_id.trim();
        let keep = keep_tag(image_id);
        docker::read(&["tag", image_id, &keep], "keep the running agents image")?;
        let version = history
            .current()
            .filter(|d| d.image_id == image_id)
            .map(|d| d.version.clone())
            .unwrap_or_else(|| keep.clone());
        Ok(Some(Previous { keep, version }))
    }

    /// Puts the kept image back on agents and waits for it to be healthy again.
    fn revert(
        &self,
        runner: &Runner<'_>,
        factory: &Factory,
        tried: &ComposeInput,
        previous: &Previous,
    ) -> Result<()> {
        // Only agents goes back; everything else stays as the rollout left it.
        let mut input = tried.clone();
        input.pinned.insert(AGENTS.name, previous.keep.clone());
        factory.write_compose(&input, &compose::model(&input))?;
        runner
            .exec(factory.compose(runner.sh, &["up", "--detach", "--no-deps", "agents"]))
            .context("cannot put the previous agents image back")?;
        let container = factory.container(runner.sh, "agents")?;
        wait_healthy(&container, self.health_timeout).with_context(|| {
            format!(
                "the previous agents image ({}) is not healthy either",
                previous.version
            )
        })
    }
}

/// Puts the compose file back as it was before a rollout that had nothing to revert to.
fn restore_compose(factory: &Factory, old: Option<&[u8]>) {
    let path = factory.compose_file();
    let restored = match old {
        Some(text) => fsx::write_atomic(&path, text),
        None => std::fs::remove_file(&path).map_err(anyhow::Error::from),
    };
    if let Err(e) = restored {
        eprintln!(
            "warning: cannot put {} back as it was: {e:#}",
            path.display()
        );
    }
}

/// A history record of this rollout, now: `image` is what ran (a container's configured
/// image) or was tried, `image_id` the exact image when known.
pub(crate) fn record(version: &str, image: &str, image_id: &str, outcome: Outcome) -> Deployment {
    Deployment {
        time: now_rfc3339(),
        version: version.to_string(),
        image: image.to_string(),
        image_id: image_id.to_string(),
        outcome,
        swarm: None,
    }
}

/// The configured image and the image id of a running container.
fn running_image(container: &str) -> Result<(String, String)> {
    let out = docker::read(
        &[
            "inspect",
            "--format",
            "{{.Config.Image}}\t{{.Image}}",
            container,
        ],
        "inspect the agents container",
    )?;
    let (image, image_id) = out.trim().split_once('\t').unwrap_or((out.trim(), ""));
    Ok((image.to_string(), image_id.to_string()))
}

/// For the whole-stack `up`: the default services, less those built from sources this
/// factory does not have (it says which). Empty means "let compose pick them all".
fn startable_services(factory: &Factory, model: &Compose) -> Vec<String> {
    let (ok, missing): (Vec<_>, Vec<_>) = model
        .services
        .iter()
        .filter(|(_, s)| s.profiles.is_empty())
        .partition(|(_, s)| {
            s.build
                .as_ref()
                .is_none_or(|b| factory.dir.join(b.dockerfile_path()).is_file())
        });
    if missing.is_empty() {
        return vec![];
    }
    let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
    eprintln!(
        "warning: {} not started: built from source, and {} is not a source checkout",
        names.join(", "),
        factory.dir.display()
    );
    ok.into_iter().map(|(n, _)| n.clone()).collect()
}
