//! End-to-end: `bin/disinto` on a pinned factory that has nothing but a `.env`, against
//! v0.1.0 and v0.2.0 released by `cargo xtask release` into a local htpasswd registry:
//! pull (no build), upgrade, rollback, a mistyped version that changes nothing, and data
//! that survives all of it. Then dev mode, which builds from source.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use xtask::testbed::Registry;

struct Operator {
    factory: std::path::PathBuf,
    project: String,
    docker_config: std::path::PathBuf,
}

impl Operator {
    fn disinto(&self, args: &[&str], agents_image: Option<&str>) -> Output {
        let mut cmd = operator(&self.factory, &self.project, agents_image);
        cmd.args(args).env("DOCKER_CONFIG", &self.docker_config);
        output(&mut cmd)
    }

    fn disinto_ok(&self, args: &[&str], agents_image: Option<&str>) -> String {
        let out = self.disinto(args, agents_image);
        succeeded(
            &out,
            &format!("disinto {args:?} (AGENTS_IMAGE={agents_image:?})"),
        )
    }

    fn agents(&self) -> String {
        ok(Command::new("docker")
            .args(["ps", "-q", "--filter"])
            .arg(format!("label=com.docker.compose.project={}", self.project))
            .args(["--filter", "label=com.docker.compose.service=agents"]))
        .trim()
        .to_string()
    }

    /// The VERSION column of `disinto status` for agents.
    fn agents_version(&self) -> String {
        let table = self.disinto_ok(&["status"], None);
        let row = table
            .lines()
            .find(|l| l.starts_with("agents "))
            .unwrap_or_else(|| panic!("no agents row:\n{table}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 6, "{table}");
        assert_eq!(cols[4], "running", "{table}");
        cols[3].to_string()
    }

    fn markers(&self) -> Vec<String> {
        read_markers(&self.agents())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.factory.join("docker-compose.yml").exists() {
            let _ = self.disinto(&["down", "--volumes"], None);
        }
    }
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn pinned_factory_upgrades_rolls_back_and_survives_a_mistyped_version() {
    bench();
    let mut registry = Registry::start().unwrap();
    let ns = registry.namespace();
    let c = Checkout::new("v0.1.0");
    release(&c, &registry, "v0.1.0");
    c.bump("v0.2.0");
    release(&c, &registry, "v0.2.0");
    forget_local_images(&ns, &["v0.1.0", "v0.2.0"]);

    // A fresh factory: a .env and nothing else. The operator is logged in to the registry.
    let dir = TempDir::new("pinned-factory").unwrap();
    let docker_config = TempDir::new("operator-config").unwrap();
    xtask::secret::login(
        docker_config.path(),
        &registry.addr,
        &registry.user,
        &registry.password,
    )
    .unwrap();
    let env = format!("# pinned\nAGENTS_IMAGE=v0.1.0\nDISINTO_REGISTRY={ns}\nPOLL_INTERVAL=1\n");
    std::fs::write(dir.path().join(".env"), &env).unwrap();
    let op = Operator {
        factory: dir.path().to_path_buf(),
        project: unique("pin"),
        docker_config: docker_config.path().to_path_buf(),
    };

    let out = op.disinto_ok(&["init"], None);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".env")).unwrap(),
        env,
        "init changed .env"
    );
    assert!(
        out.contains("lacks"),
        "init does not say which keys .env lacks:\n{out}"
    );
    let compose = std::fs::read_to_string(dir.path().join("docker-compose.yml")).unwrap();
    assert!(
        compose.contains("agents:v0.1.0") && !compose.contains("docker/agents/Dockerfile"),
        "{compose}"
    );

    let out = op.disinto_ok(&["up", "agents"], None);
    assert!(
        out.contains(&format!("docker pull --quiet {ns}/agents:v0.1.0")),
        "{out}"
    );
    assert_eq!(op.agents_version(), "v0.1.0");
    // Nothing was built: agents runs the pulled release, pinned by its registry digest.
    let running =
        ok(Command::new("docker").args(["inspect", "--format", "{{.Config.Image}}", &op.agents()]));
    assert!(
        running
            .trim()
            .starts_with(&format!("{ns}/agents:v0.1.0@sha256:")),
        "{running}"
    );
    let marker = unique("m-");
    let first = op.agents();
    write_markers(&first, &marker);

    // Upgrade, then roll back: each one command, data intact.
    op.disinto_ok(&["up", "agents"], Some("v0.2.0"));
    assert_eq!(op.agents_version(), "v0.2.0");
    assert_eq!(op.markers(), vec![marker.clone(); 4]);
    op.disinto_ok(&["up", "agents"], Some("v0.1.0"));
    assert_eq!(op.agents_version(), "v0.1.0");
    assert_eq!(op.markers(), vec![marker.clone(); 4]);
    let running = op.agents();
    assert!(
        anonymous_mounts(&running).is_empty(),
        "{:?}",
        anonymous_mounts(&running)
    );
    let image =
        ok(Command::new("docker").args(["inspect", "--format", "{{.Config.Image}}", &running]));
    assert!(
        image
            .trim()
            .starts_with(&format!("{ns}/agents:v0.1.0@sha256:")),
        "not pinned by digest: {image}"
    );

    // Nothing changed: nothing is recreated.
    op.disinto_ok(&["up", "agents"], Some("v0.1.0"));
    assert_eq!(op.agents(), running, "an unchanged up recreated agents");

    // A version the registry does not have: one line, and the factory untouched.
    let compose_before = std::fs::read(dir.path().join("docker-compose.yml")).unwrap();
    let out = op.disinto(&["up", "agents"], Some("v9.9.9"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains(&format!("{ns}/agents:v9.9.9")),
        "{stderr}"
    );
    assert_eq!(op.agents(), running, "the running container was replaced");
    wait_healthy(&running, Duration::from_secs(30));
    assert_eq!(
        std::fs::read(dir.path().join("docker-compose.yml")).unwrap(),
        compose_before
    );

    // down keeps the named volumes; up finds the data again.
    let out = op.disinto_ok(&["down"], None);
    assert!(out.contains("Named volumes kept"), "{out}");
    op.disinto_ok(&["up", "agents"], None);
    assert_eq!(op.markers(), vec![marker.clone(); 4]);
    assert_eq!(op.agents_version(), "v0.1.0");

    rollouts_revert_pin_and_roll_back(&op, &mut registry, dir.path(), &marker);
}

fn image_id_of(container: &str) -> String {
    ok(Command::new("docker").args(["inspect", "--format", "{{.Image}}", container]))
        .trim()
        .to_string()
}

/// Issue "rollouts that cannot take a factory down": a v0.3.0 whose agents never turns
/// healthy is reverted; a tag moved on the registry changes nothing that runs; `rollback`
/// works with the registry stopped and keeps its choice in `.env`.
fn rollouts_revert_pin_and_roll_back(
    op: &Operator,
    registry: &mut Registry,
    factory: &Path,
    marker: &str,
) {
    let ns = registry.namespace();
    let env_path = factory.join(".env");
    let env = format!(
        "# pinned\nAGENTS_IMAGE=v0.2.0\nDISINTO_REGISTRY={ns}\nPOLL_INTERVAL=1\n# keep this line\n"
    );
    std::fs::write(&env_path, &env).unwrap();
    op.disinto_ok(&["up", "agents"], None);
    assert_eq!(op.agents_version(), "v0.2.0");
    let good = op.agents();
    let good_image = image_id_of(&good);
    let status = op.disinto_ok(&["status"], None);
    assert!(
        status.contains("deployed: v0.2.0 since") && status.contains("previous: v0.1.0"),
        "{status}"
    );

    // v0.3.0: v0.2.0 with a health check that always fails, pushed to the registry and
    // signed with the release key (the gate lets it through; its health fails it).
    let broken = format!("{ns}/agents:v0.3.0");
    build_from_stdin(
        &broken,
        &format!("FROM {ns}/agents:v0.2.0\nHEALTHCHECK --interval=2s --timeout=1s --retries=1 CMD false\n"),
    );
    ok(docker(&op.docker_config).args(["push", "-q", &broken]));
    ok(&mut signing_key().cosign_sign(&broken, &op.docker_config));
    let start = std::time::Instant::now();
    let out = op.disinto(&["up", "agents", "--health-timeout", "20"], Some("v0.3.0"));
    let took = start.elapsed();
    assert!(!out.status.success(), "a broken rollout succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    // Reverted: the previous image runs again (below), and the history says so.
    assert!(took < Duration::from_secs(20 + 40), "took {took:?}");
    let reverted = op.agents();
    assert_eq!(
        image_id_of(&reverted),
        good_image,
        "the previous image is not back"
    );
    wait_healthy(&reverted, Duration::from_secs(30));
    assert_eq!(op.markers(), vec![marker.to_string(); 4]);
    let history = op.disinto_ok(&["history", "--json"], None);
    let outcomes: Vec<(String, String)> = history
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["version"].as_str().unwrap_or("").to_string(),
                v["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes.last().map(|(v, o)| (v.as_str(), o.as_str())),
        Some(("v0.3.0", "reverted")),
        "{history}"
    );
    assert!(
        outcomes.contains(&("v0.2.0".into(), "deployed".into())),
        "{history}"
    );

    // Back on v0.2.0, pinned by digest; then the tag moves on the registry (to the broken
    // image). A plain compose up, as a reboot or an operator would do, keeps what runs.
    op.disinto_ok(&["up", "agents"], None);
    let pinned = op.agents();
    assert_eq!(image_id_of(&pinned), good_image);
    ok(Command::new("docker").args(["tag", &broken, &format!("{ns}/agents:v0.2.0")]));
    ok(docker(&op.docker_config).args(["push", "-q", &format!("{ns}/agents:v0.2.0")]));
    ok(Command::new("docker")
        .args(["compose", "-p", &op.project, "-f"])
        .arg(factory.join("docker-compose.yml"))
        .args(["up", "--detach", "--no-deps", "agents"])
        .current_dir(factory));
    assert_eq!(
        image_id_of(&op.agents()),
        good_image,
        "a moved tag changed what runs"
    );

    // Registry down: rollback (no argument) goes to the version before, from local images,
    // and keeps it in .env with every other byte as it was.
    registry.stop();
    let out = op.disinto_ok(&["rollback", "--health-timeout", "60"], None);
    assert!(out.contains("rolled back: v0.2.0 → v0.1.0"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&env_path).unwrap(),
        env.replace("AGENTS_IMAGE=v0.2.0", "AGENTS_IMAGE=v0.1.0")
    );
    assert_eq!(op.agents_version(), "v0.1.0");
    assert_eq!(op.markers(), vec![marker.to_string(); 4]);
    let history = op.disinto_ok(&["history"], None);
    assert!(
        history.lines().last().unwrap_or("").contains("rolled-back"),
        "{history}"
    );
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn dev_mode_builds_from_source_and_needs_a_checkout() {
    let _sh = bench();
    let c = Checkout::new("v0.1.0");
    let op = Operator {
        factory: c.work(),
        project: unique("dev"),
        docker_config: c.work().join("target/docker-config"),
    };
    op.disinto_ok(&["init"], None);
    assert!(c.work().join(".env").is_file(), "init did not create .env");
    let compose = std::fs::read_to_string(c.work().join("docker-compose.yml")).unwrap();
    assert!(
        compose.contains("dockerfile: docker/agents/Dockerfile"),
        "{compose}"
    );
    // A line only this run's sources carry: the running container must have it, whatever
    // the builder or compose version prints about the build.
    let edit = unique("dev-edit-");
    let lib = c.work().join("lib/agent-loop.sh");
    let mut text = std::fs::read_to_string(&lib).unwrap();
    text.push_str(&format!("# {edit}\n"));
    std::fs::write(&lib, text).unwrap();
    let out = op.disinto_ok(&["up", "agents"], None);
    assert!(out.contains("agents is healthy (dev"), "{out}");
    let inside = ok(Command::new("docker").args([
        "exec",
        &op.agents(),
        "cat",
        "/opt/disinto/lib/agent-loop.sh",
    ]));
    assert!(
        inside.contains(&edit),
        "dev mode did not build from the checkout"
    );
    assert_eq!(op.agents_version(), "dev");

    // Without a checkout, dev mode is refused with what to do instead.
    let empty = TempDir::new("empty-factory").unwrap();
    let lost = Operator {
        factory: empty.path().to_path_buf(),
        project: unique("none"),
        docker_config: Path::new("/nonexistent").to_path_buf(),
    };
    let out = lost.disinto(&["up"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dev mode needs a source checkout; pinned mode needs AGENTS_IMAGE"),
        "{stderr}"
    );
    assert!(!empty.path().join("docker-compose.yml").exists());
}
