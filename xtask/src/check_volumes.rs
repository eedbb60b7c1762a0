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
//! its Dockerfile or `dockerfile_inline` (see [`crate::dockerfile`]), and those the image it is
//! built `FROM` declares, which it inherits: a build of this file tagging that image, one of
//! ours (any `<registry>/{agents,edge,reproduce}` or `disinto-*`, any tag or digest: our
//! Dockerfile in the checkout, its own base followed in turn), or else the local image's, by
//! `docker image inspect`. A base that is not in the local image store cannot be known without
//! a pull: it is reported as a warning naming it (see [`UncheckedBase`]), not guessed at.
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

/// A base image whose VOLUMEs the check could not see: not ours, not built by the file, and
/// not in the local image store (or Docker did not answer). What it declares is unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncheckedBase {
    pub image: String,
    /// The Dockerfile (and stage) built on it.
    pub of: String,
    /// Why it could not be inspected.
    pub why: String,
}

impl fmt::Display for UncheckedBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is built FROM {}, whose VOLUMEs are not known here ({}): pull it (docker pull {}) and run check-volumes again to check them",
            self.of, self.image, self.why, self.image
        )
    }
}

/// What the check found: VOLUMEs not mounted, and base images it could not see into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub unmounted: Vec<Unmounted>,
    pub unchecked: Vec<UncheckedBase>,
}

/// What the local image store says of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalImage {
    /// Its VOLUMEs (everything it inherited included), by `docker image inspect`.
    Volumes(Vec<String>),
    /// Not there, or Docker did not answer: why.
    Unknown(String),
}

/// `docker image inspect` of `image`: the truth about an image we did not build, when it is here.
pub fn local_image(image: &str) -> LocalImage {
    let format = "{{json .Config.Volumes}}";
    match disinto::engine::docker::run(&["image", "inspect", "--format", format, image]) {
        Err(why) => LocalImage::Unknown(why),
        Ok(json) => {
            match serde_json::from_str::<Option<BTreeMap<String, serde_json::Value>>>(json.trim()) {
                Ok(volumes) => {
                    LocalImage::Volumes(volumes.unwrap_or_default().into_keys().collect())
                }
                Err(e) => {
                    LocalImage::Unknown(format!("docker image inspect printed {json:?}: {e}"))
                }
            }
        }
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
/// No local image is inspected: a base image that is not ours is reported unchecked.
pub fn check(compose: &Compose, read: impl FnMut(&Path) -> Result<String>) -> Result<Findings> {
    let value = serde_yaml::to_value(compose).context("cannot serialize the compose model")?;
    let project = resolve::builtin(value, Path::new(""), &|_| None)?;
    check_project(&project, Path::new(""), read, |_| {
        LocalImage::Unknown("local images are not inspected here".into())
    })
}

/// Checks every service of a resolved file. `root` is the checkout our images come from;
/// `read` returns a Dockerfile's text, `inspect` what the local image store says of a base
/// image that is neither ours nor built by the file (see [`local_image`]).
pub fn check_project(
    project: &Project,
    root: &Path,
    read: impl FnMut(&Path) -> Result<String>,
    inspect: impl FnMut(&str) -> LocalImage,
) -> Result<Findings> {
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
    let mut reader = Reader {
        root,
        builds: &builds,
        texts: BTreeMap::new(),
        read,
        inspect,
        inspected: BTreeMap::new(),
        unchecked: Vec::new(),
    };
    let mut problems = Vec::new();
    for (name, service) in &project.services {
        let sources = sources_of(name, service, &builds, root);
        if sources.is_empty() {
            continue; // a third-party image: not ours to declare
        }
        let mounted = persistent_targets(project, name, &mut Vec::new())?;
        for source in &sources {
            let declared = reader
                .volumes_of(source, &mut Vec::new())
                .with_context(|| format!("service {name}: {source}"))?;
            for Declared { path, declared_in } in declared {
                if !mounted.contains(&path) {
                    problems.push(Unmounted {
                        service: name.clone(),
                        path,
                        declared_in,
                    });
                }
            }
        }
    }
    Ok(Findings {
        unmounted: problems,
        unchecked: reader.unchecked,
    })
}

/// The images several services build alike (agents and runner in dev mode), each once, or
/// every finding would be reported twice.
fn unique<'a>(sources: &[Source<'a>]) -> Vec<Source<'a>> {
    let mut unique: Vec<Source> = Vec::new();
    for source in sources {
        if !unique.iter().any(|u| u.to_string() == source.to_string()) {
            unique.push(source.clone());
        }
    }
    unique
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
    match &service.image {
        Some(image) => image_sources(image, builds, root),
        None => Vec::new(),
    }
}

/// Where the VOLUMEs of `image` are declared, when this file builds it or it is ours; empty
/// for any other image.
fn image_sources<'a>(
    image: &str,
    builds: &BTreeMap<String, Vec<Source<'a>>>,
    root: &Path,
) -> Vec<Source<'a>> {
    if let Some(built) = builds.get(&normalize_image(image)) {
        return unique(built);
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

/// A declared VOLUME path and where it is declared.
struct Declared {
    path: String,
    declared_in: String,
}

/// Reads Dockerfiles (each once) and the local image store (each image once) for one check.
struct Reader<'a, 'b, R, I> {
    root: &'b Path,
    builds: &'b BTreeMap<String, Vec<Source<'a>>>,
    texts: BTreeMap<PathBuf, String>,
    read: R,
    inspect: I,
    inspected: BTreeMap<String, LocalImage>,
    unchecked: Vec<UncheckedBase>,
}

impl<'a, R, I> Reader<'a, '_, R, I>
where
    R: FnMut(&Path) -> Result<String>,
    I: FnMut(&str) -> LocalImage,
{
    fn text_at(&mut self, path: &Path) -> Result<String> {
        if let Some(text) = self.texts.get(path) {
            return Ok(text.clone());
        }
        let text = (self.read)(path)?;
        self.texts.insert(path.to_path_buf(), text.clone());
        Ok(text)
    }

    /// Every VOLUME of the image `source` makes: those its base image declares first (it
    /// inherits them), then the file's own. `chain` holds the sources being read, so a
    /// Dockerfile built on its own image is an error, not an endless loop.
    fn volumes_of(
        &mut self,
        source: &Source<'a>,
        chain: &mut Vec<String>,
    ) -> Result<Vec<Declared>> {
        let shown = source.to_string();
        if chain.contains(&shown) {
            bail!(
                "{} is built FROM its own image: a base image cannot be built on itself",
                chain.join(" FROM ")
            );
        }
        let image = self.read_source(source)?;
        let mut declared = Vec::new();
        if let Some(base) = &image.base {
            chain.push(shown.clone());
            let inherited = self.base_volumes(base, &shown, chain);
            chain.pop();
            declared = inherited?;
        }
        for path in image.volumes {
            if !declared.iter().any(|d| d.path == path) {
                declared.push(Declared {
                    path,
                    declared_in: shown.clone(),
                });
            }
        }
        Ok(declared)
    }

    /// The VOLUMEs `base` gives the image built on it in `of`: from the Dockerfile of a build
    /// of this file or of ours, else from the local image store; else none, reported.
    fn base_volumes(
        &mut self,
        base: &str,
        of: &str,
        chain: &mut Vec<String>,
    ) -> Result<Vec<Declared>> {
        let via = |declared_in: &str| format!("{declared_in}, the base image {base} of {of}");
        let sources = image_sources(base, self.builds, self.root);
        if !sources.is_empty() {
            let mut declared: Vec<Declared> = Vec::new();
            for source in &sources {
                for d in self
                    .volumes_of(source, chain)
                    .with_context(|| format!("FROM {base}: {source}"))?
                {
                    if !declared.iter().any(|known| known.path == d.path) {
                        declared.push(Declared {
                            path: d.path,
                            declared_in: via(&d.declared_in),
                        });
                    }
                }
            }
            return Ok(declared);
        }
        let local = match self.inspected.get(base) {
            Some(known) => known.clone(),
            None => {
                let found = (self.inspect)(base);
                self.inspected.insert(base.to_string(), found.clone());
                found
            }
        };
        match local {
            LocalImage::Volumes(paths) => Ok(paths
                .into_iter()
                .map(|path| Declared {
                    path,
                    declared_in: via("the local image (docker image inspect)"),
                })
                .collect()),
            LocalImage::Unknown(why) => {
                let unchecked = UncheckedBase {
                    image: base.to_string(),
                    of: of.to_string(),
                    why,
                };
                if !self.unchecked.contains(&unchecked) {
                    self.unchecked.push(unchecked);
                }
                Ok(Vec::new())
            }
        }
    }

    /// What the Dockerfile of `source` says of its image.
    fn read_source(&mut self, source: &Source<'a>) -> Result<dockerfile::Image> {
        let no_args = BTreeMap::new();
        let (text, target, args) = match source {
            Source::Released { path, .. } => (self.text_at(path)?, None, &no_args),
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
                    Dockerfile::Path(path) => {
                        self.text_at(&Path::new(&build.context).join(path))?
                    }
                };
                (text, build.target.as_deref(), &build.args)
            }
        };
        dockerfile::image_for(&text, target, args)
    }
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
pub fn check_file(file: &Path, project_dir: Option<&Path>, root: &Path) -> Result<Findings> {
    check_file_with(file, project_dir, root, Resolver::detect())
}

/// [`check_file`] with a given resolver.
pub fn check_file_with(
    file: &Path,
    project_dir: Option<&Path>,
    root: &Path,
    resolver: Resolver,
) -> Result<Findings> {
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
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read {} (build contexts resolve against --project-directory)",
                path.display()
            )
        })
    };
    check_project(&project, root, read, local_image).with_context(|| label.clone())
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
        let findings = check_file_with(&file, self.project_directory.as_deref(), &root, resolver)?;
        // A base image it cannot see into is a warning, not a failure: most (debian) declare
        // nothing, and knowing for sure takes a pull, which a check does not do on its own.
        for u in &findings.unchecked {
            eprintln!("warning: {u}");
        }
        for p in &findings.unmounted {
            eprintln!("{p}");
        }
        if !findings.unmounted.is_empty() {
            bail!(
                "{}: {} VOLUME path(s) would land in anonymous volumes; mount each at exactly its path",
                file.display(),
                findings.unmounted.len()
            );
        }
        match findings.unchecked.len() {
            0 => eprintln!("{}: every VOLUME is mounted", file.display()),
            n => eprintln!(
                "{}: every VOLUME it could see is mounted; {n} base image(s) unchecked (see the warnings)",
                file.display()
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
