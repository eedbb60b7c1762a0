//! Unit tests of check-volumes: the typed model, and compose files resolved without Docker
//! (the same files checked through `docker compose` are in `tests/e2e_check_volumes.rs`).

use super::*;
use disinto::fsx::TempDir;
use disinto::model::compose::{generate, model, ComposeInput, Mount, Service, AGENTS_DOCKERFILE};
use disinto::model::image_ref::AgentsImage;

fn input(agents: AgentsImage) -> ComposeInput {
    ComposeInput {
        agents,
        agent_cli: None,
        pinned: Default::default(),
    }
}

fn agents_text(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(crate::project_root().join(path))?)
}

fn problems(compose: &Compose) -> Vec<String> {
    check(compose, agents_text)
        .unwrap()
        .unmounted
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
    // And as a file, with the checkout as project directory (as `cargo xtask test` does).
    for agents in [AgentsImage::Dev, AgentsImage::Release("v0.1.1".into())] {
        let dir = TempDir::new("generated").unwrap();
        let file = dir.path().join("docker-compose.yml");
        std::fs::write(&file, generate(&input(agents)).unwrap()).unwrap();
        let root = crate::project_root();
        let found = check_file_with(&file, Some(&root), &root, Resolver::Builtin).unwrap();
        assert_eq!(found.unmounted, Vec::<Unmounted>::new());
    }
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
            found[0].starts_with("service runner: VOLUME /home/agent/disinto/state (declared in "),
            "{}",
            found[0]
        );
        assert!(found[0].ends_with("docker/agents/Dockerfile) is not mounted at exactly that path"));
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
        // Docker's own spellings of the same names.
        "docker.io/library/disinto-agents:dev",
        "index.docker.io/library/disinto-agents:dev",
        "disinto-agents",
        "docker.io/disinto/agents:v1",
        "disinto/agents",
    ] {
        // In dev mode agents and runner build disinto-agents:dev: the janitor runs that build.
        for agents in [AgentsImage::Release("v0.1.1".into()), AgentsImage::Dev] {
            let mut compose = model(&input(agents));
            compose.services.insert(
                "janitor".into(),
                Service {
                    image: Some(image.into()),
                    ..Service::default()
                },
            );
            let found = problems(&compose);
            assert_eq!(found.len(), 4, "{image}: {found:?}");
            assert!(found
                .iter()
                .all(|p| p.starts_with("service janitor: VOLUME /home/agent/")));
        }
    }
}

#[test]
fn short_mounts_with_variables_split_right() {
    use resolve::{parse_short, MountSpec};
    let mount = |kind: &str, source: Option<&str>, target: &str| MountSpec {
        kind: kind.into(),
        source: source.map(str::to_string),
        target: target.into(),
        read_only: false,
    };
    assert_eq!(
        parse_short("agent-data:/home/agent/data"),
        Ok(mount("volume", Some("agent-data"), "/home/agent/data"))
    );
    assert_eq!(
        parse_short("/home/agent/data"),
        Ok(mount("volume", None, "/home/agent/data"))
    );
    // Variables are interpolated first, so a ':' in a default never splits.
    let value = serde_yaml::from_str(
        "services:\n  s:\n    volumes: ['${DATA:-./d}:/home/agent/data:rw', '${N:-ab}:${T:-/x}']\n",
    )
    .unwrap();
    let project = resolve::builtin(value, Path::new("/p"), &|_| None).unwrap();
    assert_eq!(
        project.services["s"].mounts,
        [
            mount("bind", Some("./d"), "/home/agent/data"),
            mount("volume", Some("ab"), "/x")
        ]
    );
    // compose-go's quirks of the short form are disinto::model::mount's tests.
    let compose: Compose = serde_yaml::from_str(
        "services:\n  x:\n    image: ghcr.io/disinto/agents:v1\n    build:\n      context: .\n      args: [A=1]\n    volumes:\n    - ${DATA:-./d}:/home/agent/data\n",
    )
    .unwrap();
    // The build's Dockerfile is ./Dockerfile; let it be the agents one.
    let found: Vec<String> = check(&compose, |path| {
        assert_eq!(path, Path::new("./Dockerfile"));
        agents_text(Path::new(AGENTS_DOCKERFILE))
    })
    .unwrap()
    .unmounted
    .iter()
    .map(|p| p.to_string())
    .collect();
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(!found.iter().any(|p| p.contains("VOLUME /home/agent/data ")));
}

#[test]
fn third_party_images_are_not_ours_to_check() {
    for image in [
        "codeberg.org/forgejo/forgejo:11",
        "agents:v1",
        "docker.io/library/agents:v1",
        "ghcr.io/x/agentsx:v1",
        "disinto-agentsx:dev",
    ] {
        assert_eq!(released_from(image), None, "{image}");
    }
}

#[test]
fn every_released_image_maps_to_its_dockerfile() {
    for (image, dockerfile) in [
        ("127.0.0.1:5000/d/agents:v1", "docker/agents/Dockerfile"),
        ("ghcr.io/disinto/edge:v0.2.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "docker/edge/Dockerfile"),
        ("ghcr.io/disinto/reproduce:v0.2.0", "docker/reproduce/Dockerfile"),
        ("disinto-reproduce:dev", "docker/reproduce/Dockerfile"),
        ("docker.io/library/disinto-edge:dev", "docker/edge/Dockerfile"),
    ] {
        assert_eq!(released_from(image), Some(dockerfile), "{image}");
    }
    assert_eq!(released_from("docker.io/library/reproduce:v1"), None);
}

#[test]
fn a_pinned_reproduce_without_its_work_volume_is_caught() {
    let mut compose = model(&input(AgentsImage::Release("v0.1.1".into())));
    compose
        .services
        .get_mut("reproduce")
        .unwrap()
        .volumes
        .clear();
    let found = check(&compose, |path: &Path| {
        Ok(std::fs::read_to_string(crate::project_root().join(path))?)
    })
    .unwrap()
    .unmounted;
    assert!(
        found.iter().any(|p| p.to_string().contains("/work")),
        "{found:?}"
    );
}

#[test]
fn image_references_normalize_as_docker_reads_them() {
    for (reference, want) in [
        ("disinto-agents:dev", "docker.io/library/disinto-agents:dev"),
        ("disinto-agents", "docker.io/library/disinto-agents:latest"),
        (
            "docker.io/library/disinto-agents:dev",
            "docker.io/library/disinto-agents:dev",
        ),
        ("index.docker.io/x/y", "docker.io/x/y:latest"),
        ("x/y:1", "docker.io/x/y:1"),
        ("localhost/y", "localhost/y:latest"),
        ("127.0.0.1:5000/d/agents", "127.0.0.1:5000/d/agents:latest"),
        ("ghcr.io/d/agents@sha256:ab", "ghcr.io/d/agents@sha256:ab"),
        (
            "ghcr.io/d/agents:v1@sha256:ab",
            "ghcr.io/d/agents:v1@sha256:ab",
        ),
    ] {
        assert_eq!(normalize_image(reference), want, "{reference}");
    }
}

/// The agents Dockerfile's four paths: the mounts a service needs to pass.
const ALL_FOUR: &str = "[agent-data:/home/agent/data, agent-repos:/home/agent/repos, ./projects:/home/agent/disinto/projects, agent-state:/home/agent/disinto/state]";

/// Writes `files` into a fresh directory and checks its `compose.yml` without Docker.
fn check_fixture(files: &[(&str, &str)]) -> Result<Vec<String>> {
    let dir = TempDir::new("check-volumes")?;
    for (name, text) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    let file = dir.path().join("compose.yml");
    let found = check_file_with(&file, None, &crate::project_root(), Resolver::Builtin)?;
    Ok(found.unmounted.iter().map(|p| p.to_string()).collect())
}

/// The `(service, path)` pairs of a check's findings.
fn pairs(found: &[String]) -> Vec<(String, String)> {
    found
        .iter()
        .filter_map(|p| {
            let rest = p.strip_prefix("service ")?;
            let (service, rest) = rest.split_once(": VOLUME ")?;
            let path = rest.split(' ').next()?;
            Some((service.to_string(), path.to_string()))
        })
        .collect()
}

fn pair(service: &str, path: &str) -> (String, String) {
    (service.to_string(), path.to_string())
}

fn error_of(files: &[(&str, &str)]) -> String {
    let e = check_fixture(files).unwrap_err();
    let text = format!("{e:#}");
    assert!(!text.contains('\n'), "not one line: {text}");
    text
}

#[test]
fn a_heredoc_line_is_not_taken_for_from() {
    let dockerfile = "FROM debian\nVOLUME /data\nRUN <<EOF\nfrom pathlib import Path\nEOF\n";
    let found = check_fixture(&[
        ("compose.yml", "services:\n  s:\n    build: .\n"),
        ("Dockerfile", dockerfile),
    ])
    .unwrap();
    assert_eq!(pairs(&found), [pair("s", "/data")]);
}

#[test]
fn the_agents_image_through_a_merge_key_is_checked() {
    let compose = "x-agent: &agent\n  image: ghcr.io/disinto/agents:v1\n  volumes:\n    - agent-data:/home/agent/data\n\
                   x-deeper: &deeper\n  <<: *agent\n  restart: always\n\
                   services:\n  merged:\n    <<: *agent\n  deep:\n    <<: *deeper\n  listed:\n    <<: [*deeper]\n";
    let found = pairs(&check_fixture(&[("compose.yml", compose)]).unwrap());
    for service in ["merged", "deep", "listed"] {
        for path in [
            "/home/agent/repos",
            "/home/agent/disinto/projects",
            "/home/agent/disinto/state",
        ] {
            assert!(
                found.contains(&pair(service, path)),
                "{service} {path}: {found:?}"
            );
        }
    }
    assert_eq!(found.len(), 9, "{found:?}");
}

#[test]
fn extends_include_and_tags_are_refused_without_compose() {
    for (compose, what) in [
        (
            "services:\n  a:\n    image: x\n  s:\n    extends: a\n",
            "service s: uses extends",
        ),
        (
            "services:\n  s:\n    extends:\n      file: other.yml\n      service: a\n",
            "service s: uses extends",
        ),
        (
            "include:\n  - other.yml\nservices:\n  s:\n    image: x\n",
            "uses include",
        ),
        (
            "services:\n  s:\n    image: x\n    volumes: !reset []\n",
            "uses the YAML tag !reset",
        ),
    ] {
        let e = error_of(&[("compose.yml", compose)]);
        assert!(e.contains(&format!("compose.yml: {what}, which only `docker compose` resolves: install the compose v2 plugin (docker compose version) and rerun")), "{e}");
    }
}

#[test]
fn the_build_target_decides_the_volumes() {
    let dockerfile = "FROM debian AS early\nVOLUME /early\nFROM early AS middle\nVOLUME /middle\nFROM debian\nVOLUME /late\n";
    let compose = "services:\n  e:\n    build:\n      context: .\n      target: early\n    volumes: [vol:/late]\n\
                   \x20 m:\n    build: {context: ., target: middle}\n    volumes: [vol:/early]\n\
                   \x20 l:\n    build: .\n    volumes: [vol:/early]\n";
    let found =
        pairs(&check_fixture(&[("compose.yml", compose), ("Dockerfile", dockerfile)]).unwrap());
    assert_eq!(
        found,
        [
            pair("e", "/early"),
            pair("l", "/late"),
            pair("m", "/middle")
        ]
    );
    let e = error_of(&[
        (
            "compose.yml",
            "services:\n  s:\n    build: {context: ., target: nope}\n",
        ),
        ("Dockerfile", dockerfile),
    ]);
    assert!(e.contains("compose.yml: service s: /"), "{e}");
    assert!(e.ends_with("/Dockerfile, stage nope: build target nope is not a stage of this Dockerfile: name one of [early, middle]"), "{e}");
}

#[test]
fn dockerfile_inline_is_read_like_a_file() {
    let compose = "services:\n  s:\n    build:\n      context: .\n      dockerfile_inline: |\n        FROM debian\n        VOLUME /inline /kept\n    volumes: [vol:/kept]\n";
    let found = check_fixture(&[("compose.yml", compose)]).unwrap();
    assert_eq!(
        found,
        ["service s: VOLUME /inline (declared in the dockerfile_inline of service s) is not mounted at exactly that path"]
    );
}

#[test]
fn from_an_arg_follows_defaults_and_compose_build_args() {
    let dockerfile = "ARG BASE=early\nFROM debian AS early\nVOLUME /early\nFROM debian AS other\nVOLUME /other\nFROM ${BASE}\nVOLUME /last\n";
    let compose = "services:\n  d:\n    build: .\n    volumes: [vol:/last]\n\
                   \x20 o:\n    build:\n      context: .\n      args: {BASE: other}\n    volumes: [vol:/last]\n\
                   \x20 l:\n    build:\n      context: .\n      args: [BASE=other]\n    volumes: [vol:/last, vol:/other]\n";
    let found =
        pairs(&check_fixture(&[("compose.yml", compose), ("Dockerfile", dockerfile)]).unwrap());
    assert_eq!(found, [pair("d", "/early"), pair("o", "/other")]);
    let e = error_of(&[
        ("compose.yml", "services:\n  s:\n    build: .\n"),
        ("Dockerfile", "ARG BASE\nFROM debian AS a\nFROM ${BASE}\n"),
    ]);
    assert!(e.contains("compose.yml: service s: /"), "{e}");
    assert!(e.ends_with("/Dockerfile: line 3: FROM ${BASE}: BASE has no value: give it one with ARG BASE=... before the first FROM, or pass it as a build arg"), "{e}");
}

#[test]
fn volumes_from_another_service_counts_as_mounted() {
    let compose = format!(
        "services:\n  agents:\n    image: ghcr.io/disinto/agents:v1\n    volumes: {ALL_FOUR}\n\
         \x20 sidecar:\n    image: ghcr.io/disinto/agents:v1\n    volumes_from: [agents]\n\
         \x20 reader:\n    image: ghcr.io/disinto/agents:v1\n    volumes_from: ['sidecar:ro']\n\
         \x20 shadowed:\n    image: ghcr.io/disinto/agents:v1\n    volumes_from: [agents]\n    volumes: [/home/agent/data]\n\
         \x20 outside:\n    image: ghcr.io/disinto/agents:v1\n    volumes_from: ['container:elsewhere']\n"
    );
    let found = pairs(&check_fixture(&[("compose.yml", &compose)]).unwrap());
    let mut want = vec![pair("shadowed", "/home/agent/data")];
    for path in [
        "/home/agent/data",
        "/home/agent/repos",
        "/home/agent/disinto/projects",
        "/home/agent/disinto/state",
    ] {
        want.insert(0, pair("outside", path));
    }
    want.sort();
    let mut found = found;
    found.sort();
    assert_eq!(found, want);
    let e = error_of(&[(
        "compose.yml",
        "services:\n  a:\n    image: ghcr.io/disinto/agents:v1\n    volumes_from: [b]\n  b:\n    image: x\n    volumes_from: [a]\n",
    )]);
    assert!(
        e.contains(
            "compose.yml: service a: volumes_from b: service b: volumes_from loops back to a"
        ),
        "{e}"
    );
}

#[test]
fn mount_targets_with_defaults_resolve() {
    let compose = "services:\n  agents:\n    image: ghcr.io/disinto/agents:v1\n    volumes:\n\
                   \x20     - agent-data:${CHECK_VOLUMES_UNSET_T1:-/home/agent/data}\n\
                   \x20     - ${CHECK_VOLUMES_UNSET_S:-agent-repos}:${CHECK_VOLUMES_UNSET_T2:-/home/agent/repos}:rw\n\
                   \x20     - type: bind\n        source: ./projects\n        target: ${CHECK_VOLUMES_UNSET_T3:-/home/agent/disinto/projects}\n\
                   \x20     - agent-state:${FROM_DOTENV}\n";
    let found = check_fixture(&[
        ("compose.yml", compose),
        (".env", "FROM_DOTENV=/home/agent/disinto/state\n"),
    ])
    .unwrap();
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn a_mount_target_on_an_unset_variable_is_an_error() {
    for (mount, want) in [
        (
            "agent-data:${CHECK_VOLUMES_UNSET_T}",
            "volume \"agent-data:${CHECK_VOLUMES_UNSET_T}\": ${CHECK_VOLUMES_UNSET_T} is not set and has no default: set it, or write ${CHECK_VOLUMES_UNSET_T:-value}",
        ),
        (
            "{type: volume, source: agent-data, target: $CHECK_VOLUMES_UNSET_T}",
            "volume target \"$CHECK_VOLUMES_UNSET_T\": ${CHECK_VOLUMES_UNSET_T} is not set and has no default: set it, or write ${CHECK_VOLUMES_UNSET_T:-value}",
        ),
        ("agent-data:relative", "service agents: mount target \"relative\" is not an absolute path: write the container path, or give its variable a default like ${VAR:-/path}"),
    ] {
        let compose = format!("services:\n  agents:\n    image: ghcr.io/disinto/agents:v1\n    volumes:\n      - {mount}\n");
        let e = error_of(&[("compose.yml", &compose)]);
        assert!(e.contains("compose.yml: service agents: "), "{e}");
        assert!(e.ends_with(want), "{e}");
    }
}

#[test]
fn empty_and_duplicate_key_files_are_refused() {
    for (compose, want) in [
        ("", "compose.yml: is empty: a compose file needs a services: mapping"),
        ("# nothing\n", "compose.yml: is empty: a compose file needs a services: mapping"),
        ("services: {}\n", "compose.yml defines no services: nothing to check (is it the compose file you meant?)"),
        ("- a\n", "compose.yml: is not a compose file: its top level must be a mapping (services: ...)"),
        (
            "services:\n  s:\n    image: ghcr.io/disinto/agents:v1\n  s:\n    image: x\n",
            "compose.yml: is not valid YAML: services: duplicate entry with key \"s\" at line 2 column 3; fix it (compose refuses it too)",
        ),
        (
            "services:\n  s:\n    image: ghcr.io/disinto/agents:v1\n    image: x\n",
            "compose.yml: is not valid YAML: services.s: duplicate entry with key \"image\" at line 3 column 5; fix it (compose refuses it too)",
        ),
    ] {
        let e = error_of(&[("compose.yml", compose)]);
        assert!(e.ends_with(want), "{compose:?}: {e}");
    }
}

#[test]
fn a_service_running_an_image_built_by_another_gets_its_volumes() {
    let compose =
        "services:\n  builder:\n    image: local/thing:1\n    build: .\n    volumes: [vol:/data]\n\
                   \x20 user:\n    image: docker.io/local/thing:1\n\
                   \x20 other:\n    image: local/thing:2\n";
    let found = pairs(
        &check_fixture(&[
            ("compose.yml", compose),
            ("Dockerfile", "FROM debian\nVOLUME /data\n"),
        ])
        .unwrap(),
    );
    assert_eq!(found, [pair("user", "/data")]);
}

#[test]
fn remote_contexts_and_named_contexts_are_refused() {
    for (build, want) in [
        ("https://github.com/x/y.git", "the build context https://github.com/x/y.git is remote: check-volumes reads Dockerfiles from disk; use a local context or dockerfile_inline"),
        ("{context: ., additional_contexts: {base: docker-image://debian}}", "build.additional_contexts (base) cannot be followed: check-volumes reads one Dockerfile; build the base image separately"),
    ] {
        let compose = format!("services:\n  s:\n    build: {build}\n");
        let e = error_of(&[("compose.yml", &compose), ("Dockerfile", "FROM debian\n")]);
        assert!(e.ends_with(want), "{e}");
    }
}

/// Writes `files` into a fresh directory and checks its `compose.yml` without Docker, with
/// `inspect` standing in for the local image store.
fn check_with(files: &[(&str, &str)], inspect: impl FnMut(&str) -> LocalImage) -> Findings {
    let dir = TempDir::new("check-volumes").unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let text = std::fs::read_to_string(dir.path().join("compose.yml")).unwrap();
    let value = resolve::parse(&text).unwrap();
    let project = resolve::builtin(value, dir.path(), &|_| None).unwrap();
    let root = crate::project_root();
    let read = |path: &Path| Ok(std::fs::read_to_string(path)?);
    check_project(&project, &root, read, inspect).unwrap()
}

fn no_local_images(_: &str) -> LocalImage {
    LocalImage::Unknown("No such image".into())
}

fn unmounted_pairs(findings: &Findings) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = findings
        .unmounted
        .iter()
        .map(|u| (u.service.clone(), u.path.clone()))
        .collect();
    found.sort();
    found
}

const AGENT_PATHS: [&str; 4] = [
    "/home/agent/data",
    "/home/agent/repos",
    "/home/agent/disinto/projects",
    "/home/agent/disinto/state",
];

#[test]
fn a_dockerfile_built_on_our_images_inherits_their_volumes() {
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let compose = "services:\n  s:\n    build: .\n    volumes: [vol:/own]\n";
    for from in [
        "FROM ghcr.io/disinto/agents:v0.1.0".to_string(),
        format!("FROM 127.0.0.1:5000/x/agents@{digest}"),
        format!("FROM 127.0.0.1:5000/x/agents:v1@{digest} AS base\nRUN true\nFROM base"),
        "FROM disinto-agents:dev".into(),
        "FROM docker.io/library/disinto-agents:e2e".into(),
        "ARG BASE=disinto-agents:dev\nFROM ${BASE}".into(),
    ] {
        let dockerfile = format!("{from}\nVOLUME /own\n");
        let found = check_with(
            &[("compose.yml", compose), ("Dockerfile", &dockerfile)],
            no_local_images,
        );
        let want: Vec<(String, String)> = AGENT_PATHS.iter().map(|p| pair("s", p)).collect();
        let mut want = want;
        want.sort();
        assert_eq!(unmounted_pairs(&found), want, "{dockerfile}");
        let declared_in = &found.unmounted[0].declared_in;
        assert!(
            declared_in.starts_with("docker/agents/Dockerfile, the base image "),
            "{declared_in}"
        );
        // Our Dockerfile's own base (debian) is not known without the local image store.
        assert_eq!(found.unchecked.len(), 1, "{:?}", found.unchecked);
        assert_eq!(found.unchecked[0].image, "debian:bookworm-slim");
    }
    // Mounted, they pass; reproduce gives /work, edge nothing.
    let all = format!("services:\n  s:\n    build: .\n    volumes: {ALL_FOUR}\n");
    let found = check_with(
        &[
            ("compose.yml", &all),
            ("Dockerfile", "FROM disinto-agents:dev\n"),
        ],
        no_local_images,
    );
    assert_eq!(found.unmounted, Vec::<Unmounted>::new());
    for (base, want) in [
        ("ghcr.io/disinto/reproduce:v1", vec![pair("s", "/work")]),
        ("ghcr.io/disinto/edge:v1", vec![]),
    ] {
        let found = check_with(
            &[
                ("compose.yml", "services:\n  s:\n    build: .\n"),
                ("Dockerfile", &format!("FROM {base}\n")),
            ],
            no_local_images,
        );
        assert_eq!(unmounted_pairs(&found), want, "{base}");
    }
}

#[test]
fn a_base_image_built_by_the_file_gives_its_volumes() {
    let compose = "services:\n  base:\n    image: local/base:1\n    build: {context: ., dockerfile: Base.Dockerfile}\n    volumes: [vol:/b]\n\
                   \x20 child:\n    build: {context: ., dockerfile: Child.Dockerfile}\n    volumes: [vol:/c]\n";
    let found = check_with(
        &[
            ("compose.yml", compose),
            ("Base.Dockerfile", "FROM scratch\nVOLUME /b\n"),
            (
                "Child.Dockerfile",
                "FROM docker.io/local/base:1\nVOLUME /c\n",
            ),
        ],
        |image| panic!("{image} inspected, though the file builds it"),
    );
    assert_eq!(unmounted_pairs(&found), [pair("child", "/b")]);
    assert!(found.unchecked.is_empty(), "{:?}", found.unchecked);
    // Built on its own image: an error, not an endless loop.
    let compose = "services:\n  s:\n    image: local/self:1\n    build: .\n";
    let dir = TempDir::new("check-volumes").unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM local/self:1\n").unwrap();
    let value = resolve::parse(compose).unwrap();
    let project = resolve::builtin(value, dir.path(), &|_| None).unwrap();
    let read = |path: &Path| Ok(std::fs::read_to_string(path)?);
    let e = check_project(&project, dir.path(), read, no_local_images).unwrap_err();
    assert!(
        format!("{e:#}").contains("is built FROM its own image"),
        "{e:#}"
    );
}

#[test]
fn a_base_image_that_is_not_ours_is_inspected_or_reported() {
    let compose = "services:\n  s:\n    build: .\n    volumes: [vol:/own]\n";
    let files = [
        ("compose.yml", compose),
        (
            "Dockerfile",
            "FROM postgres:16 AS db\nVOLUME /own\nFROM db\n",
        ),
    ];
    // In the local image store: its VOLUMEs, as Docker reports them.
    let mut asked = Vec::new();
    let found = check_with(&files, |image| {
        asked.push(image.to_string());
        LocalImage::Volumes(vec!["/var/lib/postgresql/data".into(), "/own".into()])
    });
    assert_eq!(asked, ["postgres:16"]);
    assert_eq!(
        unmounted_pairs(&found),
        [pair("s", "/var/lib/postgresql/data")]
    );
    assert!(found.unmounted[0]
        .declared_in
        .contains("the local image (docker image inspect), the base image postgres:16 of "));
    // Not there: nothing to hold against the service, but the base is named, once.
    let found = check_with(&files, no_local_images);
    assert_eq!(found.unmounted, Vec::<Unmounted>::new());
    assert_eq!(found.unchecked.len(), 1, "{:?}", found.unchecked);
    assert_eq!(found.unchecked[0].image, "postgres:16");
    assert!(found.unchecked[0].of.ends_with("/Dockerfile"));
    // FROM scratch has nothing to ask about.
    let found = check_with(
        &[
            ("compose.yml", compose),
            ("Dockerfile", "FROM scratch\nVOLUME /own\n"),
        ],
        |image| panic!("{image} inspected"),
    );
    assert_eq!(found, Findings::default());
}
