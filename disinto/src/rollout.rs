//! `disinto up`: the rollout. The target image is pulled before anything running is touched,
//! then compose brings the services up and agents must turn healthy. The release's
//! restart-agents step runs this same code.

use std::time::Duration;

use anyhow::{bail, Result};
use xshell::Shell;

use crate::compose::ComposeInput;
use crate::docker;
use crate::factory::Factory;
use crate::image_ref::AgentsImage;

/// What to roll out, and how long agents may take to turn healthy.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Services to bring up without their dependencies; empty means the whole stack.
    pub services: Vec<String>,
    /// Print the commands and change nothing.
    pub dry_run: bool,
    pub health_timeout: Duration,
}

impl Rollout {
    fn touches_agents_image(&self) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s == "agents" || s == "runner")
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
        let input = ComposeInput::from(config);
        if let Some(saved) = &config.agents_in_dotenv {
            if saved != config.agents.as_setting() {
                eprintln!(
                    "warning: this rollout runs AGENTS_IMAGE={:?}, but {} says AGENTS_IMAGE={saved:?}: the next plain `disinto up` goes back to {saved:?} (change it there to keep this one)",
                    config.agents.as_setting(),
                    factory.dir.join(crate::factory::DOTENV_FILE).display(),
                );
            }
        }

        // The target image must be here before any running container is touched.
        if let (true, Some(reference)) = (self.touches_agents_image(), config.agents_reference()) {
            if self.dry_run {
                println!("$ docker pull {reference}   # only if it is not present");
            } else if !docker::image_present(&reference) {
                eprintln!("$ docker pull {reference}");
                if let Err(why) = docker::run(&["pull", "--quiet", &reference]) {
                    bail!(
                        "AGENTS_IMAGE={}: cannot pull {reference} ({why}); nothing was changed, the running factory is as it was",
                        config.agents.as_setting()
                    );
                }
            }
        }

        let mut args: Vec<String> = vec!["up".into(), "--detach".into()];
        if config.agents == AgentsImage::Dev && self.touches_agents_image() {
            // Dev mode follows the source: rebuild (from cache when nothing changed).
            args.push("--build".into());
        }
        if self.services.is_empty() {
            args.extend(self.startable_services(factory, &input));
        } else {
            args.push("--no-deps".into());
            args.extend(self.services.iter().cloned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if self.dry_run {
            println!(
                "# write {} (agents: {})",
                factory.compose_file().display(),
                input.agents
            );
            println!("$ {}", factory.compose(sh, &args));
            if self.waits_for_agents() {
                println!(
                    "# wait until agents is healthy (at most {}s)",
                    self.health_timeout.as_secs()
                );
            }
            return Ok(());
        }
        factory.write_compose(&input)?;
        factory.compose(sh, &args).run()?;
        if self.waits_for_agents() {
            let container = factory.container(sh, "agents")?;
            factory.wait_healthy(sh, &container, self.health_timeout)?;
            eprintln!("agents is healthy ({})", input.agents);
        }
        Ok(())
    }

    /// For the whole-stack `up`: the default services, less those built from sources this
    /// factory does not have (it says which). Empty means "let compose pick them all".
    fn startable_services(&self, factory: &Factory, input: &ComposeInput) -> Vec<String> {
        let model = crate::compose::model(input);
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
}
