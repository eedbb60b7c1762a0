//! The rollout every command that starts agents runs (`disinto up`, `disinto rollback`, the
//! release's restart-agents): the target images are pulled and pinned by digest before
//! anything running is touched; compose brings the services up; agents must turn healthy, or
//! the image it ran before is put back and the rollout fails. Before agents is replaced, the
//! agent session in flight is let end ([`super::drain`]); after agents turns healthy it is
//! watched a while, and a restart, exit or failing health then reverts it too
//! (`reverted-late`). A rollout in flight is marked under `state/`, so one whose process is
//! killed is recorded (`interrupted`) by the next. Planned first, applied through the
//! [`Runner`], so `--dry-run` prints what a real run executes.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use super::drain::{self, DrainPolicy};
use super::images::{keep_tag, pull_and_pin};
use super::trust::Trust;
use crate::engine::health::{self, wait_healthy, wait_healthy_to_recover};
use crate::engine::{docker, Runner};
use crate::factory::Factory;
use crate::fsx;
use crate::model::compose::{self, Compose, ComposeInput, SERVICES};
use crate::model::history::{Deployment, History, InFlight, Outcome};
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
    /// How long the agent session in flight may take to end before agents is replaced.
    pub drain_timeout: Duration,
    /// Replace agents when the drain timeout is up, cutting the session (recorded).
    pub force: bool,
    /// How long agents is watched after it turns healthy; zero watches nothing.
    pub watch: Duration,
    /// Run our images without checking their signatures (loud, and recorded).
    pub skip_verify: bool,
    /// Keys this rollout trusts besides the built-in release key and `DISINTO_TRUSTED_KEYS`
    /// (the release's restart-agents: the public half of the key it just signed with).
    pub extra_keys: Vec<crate::model::keys::TrustedKey>,
}

/// The drain timeout of a rollout unless told otherwise.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The watch after the health gate unless told otherwise.
pub const DEFAULT_WATCH: Duration = Duration::from_secs(30);

/// What agents ran before the rollout: enough to put it back exactly.
struct Previous {
    /// A local tag on the exact image (see [`super::images::KEEP_REPOSITORY`]).
    keep: String,
    image_id: String,
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
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            force: false,
            watch: DEFAULT_WATCH,
            skip_verify: false,
            extra_keys: vec![],
        }
    }

    pub(crate) fn drain_policy(&self) -> DrainPolicy {
        DrainPolicy {
            timeout: self.drain_timeout,
            force: self.force,
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
        if !self.dry_run && self.waits_for_agents() {
            // A rollout the history cannot record is refused before anything changes.
            history.check_writable()?;
            record_interrupted(factory, &mut history);
        }
        let mut input = ComposeInput::from(config);
        // Images this rollout does not start keep what runs now: `up agents` moves agents,
        // and nothing else.
        input.pinned = factory.current_pins(|image| !self.starts(image));
        // The target images must be verified, here, and pinned, before any running container
        // is touched.
        let images = OUR_IMAGES.into_iter().filter(|i| self.starts(i));
        let mut trust = Trust::load(factory, self.skip_verify)?;
        trust.keys.extend(self.extra_keys.iter().cloned());
        let pinned = pull_and_pin(&runner, config, images, &mut trust)?;
        let passed = pinned.passed;
        input.pinned.extend(pinned.refs);
        let model = compose::model(&input);

        let args = self.compose_args(factory, &input, &model);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if self.dry_run {
            // In the order a real run goes.
            if self.waits_for_agents() {
                runner.note(&self.drain_policy().plan());
                runner.note(&format!(
                    "keep the image agents runs now as {}:<its id>, to put it back without a registry",
                    super::images::KEEP_REPOSITORY
                ));
            }
            runner.note(&format!(
                "write {} (agents: {})",
                factory.compose_file().display(),
                input.agents
            ));
            runner.exec(factory.compose(sh, &args))?;
            if self.waits_for_agents() {
                runner.note(&format!(
                    "wait until agents is healthy (at most {}s), then watch it for {}s; if it fails, put the image it runs now back",
                    self.health_timeout.as_secs(),
                    self.watch.as_secs()
                ));
            }
            return Ok(());
        }
        // The session in flight ends before agents is replaced; a rollout that stops before
        // it replaces agents lifts the drain, so the loop runs on.
        let drained = match (self.waits_for_agents(), factory.running(sh, "agents")) {
            (true, Some(container)) => Some(drain::drain(&container, self.drain_policy())?),
            _ => None,
        };
        // `drained` lifts the drain when it goes, however this ends.
        let previous = match self.waits_for_agents() {
            true => self.keep_previous(sh, factory, &history)?,
            false => None,
        };
        let version = self
            .version
            .clone()
            .unwrap_or_else(|| config.agents.as_setting().to_string());
        let tried = input
            .pinned
            .get(AGENTS.name)
            .cloned()
            .unwrap_or_else(|| input.agents.to_string());
        let attempt = InFlight::new(&version, &tried, &crate::lock::Holder::me("").who());
        // Every row this rollout writes names the attempt and the session it cut, if any.
        let stamp = |mut row: Deployment| {
            row.attempt = Some(attempt.attempt.clone());
            passed.stamp(&mut row);
            row.interrupted_session = drained.as_ref().and_then(|d| d.interrupted.clone());
            row
        };
        if self.waits_for_agents() {
            attempt.mark(&factory.dir)?;
        }
        let old_compose = std::fs::read(factory.compose_file()).ok();
        // The last moment an interrupt stops the rollout with nothing changed.
        let unchanged =
            crate::signals::check().and_then(|()| factory.write_compose(&input, &model).map(drop));
        if let Err(e) = unchanged {
            InFlight::clear(&factory.dir);
            return Err(e);
        }
        let up = runner
            .exec(factory.compose(sh, &args))
            .context("docker compose up failed");
        if !self.waits_for_agents() {
            if up.is_err() {
                restore_compose(factory, old_compose.as_deref());
            }
            return up;
        }
        let gate = up
            .and_then(|()| factory.container(sh, "agents"))
            .and_then(|c| wait_healthy(&c, self.health_timeout).map(|()| c))
            // An interrupt is a failed rollout, even one that came as agents turned healthy.
            .and_then(|c| crate::signals::check().map(|()| c));
        // Healthy once is not enough: a crash loop starts after the gate.
        let (result, late) = match gate {
            Ok(c) => match health::watch(&c, self.watch) {
                Ok(()) => (Ok(c), false),
                Err(e) => (Err(e), !crate::signals::interrupted()),
            },
            Err(e) => (Err(e), false),
        };
        let why = match result {
            Ok(container) => {
                self.record_healthy(&mut history, &container, &version, &stamp);
                InFlight::clear(&factory.dir);
                eprintln!("agents is healthy ({})", input.agents);
                return Ok(());
            }
            Err(why) => why,
        };
        // SIGINT or SIGTERM while agents was not yet found healthy: reverted as a timeout is.
        let failure = match crate::signals::interrupted() {
            true => "interrupted (SIGINT or SIGTERM) before agents turned healthy".to_string(),
            false => format!("{why:#}"),
        };
        let id = docker::image_id(&tried).unwrap_or_default();
        let Some(previous) = previous else {
            restore_compose(factory, old_compose.as_deref());
            let row = stamp(record(&version, &tried, &id, Outcome::Failed));
            let note = unrecorded(history.append(row));
            InFlight::clear(&factory.dir);
            bail!(
                "rollout of AGENTS_IMAGE={version:?} failed ({failure}), and nothing ran before it to go back to: {}{note}",
                what_runs(sh, factory)
            );
        };
        eprintln!(
            "agents on {tried} failed ({failure}): putting {} back{}",
            previous.version,
            match crate::signals::interrupted() {
                true => " (a second signal stops at once, and leaves agents as it is then)",
                false => "",
            }
        );
        let reverted = self.revert(&runner, factory, &input, &previous);
        // What runs decides the record: the image from before (even if it is not healthy
        // either), or still the one tried.
        let now = factory.running(sh, "agents");
        let back = now
            .as_deref()
            .and_then(|c| running_image(c).ok())
            .is_some_and(|(_, image_id)| image_id == previous.image_id);
        let outcome = match (back, late) {
            (true, false) => Outcome::Reverted,
            (true, true) => Outcome::RevertedLate,
            (false, _) => Outcome::Failed,
        };
        let note = unrecorded(history.append(stamp(record(&version, &tried, &id, outcome))));
        InFlight::clear(&factory.dir);
        match reverted {
            Ok(()) => bail!(
                "rollout of AGENTS_IMAGE={version:?} failed ({failure}); reverted: agents runs {} again and is healthy{note}",
                previous.version
            ),
            Err(e) => bail!(
                "rollout of AGENTS_IMAGE={version:?} failed ({failure}), and putting {} back failed too ({e:#}): {}{note}",
                previous.version,
                what_runs(sh, factory)
            ),
        }
    }

    /// Records a healthy rollout. A record that cannot be written is a warning saying what
    /// runs, never a failure of the rollout: agents runs, healthy, whatever the disk says.
    fn record_healthy(
        &self,
        history: &mut History,
        container: &str,
        version: &str,
        stamp: &dyn Fn(Deployment) -> Deployment,
    ) {
        let file = history.path();
        let lost = format!(
            "until a record is written, {} (status's \"deployed\", rollback's \"previous\") does not know of this rollout",
            file.display()
        );
        let (image, image_id) = match running_image(container) {
            Ok(found) => found,
            Err(e) => {
                eprintln!("warning: agents runs AGENTS_IMAGE={version}, healthy, but cannot be inspected to record it ({e:#}); {lost}");
                return;
            }
        };
        match history.append(stamp(record(version, &image, &image_id, self.outcome))) {
            Ok(()) => super::images::keep_recent(history.entries()),
            Err(e) => eprintln!(
                "warning: agents runs {image} (AGENTS_IMAGE={version}), healthy, but it cannot be recorded ({e:#}); {lost}"
            ),
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
        Ok(Some(Previous {
            keep,
            image_id: image_id.to_string(),
            version,
        }))
    }

    /// Puts the kept image back on agents and waits for it to be healthy again. A deferred
    /// interrupt does not stop it: a revert, once begun, finishes (a second signal ends the
    /// process, see [`crate::signals`]).
    fn revert(
        &self,
        runner: &Runner<'_>,
        factory: &Factory,
        tried: &ComposeInput,
        previous: &Previous,
    ) -> Result<()> {
        // The keep tag is a name on the host, which anyone may have removed since the rollout
        // made it (`docker rmi`, an image prune, another factory's cleanup): compose would
        // pull a missing one from Docker Hub. The image id is what was kept; name it again.
        docker::read(
            &["tag", &previous.image_id, &previous.keep],
            "keep the previous agents image",
        )
        .context("cannot put the previous agents image back")?;
        // Only agents goes back; everything else stays as the rollout left it.
        let mut input = tried.clone();
        input.pinned.insert(AGENTS.name, previous.keep.clone());
        factory.write_compose(&input, &compose::model(&input))?;
        runner
            .exec_to_recover(factory.compose(runner.sh, &["up", "--detach", "--no-deps", "agents"]))
            .context("cannot put the previous agents image back")?;
        let container = factory.container(runner.sh, "agents")?;
        wait_healthy_to_recover(&container, self.health_timeout).with_context(|| {
            format!(
                "the previous agents image ({}) is not healthy either",
                previous.version
            )
        })
    }
}

/// `; ` and why the history could not record a failed rollout, or nothing when it did.
fn unrecorded(appended: Result<()>) -> String {
    match appended {
        Ok(()) => String::new(),
        Err(e) => format!("; and the history could not record this ({e:#})"),
    }
}

/// What agents runs now, in words: for the message of a rollout that did not go as planned.
fn what_runs(sh: &Shell, factory: &Factory) -> String {
    match factory.running(sh, "agents").map(|c| running_image(&c)) {
        Some(Ok((image, _))) => {
            format!("agents runs {image}, not found healthy (`disinto status` shows it now)")
        }
        Some(Err(_)) => "an agents container runs (`disinto status` shows what)".into(),
        None => "no agents container runs".into(),
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
        by: Some(crate::lock::Holder::me("").who()),
        ..Deployment::default()
    }
}

/// A rollout whose process was killed left its in-flight marker: its row (`interrupted`) is
/// written now, once (a row naming its attempt means it was written before the kill).
fn record_interrupted(factory: &Factory, history: &mut History) {
    let Some(killed) = InFlight::find(&factory.dir) else {
        return;
    };
    let recorded = history
        .entries()
        .iter()
        .any(|d| d.attempt.as_deref() == Some(killed.attempt.as_str()));
    if !recorded {
        eprintln!(
            "warning: the rollout of AGENTS_IMAGE={} started {} by {} was killed before it ended: recorded as interrupted",
            killed.version, killed.started, killed.by
        );
        let row = Deployment {
            time: now_rfc3339(),
            version: killed.version.clone(),
            image: killed.image.clone(),
            image_id: docker::image_id(&killed.image).unwrap_or_default(),
            outcome: Outcome::Interrupted,
            by: Some(killed.by.clone()),
            attempt: Some(killed.attempt.clone()),
            ..Deployment::default()
        };
        if let Err(e) = history.append(row) {
            eprintln!("warning: and it cannot be recorded ({e:#})");
            return;
        }
    }
    InFlight::clear(&factory.dir);
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
