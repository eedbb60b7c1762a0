//! A factory's swarm on engines of its own (`xtask::testbed::nodes`): the operator's
//! `disinto` runs on node1, the manager, as an operator runs it there. The host's engine is
//! never put into a swarm: `docker swarm init` and `leave` on a shared engine break the
//! containers other tests create at that moment ("control.sock: no such file").

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use xtask::testbed::nodes::Nodes;
use xtask::testbed::Registry;

use super::*;

/// The factory on node1: its directory, client config and the trusted release key.
pub const FACTORY: &str = "/factory";
pub const OPERATOR_CONFIG: &str = "/operator/docker";
pub const TRUSTED_KEYS: &str = "/operator/release.pub";

/// Forgets, on drop, the host's local tags of the releases (the nodes go with [`Nodes`]).
pub struct Images(pub String);

impl Drop for Images {
    fn drop(&mut self) {
        forget_local_images(&self.0, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    }
}

pub struct Swarm {
    pub nodes: Nodes,
    pub stack: String,
}

impl Swarm {
    /// `count` nodes serving `registry`, the stand-ins of third-party images loaded into
    /// each, and on node1 the operator: `release`'s disinto, the release key, a login
    /// (`host_config` holds the host's login to `registry`).
    pub fn start(count: usize, registry: &Registry, release: &str, host_config: &Path) -> Swarm {
        let swarm = Swarm {
            nodes: Nodes::start(count, registry).unwrap(),
            stack: unique("sw"),
        };
        // What the nodes cannot pull (no public registry is reachable) is loaded as an
        // operator would; our images come from the registry only.
        stand_in_for_third_party_images();
        swarm.nodes.load(&THIRD_PARTY).unwrap();
        let disinto = host_config.join("disinto");
        extract_disinto(host_config, release, &disinto);
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
        swarm
    }

    /// Writes the factory's `.env`.
    pub fn set_env(&self, text: &str) {
        let out = xtask::secret::output_with_secret(
            self.nodes
                .exec(1)
                .args(["sh", "-c", &format!("cat > {FACTORY}/.env")]),
            text,
        )
        .unwrap();
        assert!(out.status.success());
    }

    /// `disinto swarm --stack STACK ARGS` on node1, as an operator runs it there: the
    /// factory directory, nothing of the test's environment.
    pub fn disinto(&self, args: &[&str]) -> Output {
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

    pub fn ok(&self, args: &[&str]) -> (String, Duration) {
        let start = Instant::now();
        let out = self.disinto(args);
        let text = succeeded(&out, &format!("disinto swarm {args:?} on node1"));
        (text, start.elapsed())
    }

    /// A deploy that must be refused: non-zero, its error one line and the last, nothing of
    /// the stack made (no service, no stack file). The error line.
    pub fn refused(&self, why: &str) -> String {
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

    /// `docker ARGS` on node `node`, which must succeed; its standard output.
    pub fn docker(&self, node: usize, args: &[&str]) -> String {
        self.nodes.docker(node, args).unwrap()
    }

    /// A `docker` command against node `node`'s engine, to be given its arguments.
    pub fn docker_cmd(&self, node: usize) -> Command {
        let mut cmd = self.nodes.exec(node);
        cmd.arg("docker");
        cmd
    }

    /// A file of node `node`, which must exist.
    pub fn read(&self, node: usize, path: &str) -> String {
        ok(self.nodes.exec(node).args(["cat", path]))
    }

    pub fn service(&self, name: &str) -> String {
        format!("{}_{name}", self.stack)
    }

    /// The running tasks of a service: (task id, node hostname).
    pub fn running(&self, name: &str) -> Vec<(String, String)> {
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

    fn inspect_service(&self, name: &str, format: &str) -> String {
        self.docker(
            1,
            &[
                "service",
                "inspect",
                "--format",
                format,
                &self.service(name),
            ],
        )
    }

    pub fn spec_image(&self, name: &str) -> String {
        self.inspect_service(name, "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
    }

    /// Swarm's update state of a service (`completed`, `rollback_completed`, ...).
    pub fn update_state(&self, name: &str) -> String {
        self.inspect_service(name, "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}")
    }

    /// The running agents container on node `node` and its image.
    pub fn agents_on(&self, node: usize) -> (String, String) {
        let label = format!(
            "label=com.docker.swarm.service.name={}",
            self.service("agents")
        );
        let ids = self.docker(
            node,
            &["ps", "-q", "--filter", &label, "--filter", "status=running"],
        );
        let ids: Vec<&str> = ids.split_whitespace().collect();
        assert_eq!(
            ids.len(),
            1,
            "running agents containers on node{node}: {ids:?}"
        );
        let image = self.docker(node, &["inspect", "--format", "{{.Config.Image}}", ids[0]]);
        (ids[0].to_string(), image)
    }

    pub fn write_markers(&self, node: usize, marker: &str) {
        let (agents, _) = self.agents_on(node);
        write_markers_by(|| self.docker_cmd(node), &agents, marker);
    }

    pub fn markers(&self, node: usize) -> Vec<String> {
        let (agents, _) = self.agents_on(node);
        read_markers_by(|| self.docker_cmd(node), &agents)
    }

    /// `disinto swarm status --json` on node1, by service.
    pub fn status(&self) -> serde_json::Map<String, serde_json::Value> {
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
    pub fn wait<T: std::fmt::Debug>(
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

    /// Node `node`'s `disinto.volumes` label, as the manager has it.
    pub fn volumes_label(&self, node: &str) -> String {
        self.docker(
            1,
            &[
                "node",
                "inspect",
                "--format",
                "{{index .Spec.Labels \"disinto.volumes\"}}",
                node,
            ],
        )
    }

    pub fn label(&self, node: &str, add: bool) {
        let (flag, label) = match add {
            true => ("--label-add", "disinto.volumes=true"),
            false => ("--label-rm", "disinto.volumes"),
        };
        self.docker(1, &["node", "update", flag, label, node]);
    }
}
