//! The factory as a Docker Swarm stack file: the compose model ([`crate::model::compose::model`])
//! reshaped for `docker stack deploy`. Pure (`stack`, `generate`, `volume_node`); `disinto swarm`
//! writes and deploys it.
//!
//! What changes from the compose file, and why:
//! - no `build:` (a swarm runs released images only: dev mode is refused) and no `profiles:`
//!   (`docker stack deploy` refuses the key): runner and reproduce, compose's on-demand
//!   services, are services with `replicas: 0`, so their images are pinned and rolled with the
//!   rest, and `docker service scale STACK_reproduce=1` starts one where its volume is;
//! - `restart:` and `depends_on:` (which Swarm ignores) become `deploy.restart_policy`; Swarm
//!   restarts what fails and the services find each other by name on the overlay network;
//! - every variable is resolved from the factory's settings (process environment, then
//!   `.env`) and every `$` of the result written `$$`: `docker stack deploy` reads no `.env`,
//!   so this file is exactly what Swarm runs, and it may hold secrets;
//! - every mount in the long form, binds made absolute (Swarm has no project directory, and
//!   reads `x:/y` as a Windows path when `x` is one letter);
//! - a service that owns a named volume is placed on the node labelled
//!   `disinto.volumes=true` (named volumes are local to a node) and updated `stop-first` (two
//!   tasks must never write one volume); the others (edge, woodpecker-agent) `start-first`;
//! - updates roll back on failure (`failure_action: rollback`), and Swarm watches each new
//!   task for [`MONITOR`] after it turns healthy. The health check is the image's own: the
//!   stack sets none, so a release's health check is the one Swarm judges it by;
//! - edge's port in the long form, published through the routing mesh (every node's
//!   addresses: a host address cannot be given);
//! - every string written double-quoted ([`crate::model::yaml`]): Swarm's reader takes a plain
//!   `1_000` for 1000 and `2024-11-25` for a date, and this file is what Swarm runs.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::model::compose::{
    literal, model, Compose, ComposeInput, Deploy, Environment, Mount, Network, Placement,
    RestartPolicy, Service, UpdateConfig,
};
use crate::model::config::Settings;
use crate::model::image_ref::AgentsImage;
use crate::model::mount::{is_path, parse_short, MountSpec};

/// The stack's name when nothing else names it: the compose project's in the file disinto
/// generates. `disinto swarm` defaults to the factory's compose project as compose names it
/// (COMPOSE_PROJECT_NAME first), so a single-host factory moved from `disinto up` to a swarm
/// keeps its volumes (`disinto_agent-data`, ...).
pub const DEFAULT_STACK: &str = crate::model::compose::PROJECT;
/// The stack file of a factory, relative to its directory.
pub const STACK_FILE: &str = "docker-stack.yml";
/// The node label that marks the node holding the factory's named volumes.
pub const VOLUMES_LABEL: &str = "disinto.volumes";
/// The compose file format `docker stack deploy` is given: 3.8 has every key used here
/// (`rollback_config`, `order`), and Docker clients back to 19.03 read it.
pub const STACK_VERSION: &str = "3.8";
/// How long Swarm watches a new task for failure once it runs (healthy): three intervals of
/// the agents image's health check, so a task that fails its checks right after its first
/// good one is still caught, and rolled back.
pub const MONITOR: &str = "30s";
/// Every variable the compose model refers to; the stack resolves exactly these. A test
/// keeps the list and the model in step.
pub const VARIABLES: [&str; 6] = [
    "AGENT_CMD",
    "DISINTO_REGISTRY",
    "EDGE_HTTP_PORT",
    "POLL_INTERVAL",
    "WOODPECKER_AGENT_SECRET",
    "WOODPECKER_HOST",
];

/// Everything the stack file depends on; same input, byte-identical output.
#[derive(Debug, Clone, PartialEq)]
pub struct StackInput {
    /// The compose model's input, with our images pinned by digest (`disinto swarm deploy`
    /// pins them before it writes the file).
    pub compose: ComposeInput,
    /// The factory directory, absolute: `./projects` binds resolve against it.
    pub factory_dir: PathBuf,
    /// The values of [`VARIABLES`] that are set (process environment first, then `.env`).
    pub vars: BTreeMap<String, String>,
}

impl StackInput {
    /// The input for a factory in `factory_dir`, with the values `settings` gives [`VARIABLES`].
    pub fn new(
        compose: ComposeInput,
        factory_dir: &Path,
        settings: &Settings,
    ) -> Result<StackInput> {
        let mut vars = BTreeMap::new();
        for name in VARIABLES {
            if let Some(value) = settings.get(name)? {
                vars.insert(name.to_string(), value.to_string());
            }
        }
        Ok(StackInput {
            compose,
            factory_dir: factory_dir.to_path_buf(),
            vars,
        })
    }
}

/// The one-line refusal of dev mode.
pub const DEV_REFUSED: &str = "AGENTS_IMAGE is not set: a swarm runs released images only (no build); set AGENTS_IMAGE to a release in .env, e.g. AGENTS_IMAGE=v0.1.1";

/// The stack model for `input`.
pub fn stack(input: &StackInput) -> Result<Compose> {
    if input.compose.agents == AgentsImage::Dev {
        bail!(DEV_REFUSED);
    }
    if !input.factory_dir.is_absolute() {
        bail!(
            "factory directory {} is not absolute: the stack's bind mounts need an absolute path",
            input.factory_dir.display()
        );
    }
    let lookup = |name: &str| -> Result<Option<String>> {
        if !VARIABLES.contains(&name) {
            bail!("the compose model refers to ${{{name}}}, which stack::VARIABLES does not list");
        }
        Ok(input.vars.get(name).cloned())
    };
    let resolve = |text: &str| crate::model::dotenv::interpolate(text, &lookup);
    let compose = model(&input.compose);
    let mut services = BTreeMap::new();
    for (name, service) in compose.services {
        let in_service = |e: anyhow::Error| e.context(format!("service {name}"));
        if service.build.is_some() {
            // Only dev mode builds, and it is refused above; a pinned model never builds.
            bail!("service {name} is built from source: {DEV_REFUSED}");
        }
        let image = match &service.image {
            Some(image) => Some(literal(&resolve(image).map_err(in_service)?)),
            None => bail!("service {name} names no image"),
        };
        let volumes = service
            .volumes
            .iter()
            .map(|m| long_mount(m, &input.factory_dir, &resolve))
            .collect::<Result<Vec<_>>>()
            .map_err(in_service)?;
        let ports = service
            .ports
            .iter()
            .map(|p| long_port(p, &resolve))
            .collect::<Result<Vec<_>>>()
            .map_err(in_service)?;
        let environment = match &service.environment {
            None => None,
            Some(env) => Some(resolved_environment(env, &resolve).map_err(in_service)?),
        };
        let owns_volume = volumes
            .iter()
            .any(|m| matches!(m, Mount::Long { kind: Some(k), .. } if k == "volume"));
        let deploy = Deploy {
            // compose's on-demand services: defined, pinned, not running.
            replicas: Some(if service.profiles.is_empty() { 1 } else { 0 }),
            placement: owns_volume.then(|| Placement {
                constraints: vec![format!("node.labels.{VOLUMES_LABEL} == true")],
            }),
            restart_policy: Some(RestartPolicy {
                condition: Some("any".into()),
                delay: Some("5s".into()),
                max_attempts: None,
            }),
            update_config: Some(update(owns_volume, "rollback")),
            // A rollback that fails too stops where it is, for a person to look.
            rollback_config: Some(update(owns_volume, "pause")),
        };
        services.insert(
            name.clone(),
            Service {
                image,
                environment,
                ports,
                volumes,
                networks: service.networks,
                stop_grace_period: service.stop_grace_period,
                deploy: Some(deploy),
                ..Service::default()
            },
        );
    }
    let networks = compose
        .networks
        .into_keys()
        .map(|n| {
            let network = Network {
                driver: Some("overlay".into()),
                ..Network::default()
            };
            (n, Some(network))
        })
        .collect();
    Ok(Compose {
        version: Some(STACK_VERSION.into()),
        name: None,
        services,
        volumes: compose.volumes,
        networks,
    })
}

/// `update_config` (or `rollback_config`) of a service: one task at a time, watched for
/// [`MONITOR`]; a service that owns a volume stops its old task first.
fn update(owns_volume: bool, failure_action: &str) -> UpdateConfig {
    UpdateConfig {
        parallelism: Some(1),
        delay: Some("0s".into()),
        failure_action: Some(failure_action.into()),
        monitor: Some(MONITOR.into()),
        max_failure_ratio: Some(0.0),
        order: Some(
            if owns_volume {
                "stop-first"
            } else {
                "start-first"
            }
            .into(),
        ),
    }
}

fn resolved_environment(
    env: &Environment,
    resolve: &dyn Fn(&str) -> Result<String>,
) -> Result<Environment> {
    Ok(match env {
        Environment::Map(map) => {
            let mut out = BTreeMap::new();
            for (key, value) in map {
                let value = match value {
                    Some(serde_yaml::Value::String(s)) => {
                        Some(serde_yaml::Value::String(literal(&resolve(s)?)))
                    }
                    other => other.clone(),
                };
                out.insert(key.clone(), value);
            }
            Environment::Map(out)
        }
        Environment::List(items) => Environment::List(
            items
                .iter()
                .map(|i| resolve(i).map(|v| literal(&v)))
                .collect::<Result<_>>()?,
        ),
    })
}

/// A mount in the long form: a relative bind made absolute against the factory directory.
fn long_mount(
    mount: &Mount,
    factory_dir: &Path,
    resolve: &dyn Fn(&str) -> Result<String>,
) -> Result<Mount> {
    let (spec, read_only) = match mount {
        Mount::Short(spec) => {
            let spec =
                parse_short(&resolve(spec)?).map_err(|why| anyhow!("volume {spec:?}: {why}"))?;
            let read_only = spec.read_only.then_some(true);
            (spec, read_only)
        }
        Mount::Long {
            kind,
            source,
            target,
            read_only,
        } => {
            let source = source.as_deref().map(resolve).transpose()?;
            let kind = match (kind, &source) {
                (Some(kind), _) => kind.clone(),
                (None, Some(s)) if is_path(s) => "bind".into(),
                (None, _) => "volume".into(),
            };
            let spec = MountSpec {
                kind,
                source,
                target: resolve(target)?,
                read_only: *read_only == Some(true),
            };
            (spec, *read_only)
        }
    };
    let (kind, source) = match (spec.kind.as_str(), spec.source) {
        (_, None) => bail!("the mount at {} has no source", spec.target),
        ("bind", Some(source)) if source.starts_with('~') => bail!(
            "bind source {source:?} starts with ~: Swarm does not expand it; use an absolute path"
        ),
        ("bind", Some(source)) if source.starts_with('/') => ("bind", source),
        ("bind", Some(source)) => ("bind", absolute(factory_dir, &source)?),
        (_, Some(source)) => ("volume", source),
    };
    let target = spec.target;
    Ok(Mount::Long {
        kind: Some(kind.into()),
        source: Some(literal(&source)),
        target: literal(&target),
        read_only,
    })
}

/// `relative` resolved against `dir` without touching the file system (`./projects` →
/// `/srv/factory/projects`).
fn absolute(dir: &Path, relative: &str) -> Result<String> {
    let mut path = dir.to_path_buf();
    for part in Path::new(relative).components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                path.pop();
            }
            Component::Normal(p) => path.push(p),
            _ => {}
        }
    }
    path.to_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not UTF-8: move the factory", path.display()))
}

/// One `ports:` entry as compose reads it: `[[IP:]PUBLISHED:]TARGET[/PROTOCOL]`, each port a
/// number or a range `A-B`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The host address, brackets of an IPv6 address removed.
    pub ip: Option<String>,
    /// The published (host) ports, when given.
    pub published: Option<(u16, u16)>,
    /// The container ports.
    pub target: (u16, u16),
    /// `tcp`, `udp` or `sctp`, lower-case.
    pub protocol: String,
}

/// Reads `raw` exactly as compose does (go-connections' `nat.ParsePortSpec`), so what compose
/// refuses is refused here too (`+80`, `8_0`, ` 80`, `65536`), and what it takes is taken
/// (`080`, `0`, `8000-8001`). The error says what is wrong, in compose's terms.
pub fn port_spec(raw: &str) -> std::result::Result<PortSpec, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let (ip, host, container) = match n {
        1 => (String::new(), "", parts[0]),
        2 => (String::new(), parts[0], parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    // nat.SplitProtoPort: the protocol follows the container port; a third '/' part is ignored.
    let (protocol, container) = match container.split('/').collect::<Vec<_>>().as_slice() {
        [""] | ["", ..] => ("", ""),
        [port] => ("tcp", *port),
        [port, "", ..] => ("tcp", *port),
        [port, protocol, ..] => (*protocol, *port),
        [] => ("", ""),
    };
    // net.SplitHostPort(ip + ":"): an IPv6 address only in brackets, nothing around them.
    let ip = match ip.strip_prefix('[') {
        Some(rest) => match rest.strip_suffix(']') {
            Some(inner) if !inner.contains(['[', ']']) => inner.to_string(),
            _ => return Err(format!("invalid IP address: {ip}")),
        },
        None if ip.contains(':') => {
            return Err(format!("invalid IP address {ip}: too many colons"))
        }
        None => ip,
    };
    // core::net, not std::net: parsing an address touches no network.
    if !ip.is_empty() && ip.parse::<core::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let target = port_range(container).ok_or(format!("invalid containerPort: {container}"))?;
    let published = match host {
        "" => None,
        host => Some(port_range(host).ok_or(format!("invalid hostPort: {host}"))?),
    };
    if let Some(p) = published {
        // A published range may be wider than one container port (a pool to pick from), but
        // two ranges must be the same size.
        if p.1 - p.0 != target.1 - target.0 && target.0 != target.1 {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container} and {host}"
            ));
        }
    }
    let protocol = protocol.to_ascii_lowercase();
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {protocol}"));
    }
    Ok(PortSpec {
        ip: (!ip.is_empty()).then_some(ip),
        published,
        target,
        protocol,
    })
}

/// `N` or `A-B` with Go's `strconv.ParseUint(s, 10, 16)` for each: ASCII digits only, no sign.
fn port_range(text: &str) -> Option<(u16, u16)> {
    let number = |s: &str| -> Option<u16> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match text.split('-').collect::<Vec<_>>().as_slice() {
        [one] => number(one).map(|p| (p, p)),
        [start, end, ..] => {
            let (start, end) = (number(start)?, number(end)?);
            (end >= start).then_some((start, end))
        }
        [] => None,
    }
}

/// A published port in the long form, as Swarm publishes it.
#[derive(Debug, Serialize)]
struct LongPort {
    target: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    published: Option<u16>,
    protocol: String,
    mode: &'static str,
}

/// `[PUBLISHED:]TARGET[/PROTOCOL]` in the long form: first read as compose reads it (what
/// compose refuses is refused), then held to what a swarm can publish. An absent or zero
/// PUBLISHED leaves it out: Swarm then picks a free port (30000 and up). A host address is
/// refused: the routing mesh publishes on every address of every node; so is a range.
fn long_port(
    port: &serde_yaml::Value,
    resolve: &dyn Fn(&str) -> Result<String>,
) -> Result<serde_yaml::Value> {
    let serde_yaml::Value::String(template) = port else {
        // Already long (or a bare number): the model writes none, keep it as it is.
        return Ok(port.clone());
    };
    let spec = resolve(template)?;
    let parsed = port_spec(&spec).map_err(|why| {
        anyhow!("port {template:?} is {spec:?}, which compose refuses ({why}): set a port number (1-65535, or 0 for one Swarm picks) in .env")
    })?;
    if parsed.ip.is_some() {
        bail!(
            "port {template:?} is {spec:?}: a swarm publishes a port on every address of every node (the routing mesh), so a host address cannot be given; set a port number in .env (0: Swarm picks one)"
        );
    }
    let single = |(start, end): (u16, u16)| -> Result<u16> {
        if start != end {
            bail!("port {template:?} is {spec:?}: a swarm publishes one port here, not a range; set a port number in .env");
        }
        Ok(start)
    };
    let target = single(parsed.target)?;
    if target == 0 {
        bail!("port {template:?} is {spec:?}: it names no container port");
    }
    let published = parsed
        .published
        .map(single)
        .transpose()?
        .filter(|p| *p != 0);
    serde_yaml::to_value(LongPort {
        target,
        published,
        protocol: parsed.protocol,
        mode: "ingress",
    })
    .context("cannot write a port in the long form")
}

/// `path` as the value of `docker stack deploy --compose-file`. The docker CLI reads that value
/// as a CSV record (pflag's string slice: `a,b` is two files), so a path holding `,` or `"`
/// would open other files; such a path goes in as one quoted CSV field (`"` doubled), which the
/// CLI reads back as exactly the path. A path with a CR before an LF is refused: Go's CSV
/// reader drops that CR even inside quotes. Other paths are given as they are.
pub fn compose_file_arg(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8: move the factory", path.display()))?;
    if text.contains("\r\n") {
        bail!(
            "{text:?} holds a carriage return before a line feed, which docker stack deploy cannot be given: move the factory"
        );
    }
    Ok(if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    })
}

/// The header every stack file starts with.
fn header(input: &StackInput) -> String {
    format!(
        "# Generated by `disinto swarm deploy` from the factory's .env: do not edit by hand.\n\
         # Deploy with `disinto swarm deploy`, which rewrites it first (pins images by digest).\n\
         # Variables are resolved: this file holds .env's values, secrets too (mode 0600).\n\
         # agents and runner image: {}; edge and reproduce: the same release\n",
        input.compose.agents
    )
}

/// The full text of the stack file for `input`.
pub fn generate(input: &StackInput) -> Result<String> {
    // Every string quoted: Swarm's reader must not take a value for a number or a date.
    let body =
        crate::model::yaml::to_string(&stack(input)?).context("cannot serialize the stack")?;
    Ok(format!("{}{body}", header(input)))
}

/// The named volumes of a stack called `stack`, as Docker names them (`STACK_agent-data`).
pub fn volume_names(stack: &str) -> Vec<String> {
    let input = ComposeInput {
        agents: AgentsImage::Dev,
        agent_cli: None,
        pinned: BTreeMap::new(),
    };
    model(&input)
        .volumes
        .into_keys()
        .map(|v| format!("{stack}_{v}"))
        .collect()
}

/// A node of the swarm, as far as placement cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    /// Whether it carries `disinto.volumes=true`.
    pub labelled: bool,
    /// Whether Swarm sees it up (`Status.State` is `ready`): a node that is down runs nothing.
    pub ready: bool,
    /// Whether it takes tasks (`Spec.Availability` is `active`, not `pause` or `drain`).
    pub active: bool,
}

/// Which node to label `disinto.volumes=true` before deploying, if any. Exactly one node may
/// carry the label: named volumes live on one node, and a second labelled node would let
/// Swarm start agents on empty volumes there. On a single-node swarm the command labels the
/// node itself; with several nodes, the operator picks the one that holds the data.
pub fn volume_node(nodes: &[Node]) -> Result<Option<&Node>> {
    let labelled: Vec<&Node> = nodes.iter().filter(|n| n.labelled).collect();
    match (labelled.as_slice(), nodes) {
        ([one], _) if !one.ready => bail!(
            "node {} is labelled {VOLUMES_LABEL}=true but is down: agents, forgejo and woodpecker could not start until it is back; start it, or restore the volumes on another node and move the label there (docker node update --label-add {VOLUMES_LABEL}=true NODE)",
            one.hostname
        ),
        ([_], _) => Ok(None),
        ([], [only]) => Ok(Some(only)),
        ([], []) => bail!("the swarm lists no nodes: check `docker node ls`"),
        ([], _) => bail!(
            "this swarm has {} nodes and none is labelled {VOLUMES_LABEL}=true: label the one that holds (or is to hold) the factory's volumes, e.g. docker node update --label-add {VOLUMES_LABEL}=true {}",
            nodes.len(),
            nodes[0].hostname
        ),
        (many, _) => bail!(
            "nodes {} are all labelled {VOLUMES_LABEL}=true, but named volumes live on one node: remove the label from all but the one that holds the data (docker node update --label-rm {VOLUMES_LABEL} NODE)",
            many.iter()
                .map(|n| n.hostname.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::FactoryConfig;
    use std::os::unix::ffi::OsStrExt;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn input(agents: Option<&str>, vars: &[(&str, &str)]) -> StackInput {
        let process: BTreeMap<String, String> = agents
            .map(|v| ("AGENTS_IMAGE".to_string(), v.to_string()))
            .into_iter()
            .chain(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        let settings = Settings::from_maps(process, BTreeMap::new());
        let config = FactoryConfig::from_settings(&settings).unwrap();
        StackInput::new(
            ComposeInput::from(&config),
            Path::new("/srv/factory"),
            &settings,
        )
        .unwrap()
    }

    fn err(input: &StackInput) -> String {
        format!("{:#}", stack(input).unwrap_err())
    }

    #[test]
    fn dev_mode_is_refused_in_one_line() {
        let e = err(&input(None, &[]));
        assert_eq!(e, DEV_REFUSED);
        assert_eq!(e.lines().count(), 1);
    }

    #[test]
    fn no_profiles_no_build_every_service_deployed() {
        let s = stack(&input(Some("v0.1.1"), &[])).unwrap();
        assert_eq!(s.version.as_deref(), Some(STACK_VERSION));
        assert_eq!(s.name, None);
        for (name, service) in &s.services {
            assert!(service.profiles.is_empty(), "{name}");
            assert!(service.build.is_none(), "{name}");
            assert!(service.restart.is_none(), "{name}");
            assert!(service.depends_on.is_none(), "{name}");
            let deploy = service.deploy.as_ref().unwrap();
            let update = deploy.update_config.as_ref().unwrap();
            assert_eq!(update.failure_action.as_deref(), Some("rollback"), "{name}");
            assert_eq!(update.monitor.as_deref(), Some(MONITOR), "{name}");
            let back = deploy.rollback_config.as_ref().unwrap();
            assert_eq!(back.failure_action.as_deref(), Some("pause"), "{name}");
            assert_eq!(
                deploy.restart_policy.as_ref().unwrap().condition.as_deref(),
                Some("any")
            );
            let want = if ["runner", "reproduce"].contains(&name.as_str()) {
                0
            } else {
                1
            };
            assert_eq!(deploy.replicas, Some(want), "{name}");
        }
    }

    #[test]
    fn volume_owners_stop_first_on_the_labelled_node_others_start_first() {
        let s = stack(&input(Some("v0.1.1"), &[])).unwrap();
        let order = |name: &str| {
            let d = s.services[name].deploy.clone().unwrap();
            let placed = d.placement.map(|p| p.constraints).unwrap_or_default();
            (d.update_config.unwrap().order.unwrap(), placed)
        };
        let on_node = vec!["node.labels.disinto.volumes == true".to_string()];
        for name in ["agents", "runner", "forgejo", "woodpecker", "reproduce"] {
            assert_eq!(
                order(name),
                ("stop-first".into(), on_node.clone()),
                "{name}"
            );
        }
        for name in ["edge", "woodpecker-agent"] {
            assert_eq!(order(name), ("start-first".into(), vec![]), "{name}");
        }
    }

    #[test]
    fn mounts_are_long_and_binds_absolute() {
        let s = stack(&input(Some("v0.1.1"), &[])).unwrap();
        let agents = &s.services["agents"].volumes;
        assert_eq!(
            agents[2],
            Mount::Long {
                kind: Some("bind".into()),
                source: Some("/srv/factory/projects".into()),
                target: "/home/agent/disinto/projects".into(),
                read_only: None,
            }
        );
        assert_eq!(
            agents[0],
            Mount::Long {
                kind: Some("volume".into()),
                source: Some("agent-data".into()),
                target: "/home/agent/data".into(),
                read_only: None,
            }
        );
        // Every VOLUME of the agents image is still mounted, in agents and runner.
        for name in ["agents", "runner"] {
            let targets: Vec<&str> = s.services[name]
                .volumes
                .iter()
                .filter_map(|m| match m {
                    Mount::Long { target, .. } => Some(target.as_str()),
                    Mount::Short(_) => None,
                })
                .collect();
            let want: Vec<&str> = crate::model::compose::AGENT_MOUNTS
                .iter()
                .map(|m| m.1)
                .collect();
            assert_eq!(targets, want, "{name}");
        }
        assert_eq!(
            absolute(Path::new("/a/b"), "../c/./d").unwrap(),
            "/a/c/d".to_string()
        );
    }

    #[test]
    fn variables_are_resolved_and_dollars_escaped() {
        let i = input(
            Some("v0.1.1"),
            &[
                ("DISINTO_REGISTRY", "127.0.0.1:5000/disinto"),
                ("AGENT_CMD", "echo $HOME"),
                ("POLL_INTERVAL", "5"),
            ],
        );
        let s = stack(&i).unwrap();
        let agents = &s.services["agents"];
        assert_eq!(
            agents.image.as_deref(),
            Some("127.0.0.1:5000/disinto/agents:v0.1.1")
        );
        let Some(Environment::Map(env)) = &agents.environment else {
            panic!("{:?}", agents.environment)
        };
        let get = |k: &str| env[k].as_ref().and_then(|v| v.as_str()).unwrap();
        assert_eq!(get("AGENT_CMD"), "echo $$HOME");
        assert_eq!(get("POLL_INTERVAL"), "5");
        // Unset: compose's defaults.
        let s = stack(&input(Some("v0.1.1"), &[])).unwrap();
        assert_eq!(
            s.services["edge"].image.as_deref(),
            Some("ghcr.io/disinto/edge:v0.1.1")
        );
        let text = generate(&i).unwrap();
        assert!(!text.contains("${"), "{text}");
    }

    #[test]
    fn values_that_look_like_numbers_or_dates_are_written_quoted() {
        let values = [
            ("AGENT_CMD", "1_000"),
            ("POLL_INTERVAL", "2024-11-25"),
            ("WOODPECKER_HOST", "yes"),
            ("WOODPECKER_AGENT_SECRET", "<<"),
        ];
        let text = generate(&input(Some("v0.1.1"), &values)).unwrap();
        for (name, value) in values {
            let line = format!("{name}: {}\n", crate::model::yaml::quoted(value));
            assert!(text.contains(&line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn pinned_images_are_used_as_given() {
        let mut i = input(Some("v0.1.1"), &[]);
        let pinned = format!("r/agents:v0.1.1@{DIGEST}");
        i.compose.pinned.insert("agents", pinned.clone());
        let s = stack(&i).unwrap();
        assert_eq!(s.services["agents"].image.as_deref(), Some(pinned.as_str()));
        assert_eq!(s.services["runner"].image.as_deref(), Some(pinned.as_str()));
    }

    #[test]
    fn edge_port_in_the_long_form_through_the_routing_mesh() {
        let port = |value: Option<&str>| {
            let vars: Vec<(&str, &str)> =
                value.map(|v| ("EDGE_HTTP_PORT", v)).into_iter().collect();
            stack(&input(Some("v0.1.1"), &vars)).map(|s| s.services["edge"].ports.clone())
        };
        let long = |published: Option<u64>| {
            let mut m = serde_yaml::Mapping::new();
            m.insert("target".into(), 80.into());
            if let Some(p) = published {
                m.insert("published".into(), p.into());
            }
            m.insert("protocol".into(), "tcp".into());
            m.insert("mode".into(), "ingress".into());
            vec![serde_yaml::Value::Mapping(m)]
        };
        assert_eq!(port(None).unwrap(), long(Some(80)));
        assert_eq!(port(Some("8080")).unwrap(), long(Some(8080)));
        assert_eq!(port(Some("0")).unwrap(), long(None));
        let e = format!("{:#}", port(Some("127.0.0.1:8080")).unwrap_err());
        assert!(
            e.starts_with("service edge: port \"${EDGE_HTTP_PORT:-80}:80\" is \"127.0.0.1:8080:80\": a swarm publishes"),
            "{e}"
        );
        // What compose refuses is refused (one line); what a swarm cannot publish too.
        for bad in [
            "http",
            "+80",
            "8_0",
            "65536",
            " 80",
            "8080-8081",
            "[::1]:8080",
        ] {
            let e = format!("{:#}", port(Some(bad)).unwrap_err());
            assert!(e.starts_with("service edge: port "), "{bad}: {e}");
            assert_eq!(e.lines().count(), 1, "{bad}: {e}");
        }
        assert_eq!(port(Some("080")).unwrap(), long(Some(80)));
    }

    #[test]
    fn ports_read_as_compose_reads_them() {
        let spec = |ip: Option<&str>, published: Option<(u16, u16)>, target, protocol: &str| {
            Ok(PortSpec {
                ip: ip.map(str::to_string),
                published,
                target,
                protocol: protocol.into(),
            })
        };
        assert_eq!(port_spec("80"), spec(None, None, (80, 80), "tcp"));
        assert_eq!(
            port_spec("080:80"),
            spec(None, Some((80, 80)), (80, 80), "tcp")
        );
        assert_eq!(
            port_spec("0:80/UDP"),
            spec(None, Some((0, 0)), (80, 80), "udp")
        );
        assert_eq!(
            port_spec("8000-8009:80"),
            spec(None, Some((8000, 8009)), (80, 80), "tcp")
        );
        assert_eq!(
            port_spec("[::1]:8080:80/sctp"),
            spec(Some("::1"), Some((8080, 8080)), (80, 80), "sctp")
        );
        for bad in [
            "::1:8080:80",
            "[::1]x:8080:80",
            "+80:80",
            "8_0:80",
            " 80:80",
            "65536:80",
            "-1:80",
            "0x50:80",
            "８０:80",
            "80:",
            ":80:80:",
            "a:80",
            "1.2.3:80:80",
            "80:80/http",
            "9-8:80",
            "8000-8001:80-82",
            "",
        ] {
            assert!(port_spec(bad).is_err(), "{bad:?}: {:?}", port_spec(bad));
        }
    }

    #[test]
    fn a_compose_file_path_is_one_csv_field() {
        let arg = |p: &str| compose_file_arg(Path::new(p));
        assert_eq!(
            arg("/srv/f/docker-stack.yml").unwrap(),
            "/srv/f/docker-stack.yml"
        );
        assert_eq!(arg("/srv/a,b/s.yml").unwrap(), "\"/srv/a,b/s.yml\"");
        assert_eq!(arg("/srv/a\"b/s.yml").unwrap(), "\"/srv/a\"\"b/s.yml\"");
        assert_eq!(arg("/srv/a\nb/s.yml").unwrap(), "\"/srv/a\nb/s.yml\"");
        let e = format!("{:#}", arg("/srv/a\r\nb/s.yml").unwrap_err());
        assert_eq!(e.lines().count(), 1, "{e}");
        let not_utf8 = std::ffi::OsStr::from_bytes(b"/srv/\xff/s.yml");
        assert!(compose_file_arg(Path::new(not_utf8)).is_err());
    }

    #[test]
    fn the_variable_list_covers_the_model() {
        // Every ${NAME...} the compose file holds is one the stack resolves.
        let text = crate::model::compose::generate(&input(Some("v0.1.1"), &[]).compose).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("${") {
            rest = &rest[i + 2..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                VARIABLES.contains(&name.as_str()),
                "{name} is not in VARIABLES"
            );
        }
    }

    #[test]
    fn generation_is_deterministic_headed_and_round_trips() {
        let i = input(Some("v0.1.1"), &[]);
        let a = generate(&i).unwrap();
        assert_eq!(a, generate(&i).unwrap());
        assert!(a.starts_with("# Generated by `disinto swarm deploy`"));
        let parsed: Compose = serde_yaml::from_str(&a).unwrap();
        assert_eq!(parsed, stack(&i).unwrap());
        assert!(!a.contains("profiles:") && !a.contains("build:"), "{a}");
    }

    #[test]
    fn volume_names_carry_the_stack_name() {
        let names = volume_names("disinto");
        assert!(
            names.contains(&"disinto_agent-data".to_string()),
            "{names:?}"
        );
        assert!(names.contains(&"disinto_reproduce-work".to_string()));
        assert!(!names.iter().any(|n| n.contains("projects")));
    }

    fn node(id: &str, labelled: bool) -> Node {
        Node {
            id: id.into(),
            hostname: format!("host-{id}"),
            labelled,
            ready: true,
            active: true,
        }
    }

    #[test]
    fn exactly_one_node_holds_the_volumes() {
        let one = [node("a", false)];
        assert_eq!(volume_node(&one).unwrap(), Some(&one[0]));
        assert_eq!(volume_node(&[node("a", true)]).unwrap(), None);
        assert_eq!(
            volume_node(&[node("a", false), node("b", true)]).unwrap(),
            None
        );
        let e = format!(
            "{:#}",
            volume_node(&[node("a", false), node("b", false)]).unwrap_err()
        );
        assert!(
            e.starts_with("this swarm has 2 nodes and none is labelled disinto.volumes=true"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            volume_node(&[node("a", true), node("b", true)]).unwrap_err()
        );
        assert!(
            e.starts_with("nodes host-a, host-b are all labelled disinto.volumes=true"),
            "{e}"
        );
        // The labelled node down: nothing could start where the data is.
        let down = Node {
            ready: false,
            ..node("b", true)
        };
        let e = format!("{:#}", volume_node(&[node("a", false), down]).unwrap_err());
        assert!(
            e.starts_with("node host-b is labelled disinto.volumes=true but is down"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
        // A worker down elsewhere is no reason to refuse.
        let other_down = Node {
            ready: false,
            ..node("a", false)
        };
        assert!(volume_node(&[other_down, node("b", true)]).is_ok());
    }
}
