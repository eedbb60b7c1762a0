//! `disinto up`: the rollout. The target image is pulled and pinned by digest before anything
//! running is touched; compose brings the services up; agents must turn healthy, or the
//! image it ran before is put back and the command fails. The release's restart-agents step
//! and `disinto rollback` run this same code.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::engine::docker;
use crate::factory::Factory;
use crate::model::compose::ComposeInput;
use crate::model::config::FactoryConfig;
use crate::model::history::{self, Deployment, Outcome};
use crate::model::image_ref::{repository_of, AgentsImage, OurImage, AGENTS, OUR_IMAGES};
use crate::model::time::now_rfc3339;

/// The local repository that keeps the image agents ran before a rollout, so a revert needs
/// no registry and no tag that may have moved.
pub const KEEP_REPOSITORY: &str = "disinto-keep/agents";

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
    /// A local tag on the exact image (see [`KEEP_REPOSITORY`]).
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
        if !self.dry_run {
            docker::require_client()?;
        }
        factory.require_build_context()?;
        let config = &factory.config;
        let mut input = ComposeInput::from(config);
        if let (Some(saved), Outcome::Deployed) = (&config.agents_in_dotenv, self.outcome) {
            if saved != config.agents.as_setting() {
                eprintln!(
                    "warning: this rollout runs AGENTS_IMAGE={:?}, but {} says AGENTS_IMAGE={saved:?}: the next plain `disinto up` goes back to {saved:?} (change it there, or use `disinto rollback`, to keep this one)",
                    config.agents.as_setting(),
                    factory.dir.join(crate::factory::DOTENV_FILE).display(),
                );
            }
        }

        let known = crate::model::compose::model(&input).services;
        if let Some(unknown) = self.services.iter().find(|s| !known.contains_key(*s)) {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            bail!(
                "no service {unknown:?} in this factory (services: {}); nothing was changed",
                names.join(", ")
            );
        }
        // Images this rollout does not start keep what the compose file pins now: `up agents`
        // moves agents, and nothing else.
        input.pinned = current_pins(factory, |image| !self.starts(image));
        // The target images must be here, and pinned, before any running container is touched.
        let images = OUR_IMAGES.into_iter().filter(|i| self.starts(i));
        input
            .pinned
            .extend(pull_and_pin(config, images, self.dry_run)?);

        let args = self.compose_args(factory, &input);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if self.dry_run {
            println!(
                "# write {} (agents: {})",
                factory.compose_file().display(),
                input.agents
            );
            println!(
                "$ {}",
                crate::engine::docker::shell_line(factory.compose(sh, &args))
            );
            if self.waits_for_agents() {
                println!(
                    "# wait until agents is healthy (at most {}s); if it is not, put the image it runs now back",
                    self.health_timeout.as_secs()
                );
            }
            return Ok(());
        }
        let previous = match self.waits_for_agents() {
            true => self.keep_previous(sh, factory)?,
            false => None,
        };
        let old_compose = std::fs::read(factory.compose_file()).ok();
        factory.write_compose(&input)?;
        let up = factory
            .compose(sh, &args)
            .run()
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
            .and_then(|c| {
                factory
                    .wait_healthy(sh, &c, self.health_timeout)
                    .map(|()| c)
            });
        match result {
            Ok(container) => {
                record_running(factory, &version, &container, self.outcome)?;
                keep_recent(factory);
                eprintln!("agents is healthy ({})", input.agents);
                Ok(())
            }
            Err(why) => {
                let tried = input
                    .pinned
                    .get(AGENTS.name)
                    .cloned()
                    .unwrap_or_else(|| input.agents.to_string());
                let Some(previous) = previous else {
                    restore_compose(factory, old_compose.as_deref());
                    let id = docker::image_id(&tried).unwrap_or_default();
                    let _ = record(factory, &version, &tried, &id, Outcome::Failed);
                    return Err(why.context(format!(
                        "agents on {tried} is not healthy, and nothing ran before it to go back to"
                    )));
                };
                eprintln!(
                    "agents on {tried} failed ({why:#}): putting {} back",
                    previous.version
                );
                self.revert(sh, factory, &input, &previous)?;
                let id = docker::image_id(&tried).unwrap_or_default();
                record(factory, &version, &tried, &id, Outcome::Reverted)?;
                bail!(
                    "rollout of AGENTS_IMAGE={version:?} failed ({why:#}); reverted: agents runs {} again and is healthy",
                    previous.version
                )
            }
        }
    }

    fn compose_args(&self, factory: &Factory, input: &ComposeInput) -> Vec<String> {
        let mut args: Vec<String> = vec!["up".into(), "--detach".into()];
        if input.agents == AgentsImage::Dev && self.touches_agents_image() {
            // Dev mode follows the source: rebuild (from cache when nothing changed).
            args.push("--build".into());
        }
        if self.services.is_empty() {
            args.extend(startable_services(factory, input));
        } else {
            args.push("--no-deps".into());
            args.extend(self.services.iter().cloned());
        }
        args
    }

    /// Tags the image agents runs now under [`KEEP_REPOSITORY`], so it can be put back.
    fn keep_previous(&self, sh: &Shell, factory: &Factory) -> Result<Option<Previous>> {
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
        let history = history::load(&factory.dir)?;
        let version = history::current(&history)
            .filter(|d| d.image_id == image_id)
            .map(|d| d.version.clone())
            .unwrap_or_else(|| keep.clone());
        Ok(Some(Previous { keep, version }))
    }

    /// Puts the kept image back on agents and waits for it to be healthy again.
    fn revert(
        &self,
        sh: &Shell,
        factory: &Factory,
        tried: &ComposeInput,
        previous: &Previous,
    ) -> Result<()> {
        // Only agents goes back; everything else stays as the rollout left it.
        let mut input = tried.clone();
        input.pinned.insert(AGENTS.name, previous.keep.clone());
        factory.write_compose(&input)?;
        factory
            .compose(sh, &["up", "--detach", "--no-deps", "agents"])
            .run()
            .context("cannot put the previous agents image back")?;
        let container = factory.container(sh, "agents")?;
        factory
            .wait_healthy(sh, &container, self.health_timeout)
            .with_context(|| {
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
        Some(text) => crate::fsx::write_atomic(&path, text),
        None => std::fs::remove_file(&path).map_err(anyhow::Error::from),
    };
    if let Err(e) = restored {
        eprintln!(
            "warning: cannot put {} back as it was: {e:#}",
            path.display()
        );
    }
}

/// The digest pins the factory's compose file holds now, for the images `keep` selects.
fn current_pins(
    factory: &Factory,
    keep: impl Fn(&OurImage) -> bool,
) -> BTreeMap<&'static str, String> {
    let Ok(text) = std::fs::read_to_string(factory.compose_file()) else {
        return BTreeMap::new();
    };
    let Ok(compose) = serde_yaml::from_str::<crate::model::compose::Compose>(&text) else {
        return BTreeMap::new();
    };
    OUR_IMAGES
        .into_iter()
        .filter(|image| keep(image))
        .filter_map(|image| {
            let service = compose.services.get(image.name)?;
            let reference = service.image.as_ref()?;
            (reference.contains("@sha256:") && service.build.is_none())
                .then(|| (image.name, reference.clone()))
        })
        .collect()
}

/// How many deployments' images stay tagged under [`KEEP_REPOSITORY`], so a rollback to
/// them needs no registry (and survives `docker image prune`).
const KEPT_DEPLOYMENTS: usize = 3;

/// Tags the images of the last few deployments under [`KEEP_REPOSITORY`] and removes the
/// other keep tags. Best effort: a failure here costs disk space, not the rollout.
fn keep_recent(factory: &Factory) {
    let Ok(deployments) = history::load(&factory.dir) else {
        return;
    };
    let mut ids: Vec<&str> = vec![];
    for d in deployments.iter().rev().filter(|d| d.runs()) {
        if !d.image_id.is_empty() && !ids.contains(&d.image_id.as_str()) {
            ids.push(&d.image_id);
        }
        if ids.len() == KEPT_DEPLOYMENTS {
            break;
        }
    }
    let wanted: Vec<String> = ids.iter().map(|id| keep_tag(id)).collect();
    for (id, tag) in ids.iter().zip(&wanted) {
        let _ = docker::run(&["tag", id, tag]);
    }
    let listed = docker::run(&[
        "image",
        "ls",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        KEEP_REPOSITORY,
    ])
    .unwrap_or_default();
    for tag in listed.lines().filter(|t| !wanted.iter().any(|w| w == t)) {
        let _ = docker::run(&["rmi", "--no-prune", tag]);
    }
}

/// The keep tag of an image id: `disinto-keep/agents:<first 12 hex digits>`.
pub fn keep_tag(image_id: &str) -> String {
    let hex = image_id.trim_start_matches("sha256:");
    format!("{KEEP_REPOSITORY}:{}", &hex[..hex.len().min(12)])
}

/// Pulls each of `images` that is not here yet and pins it by its registry digest: the
/// exact references to run, by image name (none in dev mode). A dry run prints the pulls and
/// pins nothing. A pull that fails is a one-line error, and nothing has been changed.
pub fn pull_and_pin(
    config: &FactoryConfig,
    images: impl IntoIterator<Item = OurImage>,
    dry_run: bool,
) -> Result<BTreeMap<&'static str, String>> {
    let mut pinned = BTreeMap::new();
    for image in images {
        let Some(reference) = config.agents.resolved_for(image, &config.registry) else {
            continue;
        };
        if dry_run {
            println!("$ docker pull {reference}   # only if it is not present");
            continue;
        }
        if !docker::image_present(&reference) {
            eprintln!("$ docker pull {reference}");
            if let Err(why) = docker::run(&["pull", "--quiet", &reference]) {
                bail!(
                    "AGENTS_IMAGE={}: cannot pull {reference} ({why}); nothing was changed, the running factory is as it was",
                    config.agents.as_setting()
                );
            }
        }
        pinned.insert(image.name, pin(&reference));
    }
    Ok(pinned)
}

/// `reference` pinned to the registry digest the local image carries (`repo:tag@sha256:…`),
/// so a tag moved later never changes what runs. A local-only image stays as given.
pub fn pin(reference: &str) -> String {
    if reference.contains('@') {
        return reference.to_string();
    }
    let repo = repository_of(reference);
    let digests = docker::run(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        reference,
    ])
    .ok()
    .and_then(|json| serde_json::from_str::<Vec<String>>(json.trim()).ok())
    .unwrap_or_default();
    digests
        .iter()
        .filter_map(|d| d.split_once('@'))
        .find(|(r, _)| *r == repo)
        .map(|(_, digest)| format!("{reference}@{digest}"))
        .unwrap_or_else(|| reference.to_string())
}

/// Appends the rollout's outcome to the history: `image` is what ran (a container's
/// configured image) or was tried, `image_id` the exact image when known.
fn record(
    factory: &Factory,
    version: &str,
    image: &str,
    image_id: &str,
    outcome: Outcome,
) -> Result<()> {
    history::append(
        &factory.dir,
        &Deployment {
            time: now_rfc3339(),
            version: version.to_string(),
            image: image.to_string(),
            image_id: image_id.to_string(),
            outcome,
        },
    )
}

/// [`record`] for a rollout that runs: the image and id of its agents container.
fn record_running(
    factory: &Factory,
    version: &str,
    container: &str,
    outcome: Outcome,
) -> Result<()> {
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
    record(factory, version, image, image_id, outcome)
}

/// For the whole-stack `up`: the default services, less those built from sources this
/// factory does not have (it says which). Empty means "let compose pick them all".
fn startable_services(factory: &Factory, input: &ComposeInput) -> Vec<String> {
    let model = crate::model::compose::model(input);
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
