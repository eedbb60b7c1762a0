//! End-to-end, as a new operator on a host with Docker and nothing else: no checkout, no
//! cargo. Two releases go to the htpasswd registry; then, in a fresh directory outside any
//! checkout holding only `.env` and a registry login, disinto is extracted from the agents
//! image with one docker command, `init` and a whole-stack `up` start every service, and an
//! upgrade keeps the data in all four volumes. The releases are of two platforms (the
//! issue "amd64 and arm64 from one release"): each image is an index of linux/amd64 and
//! linux/arm64, the arm64 agents image runs its own disinto and turns healthy under qemu,
//! the amd64 factory runs from the index, and the upgrade stays small on each platform.
//!
//! forgejo and woodpecker cannot be pulled here (no public registry is reachable): tiny local
//! images stand in for them, tagged with their exact names, and only when no image of that
//! name is present. Everything of ours comes from the registry.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use xtask::testbed::Registry;

struct Host {
    dir: TempDir,
    docker_config: TempDir,
    project: String,
}

impl Host {
    fn disinto_path(&self) -> PathBuf {
        self.dir.path().join("disinto")
    }

    /// `docker run --rm --entrypoint cat IMAGE /usr/local/bin/disinto > disinto`.
    fn extract(&self, image: &str) {
        extract_disinto(self.docker_config.path(), image, &self.disinto_path());
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.disinto_path());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .env("HOME", self.dir.path())
            .env("DOCKER_CONFIG", self.docker_config.path())
            .env("COMPOSE_PROJECT_NAME", &self.project)
            // The watch after the health gate is e2e_work's subject.
            .env("DISINTO_WATCH", "0");
        output(&mut cmd)
    }

    fn ok(&self, args: &[&str]) -> String {
        succeeded(&self.run(args), &format!("disinto {args:?}"))
    }

    fn compose(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.args(["compose", "-p", &self.project, "-f"])
            .arg(self.dir.path().join("docker-compose.yml"))
            .current_dir(self.dir.path());
        cmd
    }

    fn container(&self, service: &str) -> String {
        ok(self.compose().args(["ps", "-q", service]))
            .trim()
            .to_string()
    }

    fn running_services(&self) -> Vec<String> {
        let out = ok(self
            .compose()
            .args(["ps", "--services", "--status", "running"]));
        let mut services: Vec<String> = out.lines().map(str::to_string).collect();
        services.sort();
        services
    }

    fn image_of(&self, service: &str) -> String {
        ok(Command::new("docker").args([
            "inspect",
            "--format",
            "{{.Config.Image}}",
            &self.container(service),
        ]))
        .trim()
        .to_string()
    }

    fn markers(&self) -> Vec<String> {
        read_markers(&self.container("agents"))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.dir.path().join("docker-compose.yml").exists() && self.disinto_path().exists() {
            let _ = self.run(&["down", "--volumes"]);
        }
    }
}

/// The platforms both releases are built for.
const PLATFORMS: &str = "linux/amd64,linux/arm64";

/// A logged-in session on `registry` (docker manifest inspect of each platform's image).
fn registry_session(registry: &Registry) -> xtask::release::registry::Session {
    let credentials = xtask::release::registry::Credentials {
        user: registry.user.clone(),
        token: registry.password.clone(),
    };
    xtask::release::registry::Session::login(&registry.addr, &credentials, 4).unwrap()
}

/// The image index under `name:tag` in `registry`'s namespace: its digest and entries.
fn index_of(
    registry: &Registry,
    name: &str,
    tag: &str,
) -> (String, Vec<disinto::model::index::Entry>) {
    let client = disinto::engine::registry::Registry::new(&registry.addr)
        .unwrap()
        .with_credentials(disinto::model::docker_config::Credentials::Basic {
            user: registry.user.clone(),
            password: registry.password.clone(),
        });
    let path = format!("{}/{name}", registry.namespace().split_once('/').unwrap().1);
    let accept = format!(
        "{}, {}",
        disinto::model::index::OCI_INDEX,
        disinto::model::index::DOCKER_LIST
    );
    let (bytes, digest) = client.manifest(&path, tag, &accept).unwrap().unwrap();
    assert!(
        disinto::model::index::is_index(&bytes, None),
        "{name}:{tag}"
    );
    (digest, disinto::model::index::parse(&bytes).unwrap())
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn a_new_factory_from_a_token_and_a_config_file() {
    bench();
    let registry = Registry::start().unwrap();
    let ns = registry.namespace();
    let c = Checkout::new("v0.1.0");
    release_for(&c, &registry, "v0.1.0", PLATFORMS);
    // The release is of the tagged commit (the record is committed after it).
    let revision_of = |tag: &str| {
        ok(git(&c.work()).args(["rev-parse", &format!("{tag}^{{commit}}")]))
            .trim()
            .to_string()
    };
    let v1_revision = revision_of("v0.1.0");
    // v0.2.0 changes one script: the factory's own files, not its packages.
    change_one_script(&c);
    c.bump("v0.2.0");
    release_for(&c, &registry, "v0.2.0", PLATFORMS);
    let v2_revision = revision_of("v0.2.0");
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(c.work().join("release/v0.2.0.json")).unwrap(),
    )
    .unwrap();
    let session = registry_session(&registry);
    let sh = xshell::Shell::new().unwrap();
    for image in ["agents", "edge", "reproduce"] {
        let entry = &record["images"][image];
        // The version tag is one image index of both platforms, with the recorded digests.
        let index_digest = entry["digest"].as_str().unwrap_or("");
        let listed = index_of(&registry, image, "v0.2.0");
        assert_eq!(listed.0, index_digest, "{image}: {record}");
        let platforms: Vec<String> = listed.1.iter().map(|e| e.platform.to_string()).collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{image}");
        for e in &listed.1 {
            let platform = e.platform.to_string();
            let unit = &entry["platforms"][&platform];
            assert_eq!(
                unit["digest"].as_str(),
                Some(e.digest.as_str()),
                "{image} {platform}"
            );
            assert_eq!(unit["signed"].as_bool(), Some(true), "{image} {platform}");
            assert!(
                unit["packages"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("reused from the previous release"),
                "{image} {platform}: {record}"
            );
            // What a host of that platform downloads to upgrade: the factory's own files,
            // the layers above the package image both releases share.
            let tag = e.platform.tag_part();
            let inspect = |reference: &str| {
                session
                    .inspect(&sh, reference)
                    .unwrap()
                    .unwrap_or_else(|| panic!("the registry has no {reference}"))
            };
            let old = inspect(&format!("{ns}/{image}:{tag}-v0.1.0"));
            let new = inspect(&format!("{ns}/{image}:{tag}-v0.2.0"));
            assert_eq!(new.digest, e.digest, "{image} {platform}");
            let packages = unit["packages_image"].as_str().unwrap_or_default();
            assert!(
                packages.starts_with(&format!("{ns}/{image}:packages-{tag}-v0.1.0@")),
                "{image} {platform}: {packages}"
            );
            let shared = inspect(packages.split('@').next().unwrap()).layers.len();
            assert!(shared >= 2, "{image} {platform}");
            assert_eq!(
                new.layers[..shared],
                old.layers[..shared],
                "{image} {platform}"
            );
            let above: u64 = new.layers[shared..].iter().map(|(_, size)| size).sum();
            let (download, size) = (new.download_from(&old), new.size());
            eprintln!(
                "{image} {platform}: the upgrade downloads {download} of {size} bytes ({:.2} %); the layers above the packages are {above}",
                100.0 * download as f64 / size as f64
            );
            assert!(
                download <= above,
                "{image} {platform}: {download} > {above}"
            );
        }
        assert_eq!(entry["signed"].as_bool(), Some(true), "{image}: {record}");
    }
    assert!(
        record["build_ms"]["linux/arm64"].as_u64().unwrap_or(0) > 0,
        "{record}"
    );

    // The arm64 agents image, under qemu: its own disinto, built for arm64 from the same
    // commit, and its health command passes.
    let arm = format!("{ns}/agents:linux-arm64-v0.2.0");
    let arch = ok(Command::new("docker").args([
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "--entrypoint",
        "uname",
        &arm,
        "-m",
    ]));
    assert_eq!(arch.trim(), "aarch64");
    let said = ok(Command::new("docker").args([
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        "--entrypoint",
        "disinto",
        &arm,
        "--version",
    ]));
    assert_eq!(
        said.trim(),
        format!("disinto v0.2.0 (revision {v2_revision})")
    );
    let id = ok(Command::new("docker").args([
        "run",
        "-d",
        "--platform",
        "linux/arm64",
        "--env",
        "POLL_INTERVAL=1",
        &arm,
    ]))
    .trim()
    .to_string();
    let _arm_container = Container(id.clone());
    wait_healthy(&id, std::time::Duration::from_secs(120));
    drop(session);
    forget_local_images(&ns, &["v0.1.0", "v0.2.0"]);
    stand_in_for_third_party_images();

    // The operator: a directory outside any checkout, a login, a .env.
    let host = Host {
        dir: TempDir::new("new-factory").unwrap(),
        docker_config: TempDir::new("operator-config").unwrap(),
        project: unique("nock"),
    };
    assert!(!host.dir.path().join("Cargo.toml").exists());
    assert!(
        !Path::new(SYSTEM_PATH)
            .to_str()
            .unwrap()
            .split(':')
            .any(|d| Path::new(d).join("cargo").exists()),
        "cargo is on the operator's PATH"
    );
    xtask::secret::login(
        host.docker_config.path(),
        &registry.addr,
        &registry.user,
        &registry.password,
    )
    .unwrap();
    let env = format!(
        "AGENTS_IMAGE=v0.1.0\nDISINTO_REGISTRY={ns}\nPOLL_INTERVAL=1\nEDGE_HTTP_PORT=127.0.0.1:0\n"
    );
    std::fs::write(host.dir.path().join(".env"), &env).unwrap();

    host.extract(&format!("{ns}/agents:v0.1.0"));
    let version = host.ok(&["--version"]);
    assert_eq!(
        version.trim(),
        format!("disinto v0.1.0 (revision {v1_revision})")
    );

    host.ok(&["init"]);
    assert_eq!(
        std::fs::read_to_string(host.dir.path().join(".env")).unwrap(),
        env
    );
    let out = host.ok(&["up"]);
    let all = [
        "agents",
        "edge",
        "forgejo",
        "woodpecker",
        "woodpecker-agent",
    ];
    assert_eq!(host.running_services(), all, "{out}");
    for image in ["agents", "edge"] {
        assert!(
            host.image_of(image)
                .starts_with(&format!("{ns}/{image}:v0.1.0@sha256:")),
            "{image}: {}",
            host.image_of(image)
        );
    }
    let marker = unique("m-");
    let agents = host.container("agents");
    write_markers(&agents, &marker);

    // Upgrade: one line of .env, one command; every service still runs, the data is kept.
    std::fs::write(
        host.dir.path().join(".env"),
        env.replace("AGENTS_IMAGE=v0.1.0", "AGENTS_IMAGE=v0.2.0"),
    )
    .unwrap();
    host.ok(&["up"]);
    assert_eq!(host.running_services(), all);
    for image in ["agents", "edge"] {
        // Pinned to the index: the engine picked its own platform from it.
        let index = record["images"][image]["digest"].as_str().unwrap();
        assert_eq!(
            host.image_of(image),
            format!("{ns}/{image}:v0.2.0@{index}"),
            "{image}"
        );
    }
    // status says which of the index's platforms runs here.
    let status: serde_json::Value = serde_json::from_str(&host.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["platform"], "linux/amd64", "{status}");
    assert_eq!(host.markers(), vec![marker.clone(); 4]);
    let running = host.container("agents");
    assert!(
        anonymous_mounts(&running).is_empty(),
        "{:?}",
        anonymous_mounts(&running)
    );
    host.extract(&format!("{ns}/agents:v0.2.0"));
    let version = host.ok(&["--version"]);
    assert_eq!(
        version.trim(),
        format!("disinto v0.2.0 (revision {v2_revision})")
    );
}
