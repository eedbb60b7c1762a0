//! `cargo xtask check-volumes`: every `VOLUME` of the Dockerfile a service comes from must be
//! mounted at exactly that path, or its data lands in an anonymous volume and is lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::dockerfile;
use disinto::compose::{Compose, Mount, Service, AGENTS_DOCKERFILE, DEV_AGENTS_IMAGE};
use disinto::image_ref::{repository_of, AGENTS_REPOSITORY};

/// A declared path a service does not mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmounted {
    pub service: String,
    pub path: String,
    pub dockerfile: PathBuf,
}

impl std::fmt::Display for Unmounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "service {}: VOLUME {} (declared in {}) is not mounted at exactly that path",
            self.service,
            self.path,
            self.dockerfile.display()
        )
    }
}

/// The Dockerfile a service's image comes from, relative to the compose file's directory:
/// its `build:`, or for a pinned image, the Dockerfile that image was released from.
pub fn dockerfile_of(service: &Service) -> Option<PathBuf> {
    if let Some(build) = &service.build {
        return Some(build.dockerfile_path());
    }
    let image = service.image.as_deref()?;
    released_from(image).map(PathBuf::from)
}

/// Released images we build ourselves: `<registry>/agents:<tag>` (any registry, even an
/// unexpanded `${DISINTO_REGISTRY...}`), or the local dev tag.
fn released_from(image: &str) -> Option<&'static str> {
    let repository = repository_of(image);
    let is_agents = repository.ends_with(&format!("/{AGENTS_REPOSITORY}"))
        || Some(repository) == DEV_AGENTS_IMAGE.split(':').next();
    is_agents.then_some(AGENTS_DOCKERFILE)
}

/// The container paths a service mounts from a named volume or a bind mount. Anonymous
/// volumes (a bare path, or `type: volume` without `source`) and tmpfs do not count.
pub fn mounted_targets(service: &Service) -> Vec<String> {
    service
        .volumes
        .iter()
        .filter_map(|mount| match mount {
            Mount::Short(spec) => {
                let (source, target) = split_short(spec)?;
                (!source.is_empty()).then(|| target.to_string())
            }
            Mount::Long {
                kind,
                source,
                target,
                ..
            } => {
                let kind = kind.as_deref().unwrap_or("volume");
                let persistent = matches!(kind, "volume" | "bind")
                    && source.as_deref().is_some_and(|s| !s.is_empty());
                persistent.then(|| target.clone())
            }
        })
        .collect()
}

/// Splits `source:target[:mode]`, where the source may hold `${VAR:-default}` (whose ':'
/// is not a separator). `None` for a bare path: an anonymous volume.
pub fn split_short(spec: &str) -> Option<(&str, &str)> {
    let mut depth = 0usize;
    let mut colon = None;
    let bytes = spec.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            b':' if depth == 0 => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let i = colon?;
    let rest = &spec[i + 1..];
    let target = rest.split(':').next().unwrap_or(rest);
    Some((&spec[..i], target))
}

/// Checks every service of `compose`; `volumes_of` reads a Dockerfile's `VOLUME` paths.
pub fn check(
    compose: &Compose,
    mut volumes_of: impl FnMut(&Path) -> Result<Vec<String>>,
) -> Result<Vec<Unmounted>> {
    let mut problems = Vec::new();
    let mut cache: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for (name, service) in &compose.services {
        let Some(dockerfile) = dockerfile_of(service) else {
            continue; // a third-party image: not ours to declare
        };
        if !cache.contains_key(&dockerfile) {
            let declared = volumes_of(&dockerfile)
                .with_context(|| format!("service {name}: reading {}", dockerfile.display()))?;
            cache.insert(dockerfile.clone(), declared);
        }
        let mounted = mounted_targets(service);
        for path in &cache[&dockerfile] {
            if !mounted.contains(path) {
                problems.push(Unmounted {
                    service: name.clone(),
                    path: path.clone(),
                    dockerfile: dockerfile.clone(),
                });
            }
        }
    }
    Ok(problems)
}

/// Reads `file` and checks it against the Dockerfiles: build paths relative to
/// `project_dir` (as compose resolves them), released images' Dockerfiles under `root`.
pub fn check_file(file: &Path, project_dir: Option<&Path>, root: &Path) -> Result<Vec<Unmounted>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let compose: Compose = serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not a compose file", file.display()))?;
    let base = project_dir.unwrap_or_else(|| {
        file.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    });
    check(&compose, |dockerfile| {
        let path = if dockerfile == Path::new(AGENTS_DOCKERFILE) {
            root.join(dockerfile)
        } else {
            base.join(dockerfile)
        };
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (build contexts resolve against --project-directory)",
                path.display()
            )
        })?;
        dockerfile::volumes(&text).with_context(|| format!("{}", path.display()))
    })
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
        let problems = check_file(&file, self.project_directory.as_deref(), &root)?;
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
mod tests {
    use super::*;
    use disinto::compose::{generate, model, ComposeInput};
    use disinto::image_ref::AgentsImage;

    fn input(agents: AgentsImage) -> ComposeInput {
        ComposeInput {
            agents,
            agent_cli: None,
            pinned: Default::default(),
        }
    }

    fn agents_volumes(path: &Path) -> Result<Vec<String>> {
        let text = std::fs::read_to_string(crate::project_root().join(path))?;
        dockerfile::volumes(&text)
    }

    fn problems(compose: &Compose) -> Vec<String> {
        check(compose, agents_volumes)
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    fn both_modes() -> Vec<Compose> {
        vec![
            model(&input(AgentsImage::Dev)),
            model(&input(AgentsImage::Release("v0.1.1".into()))),
            model(&input(AgentsImage::Reference(
                "127.0.0.1:5000/disinto/agents:v0.2.0".into(),
            ))),
        ]
    }

    #[test]
    fn generated_files_pass() {
        for compose in both_modes() {
            assert_eq!(problems(&compose), Vec::<String>::new());
        }
        // And through the YAML, as the command reads it.
        let text = generate(&input(AgentsImage::Release("v0.1.1".into()))).unwrap();
        let parsed: Compose = serde_yaml::from_str(&text).unwrap();
        assert_eq!(problems(&parsed), Vec::<String>::new());
    }

    #[test]
    fn a_removed_mount_is_named() {
        for mut compose in both_modes() {
            let runner = compose.services.get_mut("runner").unwrap();
            runner
                .volumes
                .retain(|m| m != &Mount::Short("agent-state:/home/agent/disinto/state".into()));
            let found = problems(&compose);
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(
                found[0]
                    .starts_with("service runner: VOLUME /home/agent/disinto/state (declared in "),
                "{}",
                found[0]
            );
            assert!(
                found[0].ends_with("docker/agents/Dockerfile) is not mounted at exactly that path")
            );
        }
    }

    #[test]
    fn near_miss_paths_do_not_count() {
        for near in ["/home/agent/data/", "/home/agent/Data", "/home/agent/dat"] {
            let mut compose = model(&input(AgentsImage::Release("v0.1.1".into())));
            let agents = compose.services.get_mut("agents").unwrap();
            agents.volumes[0] = Mount::Short(format!("agent-data:{near}"));
            assert_eq!(
                problems(&compose),
                ["service agents: VOLUME /home/agent/data (declared in docker/agents/Dockerfile) is not mounted at exactly that path"],
                "{near}"
            );
        }
    }

    #[test]
    fn anonymous_and_tmpfs_mounts_do_not_count() {
        let mut compose = model(&input(AgentsImage::Release("v0.1.1".into())));
        let agents = compose.services.get_mut("agents").unwrap();
        agents.volumes = vec![
            Mount::Short("/home/agent/data".into()),
            Mount::Long {
                kind: Some("volume".into()),
                source: None,
                target: "/home/agent/repos".into(),
                read_only: None,
            },
            Mount::Long {
                kind: Some("tmpfs".into()),
                source: None,
                target: "/home/agent/disinto/state".into(),
                read_only: None,
            },
            Mount::Long {
                kind: Some("bind".into()),
                source: Some("./projects".into()),
                target: "/home/agent/disinto/projects".into(),
                read_only: None,
            },
        ];
        let found = problems(&compose);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().all(|p| p.starts_with("service agents:")));
        assert!(!found.iter().any(|p| p.contains("projects")));
    }

    #[test]
    fn a_service_with_the_image_and_no_mounts_is_caught() {
        for image in [
            "${DISINTO_REGISTRY:-ghcr.io/disinto}/agents:v0.1.1",
            "127.0.0.1:5000/disinto/agents:v0.1.1",
            "ghcr.io/disinto/agents@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "disinto-agents:dev",
        ] {
            let mut compose = model(&input(AgentsImage::Release("v0.1.1".into())));
            compose.services.insert(
                "janitor".into(),
                Service {
                    image: Some(image.into()),
                    ..Service::default()
                },
            );
            let found = problems(&compose);
            assert_eq!(found.len(), 4, "{image}: {found:?}");
            assert!(found.iter().all(|p| p.starts_with("service janitor: VOLUME /home/agent/")));
        }
    }

    #[test]
    fn short_mounts_with_variables_split_right() {
        assert_eq!(
            split_short("agent-data:/home/agent/data"),
            Some(("agent-data", "/home/agent/data"))
        );
        assert_eq!(
            split_short("${DATA:-./d}:/home/agent/data:rw"),
            Some(("${DATA:-./d}", "/home/agent/data"))
        );
        assert_eq!(split_short("/home/agent/data"), None);
        let compose: Compose = serde_yaml::from_str(
            "services:\n  x:\n    image: ghcr.io/disinto/agents:v1\n    build:\n      context: .\n      args: [A=1]\n    volumes:\n    - ${DATA:-./d}:/home/agent/data\n",
        )
        .unwrap();
        assert_eq!(
            mounted_targets(&compose.services["x"]),
            ["/home/agent/data"]
        );
    }

    #[test]
    fn third_party_images_are_not_ours_to_check() {
        for image in [
            "codeberg.org/forgejo/forgejo:11",
            "agents:v1",
            "ghcr.io/x/agentsx:v1",
        ] {
            let service = Service {
                image: Some(image.into()),
                ..Service::default()
            };
            assert_eq!(dockerfile_of(&service), None, "{image}");
        }
    }
}
