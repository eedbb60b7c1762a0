//! End-to-end on a three-node swarm (`xtask::testbed::nodes`: Docker engines in privileged
//! containers on one network, each serving the host's htpasswd registry at its address). The
//! released `disinto` runs on node1, the manager; node2 holds the volumes; node2 and node3 are
//! workers with no login of their own.
//!
//! Bad input first, each refused in one line with nothing deployed: no labelled node, two,
//! a worker whose registry is down, and `projects/` missing on the labelled node.
//! Then v0.1.0 runs (agents on node2, edge elsewhere), the markers in the four agent volumes
//! survive an upgrade to v0.2.0 and a v0.3.0 that Swarm rolls back. With node2 stopped,
//! agents is started nowhere else, `swarm status` says why it is pending and deploy refuses;
//! back, agents runs on node2 again with the markers. Draining edge's node moves edge and
//! leaves agents alone. Everything made is removed on drop, failure included.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use xtask::testbed::nodes::Nodes;
use xtask::testbed::Registry;

/// The factory on node1: its directory, client config and the trusted release key.
const FACTORY: &str = "/factory";
const OPERATOR_CONFIG: &str = "/operator/docker";
const TRUSTED_KEYS: &str = "/operator/release.pub";

/// Forgets, on drop, the host's local tags of the releases (the nodes go with [`Nodes`]).
struct Images(String);

impl Drop for Images {
    fn drop(&mut self) {
        forget_local_images(&self.0, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    }
}

struct Swarm {
    nodes: Nodes,
    stack: String,
}

impl Swarm {
    /// `disinto swarm --stack STACK ARGS` on node1, as an operator runs it there: the
    /// factory directory, nothing of the test's environment.
    fn disinto(&self, args: &[&str]) -> Output {
        let container = self.nodes.container(1);
        let mut cmd = Command::new("docker");
        cmd.args(["exec", "-w", FACTORY, &container, "env", "-i"])
            .arg(format!("PATH={SYSTEM_PATH}"))
            .arg(format!("HOME={FACTORY}"))
            .arg(format!("DOCKER_CONFIG={OPERATOR_CONFIG}"))
            .arg(format!("DISINTO_TRUSTED_KEYS={TRUSTED_KEYS}"))
            .args(["disinto", "swarm", "--stack", &self.stack])
            .args(args);
        output(&mut cmd)
    }

    fn ok(&self, args: &[&str]) -> (String, Duration) {
        let start = Instant::now();
        let out = self.disinto(args);
        let text = succeeded(&out, &format!("disinto swarm {args:?} on node1"));
        (text, start.elapsed())
    }

    /// A deploy that must be refused: non-zero, its error one line and the last, nothing of
    /// the stack made (no service, no stack file). The error line.
    fn refused(&self, why: &str) -> String {
        let out = self.disinto(&["deploy"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{why}: deploy passed:\n{stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{why}: {stderr}");
        assert_eq!(stderr.lines().last(), Some(errors[0]), "{why}: {stderr}");
        assert_eq!(self.docker(1, &["service", "ls", "--quiet"]), "", "{why}");
        let file = format!("{FACTORY}/docker-stack.yml");
        let out = output(self.nodes.exec(1).args(["test", "-e", &file]));
        assert!(!out.status.success(), "{why}: {file} was written");
        errors[0].to_string()
    }

    fn docker(&self, node: usize, args: &[&str]) -> String {
        self.nodes.docker(node, args).unwrap()
    }

    fn service(&self, name: &str) -> String {
        format!("{}_{name}", self.stack)
    }

    /// The running tasks of a service: (task id, node hostname).
    fn running(&self, name: &str) -> Vec<(String, String)> {
        self.docker(
            1,
            &[
                "service",
                "ps",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.ID}} {{.Node}} {{.CurrentState}}",
                &self.service(name),
            ],
        )
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("Running"))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect()
    }

    fn spec_image(&self, name: &str) -> String {
        self.docker(
            1,
            &[
                "service",
                "inspect",
                "--format",
                "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                &self.service(name),
            ],
        )
    }

    /// The running agents container on node2 and its image.
    fn agents_on_node2(&self) -> (String, String) {
        let label = format!(
            "label=com.docker.swarm.service.name={}",
            self.service("agents")
        );
        let ids = self.docker(
            2,
            &["ps", "-q", "--filter", &label, "--filter", "status=running"],
        );
        let ids: Vec<&str> = ids.split_whitespace().collect();
        assert_eq!(ids.len(), 1, "running agents containers on node2: {ids:?}");
        let image = self.docker(2, &["inspect", "--format", "{{.Config.Image}}", ids[0]]);
        (ids[0].to_string(), image)
    }

    fn write_markers(&self, marker: &str) {
        let (agents, _) = self.agents_on_node2();
        for p in volume_paths() {
            self.docker(
                2,
                &[
                    "exec",
                    "-u",
                    "agent",
                    &agents,
                    "sh",
                    "-c",
                    &format!("echo {marker} > {p}/marker"),
                ],
            );
        }
    }

    fn markers(&self) -> Vec<String> {
        let (agents, _) = self.agents_on_node2();
        volume_paths()
            .iter()
            .map(|p| {
                let out = output(self.nodes.exec(2).args([
                    "docker",
                    "exec",
                    &agents,
                    "cat",
                    &format!("{p}/marker"),
                ]));
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            })
            .collect()
    }

    /// `disinto swarm status --json` on node1, by service.
    fn status(&self) -> serde_json::Map<String, serde_json::Value> {
        let out = self.disinto(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        rows.into_iter()
            .map(|r| (r["service"].as_str().unwrap().to_string(), r))
            .collect()
    }

    /// Waits (at most `limit`) until `done` holds of what `look` returns; the time it took.
    fn wait<T: std::fmt::Debug>(
        &self,
        what: &str,
        limit: Duration,
        mut look: impl FnMut() -> T,
        done: impl Fn(&T) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let seen = look();
            if done(&seen) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not after {limit:?}: {seen:?}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn label(&self, node: &str, add: bool) {
        let (flag, label) = match add {
            true => ("--label-add", "disinto.volumes=true"),
            false => ("--label-rm", "disinto.volumes"),
        };
        self.docker(1, &["node", "update", flag, label, node]);
    }
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn three_nodes_keep_agents_with_its_data() {
    bench();
    let started = Instant::now();
    let registry = Registry::start().unwrap();
    let ns = registry.namespace();
    let _images = Images(ns.clone());
    let host_config = TempDir::new("swarm-nodes-config").unwrap();
    let SwarmReleases { v1, v2, .. } = swarm_releases(&registry, host_config.path());
    eprintln!("three releases: {:.0?}", started.elapsed());

    let nodes = Nodes::start(3, &registry).unwrap();
    let swarm = Swarm {
        nodes,
        stack: unique("sw"),
    };
    eprintln!("three nodes: {:.0?}", started.elapsed());
    // What the nodes cannot pull (no public registry is reachable) is loaded as an operator
    // would; our images come from the registry only.
    stand_in_for_third_party_images();
    swarm.nodes.load(&THIRD_PARTY).unwrap();

    // The operator on node1: the v0.2.0 disinto, the release key, a login, a .env.
    let disinto = host_config.path().join("disinto");
    extract_disinto(host_config.path(), &format!("{ns}/agents:v0.2.0"), &disinto);
    ok(swarm
        .nodes
        .exec(1)
        .args(["mkdir", "-p", FACTORY, OPERATOR_CONFIG]));
    swarm
        .nodes
        .copy_in(1, &disinto, "/usr/local/bin/disinto")
        .unwrap();
    swarm
        .nodes
        .copy_in(1, &signing_key().public_key_file(), TRUSTED_KEYS)
        .unwrap();
    let login = xtask::secret::output_with_secret(
        swarm.nodes.exec(1).args([
            "env",
            &format!("DOCKER_CONFIG={OPERATOR_CONFIG}"),
            "docker",
            "login",
            "--username",
            &registry.user,
            "--password-stdin",
            &registry.addr,
        ]),
        &registry.password,
    )
    .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let env = |version: &str| {
        format!(
            "AGENTS_IMAGE={version}\nDISINTO_REGISTRY={ns}\nPOLL_INTERVAL=1\nEDGE_HTTP_PORT=0\n"
        )
    };
    let set_version = |version: &str| {
        let out = xtask::secret::output_with_secret(
            swarm
                .nodes
                .exec(1)
                .args(["sh", "-c", &format!("cat > {FACTORY}/.env")]),
            &env(version),
        )
        .unwrap();
        assert!(out.status.success());
    };
    set_version("v0.1.0");

    // Bad input, each refused in one line before anything of the stack is made.
    let e = swarm.refused("no labelled node");
    assert!(e.contains("none is labelled disinto.volumes=true"), "{e}");
    swarm.label("node2", true);
    swarm.label("node3", true);
    let e = swarm.refused("two labelled nodes");
    assert!(e.contains("node2") && e.contains("node3"), "{e}");
    swarm.label("node3", false);
    // A dry run prints the two checks it would ask Swarm, and makes neither.
    let (dry, _) = swarm.ok(&["deploy", "--dry-run"]);
    for check in [
        "check-pull --mode global-job",
        "check-bind --mode replicated-job",
    ] {
        assert!(
            dry.lines()
                .any(|l| l.starts_with("$ docker service create") && l.contains(check)),
            "{check}: {dry}"
        );
    }
    assert_eq!(swarm.docker(1, &["service", "ls", "--quiet"]), "");
    // node3's registry stops: nothing answers where node3 pulls from.
    swarm.nodes.stop_registry(3).unwrap();
    let e = swarm.refused("a worker that cannot reach the registry");
    assert!(e.contains("node node3 cannot pull"), "{e}");
    swarm.nodes.start_registry(3).unwrap();
    // The labelled node is not this one, and has no projects/ at the factory's path.
    let e = swarm.refused("projects/ missing on the labelled node");
    assert!(
        e.contains(&format!("{FACTORY}/projects does not exist on node node2")),
        "{e}"
    );
    ok(swarm
        .nodes
        .exec(2)
        .args(["mkdir", "-p", &format!("{FACTORY}/projects")]));
    eprintln!("bad input refused: {:.0?}", started.elapsed());

    // v0.1.0: agents on node2, which pulls with the credentials the deploy forwarded.
    let (_, deploy_time) = swarm.ok(&["deploy"]);
    eprintln!("figure: first deploy on three nodes (v0.1.0): {deploy_time:.0?}");
    let (_, image) = swarm.agents_on_node2();
    assert!(image.ends_with(&format!("@{v1}")), "{image}");
    let config = ok(swarm
        .nodes
        .exec(2)
        .args(["sh", "-c", "ls /root/.docker 2>/dev/null; true"]));
    assert_eq!(config.trim(), "", "node2 has a login of its own");
    swarm.wait(
        "edge runs",
        Duration::from_secs(120),
        || swarm.running("edge"),
        |r| r.len() == 1,
    );
    let status = swarm.status();
    for service in ["agents", "edge", "forgejo", "woodpecker"] {
        assert_eq!(status[service]["replicas"], "1/1", "{service}: {status:?}");
    }
    for service in ["agents", "forgejo", "woodpecker"] {
        let on: Vec<String> = swarm.running(service).into_iter().map(|r| r.1).collect();
        assert_eq!(on, ["node2"], "{service}");
    }
    let marker = unique("m-");
    swarm.write_markers(&marker);

    // v0.2.0: an upgrade Swarm completes, on node2, with the data.
    set_version("v0.2.0");
    let (_, upgrade_time) = swarm.ok(&["deploy"]);
    eprintln!("figure: upgrade on three nodes (v0.1.0 to v0.2.0): {upgrade_time:.0?}");
    let (_, image) = swarm.agents_on_node2();
    assert!(image.ends_with(&format!("@{v2}")), "{image}");
    assert_eq!(swarm.markers(), vec![marker.clone(); 4]);

    // v0.3.0 never turns healthy: Swarm rolls agents back to v0.2.0 on node2.
    set_version("v0.3.0");
    let start = Instant::now();
    let out = swarm.disinto(&["deploy"]);
    let rollback_time = start.elapsed();
    eprintln!("figure: failed release rolled back by Swarm on three nodes: {rollback_time:.0?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.lines().last().unwrap_or("").starts_with(&format!(
            "error: Swarm rolled {} back",
            swarm.service("agents")
        )),
        "{stderr}"
    );
    let (_, image) = swarm.agents_on_node2();
    assert!(image.ends_with(&format!("@{v2}")), "{image}");
    assert_eq!(swarm.spec_image("runner"), swarm.spec_image("agents"));
    assert_eq!(swarm.markers(), vec![marker.clone(); 4]);
    set_version("v0.2.0");

    // node2 stops: agents is started nowhere else, status says why, deploy refuses.
    let agents_spec = swarm.spec_image("agents");
    swarm.nodes.stop(2).unwrap();
    let down = swarm
        .nodes
        .wait_node_state(2, "down", Duration::from_secs(90))
        .unwrap();
    eprintln!("node2 seen down after {down:.0?}");
    swarm.wait(
        "agents pending while node2 is down",
        Duration::from_secs(120),
        || swarm.status(),
        |s| {
            s["agents"]["replicas"] == "0/1"
                && s["agents"]["why"]
                    .as_str()
                    .is_some_and(|w| w.starts_with("pending") && w.contains("no suitable node"))
        },
    );
    let status = swarm.status();
    eprintln!(
        "status while node2 is down: agents {}",
        status["agents"]["why"]
    );
    assert!(swarm.running("agents").is_empty());
    let out = swarm.disinto(&["deploy"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or("")
            .contains("node node2 is labelled disinto.volumes=true but is down"),
        "{stderr}"
    );
    assert_eq!(swarm.spec_image("agents"), agents_spec);
    // Still nowhere else, a while later.
    std::thread::sleep(Duration::from_secs(5));
    assert!(swarm.running("agents").is_empty());

    // node2 back: agents runs there again, with the data.
    let start = Instant::now();
    swarm.nodes.start_again(2).unwrap();
    swarm
        .nodes
        .wait_node_state(2, "ready", Duration::from_secs(90))
        .unwrap();
    swarm.wait(
        "agents back on node2",
        Duration::from_secs(180),
        || swarm.running("agents"),
        |r| r.len() == 1 && r[0].1 == "node2",
    );
    eprintln!(
        "agents runs on node2 again {:.0?} after it was started",
        start.elapsed()
    );
    let (_, image) = swarm.agents_on_node2();
    assert!(image.ends_with(&format!("@{v2}")), "{image}");
    assert_eq!(swarm.markers(), vec![marker.clone(); 4]);

    // Draining edge's node (not node2: Swarm spreads edge away from node2's three tasks)
    // moves edge, and agents' task is the same one.
    let edge = swarm.running("edge");
    assert_eq!(edge.len(), 1, "{edge:?}");
    let edge_node = edge[0].1.clone();
    assert_ne!(edge_node, "node2", "edge runs beside agents");
    let agents_task = swarm.running("agents");
    swarm.docker(
        1,
        &["node", "update", "--availability", "drain", &edge_node],
    );
    let moved = swarm.wait(
        "edge moves off the drained node",
        Duration::from_secs(120),
        || swarm.running("edge"),
        |r| r.len() == 1 && r[0].1 != edge_node,
    );
    eprintln!("edge moved off {edge_node} in {moved:.0?}");
    assert_eq!(swarm.running("agents"), agents_task);
    swarm.docker(
        1,
        &["node", "update", "--availability", "active", &edge_node],
    );
    eprintln!("whole test: {:.0?}", started.elapsed());
}
