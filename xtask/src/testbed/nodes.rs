//! A swarm of several nodes on this one machine, for the end-to-end tests: Debian's Docker
//! Engine in privileged containers on one user-defined network, each node serving the storage
//! of the [`Registry`] the host pushes to, at the host's address. Made by a test, removed on
//! drop.

use std::fs;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{random_token, Registry, BASE_IMAGE, ENGINE_SUITE};
use disinto::engine::docker::image_present;
use disinto::fsx::TempDir;

/// The node image's recipe: the bench's own engine set (Debian's `docker.io`, from the
/// release the host's engine comes from), the CLI, and Debian's registry (see [`Nodes::start`]).
fn node_dockerfile() -> String {
    format!(
        "FROM {BASE_IMAGE}\n\
         RUN printf 'Types: deb\\nURIs: http://deb.debian.org/debian\\nSuites: {ENGINE_SUITE}\\nComponents: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n' > /etc/apt/sources.list.d/engine.sources \\\n \
         && apt-get update -q \\\n \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t {ENGINE_SUITE} docker.io docker-cli docker-registry iptables ca-certificates \\\n \
         && rm -rf /var/lib/apt/lists/*\n"
    )
}

/// The node image, built once per recipe and kept (as the base image is): its tag is the
/// recipe's hash, so every test and every run shares one, and a changed recipe builds anew.
pub fn node_image() -> Result<String> {
    let recipe = node_dockerfile();
    // FNV-1a: stable across runs and Rust versions (std's hasher is neither).
    let hash = recipe.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let tag = format!("disinto-swarm-node:{:08x}", hash as u32);
    if image_present(&tag) {
        return Ok(tag);
    }
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", &tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run docker build")?;
    std::io::Write::write_all(
        child.stdin.as_mut().context("docker build has no stdin")?,
        recipe.as_bytes(),
    )?;
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "building the swarm node image {tag} failed (it installs Debian {ENGINE_SUITE}'s docker.io from Debian's mirror): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(tag)
}

/// Nodes `node1` (the manager) .. `nodeN` (workers), each a Docker Engine in a container
/// whose `/var/lib/docker` is a named volume (so overlay2 works inside, and a node that is
/// stopped and started again keeps its images, its swarm state and its volumes).
pub struct Nodes {
    /// The prefix of every container, volume and network made here.
    pub name: String,
    pub count: usize,
    network: String,
    /// The registry's address, the host's and (inside each node) the nodes'.
    registry: String,
    _made: Made,
    _dir: TempDir,
}

/// What was made so far, for the drop to remove even when the start failed half-way.
#[derive(Default)]
struct Made {
    containers: Vec<String>,
    volumes: Vec<String>,
    network: Option<String>,
}

impl Drop for Made {
    fn drop(&mut self) {
        // All at once: each node's engine and its gigabytes of layers take a while to go.
        let all = |args: &[&str], names: &[String]| {
            let children: Vec<_> = names
                .iter()
                .filter_map(|name| {
                    Command::new("docker")
                        .args(args)
                        .arg(name)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .ok()
                })
                .collect();
            for mut child in children {
                let _ = child.wait();
            }
        };
        all(&["rm", "-f", "-v"], &self.containers);
        all(&["volume", "rm", "-f"], &self.volumes);
        if let Some(n) = &self.network {
            let _ = quiet(Command::new("docker").args(["network", "rm", n]));
        }
    }
}

/// Waits until `ready` holds, looking every half second (each look starts a process or two).
fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("{what}: not after {}s", limit.as_secs())
}

fn quiet(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null()).output()
}

/// Runs `cmd`, which must succeed; its standard output.
fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = quiet(cmd).with_context(|| format!("cannot {what}"))?;
    if !out.status.success() {
        bail!(
            "cannot {what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Nodes {
    /// `count` nodes in one swarm (node1 its manager). In each node, a registry process
    /// serves `registry`'s storage read-only, with its htpasswd file, at the host registry's
    /// own address (`127.0.0.1:PORT`, inside the node): an image keeps the one name it was
    /// pushed and signed under (a signature names its repository), and every node pulls with
    /// the credentials Swarm forwards, as from a registry of its own.
    pub fn start(count: usize, registry: &Registry) -> Result<Nodes> {
        let image = node_image()?;
        let name = format!("disinto-sw{}", &random_token()?[..8]);
        let dir = TempDir::new("swarm-nodes")?;
        let mut made = Made::default();
        let network = name.clone();
        run(
            Command::new("docker").args(["network", "create", &network]),
            "create the nodes' network",
        )?;
        made.network = Some(network.clone());

        // The host's registry makes its storage on the first push; the bind needs it now.
        fs::create_dir_all(registry.storage())?;
        let config = dir.path().join("registry.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n\
                 storage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n    readonly:\n      enabled: true\n\
                 http:\n  addr: {}\n\
                 auth:\n  htpasswd:\n    realm: disinto-test\n    path: /etc/registry/htpasswd\n",
                registry.addr
            ),
        )?;
        let mounts = [
            (registry.storage(), "/var/lib/registry"),
            (registry.htpasswd(), "/etc/registry/htpasswd"),
            (config.clone(), "/etc/registry/config.yml"),
        ];

        for i in 1..=count {
            let node = format!("{name}-node{i}");
            let volume = format!("{node}-docker");
            made.volumes.push(volume.clone());
            made.containers.push(node.clone());
            let mut cmd = Command::new("docker");
            cmd.args(["run", "-d", "--privileged", "--name", &node])
                // dockerd is PID 1 and finds its own pid file after a restart: /run is made
                // anew on every start, so a stopped node can be started again.
                .args(["--tmpfs", "/run"])
                .args(["--hostname", &format!("node{i}"), "--network", &network])
                .arg("--mount")
                .arg(format!("type=volume,src={volume},dst=/var/lib/docker"));
            for (from, to) in &mounts {
                cmd.arg("--mount").arg(format!(
                    "type=bind,src={},dst={to},readonly",
                    from.display()
                ));
            }
            run(cmd.args([&image, "dockerd"]), &format!("start node{i}"))?;
        }
        let nodes = Nodes {
            name,
            count,
            network,
            registry: registry.addr.clone(),
            _made: made,
            _dir: dir,
        };
        for i in 1..=count {
            nodes.wait_engine(i)?;
            nodes.start_registry(i)?;
        }
        let addr = nodes.address(1)?;
        nodes.docker(1, &["swarm", "init", "--advertise-addr", &addr])?;
        let token = nodes.docker(1, &["swarm", "join-token", "--quiet", "worker"])?;
        for i in 2..=count {
            nodes.docker(
                i,
                &["swarm", "join", "--token", &token, &format!("{addr}:2377")],
            )?;
        }
        Ok(nodes)
    }

    /// Starts node `i`'s registry process (its pid in /run, which goes with the node).
    pub fn start_registry(&self, i: usize) -> Result<()> {
        let (host, port) = self
            .registry
            .rsplit_once(':')
            .context("the registry's address has no port")?;
        run(
            self.exec(i).args([
                "sh",
                "-c",
                "docker-registry serve /etc/registry/config.yml >/run/registry.log 2>&1 & echo $! > /run/registry.pid",
            ]),
            &format!("start node{i}'s registry"),
        )?;
        wait_for(
            &format!("node{i}'s registry"),
            Duration::from_secs(20),
            || {
                quiet(
                    self.exec(i)
                        .args(["bash", "-c", &format!("exec 3<>/dev/tcp/{host}/{port}")]),
                )
                .is_ok_and(|o| o.status.success())
            },
        )
    }

    /// Stops node `i`'s registry process (by its pid): the node cannot pull any more.
    pub fn stop_registry(&self, i: usize) -> Result<()> {
        run(
            self.exec(i).args([
                "sh",
                "-c",
                "kill $(cat /run/registry.pid); rm /run/registry.pid",
            ]),
            &format!("stop node{i}'s registry"),
        )
        .map(drop)
    }

    /// The container of node `i` (1-based).
    pub fn container(&self, i: usize) -> String {
        format!("{}-node{i}", self.name)
    }

    /// `docker exec -i NODE ARGS...`: a command inside node `i`.
    pub fn exec(&self, i: usize) -> Command {
        let mut cmd = Command::new("docker");
        cmd.args(["exec", "-i", &self.container(i)]);
        cmd
    }

    /// `docker ARGS` against node `i`'s engine, which must succeed; its standard output.
    pub fn docker(&self, i: usize, args: &[&str]) -> Result<String> {
        run(
            self.exec(i).arg("docker").args(args),
            &format!("run docker {} on node{i}", args.join(" ")),
        )
    }

    /// Node `i`'s address on the network.
    pub fn address(&self, i: usize) -> Result<String> {
        let format = format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            self.network
        );
        run(
            Command::new("docker").args(["inspect", "--format", &format, &self.container(i)]),
            &format!("read node{i}'s address"),
        )
    }

    fn wait_engine(&self, i: usize) -> Result<()> {
        let container = self.container(i);
        wait_for(
            &format!("node{i}'s Docker engine"),
            Duration::from_secs(60),
            || {
                quiet(Command::new("docker").args(["exec", &container, "docker", "info"]))
                    .is_ok_and(|o| o.status.success())
            },
        )
    }

    /// Copies local images into every node (`docker save | docker load`): what the nodes
    /// cannot pull (the stand-ins of third-party images) is put there as an operator would.
    pub fn load(&self, images: &[&str]) -> Result<()> {
        let dir = TempDir::new("node-images")?;
        let tar = dir.path().join("images.tar");
        run(
            Command::new("docker")
                .args(["save", "-o"])
                .arg(&tar)
                .args(images),
            "save the images for the nodes",
        )?;
        for i in 1..=self.count {
            let file = fs::File::open(&tar)?;
            let out = Command::new("docker")
                .args(["exec", "-i", &self.container(i), "docker", "load", "-q"])
                .stdin(file)
                .output()?;
            if !out.status.success() {
                bail!(
                    "cannot load images into node{i}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(())
    }

    /// Copies a host file into node `i`.
    pub fn copy_in(&self, i: usize, from: &std::path::Path, to: &str) -> Result<()> {
        run(
            Command::new("docker")
                .arg("cp")
                .arg(from)
                .arg(format!("{}:{to}", self.container(i))),
            &format!("copy {} into node{i}", from.display()),
        )
        .map(drop)
    }

    /// Stops node `i` (its engine goes with it: the swarm sees the node down).
    pub fn stop(&self, i: usize) -> Result<()> {
        run(
            Command::new("docker").args(["stop", "-t", "5", &self.container(i)]),
            &format!("stop node{i}"),
        )
        .map(drop)
    }

    /// Starts node `i` again and waits for its engine; its registry starts too.
    pub fn start_again(&self, i: usize) -> Result<()> {
        run(
            Command::new("docker").args(["start", &self.container(i)]),
            &format!("start node{i}"),
        )?;
        self.wait_engine(i)?;
        self.start_registry(i)
    }

    /// Waits until the manager sees node `i` in `state` (`ready`, `down`).
    pub fn wait_node_state(&self, i: usize, state: &str, limit: Duration) -> Result<Duration> {
        let start = Instant::now();
        let hostname = format!("node{i}");
        wait_for(&format!("{hostname} to be {state}"), limit, || {
            self.docker(
                1,
                &[
                    "node",
                    "inspect",
                    "--format",
                    "{{.Status.State}}",
                    &hostname,
                ],
            )
            .is_ok_and(|s| s == state)
        })?;
        Ok(start.elapsed())
    }
}
