//! `disinto init | up | down | status`: the operator's commands, on the factory directory
//! (`--root`, `DISINTO_ROOT`, or the current directory). `bin/disinto` only launches this.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::compose::{ComposeInput, AGENTS_DOCKERFILE};
use crate::factory::Factory;
use crate::fsx;
use crate::image_ref::{parse_registry, AgentsImage};
use crate::settings::parse_dotenv;

/// `disinto`: run a factory.
#[derive(Debug, Clone, clap::Args)]
pub struct Disinto {
    /// The factory directory [default: the current directory]
    #[arg(long, value_name = "DIR", env = "DISINTO_ROOT", global = true)]
    pub root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Operator,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Operator {
    /// Write docker-compose.yml, and .env from .env.example when there is none
    Init {
        /// Append the keys .env lacks (from .env.example) instead of only listing them
        #[arg(long)]
        add_missing_keys: bool,
    },
    /// Bring the factory (or just SERVICE...) up on the image AGENTS_IMAGE names
    Up {
        /// Services to bring up, without their dependencies [default: the whole stack]
        services: Vec<String>,
        /// Print the commands and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for agents to turn healthy
        #[arg(long, value_name = "SECONDS", default_value_t = 120)]
        health_timeout: u64,
    },
    /// Stop the factory; named volumes are kept unless --volumes
    Down {
        /// Also delete the named volumes (all agent data): says which first
        #[arg(long)]
        volumes: bool,
        /// Print the commands and change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Per service: image, digest, version, state and health
    Status,
}

impl Disinto {
    pub fn run(self, sh: &Shell) -> Result<()> {
        // bin/disinto says where the disinto checkout is (for .env.example); the checkout
        // this binary was built from is the fallback.
        let home = std::env::var_os("DISINTO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| sh.current_dir());
        let root = match self.root {
            Some(dir) => dir,
            None => std::env::current_dir().context("cannot read the current directory")?,
        };
        let _dir = sh.push_dir(&root);
        match self.command {
            Operator::Init { add_missing_keys } => init(&root, &home, add_missing_keys),
            Operator::Up {
                services,
                dry_run,
                health_timeout,
            } => up(
                sh,
                &root,
                &services,
                dry_run,
                Duration::from_secs(health_timeout),
            ),
            Operator::Down { volumes, dry_run } => down(sh, &root, volumes, dry_run),
            Operator::Status => status(sh, &root),
        }
    }
}

/// Keys of `example` that `existing` lacks, in the example's order.
pub fn missing_keys(existing: &[String], example: &[(String, String)]) -> Vec<(String, String)> {
    let have: BTreeSet<&str> = existing.iter().map(String::as_str).collect();
    example
        .iter()
        .filter(|(k, _)| !have.contains(k.as_str()))
        .cloned()
        .collect()
}

fn dotenv_pairs(path: &Path) -> Result<Vec<(String, String)>> {
    // parse_dotenv sorts keys; the order of .env.example is kept from the file itself.
    let values = parse_dotenv(path)?;
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            l.trim_start()
                .strip_prefix("export ")
                .or(Some(l.trim_start()))
        })
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter_map(|k| values.get(&k).map(|v| (k, v.clone())))
        .collect())
}

fn init(root: &Path, home: &Path, add_missing_keys: bool) -> Result<()> {
    if !root.is_dir() {
        bail!(
            "factory directory {} does not exist: create it first",
            root.display()
        );
    }
    let example_path = [root.join(".env.example"), home.join(".env.example")]
        .into_iter()
        .find(|p| p.is_file());
    let env_path = root.join(".env");
    // Validate what the compose file will be made of before writing anything at all.
    let dotenv = match (&example_path, env_path.exists()) {
        (_, true) => parse_dotenv(&env_path)?,
        (Some(example), false) => parse_dotenv(example)?,
        (None, false) => Default::default(),
    };
    let input = ComposeInput::from_settings(&crate::settings::Settings::with_dotenv(dotenv))?;
    require_build_context(root, &input.agents)?;
    if env_path.exists() {
        let Some(example_path) = example_path else {
            eprintln!("Unchanged {}", env_path.display());
            return write_compose_for(root);
        };
        let example = dotenv_pairs(&example_path)?;
        let existing: Vec<String> = parse_dotenv(&env_path)?.into_keys().collect();
        let missing = missing_keys(&existing, &example);
        if missing.is_empty() {
            eprintln!(
                "Unchanged {}: it has every key of .env.example",
                env_path.display()
            );
        } else if add_missing_keys {
            let mut text = std::fs::read_to_string(&env_path)?;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("# Added by `disinto init --add-missing-keys` from .env.example:\n");
            for (k, v) in &missing {
                text.push_str(&format!("{k}={v}\n"));
            }
            fsx::write_atomic(&env_path, text.as_bytes())?;
            let names: Vec<&str> = missing.iter().map(|(k, _)| k.as_str()).collect();
            eprintln!("Appended to {}: {}", env_path.display(), names.join(", "));
        } else {
            let names: Vec<&str> = missing.iter().map(|(k, _)| k.as_str()).collect();
            eprintln!(
                "Unchanged {}; it lacks {} (defaults apply; `disinto init --add-missing-keys` appends them)",
                env_path.display(),
                names.join(", ")
            );
        }
    } else {
        let example_path = example_path.context(
            "no .env.example next to the factory or in the disinto checkout: write .env by hand",
        )?;
        let text = std::fs::read(&example_path)?;
        fsx::write_atomic(&env_path, &text)?;
        eprintln!(
            "Created {} from {}",
            env_path.display(),
            example_path.display()
        );
    }
    write_compose_for(root)
}

/// The second half of `init`: `projects/` and the compose file from `.env`.
fn write_compose_for(root: &Path) -> Result<()> {
    let projects = root.join("projects");
    if !projects.exists() {
        std::fs::create_dir_all(&projects)?;
        eprintln!("Created {}", projects.display());
    }
    let factory = Factory::open(root)?;
    let input = ComposeInput::from_settings(&factory.settings)?;
    require_build_context(root, &input.agents)?;
    factory.write_compose(&input)?;
    Ok(())
}

fn require_build_context(root: &Path, agents: &AgentsImage) -> Result<()> {
    if *agents == AgentsImage::Dev && !root.join(AGENTS_DOCKERFILE).is_file() {
        bail!(
            "AGENTS_IMAGE is not set and {} has no {AGENTS_DOCKERFILE}: dev mode needs a source checkout; pinned mode needs AGENTS_IMAGE (e.g. AGENTS_IMAGE=v0.1.1 in .env)",
            root.display()
        );
    }
    Ok(())
}

fn image_present(sh: &Shell, reference: &str) -> bool {
    cmd!(sh, "docker image inspect {reference}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

fn up(sh: &Shell, root: &Path, services: &[String], dry_run: bool, limit: Duration) -> Result<()> {
    crate::docker::require_client()?;
    let factory = Factory::open(root)?;
    let input = ComposeInput::from_settings(&factory.settings)?;
    require_build_context(root, &input.agents)?;
    let registry = parse_registry(factory.settings.get("DISINTO_REGISTRY"))?;
    let wants_agents =
        services.is_empty() || services.iter().any(|s| s == "agents" || s == "runner");

    // The target image must be here before any running container is touched.
    if let (true, Some(reference)) = (wants_agents, input.agents.resolved(&registry)) {
        if dry_run {
            println!("$ docker pull {reference}   # only if it is not present");
        } else if !image_present(sh, &reference) {
            eprintln!("$ docker pull {reference}");
            let pulled = cmd!(sh, "docker pull --quiet {reference}")
                .quiet()
                .ignore_stdout()
                .ignore_status()
                .output()?;
            if !pulled.status.success() {
                let why = crate::docker::last_line(&pulled.stderr);
                bail!(
                    "AGENTS_IMAGE={}: cannot pull {reference} ({why}); nothing was changed, the running factory is as it was",
                    factory.settings.get("AGENTS_IMAGE").unwrap_or_default()
                );
            }
        }
    }

    let mut args: Vec<&str> = vec!["up", "--detach"];
    if input.agents == AgentsImage::Dev && wants_agents {
        // Dev mode follows the source: rebuild (from cache when nothing changed).
        args.push("--build");
    }
    // A factory that is not a source checkout cannot build edge or reproduce (they have no
    // released images yet): the whole-stack `up` leaves them out and says so.
    let mut buildable: Vec<String> = vec![];
    if services.is_empty() {
        let model = crate::compose::model(&input);
        let (ok, missing): (Vec<_>, Vec<_>) = model
            .services
            .iter()
            .filter(|(_, s)| s.profiles.is_empty())
            .partition(|(_, s)| {
                s.build
                    .as_ref()
                    .is_none_or(|b| root.join(b.dockerfile_path()).is_file())
            });
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
            eprintln!(
                "warning: {} not started: built from source, and {} is not a source checkout",
                names.join(", "),
                root.display()
            );
            buildable = ok.into_iter().map(|(n, _)| n.clone()).collect();
        }
    }
    if !services.is_empty() {
        args.push("--no-deps");
        args.extend(services.iter().map(String::as_str));
    } else {
        args.extend(buildable.iter().map(String::as_str));
    }
    if dry_run {
        println!(
            "$ AGENTS_IMAGE={} cargo xtask gen-compose --output {}",
            factory.settings.get("AGENTS_IMAGE").unwrap_or_default(),
            factory.compose_file().display()
        );
        println!("$ {}", factory.compose(sh, &args));
        return Ok(());
    }
    factory.write_compose(&input)?;
    factory.compose(sh, &args).run()?;
    if services.is_empty() || services.iter().any(|s| s == "agents") {
        let container = factory.container(sh, "agents")?;
        factory.wait_healthy(sh, &container, limit)?;
        eprintln!("agents is healthy ({})", input.agents);
    }
    Ok(())
}

fn down(sh: &Shell, root: &Path, volumes: bool, dry_run: bool) -> Result<()> {
    crate::docker::require_client()?;
    let factory = Factory::open(root)?;
    if !factory.compose_file().is_file() {
        bail!(
            "{} has no docker-compose.yml: nothing to stop (run `disinto init` to create it)",
            root.display()
        );
    }
    let mut args = vec!["--profile", "*", "down"];
    if volumes {
        let names = factory
            .compose(sh, &["config", "--volumes"])
            .quiet()
            .read()
            .context("cannot list the factory's volumes")?;
        let names: Vec<&str> = names.split_whitespace().collect();
        eprintln!(
            "--volumes: deleting the named volumes {} and all data in them",
            names.join(", ")
        );
        args.push("--volumes");
    }
    if dry_run {
        println!("$ {}", factory.compose(sh, &args));
        return Ok(());
    }
    factory.compose(sh, &args).run()?;
    if !volumes {
        eprintln!("Named volumes kept (agent data is safe); `disinto down --volumes` deletes them");
    }
    Ok(())
}

/// One row of `disinto status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub service: String,
    pub image: String,
    pub digest: String,
    pub version: String,
    pub state: String,
    pub health: String,
}

/// The status table, aligned, with a header.
pub fn render(rows: &[Row]) -> String {
    let header = Row {
        service: "SERVICE".into(),
        image: "IMAGE".into(),
        digest: "DIGEST".into(),
        version: "VERSION".into(),
        state: "STATE".into(),
        health: "HEALTH".into(),
    };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let width = |f: fn(&Row) -> &str| all.iter().map(|r| f(r).len()).max().unwrap_or(0);
    let w = [
        width(|r| &r.service),
        width(|r| &r.image),
        width(|r| &r.digest),
        width(|r| &r.version),
        width(|r| &r.state),
    ];
    all.iter()
        .map(|r| {
            format!(
                "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {:w4$}  {}\n",
                r.service,
                r.image,
                r.digest,
                r.version,
                r.state,
                r.health,
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4]
            )
        })
        .collect()
}

fn status(sh: &Shell, root: &Path) -> Result<()> {
    crate::docker::require_client()?;
    let factory = Factory::open(root)?;
    if !factory.compose_file().is_file() {
        bail!(
            "{} has no docker-compose.yml: run `disinto init` first",
            root.display()
        );
    }
    let ids = factory
        .compose(sh, &["--profile", "*", "ps", "--all", "--quiet"])
        .quiet()
        .read()?;
    let mut rows = Vec::new();
    for id in ids.split_whitespace() {
        let format = "{{index .Config.Labels \"com.docker.compose.service\"}}\t{{.Config.Image}}\t{{.Image}}\t{{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}";
        let line = cmd!(sh, "docker inspect --format {format} {id}")
            .quiet()
            .read()?;
        let f: Vec<&str> = line.split('\t').collect();
        let [service, image, image_id, state, health] = f.as_slice() else {
            continue;
        };
        let format =
            "{{json .RepoDigests}}\t{{index .Config.Labels \"org.opencontainers.image.version\"}}";
        let info = cmd!(sh, "docker image inspect --format {format} {image_id}")
            .quiet()
            .read()
            .unwrap_or_default();
        let (digests, version) = info.split_once('\t').unwrap_or(("[]", ""));
        let digests: Vec<String> = serde_json::from_str(digests).unwrap_or_default();
        let repo = crate::image_ref::repository_of(image);
        let digest = digests
            .iter()
            .find(|d| d.starts_with(&format!("{repo}@")))
            .and_then(|d| d.split_once('@'))
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| "(local-build)".into());
        rows.push(Row {
            service: service.to_string(),
            image: image.to_string(),
            digest,
            version: if version.is_empty() || version == "<no value>" {
                "-".into()
            } else {
                version.to_string()
            },
            state: state.to_string(),
            health: health.trim().to_string(),
        });
    }
    rows.sort_by(|a, b| a.service.cmp(&b.service));
    if rows.is_empty() {
        println!("no containers: `disinto up` starts the factory");
        return Ok(());
    }
    print!("{}", render(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::generate;

    #[test]
    fn missing_keys_keep_the_example_order() {
        let example = vec![
            ("AGENTS_IMAGE".to_string(), String::new()),
            ("DISINTO_REGISTRY".to_string(), String::new()),
            ("POLL_INTERVAL".to_string(), "60".to_string()),
        ];
        let existing = vec!["POLL_INTERVAL".to_string(), "OTHER".to_string()];
        let missing = missing_keys(&existing, &example);
        let names: Vec<&str> = missing.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["AGENTS_IMAGE", "DISINTO_REGISTRY"]);
    }

    #[test]
    fn the_example_documents_the_image_variables_first() {
        let path = crate::project_root().join(".env.example");
        let pairs = dotenv_pairs(&path).unwrap();
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(&names[..2], ["AGENTS_IMAGE", "DISINTO_REGISTRY"]);
        // Every variable the generated compose file reads is documented.
        let text = generate(&ComposeInput {
            agents: AgentsImage::Release("v0.1.1".into()),
            agent_cli: None,
        })
        .unwrap();
        for var in text
            .split("${")
            .skip(1)
            .filter_map(|s| s.split([':', '}']).next())
        {
            assert!(names.contains(&var), "{var} is not in .env.example");
        }
        assert!(names.contains(&"AGENT_CLI_BIN"));
    }

    #[test]
    fn status_table_is_aligned() {
        let rows = vec![Row {
            service: "agents".into(),
            image: "r/agents:v0.2.0".into(),
            digest: "sha256:ab".into(),
            version: "v0.2.0".into(),
            state: "running".into(),
            health: "healthy".into(),
        }];
        let table = render(&rows);
        assert_eq!(
            table,
            "SERVICE  IMAGE            DIGEST     VERSION  STATE    HEALTH\n\
             agents   r/agents:v0.2.0  sha256:ab  v0.2.0   running  healthy\n"
        );
    }
}
