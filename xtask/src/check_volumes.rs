//! `cargo xtask check-volumes`: every `VOLUME` of the image a service runs must be mounted at
//! exactly that path from a named volume or a bind mount, or its data lands in an anonymous
//! volume and the next `down`/`up` loses it.
//!
//! Which services: those built from a Dockerfile of the file (the `build:` of the service, or of
//! another service tagging the same `image:`), and those running the agents image by name (any
//! `<registry>/agents`, or `disinto-agents`), whose Dockerfile is `docker/agents/Dockerfile`.
//! Image names are compared as Docker resolves them (`docker.io/library/`, `:latest`).
//!
//! Which VOLUMEs: those of the build's target stage and its ancestors, with its build args, from
//! its Dockerfile or `dockerfile_inline` (see [`crate::dockerfile`]).
//!
//! Which mounts count: a named volume or a bind mount at exactly the path (a trailing slash or
//! another case is another path), the service's own or inherited by `volumes_from` from another
//! service; an anonymous volume, tmpfs or image mount does not, nor does `volumes_from` a
//! container outside the file (its mounts cannot be seen from here).
//!
//! How the file is read: `docker compose config` resolves it when `docker compose` answers
//! (merge keys, `extends`, `include`, profiles, variables from the environment and `.env`), so
//! the check sees what `up` would run. Without it, merge keys and variables are resolved here,
//! and `extends`, `include` and `!reset`/`!override` are refused: their merge rules are
//! compose's, and a wrong guess could pass a service that loses data. Either way an empty file,
//! a duplicate key, or a mount target left blank by an unset variable is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::dockerfile;
use disinto::model::compose::Compose;
use disinto::model::config::Settings;
use disinto::model::image_ref::{ImageRef, OUR_IMAGES};

mod interpolate;
pub mod resolve;

use resolve::{BuildSpec, Dockerfile, Project, ServiceSpec};

/// A declared path a service does not mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmounted {
    pub service: String,
    pub path: String,
    /// The Dockerfile (and stage) that declares it.
    pub declared_in: String,
}

impl fmt::Display for Unmounted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "service {}: VOLUME {} (declared in {}) is not mounted at exactly that path",
            self.service, self.path, self.declared_in
        )
    }
}

/// Where the VOLUMEs of a service's image are declared.
#[derive(Debug, Clone, PartialEq)]
enum Source<'a> {
    /// A build of this file (the service's own, or one tagging the image it runs).
    Build {
        service: &'a str,
        build: &'a BuildSpec,
    },
    /// A released agents image: the Dockerfile it is made from (in the checkout, and where to
    /// read it), last stage, default args.
    Released { shown: &'static str, path: PathBuf },
}

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Released { shown, .. } => f.write_str(shown),
            Source::Build { service, build } => {
                match &build.dockerfile {
                    Dockerfile::Path(path) => {
                        write!(f, "{}", Path::new(&build.context).join(path).display())?
                    }
                    Dockerfile::Inline(_) => {
                        write!(f, "the dockerfile_inline of service {service}")?
                    }
                }
                match &build.target {
                    Some(target) => write!(f, ", stage {target}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A reference as Docker resolves it ([`ImageRef::normalized`]); one that does not parse is
/// compared as written.
pub fn normalize_image(reference: &str) -> String {
    ImageRef::parse(reference).map_or_else(|_| reference.to_string(), |r| r.normalized())
}

/// The repository of a reference as written, without tag and digest.
fn repository_of(reference: &str) -> String {
    ImageRef::parse(reference)
        .map_or_else(|_| reference.to_string(), |r| r.repository().to_string())
}

/// For a released image we build ourselves, the Dockerfile it comes from: any
/// `<registry>/{agents,edge,reproduce}:<tag>`, or the local `disinto-{name}` (dev or another tag).
pub fn released_from(image: &str) -> Option<&'static str> {
    let normalized = normalize_image(image);
    let repository = repository_of(&normalized);
    // Every image a release publishes (agents, edge, reproduce), released or dev-built.
    OUR_IMAGES.into_iter().find_map(|ours| {
        let dev = normalize_image(&ours.dev_tag());
        let is_ours = repository == repository_of(&dev)
            || (repository.ends_with(&format!("/{}", ours.name))
                // Docker Hub's official images are not ours: releases always have a namespace.
                && repository != format!("docker.io/library/{}", ours.name));
        is_ours.then_some(ours.dockerfile)
    })
}

/// Checks the typed model (as `gen-compose` makes it): merge-free and self-contained, so it
/// is resolved here, variables taking their defaults. `read` returns a Dockerfile's text;
/// paths are relative to the compose file's directory and, for released images, the checkout.
pub fn check(
    compose: &Compose,
    read: impl FnMut(&Path) -> Result<String>,
) -> Result<Vec<Unmounted>> {
    let value = serde_yaml::to_value(compose).context("cannot serialize the compose model")?;
    let project = resolve::builtin(value, Path::new(""), &|_| None)?;
    check_project(&project, Path::new(""), read)
}

/// Checks every service of a resolved file. `root` is the checkout released images come from.
pub fn check_project(
    project: &Project,
    root: &Path,
    mut read: impl FnMut(&Path) -> Result<String>,
) -> Result<Vec<Unmounted>> {
    // Builds that tag an image: a service running that image without a build runs theirs.
    let mut builds: BTreeMap<String, Vec<Source>> = BTreeMap::new();
    for (name, service) in &project.services {
        if let (Some(image), Some(build)) = (&service.image, &service.build) {
            builds
                .entry(normalize_image(image))
                .or_default()
                .push(Source::Build {
                    service: name,
                    build,
                });
        }
    }
    let mut texts: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, service) in &project.services {
        let sources = sources_of(name, service, &builds, root);
        if sources.is_empty() {
            continue; // a third-party image: not ours to declare
        }
        let mounted = persistent_targets(project, name, &mut Vec::new())?;
        for source in &sources {
            let declared = volumes_of(source, &mut texts, &mut read)
                .with_context(|| format!("service {name}: {source}"))?;
            for path in declared {
                if !mounted.contains(&path) {
                    problems.push(Unmounted {
                        service: name.clone(),
                        path,
                        declared_in: source.to_string(),
                    });
                }
            }
        }
    }
    Ok(problems)
}

fn sources_of<'a>(
    name: &'a str,
    service: &'a ServiceSpec,
    builds: &BTreeMap<String, Vec<Source<'a>>>,
    root: &Path,
) -> Vec<Source<'a>> {
    if let Some(build) = &service.build {
        return vec![Source::Build {
            service: name,
            build,
        }];
    }
    let Some(image) = &service.image else {
        return Vec::new();
    };
    if let Some(built) = builds.get(&normalize_image(image)) {
        // Several services may build the same image the same way (agents and runner in dev
        // mode): one source each, or every finding would be reported twice.
        let mut unique: Vec<Source> = Vec::new();
        for source in built {
            if !unique.iter().any(|u| u.to_string() == source.to_string()) {
                unique.push(source.clone());
            }
        }
        return unique;
    }
    released_from(image)
        .map(|dockerfile| {
            vec![Source::Released {
                shown: dockerfile,
                path: root.join(dockerfile),
            }]
        })
        .unwrap_or_default()
}

fn volumes_of(
    source: &Source,
    texts: &mut BTreeMap<PathBuf, String>,
    read: &mut impl FnMut(&Path) -> Result<String>,
) -> Result<Vec<String>> {
    let mut text_at = |path: PathBuf| -> Result<String> {
        if let Some(text) = texts.get(&path) {
            return Ok(text.clone());
        }
        let text = read(&path)?;
        texts.insert(path, text.clone());
        Ok(text)
    };
    let no_args = BTreeMap::new();
    let (text, target, args) = match source {
        Source::Released { path, .. } => (text_at(path.clone())?, None, &no_args),
        Source::Build { build, .. } => {
            if let Some(name) = build.named_contexts.first() {
                // `FROM <name>` would then be that context, whose VOLUMEs are not in the file.
                bail!("build.additional_contexts ({name}) cannot be followed: check-volumes reads one Dockerfile; build the base image separately");
            }
            let text = match &build.dockerfile {
                Dockerfile::Inline(text) => text.clone(),
                Dockerfile::Path(_) if resolve::is_remote(&build.context) => bail!(
                    "the build context {} is remote: check-volumes reads Dockerfiles from disk; use a local context or dockerfile_inline",
                    build.context
                ),
                Dockerfile::Path(path) => text_at(Path::new(&build.context).join(path))?,
            };
            (text, build.target.as_deref(), &build.args)
        }
    };
    dockerfile::volumes_for(&text, target, args)
}

/// The container paths where `name` has a named volume or a bind mount: its own mounts over
/// what it inherits through `volumes_from` (an own mount at the same path wins, as in Docker).
fn persistent_targets(
    project: &Project,
    name: &str,
    visiting: &mut Vec<String>,
) -> Result<BTreeSet<String>> {
    let Some(service) = project.services.get(name) else {
        bail!("volumes_from names {name}, which is not a service of this file: name a service, or container:<name>");
    };
    let mut targets: BTreeMap<String, bool> = BTreeMap::new();
    for from in &service.volumes_from {
        if from.starts_with("container:") {
            continue; // a container outside the file: its mounts cannot be seen from here
        }
        let source = from.split(':').next().unwrap_or(from);
        if visiting.iter().any(|v| v == source) || source == name {
            bail!("service {name}: volumes_from loops back to {source}");
        }
        visiting.push(name.to_string());
        let inherited = persistent_targets(project, source, visiting)
            .with_context(|| format!("service {name}: volumes_from {from}"))?;
        visiting.pop();
        for target in inherited {
            targets.insert(target, true);
        }
    }
    for mount in &service.mounts {
        if !mount.target.starts_with('/') {
            let unset = if project.unset_variables.is_empty() {
                String::new()
            } else {
                format!(" (unset: {})", project.unset_variables.join(", "))
            };
            bail!(
                "service {name}: mount target {:?} is not an absolute path{unset}: write the container path, or give its variable a default like ${{VAR:-/path}}",
                mount.target
            );
        }
        targets.insert(mount.target.clone(), mount.persistent());
    }
    Ok(targets
        .into_iter()
        .filter_map(|(target, persistent)| persistent.then_some(target))
        .collect())
}

/// How a compose file is resolved before the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `docker compose config`: everything compose supports, as compose reads it.
    Compose,
    /// Merge keys and variables only; `extends`, `include` and YAML tags are refused.
    Builtin,
}

impl Resolver {
    /// `Compose` when `docker compose` answers here, else `Builtin`.
    pub fn detect() -> Resolver {
        if resolve::compose_available() {
            Resolver::Compose
        } else {
            Resolver::Builtin
        }
    }
}

impl fmt::Display for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resolver::Compose => "resolved by docker compose config",
            Resolver::Builtin => {
                "resolved here (docker compose not found: merge keys and variables only; extends and include need it)"
            }
        })
    }
}

/// Reads `file` and checks it against the Dockerfiles, resolving it as [`Resolver::detect`]
/// decides: build paths relative to `project_dir` (as compose resolves them, default the
/// file's directory), released images' Dockerfiles under `root`.
pub fn check_file(file: &Path, project_dir: Option<&Path>, root: &Path) -> Result<Vec<Unmounted>> {
    check_file_with(file, project_dir, root, Resolver::detect())
}

/// [`check_file`] with a given resolver.
pub fn check_file_with(
    file: &Path,
    project_dir: Option<&Path>,
    root: &Path,
    resolver: Resolver,
) -> Result<Vec<Unmounted>> {
    let label = file.display().to_string();
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {label}"))?;
    // Both resolvers first: compose would refuse these too, but builtin must not pass them.
    let value = resolve::parse(&text).with_context(|| label.clone())?;
    let base = project_dir.unwrap_or_else(|| {
        file.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    });
    let project = match resolver {
        Resolver::Compose => resolve::with_compose(file, project_dir),
        Resolver::Builtin => Settings::load(base).and_then(|settings| {
            resolve::builtin(value, base, &|name| {
                settings.get(name).ok().flatten().map(str::to_string)
            })
        }),
    }
    .with_context(|| label.clone())?;
    if project.services.is_empty() {
        bail!("{label} defines no services: nothing to check (is it the compose file you meant?)");
    }
    check_project(&project, root, |path| {
        std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read {} (build contexts resolve against --project-directory)",
                path.display()
            )
        })
    })
    .with_context(|| label.clone())
}

/// `cargo xtask check-volumes`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckVolumes {
    /// The compose file to check [default: docker-compose.yml at the repository root]
    #[arg(long, value_name = "FILE")]
    pub compose: Option<PathBuf>,
    /// Resolve build contexts against DIR, like `docker compose --project-directory`
    /// [default: the compose file's directory]
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
}

impl CheckVolumes {
    pub fn run(self, sh: &xshell::Shell) -> Result<()> {
        let root = sh.current_dir();
        let file = self
            .compose
            .unwrap_or_else(|| root.join("docker-compose.yml"));
        let resolver = Resolver::detect();
        eprintln!("check-volumes: {}: {resolver}", file.display());
        let problems = check_file_with(&file, self.project_directory.as_deref(), &root, resolver)?;
        for p in &problems {
            eprintln!("{p}");
        }
        if !problems.is_empty() {
            bail!(
                "{}: {} VOLUME path(s) would land in anonymous volumes; mount each at exactly its path",
                file.display(),
                problems.len()
            );
        }
        eprintln!("{}: every VOLUME is mounted", file.display());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
