//! End-to-end on a single-node Docker Swarm: `disinto swarm` deploys v0.1.0 and v0.2.0,
//! released by `cargo xtask release` into the htpasswd registry, rolls back by hand, and then
//! a v0.3.0 whose health check always fails: Swarm itself rolls agents back to v0.2.0's
//! digest. The data written into the four agent volumes survives all of it, and the running
//! agents container has no anonymous volume.
//!
//! The swarm is made by the test (`docker swarm init --advertise-addr 127.0.0.1`) and left
//! on drop, failure included, unless the daemon was in one already. The disinto binary is the
//! one the v0.2.0 release carries, run with nothing but PATH, HOME and a Docker config: the
//! operator's side needs no checkout. forgejo and woodpecker are local stand-ins, as in
//! `e2e_no_checkout.rs`.

mod common;

use disinto::model::history::{Outcome, HISTORY_FILE};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use xtask::testbed::Registry;

fn docker_ok(args: &[&str]) -> String {
    ok(Command::new("docker").args(args)).trim().to_string()
}

/// The daemon in a swarm for the test's length: initialised here only when it was not in one,
/// and then left on drop; a volumes label the test's deploy added to this node is removed.
struct SwarmGuard {
    initialised: bool,
    node: String,
    labelled_before: bool,
}

impl SwarmGuard {
    fn join() -> SwarmGuard {
        let state = docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let initialised = state != "active";
        if initialised {
            docker_ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        }
        let node = docker_ok(&["info", "--format", "{{.Swarm.NodeID}}"]);
        let label = docker_ok(&[
            "node",
            "inspect",
            "--format",
            "{{index .Spec.Labels \"disinto.volumes\"}}",
            &node,
        ]);
        SwarmGuard {
            initialised,
            node,
            labelled_before: label == "true",
        }
    }
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        if self.initialised {
            let _ = Command::new("docker")
                .args(["swarm", "leave", "--force"])
                .output();
        } else if !self.labelled_before {
            let _ = Command::new("docker")
                .args([
                    "node",
                    "update",
                    "--label-rm",
                    "disinto.volumes",
                    &self.node,
                ])
                .output();
        }
    }
}

/// The stack, its volumes, and the images of our releases, removed on drop.
struct StackGuard {
    name: String,
    ns: String,
}

impl Drop for StackGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["stack", "rm", &self.name])
            .output();
        let filter = format!("label=com.docker.stack.namespace={}", self.name);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(90) {
            let left = Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            if left.iter().all(u8::is_ascii_whitespace) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        for volume in disinto::model::stack::volume_names(&self.name) {
            let _ = Command::new("docker")
                .args(["volume", "rm", &volume])
                .output();
        }
        forget_local_images(&self.ns, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    }
}

struct Operator {
    dir: TempDir,
    docker_config: TempDir,
    stack: String,
}

impl Operator {
    fn disinto_path(&self) -> PathBuf {
        self.dir.path().join("disinto")
    }

    /// `docker run --rm --entrypoint cat IMAGE /usr/local/bin/disinto > disinto`.
    fn extract(&self, image: &str) {
        extract_disinto(self.docker_config.path(), image, &self.disinto_path());
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.disinto_path());
        cmd.arg("swarm")
            .arg("--stack")
            .arg(&self.stack)
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .env("HOME", self.dir.path())
            .env("DOCKER_CONFIG", self.docker_config.path());
        output(&mut cmd)
    }

    fn ok(&self, args: &[&str]) -> String {
        let start = Instant::now();
        let out = self.run(args);
        let text = succeeded(&out, &format!("disinto swarm {args:?}"));
        eprintln!("disinto swarm {args:?}: {:.0?}", start.elapsed());
        text
    }

    fn set_version(&self, env: &str, version: &str) {
        std::fs::write(
            self.dir.path().join(".env"),
            env.replace("AGENTS_IMAGE=v0.1.0", &format!("AGENTS_IMAGE={version}")),
        )
        .unwrap();
    }

    fn service(&self, name: &str) -> String {
        format!("{}_{name}", self.stack)
    }

    /// The running agents task's container.
    fn agents(&self) -> String {
        let label = format!(
            "label=com.docker.swarm.service.name={}",
            self.service("agents")
        );
        let ids = docker_ok(&["ps", "-q", "--filter", &label, "--filter", "status=running"]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        assert_eq!(ids.len(), 1, "running agents containers: {ids:?}");
        ids[0].to_string()
    }

    /// The image the running agents container was created from (`repo:tag@sha256:…`).
    fn agents_image(&self) -> String {
        docker_ok(&["inspect", "--format", "{{.Config.Image}}", &self.agents()])
    }

    fn spec_image(&self, name: &str) -> String {
        docker_ok(&[
            "service",
            "inspect",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
            &self.service(name),
        ])
    }

    fn update_state(&self, name: &str) -> String {
        docker_ok(&[
            "service",
            "inspect",
            "--format",
            "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
            &self.service(name),
        ])
    }

    fn markers(&self) -> Vec<String> {
        read_markers(&self.agents())
    }

    /// `disinto swarm status --json` once `done` holds (panics after two minutes).
    fn wait_status(
        &self,
        done: impl Fn(&serde_json::Map<String, serde_json::Value>) -> bool,
    ) -> serde_json::Map<String, serde_json::Value> {
        let start = Instant::now();
        loop {
            let status = self.status();
            if done(&status) {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the stack has not settled: {status:?}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// `disinto swarm status --json`, by service.
    fn status(&self) -> serde_json::Map<String, serde_json::Value> {
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&self.ok(&["status", "--json"])).unwrap();
        rows.into_iter()
            .map(|r| (r["service"].as_str().unwrap().to_string(), r))
            .collect()
    }
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn swarm_rolls_a_failing_release_back_and_keeps_the_data() {
    bench();
    let started = Instant::now();
    let swarm = SwarmGuard::join();
    let registry = Registry::start().unwrap();
    let ns = registry.namespace();
    let operator = Operator {
        dir: TempDir::new("swarm-factory").unwrap(),
        docker_config: TempDir::new("swarm-config").unwrap(),
        stack: unique("sw"),
    };
    let _stack = StackGuard {
        name: operator.stack.clone(),
        ns: ns.clone(),
    };

    // Two real releases, and v0.3.0: v0.2.0 with a health check that always fails.
    let SwarmReleases { v1, v2, .. } = swarm_releases(&registry, operator.docker_config.path());
    eprintln!("three releases: {:.0?}", started.elapsed());
    stand_in_for_third_party_images();

    // The operator: the v0.2.0 disinto, a login, a .env.
    operator.extract(&format!("{ns}/agents:v0.2.0"));
    let env =
        format!("AGENTS_IMAGE=v0.1.0\nDISINTO_REGISTRY={ns}\nPOLL_INTERVAL=1\nEDGE_HTTP_PORT=0\n");
    std::fs::write(operator.dir.path().join(".env"), &env).unwrap();

    // v0.1.0: everything that is not on demand runs; the stack file is one Swarm accepts.
    operator.ok(&["deploy"]);
    // On a single node, deploy labels it as the one that holds the volumes.
    let label = docker_ok(&[
        "node",
        "inspect",
        "--format",
        "{{index .Spec.Labels \"disinto.volumes\"}}",
        &swarm.node,
    ]);
    assert_eq!(label, "true");
    let file = operator.dir.path().join("docker-stack.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# Generated by `disinto swarm deploy`"));
    assert!(!text.contains("profiles:") && !text.contains("build:"));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    ok(Command::new("docker")
        .args(["stack", "config", "--compose-file"])
        .arg(&file));
    assert!(
        operator.agents_image().ends_with(&format!("@{v1}")),
        "{}",
        operator.agents_image()
    );
    // deploy waits for agents alone; edge turns healthy on its first check, 30 s after start.
    let status = operator.wait_status(|s| {
        [
            "agents",
            "edge",
            "forgejo",
            "woodpecker",
            "woodpecker-agent",
        ]
        .iter()
        .all(|service| s[*service]["replicas"] == "1/1")
    });
    for service in ["runner", "reproduce"] {
        assert_eq!(status[service]["replicas"], "0/0", "{service}: {status:?}");
    }
    assert_eq!(status["agents"]["version"], "v0.1.0", "{status:?}");

    let marker = unique("m-");
    let agents = operator.agents();
    write_markers(&agents, &marker);

    // v0.2.0: an update Swarm completes.
    operator.set_version(&env, "v0.2.0");
    operator.ok(&["deploy"]);
    assert!(operator.agents_image().ends_with(&format!("@{v2}")));
    assert_eq!(operator.update_state("agents"), "completed");
    assert_eq!(operator.spec_image("runner"), operator.spec_image("agents"));
    assert_eq!(operator.markers(), vec![marker.clone(); 4]);

    // By hand, back to v0.1.0 (`docker service rollback`), and up to v0.2.0 again.
    let out = operator.ok(&["rollback"]);
    assert!(out.contains("set AGENTS_IMAGE=v0.1.0 in .env"), "{out}");
    assert!(operator.agents_image().ends_with(&format!("@{v1}")));
    assert_eq!(operator.spec_image("runner"), operator.spec_image("agents"));
    assert_eq!(operator.markers(), vec![marker.clone(); 4]);
    operator.ok(&["deploy"]);
    assert!(operator.agents_image().ends_with(&format!("@{v2}")));

    // v0.3.0 never turns healthy: Swarm rolls agents back to v0.2.0 by itself.
    operator.set_version(&env, "v0.3.0");
    let start = Instant::now();
    let out = operator.run(&["deploy"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "disinto swarm deploy (v0.3.0, rolled back): {:.0?}",
        start.elapsed()
    );
    assert!(!out.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with(&format!(
            "error: Swarm rolled {} back",
            operator.service("agents")
        )),
        "{stderr}"
    );
    assert_eq!(operator.update_state("agents"), "rollback_completed");
    let running = operator.agents_image();
    assert!(
        running.starts_with(&format!("{ns}/agents:v0.2.0@"))
            && running.ends_with(&format!("@{v2}")),
        "{running}"
    );
    assert_eq!(operator.spec_image("runner"), operator.spec_image("agents"));
    assert_eq!(operator.markers(), vec![marker.clone(); 4]);
    let container = operator.agents();
    assert!(
        anonymous_mounts(&container).is_empty(),
        "{:?}",
        anonymous_mounts(&container)
    );
    let status = operator.status();
    assert_eq!(
        status["agents"]["update"], "rollback_completed",
        "{status:?}"
    );
    assert_eq!(status["agents"]["digest"], v2.as_str(), "{status:?}");
    // Every swarm rollout is in the factory's one history, marked with its stack.
    let history = std::fs::read_to_string(operator.dir.path().join(HISTORY_FILE)).unwrap();
    let rows = disinto::model::history::parse(&history, HISTORY_FILE).unwrap();
    let seen: Vec<(&str, Outcome)> = rows
        .iter()
        .map(|d| (d.version.as_str(), d.outcome))
        .collect();
    assert_eq!(
        seen,
        [
            ("v0.1.0", Outcome::Deployed),
            ("v0.2.0", Outcome::Deployed),
            ("v0.1.0", Outcome::RolledBack),
            ("v0.2.0", Outcome::Deployed),
            ("v0.3.0", Outcome::Reverted),
        ],
        "{history}"
    );
    assert!(rows
        .iter()
        .all(|d| d.swarm.as_deref() == Some(operator.stack.as_str())));
    assert!(rows[3].image.ends_with(&format!("@{v2}")), "{history}");

    // A second rollback would go forward to the failed spec: refused in one line.
    let out = operator.run(&["rollback"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("was rolled back already"), "{stderr}");

    // rm keeps the named volumes (the data) unless --volumes, which then deletes them; a
    // second rm finds no stack and deletes nothing.
    let volumes = disinto::model::stack::volume_names(&operator.stack);
    let present = |name: &str| {
        Command::new("docker")
            .args(["volume", "inspect", name])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(volumes.iter().any(|v| present(v)), "{volumes:?}");
    operator.ok(&["rm"]);
    let kept: Vec<&String> = volumes.iter().filter(|v| present(v)).collect();
    assert!(
        kept.iter().any(|v| v.ends_with("agent-data")),
        "rm deleted the data: {kept:?}"
    );
    let out = operator.run(&["rm", "--volumes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rm of no stack passed: {stderr}");
    assert!(stderr.contains("nothing to remove"), "{stderr}");
    assert!(
        volumes.iter().filter(|v| present(v)).count() == kept.len(),
        "rm --volumes of no stack deleted volumes"
    );
    eprintln!("whole test: {:.0?}", started.elapsed());
}
