//! The factory's `docker-compose.yml` as typed structs: the model, and its generation.
//! Pure (`model`, `generate`); `cargo xtask gen-compose` and `disinto up` write it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::config::FactoryConfig;
use crate::model::image_ref::{AgentsImage, OurImage, AGENTS, EDGE, REPRODUCE};
use crate::model::mount::parse_short;

/// The compose project name the generated file gives (`name:`); the prefix of every named
/// volume unless COMPOSE_PROJECT_NAME says otherwise (see [`project_name`]).
pub const PROJECT: &str = "disinto";
/// The variable that names the compose project over the file's `name:` (process environment
/// first, then `.env`), as compose reads it.
pub const PROJECT_NAME_VAR: &str = "COMPOSE_PROJECT_NAME";
/// The Dockerfile agents and runner are built from (dev) or were released from (pinned).
pub const AGENTS_DOCKERFILE: &str = AGENTS.dockerfile;
/// The local tag dev builds get, so agents and runner share one image there too.
pub const DEV_AGENTS_IMAGE: &str = "disinto-agents:dev";

// Third-party images, pinned by tag: an upgrade of these is a reviewed change here.
const FORGEJO_IMAGE: &str = "codeberg.org/forgejo/forgejo:11.0.7";
const WOODPECKER_SERVER_IMAGE: &str = "woodpeckerci/woodpecker-server:v3.10.0";
const WOODPECKER_AGENT_IMAGE: &str = "woodpeckerci/woodpecker-agent:v3.10.0";

/// How long agents may take to stop: the loop passes SIGTERM to the session in flight and
/// waits for it (a drained rollout has none; `--force` and `down` may).
pub const AGENTS_STOP_GRACE: &str = "60s";

/// Every service of the factory, in the model's order; a test holds the two equal, so a
/// service name can be checked before a model is built.
pub const SERVICES: [&str; 7] = [
    "agents",
    "edge",
    "forgejo",
    "reproduce",
    "runner",
    "woodpecker",
    "woodpecker-agent",
];

/// Where every volume of the agents image is mounted from: `(source, VOLUME path)`.
/// `docker/agents/Dockerfile` declares exactly these paths; `check-volumes` keeps them equal.
pub const AGENT_MOUNTS: [(&str, &str); 4] = [
    ("agent-data", "/home/agent/data"),
    ("agent-repos", "/home/agent/repos"),
    ("./projects", "/home/agent/disinto/projects"),
    ("agent-state", "/home/agent/disinto/state"),
];

/// A compose file, shaped so serde writes the YAML we want and reads the files others write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Compose {
    /// Only in the stack file: `docker stack deploy` of older Docker clients needs a 3.x
    /// version (compose v2 calls the key obsolete, so the compose file has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Option<TopLevelVolume>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Option<Network>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<serde_yaml::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<serde_yaml::Value>,
    /// How long a stopping container may take before it is killed: agents' session in
    /// flight gets the time to end cleanly (compose and Swarm read the same key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<String>,
    /// Only in the stack file (see [`crate::model::stack`]); compose ignores most of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
}

/// `deploy:` of a service, the keys Swarm reads that the stack file sets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deploy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestartPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
}

/// `update_config:` and `rollback_config:` (the same keys).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

/// `build:` in either of its compose forms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Build {
    Context(String),
    Full {
        #[serde(default = "dot")]
        context: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dockerfile: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        args: Option<serde_yaml::Value>,
    },
}

fn dot() -> String {
    ".".into()
}

impl Build {
    /// The Dockerfile path relative to the compose file's directory.
    pub fn dockerfile_path(&self) -> PathBuf {
        let (context, dockerfile) = match self {
            Build::Context(c) => (c.as_str(), None),
            Build::Full {
                context,
                dockerfile,
                ..
            } => (context.as_str(), dockerfile.as_deref()),
        };
        Path::new(context).join(dockerfile.unwrap_or("Dockerfile"))
    }
}

/// `environment:` as a map or as a list of `KEY=value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Environment {
    Map(BTreeMap<String, Option<serde_yaml::Value>>),
    List(Vec<String>),
}

/// One entry of a service's `volumes:`, short (`src:dst[:mode]`) or long form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Mount {
    Short(String),
    Long {
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_only: Option<bool>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopLevelVolume {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

/// Everything the generated file depends on; same input, byte-identical output.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposeInput {
    pub agents: AgentsImage,
    /// Host path of an agent CLI binary (e.g. claude) to bind into agents and runner.
    pub agent_cli: Option<String>,
    /// Exact references that replace what `agents` names, per image (`disinto up` pins
    /// each image by its registry digest before it runs).
    pub pinned: BTreeMap<&'static str, String>,
}

impl From<&FactoryConfig> for ComposeInput {
    fn from(config: &FactoryConfig) -> ComposeInput {
        ComposeInput {
            agents: config.agents.clone(),
            agent_cli: config.agent_cli.clone(),
            pinned: BTreeMap::new(),
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn env(pairs: &[(&str, &str)]) -> Option<Environment> {
    Some(Environment::Map(
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Some(serde_yaml::Value::String(v.to_string())),
                )
            })
            .collect(),
    ))
}

fn on_network() -> Option<serde_yaml::Value> {
    Some(serde_yaml::Value::Sequence(vec![PROJECT.into()]))
}

fn depends(on: &[&str]) -> Option<serde_yaml::Value> {
    Some(serde_yaml::Value::Sequence(
        on.iter().map(|s| (*s).into()).collect(),
    ))
}

fn short(source: &str, target: &str) -> Mount {
    Mount::Short(format!("{source}:{target}"))
}

fn build(dockerfile: &str) -> Option<Build> {
    Some(Build::Full {
        context: ".".into(),
        dockerfile: Some(dockerfile.into()),
        args: None,
    })
}

/// `image:` and `build:` of one of our images: pinned, released, or built from source (dev).
fn our_image(input: &ComposeInput, image: OurImage) -> (Option<String>, Option<Build>) {
    if let Some(pinned) = input.pinned.get(image.name) {
        return (Some(pinned.clone()), None);
    }
    match input.agents.compose_image_for(image) {
        Some(reference) => (Some(reference), None),
        None => (Some(image.dev_tag()), build(image.dockerfile)),
    }
}

/// The agent CLI, bound read-only. The long form, because a host path may hold ':' (which
/// the short form splits on), and every '$' doubled, because compose interpolates the file:
/// what the operator wrote is the path compose binds, byte for byte.
fn cli_mount(host_path: &str) -> Mount {
    Mount::Long {
        kind: Some("bind".into()),
        source: Some(literal(host_path)),
        target: "/usr/local/bin/claude".into(),
        read_only: Some(true),
    }
}

/// A value compose must take literally: `$` escaped as `$$` (compose's escape for a dollar).
pub fn literal(value: &str) -> String {
    value.replace('$', "$$")
}

/// The agents image as agents and runner both use it: one function, so they cannot drift.
fn agents_image_service(input: &ComposeInput) -> Service {
    let (image, build) = our_image(input, AGENTS);
    let mut volumes: Vec<Mount> = AGENT_MOUNTS.iter().map(|(s, t)| short(s, t)).collect();
    if let Some(cli) = &input.agent_cli {
        volumes.push(cli_mount(cli));
    }
    Service {
        image,
        build,
        environment: env(&[
            ("AGENT_CMD", "${AGENT_CMD:-}"),
            ("FORGE_URL", "http://forgejo:3000"),
            ("POLL_INTERVAL", "${POLL_INTERVAL:-60}"),
            ("WOODPECKER_SERVER", "http://woodpecker:8000"),
        ]),
        volumes,
        networks: on_network(),
        ..Service::default()
    }
}

/// The compose model for `input`.
pub fn model(input: &ComposeInput) -> Compose {
    let mut services = BTreeMap::new();
    services.insert(
        "forgejo".to_string(),
        Service {
            image: Some(FORGEJO_IMAGE.into()),
            restart: Some("unless-stopped".into()),
            environment: env(&[("USER_UID", "1000"), ("USER_GID", "1000")]),
            volumes: vec![short("forgejo-data", "/data")],
            networks: on_network(),
            ..Service::default()
        },
    );
    services.insert(
        "woodpecker".to_string(),
        Service {
            image: Some(WOODPECKER_SERVER_IMAGE.into()),
            restart: Some("unless-stopped".into()),
            depends_on: depends(&["forgejo"]),
            environment: env(&[
                ("WOODPECKER_AGENT_SECRET", "${WOODPECKER_AGENT_SECRET:-}"),
                ("WOODPECKER_FORGEJO", "true"),
                ("WOODPECKER_FORGEJO_URL", "http://forgejo:3000"),
                ("WOODPECKER_HOST", "${WOODPECKER_HOST:-http://localhost}"),
            ]),
            volumes: vec![short("woodpecker-data", "/var/lib/woodpecker")],
            networks: on_network(),
            ..Service::default()
        },
    );
    services.insert(
        "woodpecker-agent".to_string(),
        Service {
            image: Some(WOODPECKER_AGENT_IMAGE.into()),
            restart: Some("unless-stopped".into()),
            depends_on: depends(&["woodpecker"]),
            environment: env(&[
                ("WOODPECKER_AGENT_SECRET", "${WOODPECKER_AGENT_SECRET:-}"),
                ("WOODPECKER_SERVER", "woodpecker:9000"),
            ]),
            volumes: vec![short("/var/run/docker.sock", "/var/run/docker.sock")],
            networks: on_network(),
            ..Service::default()
        },
    );
    services.insert(
        "agents".to_string(),
        Service {
            restart: Some("unless-stopped".into()),
            depends_on: depends(&["forgejo", "woodpecker"]),
            stop_grace_period: Some(AGENTS_STOP_GRACE.into()),
            ..agents_image_service(input)
        },
    );
    services.insert(
        "runner".to_string(),
        Service {
            // On demand only: `docker compose run --rm runner ACTION`.
            profiles: strings(&["runner"]),
            ..agents_image_service(input)
        },
    );
    services.insert(
        "edge".to_string(),
        Service {
            image: our_image(input, EDGE).0,
            build: our_image(input, EDGE).1,
            restart: Some("unless-stopped".into()),
            depends_on: depends(&["forgejo", "woodpecker"]),
            ports: vec!["${EDGE_HTTP_PORT:-80}:80".into()],
            networks: on_network(),
            ..Service::default()
        },
    );
    services.insert(
        "reproduce".to_string(),
        Service {
            image: our_image(input, REPRODUCE).0,
            build: our_image(input, REPRODUCE).1,
            profiles: strings(&["reproduce"]),
            volumes: vec![short("reproduce-work", "/work")],
            networks: on_network(),
            ..Service::default()
        },
    );
    let mut volumes: BTreeMap<String, Option<TopLevelVolume>> = BTreeMap::new();
    // The named volumes the services mount, read as compose reads each entry.
    let named: Vec<String> = services
        .values()
        .flat_map(|s| &s.volumes)
        .filter_map(|m| match m {
            Mount::Short(spec) => parse_short(spec).ok(),
            Mount::Long { .. } => None,
        })
        .filter(|m| m.kind == "volume")
        .filter_map(|m| m.source)
        .collect();
    for name in named {
        volumes.insert(name, Some(TopLevelVolume::default()));
    }
    Compose {
        version: None,
        name: Some(PROJECT.into()),
        services,
        volumes,
        networks: BTreeMap::from([(PROJECT.to_string(), Some(Network::default()))]),
    }
}

/// Whether compose takes `name` as a project name as it is: lower-case letters, digits, `_`
/// and `-`, starting with a letter or a digit. Swarm takes the same for a stack.
pub fn is_project_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The compose project of a factory, decided as compose decides it for `docker compose --file
/// F --project-directory DIR` (which is how disinto runs it: no `--project-name`):
/// 1. `from_env`, COMPOSE_PROJECT_NAME (process environment, then `.env`) when not empty; a
///    name compose refuses is refused here too, in one line;
/// 2. else `file_name`, the compose file's top-level `name:` when not empty, normalized;
/// 3. else DIR's base name, normalized.
///
/// Normalized as compose does it: lower-cased, only `a-z0-9_-` kept, leading `_` and `-`
/// dropped; a name that normalizes to nothing is an error, as in compose.
pub fn project_name(from_env: Option<&str>, file_name: Option<&str>, dir: &Path) -> Result<String> {
    if let Some(name) = from_env.filter(|n| !n.is_empty()) {
        if !is_project_name(name) {
            anyhow::bail!("{PROJECT_NAME_VAR}={name:?} is not a name compose takes: lower-case letters, digits, '-' and '_', starting with a letter or digit");
        }
        return Ok(name.to_string());
    }
    let (name, from) = match file_name.filter(|n| !n.is_empty()) {
        Some(name) => (name.to_string(), "the compose file's name:"),
        None => (
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            "the factory directory's name",
        ),
    };
    let normal: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    let normal = normal.trim_start_matches(['_', '-']);
    if normal.is_empty() {
        anyhow::bail!("{from} {name:?} leaves no compose project name (compose keeps only a-z, 0-9, '-' and '_'): set {PROJECT_NAME_VAR} in .env");
    }
    Ok(normal.to_string())
}

/// The header every generated file starts with.
fn header(input: &ComposeInput) -> String {
    format!(
        "# Generated by `cargo xtask gen-compose` (or `disinto init`): do not edit by hand.\n\
         # Regenerate after changing AGENTS_IMAGE or DISINTO_REGISTRY (environment or .env).\n\
         # agents and runner image: {}{}\n",
        input.agents,
        match input.agents {
            AgentsImage::Dev => "",
            _ => "; edge and reproduce: the same release",
        }
    )
}

/// The full text of `docker-compose.yml` for `input`.
pub fn generate(input: &ComposeInput) -> Result<String> {
    render(input, &model(input))
}

/// The text of `model`, which is [`model`]`(input)`, built once by a caller that reads it too.
pub fn render(input: &ComposeInput, model: &Compose) -> Result<String> {
    let body = serde_yaml::to_string(model).context("cannot serialize the compose model")?;
    Ok(format!("{}{body}", header(input)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::Settings;

    fn input(agents: Option<&str>) -> ComposeInput {
        let process = agents
            .map(|v| BTreeMap::from([("AGENTS_IMAGE".to_string(), v.to_string())]))
            .unwrap_or_default();
        input_of(process)
    }

    fn input_of(process: BTreeMap<String, String>) -> ComposeInput {
        let settings = Settings::from_maps(process, BTreeMap::new());
        ComposeInput::from(&FactoryConfig::from_settings(&settings).unwrap())
    }

    #[test]
    fn dev_mode_builds_agents_and_runner_into_one_image() {
        let m = model(&input(None));
        for name in ["agents", "runner"] {
            let s = &m.services[name];
            assert_eq!(s.image.as_deref(), Some(DEV_AGENTS_IMAGE), "{name}");
            let b = s.build.as_ref().expect("dev mode builds");
            assert_eq!(b.dockerfile_path(), Path::new("./docker/agents/Dockerfile"));
        }
    }

    #[test]
    fn pinned_mode_has_no_build_for_agents_and_runner() {
        let m = model(&input(Some("v0.1.1")));
        let want = "${DISINTO_REGISTRY:-ghcr.io/disinto}/agents:v0.1.1";
        for name in ["agents", "runner"] {
            let s = &m.services[name];
            assert_eq!(s.image.as_deref(), Some(want), "{name}");
            assert!(s.build.is_none(), "{name}");
        }
        assert_eq!(m.services["runner"].profiles, ["runner"]);
    }

    #[test]
    fn generation_is_deterministic_and_round_trips() {
        let a = generate(&input(Some("v0.1.1"))).unwrap();
        let b = generate(&input(Some("v0.1.1"))).unwrap();
        assert_eq!(a, b);
        assert!(a.starts_with("# Generated by `cargo xtask gen-compose`"));
        let parsed: Compose = serde_yaml::from_str(&a).unwrap();
        assert_eq!(parsed, model(&input(Some("v0.1.1"))));
    }

    #[test]
    fn the_service_list_is_the_models() {
        for agents in [None, Some("v0.1.1")] {
            let model = model(&input(agents));
            let names: Vec<&str> = model.services.keys().map(String::as_str).collect();
            assert_eq!(names, SERVICES);
        }
    }

    #[test]
    fn every_named_source_is_declared_at_top_level() {
        let m = model(&input(None));
        for name in ["agent-data", "agent-repos", "agent-state", "forgejo-data"] {
            assert!(m.volumes.contains_key(name), "{name}");
        }
        assert!(!m.volumes.contains_key("./projects"));
    }

    #[test]
    fn agent_cli_is_bound_read_only_when_set() {
        let process = BTreeMap::from([(
            "AGENT_CLI_BIN".to_string(),
            "/usr/local/bin/claude".to_string(),
        )]);
        let i = FactoryConfig::from_settings(&Settings::from_maps(process, BTreeMap::new()))
            .map(|c| ComposeInput::from(&c));
        let m = model(&i.unwrap());
        let want = cli_mount("/usr/local/bin/claude");
        assert!(m.services["agents"].volumes.contains(&want));
        assert!(m.services["runner"].volumes.contains(&want));
        let bad = BTreeMap::from([("AGENT_CLI_BIN".to_string(), "claude".to_string())]);
        let e = FactoryConfig::from_settings(&Settings::from_maps(bad, BTreeMap::new()));
        assert!(format!("{:#}", e.unwrap_err()).starts_with("AGENT_CLI_BIN=\"claude\""));
    }

    #[test]
    fn the_project_is_named_as_compose_names_it() {
        let dir = Path::new("/srv/My.Factory");
        let name = |env, file| project_name(env, file, dir);
        assert_eq!(name(Some("prod"), Some(PROJECT)).unwrap(), "prod");
        // Empty is unset: the file's name comes next, then the directory's.
        assert_eq!(name(Some(""), Some(PROJECT)).unwrap(), PROJECT);
        assert_eq!(name(None, Some("_Ab.C-1")).unwrap(), "abc-1");
        assert_eq!(name(None, Some("")).unwrap(), "myfactory");
        assert_eq!(name(None, None).unwrap(), "myfactory");
        for bad in ["Prod", "a.b", "_ab", "-x", "a b", "é"] {
            let e = format!("{:#}", name(Some(bad), None).unwrap_err());
            assert!(e.starts_with("COMPOSE_PROJECT_NAME="), "{bad}: {e}");
            assert_eq!(e.lines().count(), 1);
        }
        assert!(name(None, Some("É")).is_err());
        assert!(project_name(None, None, Path::new("/srv/___")).is_err());
    }

    #[test]
    fn bad_registry_is_refused() {
        let process = BTreeMap::from([
            ("AGENTS_IMAGE".to_string(), "v0.1.1".to_string()),
            ("DISINTO_REGISTRY".to_string(), "Not A Registry".to_string()),
        ]);
        let e = FactoryConfig::from_settings(&Settings::from_maps(process, BTreeMap::new()))
            .map(|c| ComposeInput::from(&c));
        assert!(format!("{:#}", e.unwrap_err()).starts_with("DISINTO_REGISTRY="));
    }
}
