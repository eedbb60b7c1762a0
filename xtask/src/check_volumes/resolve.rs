//! A compose file resolved into what check-volumes reads: for each service its image, build
//! and mounts, after merge keys, `extends` and `include`, with variables interpolated.
//! `docker compose config` does it when installed; `builtin` does merge keys and variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use serde_yaml::Value;

use super::interpolate::interpolate;
pub use disinto::model::mount::{parse_short, MountSpec};

/// The services of a compose file, resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Project {
    pub services: BTreeMap<String, ServiceSpec>,
    /// Variables `docker compose` reported unset (it made each a blank), for error messages.
    pub unset_variables: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceSpec {
    pub image: Option<String>,
    pub build: Option<BuildSpec>,
    pub mounts: Vec<MountSpec>,
    /// `service[:mode]` or `container:name[:mode]`.
    pub volumes_from: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BuildSpec {
    /// A directory (joined to the project directory) or a remote URL.
    pub context: String,
    pub dockerfile: Dockerfile,
    pub target: Option<String>,
    /// Build arguments with a value (an argument without one is not passed).
    pub args: BTreeMap<String, String>,
    /// Names of `additional_contexts`: a `FROM` of one of them is not the image it names.
    pub named_contexts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Dockerfile {
    /// As written: relative to the context, or absolute.
    Path(PathBuf),
    Inline(String),
}

/// Whether a build context is a URL (git or a tarball) rather than a directory.
pub fn is_remote(context: &str) -> bool {
    context.contains("://") || context.starts_with("git@") || context.starts_with("github.com/")
}

/// Parses a compose file as YAML and checks what both resolvers need: valid YAML with no
/// duplicate key (compose refuses those too), and a mapping at the top.
pub fn parse(text: &str) -> Result<Value> {
    let value: Value = serde_yaml::from_str(text)
        .map_err(|e| anyhow!("is not valid YAML: {e}; fix it (compose refuses it too)"))?;
    match value {
        Value::Null => bail!("is empty: a compose file needs a services: mapping"),
        Value::Mapping(_) => Ok(value),
        _ => bail!("is not a compose file: its top level must be a mapping (services: ...)"),
    }
}

/// Whether `docker compose` (v2) answers here.
pub fn compose_available() -> bool {
    Command::new("docker")
        .args(["compose", "version", "--short"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Resolves `file` with `docker compose config`: every profile, the process environment and
/// the project's `.env`, exactly as `docker compose up` would read it here.
pub fn with_compose(file: &Path, project_dir: Option<&Path>) -> Result<Project> {
    let mut cmd = Command::new("docker");
    cmd.arg("compose").arg("-f").arg(file);
    if let Some(dir) = project_dir {
        cmd.arg("--project-directory").arg(dir);
    }
    // Without --profile '*', services behind a profile (the runner) would not be listed.
    cmd.args(["--profile", "*", "config", "--format", "json"])
        .stdin(Stdio::null());
    let out = cmd.output().context("cannot run docker compose config")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let unset_variables = unset_variables(&stderr);
    if !out.status.success() {
        let why = disinto::engine::docker::last_line(&out.stderr);
        let hint = if unset_variables.is_empty() {
            String::new()
        } else {
            format!(" (unset: {})", unset_variables.join(", "))
        };
        bail!("docker compose config refused it: {why}{hint}");
    }
    let json = String::from_utf8_lossy(&out.stdout);
    let mut project = from_compose_json(&json)?;
    project.unset_variables = unset_variables;
    Ok(project)
}

/// The names in compose's `The "X" variable is not set. Defaulting to a blank string.`
fn unset_variables(stderr: &str) -> Vec<String> {
    let mut names: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains("variable is not set"))
        .filter_map(|l| {
            let after = &l[l.find("The ")? + 4..];
            let name = &after[..after.find(" variable")?];
            Some(name.trim_matches(['"', '\\']).to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Reads the output of `docker compose config --format json`.
pub fn from_compose_json(json: &str) -> Result<Project> {
    let value: serde_json::Value =
        serde_json::from_str(json).context("docker compose config printed no JSON")?;
    let mut project = Project::default();
    let Some(services) = value.get("services").and_then(|s| s.as_object()) else {
        return Ok(project);
    };
    for (name, service) in services {
        let text = |v: Option<&serde_json::Value>| v.and_then(json_text);
        let build = service.get("build").map(|b| BuildSpec {
            context: text(b.get("context")).unwrap_or_else(|| ".".into()),
            dockerfile: match text(b.get("dockerfile_inline")) {
                Some(inline) => Dockerfile::Inline(inline),
                None => Dockerfile::Path(
                    text(b.get("dockerfile"))
                        .unwrap_or_else(|| "Dockerfile".into())
                        .into(),
                ),
            },
            target: text(b.get("target")),
            args: b
                .get("args")
                .and_then(|a| a.as_object())
                .map(|args| {
                    args.iter()
                        .filter_map(|(k, v)| Some((k.clone(), json_text(v)?)))
                        .collect()
                })
                .unwrap_or_default(),
            named_contexts: b
                .get("additional_contexts")
                .and_then(|a| a.as_object())
                .map(|a| a.keys().cloned().collect())
                .unwrap_or_default(),
        });
        let mounts = service
            .get("volumes")
            .and_then(|v| v.as_array())
            .map(|mounts| {
                mounts
                    .iter()
                    .map(|m| MountSpec {
                        kind: text(m.get("type")).unwrap_or_else(|| "volume".into()),
                        source: text(m.get("source")),
                        target: text(m.get("target")).unwrap_or_default(),
                        read_only: m.get("read_only").and_then(|v| v.as_bool()) == Some(true),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let volumes_from = service
            .get("volumes_from")
            .and_then(|v| v.as_array())
            .map(|v| v.iter().filter_map(json_text).collect())
            .unwrap_or_default();
        project.services.insert(
            name.clone(),
            ServiceSpec {
                image: text(service.get("image")),
                build,
                mounts,
                volumes_from,
            },
        );
    }
    Ok(project)
}

/// A scalar of compose's output as text. Compose writes every `$` of a value as `$$` so its
/// output stays a valid compose file; the value itself has one.
fn json_text(value: &serde_json::Value) -> Option<String> {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    Some(text.replace("$$", "$"))
}

/// What needs `docker compose` to be resolved, and cannot be approximated safely here.
const NEEDS_COMPOSE: &str =
    "which only `docker compose` resolves: install the compose v2 plugin (docker compose version) and rerun";

/// Resolves a parsed file without `docker compose`: merge keys (`<<: *anchor`) applied,
/// variables interpolated with `lookup` (the environment, then `.env`), relative build
/// contexts joined to `base`. `extends`, `include` and `!reset`/`!override` are refused:
/// guessing at their merge rules could pass a service that loses data.
pub fn builtin(
    mut value: Value,
    base: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Project> {
    if let Some(tag) = first_tag(&value) {
        bail!("uses the YAML tag {tag}, {NEEDS_COMPOSE}");
    }
    apply_merges(&mut value)?;
    if value.get("include").is_some() {
        bail!("uses include, {NEEDS_COMPOSE}");
    }
    let mut project = Project::default();
    let services = match value.get("services") {
        None | Some(Value::Null) => return Ok(project),
        Some(Value::Mapping(services)) => services,
        Some(_) => bail!("services: is not a mapping of service names"),
    };
    for (name, service) in services {
        let name = name
            .as_str()
            .context("services: a service name is not a string")?
            .to_string();
        let spec =
            builtin_service(service, base, lookup).with_context(|| format!("service {name}"))?;
        project.services.insert(name, spec);
    }
    Ok(project)
}

fn builtin_service(
    service: &Value,
    base: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<ServiceSpec> {
    if !service.is_mapping() {
        bail!("is not a mapping");
    }
    if service.get("extends").is_some() {
        bail!("uses extends, {NEEDS_COMPOSE}");
    }
    let lenient = |field: &str, text: &str| {
        interpolate(text, lookup, false).map_err(|e| anyhow!("{field}: {e}"))
    };
    let image = match service.get("image") {
        None | Some(Value::Null) => None,
        Some(image) => Some(lenient(
            "image",
            &scalar(image).context("image: is not a string")?,
        )?),
    };
    let build = match service.get("build") {
        None | Some(Value::Null) => None,
        Some(build) => Some(builtin_build(build, base, &lenient, lookup)?),
    };
    let mut mounts = Vec::new();
    for mount in sequence(service.get("volumes"), "volumes")? {
        mounts.push(builtin_mount(mount, lookup)?);
    }
    let mut volumes_from = Vec::new();
    for from in sequence(service.get("volumes_from"), "volumes_from")? {
        let from = scalar(from).context("volumes_from: an entry is not a string")?;
        volumes_from.push(lenient("volumes_from", &from)?);
    }
    Ok(ServiceSpec {
        image,
        build,
        mounts,
        volumes_from,
    })
}

fn builtin_build(
    build: &Value,
    base: &Path,
    lenient: &dyn Fn(&str, &str) -> Result<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BuildSpec> {
    let field = |key: &str| -> Result<Option<String>> {
        match build.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let text = scalar(v).with_context(|| format!("build.{key}: is not a string"))?;
                lenient(&format!("build.{key}"), &text).map(Some)
            }
        }
    };
    let (context, dockerfile, inline, target) = match build {
        Value::String(context) => (lenient("build", context)?, None, None, None),
        Value::Mapping(_) => (
            field("context")?.unwrap_or_else(|| ".".into()),
            field("dockerfile")?,
            field("dockerfile_inline")?,
            field("target")?,
        ),
        _ => bail!("build: is neither a context path nor a mapping"),
    };
    let context = if is_remote(&context) {
        context
    } else {
        // components() drops the `.` segments, so messages name `/dir/Dockerfile`, not `/dir/./Dockerfile`.
        let joined: PathBuf = base.join(&context).components().collect();
        joined.display().to_string()
    };
    let mut args = BTreeMap::new();
    match build.get("args") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(map)) => {
            for (key, value) in map {
                let key = scalar(key).context("build.args: a key is not a string")?;
                let value = match value {
                    // `KEY:` with no value: compose passes the environment's, if any.
                    Value::Null => lookup(&key),
                    v => Some(lenient(
                        "build.args",
                        &scalar(v).context("build.args: a value is not a string")?,
                    )?),
                };
                if let Some(value) = value {
                    args.insert(key, value);
                }
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                let item = scalar(item).context("build.args: an entry is not a string")?;
                let item = lenient("build.args", &item)?;
                match item.split_once('=') {
                    Some((key, value)) => {
                        args.insert(key.to_string(), value.to_string());
                    }
                    None => {
                        if let Some(value) = lookup(&item) {
                            args.insert(item, value);
                        }
                    }
                }
            }
        }
        Some(_) => bail!("build.args: is neither a mapping nor a list"),
    }
    let named_contexts = match build.get("additional_contexts") {
        Some(Value::Mapping(map)) => map.keys().filter_map(|k| scalar(k).ok()).collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| Some(scalar(i).ok()?.split('=').next()?.to_string()))
            .collect(),
        _ => Vec::new(),
    };
    Ok(BuildSpec {
        context,
        dockerfile: match inline {
            Some(inline) => Dockerfile::Inline(inline),
            None => Dockerfile::Path(dockerfile.unwrap_or_else(|| "Dockerfile".into()).into()),
        },
        target,
        args,
        named_contexts,
    })
}

/// One `volumes:` entry in the long form. Its target must not hang on an unset variable.
fn builtin_mount(mount: &Value, lookup: &dyn Fn(&str) -> Option<String>) -> Result<MountSpec> {
    match mount {
        Value::String(spec) => {
            let resolved =
                interpolate(spec, lookup, true).map_err(|e| anyhow!("volume {spec:?}: {e}"))?;
            parse_short(&resolved).map_err(|e| anyhow!("volume {spec:?}: {e}"))
        }
        Value::Mapping(_) => {
            let text = |key: &str, strict: bool| -> Result<Option<String>> {
                match mount.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => {
                        let raw =
                            scalar(v).with_context(|| format!("volumes: {key} is not a string"))?;
                        interpolate(&raw, lookup, strict)
                            .map(Some)
                            .map_err(|e| anyhow!("volume target {raw:?}: {e}"))
                    }
                }
            };
            Ok(MountSpec {
                kind: text("type", false)?.unwrap_or_else(|| "volume".into()),
                source: text("source", false)?,
                target: text("target", true)?
                    .context("volumes: a long-form entry has no target")?,
                read_only: mount.get("read_only").and_then(Value::as_bool) == Some(true),
            })
        }
        _ => bail!("volumes: an entry is neither a string nor a mapping"),
    }
}

/// A scalar as compose reads it (a number or a boolean is its text).
fn scalar(value: &Value) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => bail!("not a scalar"),
    }
}

fn sequence<'a>(value: Option<&'a Value>, field: &str) -> Result<&'a [Value]> {
    match value {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Sequence(items)) => Ok(items),
        Some(_) => bail!("{field}: is not a list"),
    }
}

/// The first YAML tag in the document (`!reset`, `!override`).
fn first_tag(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) => Some(tagged.tag.to_string()),
        Value::Sequence(items) => items.iter().find_map(first_tag),
        Value::Mapping(map) => map
            .iter()
            .find_map(|(k, v)| first_tag(k).or_else(|| first_tag(v))),
        _ => None,
    }
}

/// Applies `<<` merge keys, nested ones too: serde_yaml's `apply_merge` leaves a `<<` that
/// arrives through a merged mapping, so it runs until none is left.
fn apply_merges(value: &mut Value) -> Result<()> {
    // Each pass resolves one level of nesting; anchors cannot nest deeper than the file.
    for _ in 0..64 {
        if !has_merge_key(value) {
            return Ok(());
        }
        value
            .apply_merge()
            .map_err(|e| anyhow!("a merge key (<<) cannot be applied: {e}"))?;
    }
    bail!("merge keys (<<) nest more than 64 levels deep")
}

fn has_merge_key(value: &Value) -> bool {
    match value {
        Value::Mapping(map) => map.contains_key("<<") || map.values().any(has_merge_key),
        Value::Sequence(items) => items.iter().any(has_merge_key),
        Value::Tagged(tagged) => has_merge_key(&tagged.value),
        _ => false,
    }
}
