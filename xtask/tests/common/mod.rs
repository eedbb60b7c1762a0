//! Shared helpers of the end-to-end tests: every one of them runs against the real bench.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use disinto::fsx::TempDir;

pub mod swarm;

/// A shell at the repository root, after checking the bench is there (panics if not:
/// an end-to-end test must never pass without the real engine).
pub fn bench() -> xshell::Shell {
    let sh = xshell::Shell::new().unwrap();
    sh.change_dir(xtask::project_root());
    if let Err(e) = xtask::testbed::require(&sh) {
        panic!("{e:#}");
    }
    sh
}

pub fn root() -> PathBuf {
    xtask::project_root()
}

/// Runs a command, returning its output whatever the exit status.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed and returns its stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `docker ...` with a private client config directory (never root's ~/.docker).
pub fn docker(config: &Path) -> Command {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_CONFIG", config);
    cmd
}

/// The xtask binary Cargo built for these tests.
pub fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(root());
    cmd
}

/// The `disinto` binary of this workspace. `cargo test --workspace` builds it next to the
/// test binaries (the disinto crate has integration tests), in whatever target directory
/// cargo uses; `cargo xtask test` builds it first in any case.
pub fn disinto_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/<profile>/deps/<test>-<hash>: the binary is in <target>/<profile>.
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("disinto"))
        .unwrap();
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p disinto` (cargo xtask test does)",
        bin.display()
    );
    // Older than the sources: a plain `cargo test -p xtask` does not rebuild it.
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).unwrap();
    let newest = newest_source(&root().join("disinto/src"));
    assert!(
        newest <= built,
        "{} is older than the disinto sources: run `cargo build -p disinto` (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// The newest modification time of any file under `dir`.
fn newest_source(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_source(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).unwrap()
        };
        newest = newest.max(time);
    }
    newest
}

/// A name unique to this test run, for images, projects and containers.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &xtask::testbed::random_token().unwrap()[..10])
}

/// Builds the agents image from this checkout (once per test binary) and returns its tag.
/// The tag names the checkout: test binaries of several checkouts (worktrees) build at once
/// on one engine, and a tag they shared would be whichever build finished last.
pub fn agents_image() -> &'static str {
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        // FNV-1a of the checkout's path: stable across runs, so reruns reuse the tag.
        let hash = root()
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
        let tag = format!("disinto-agents:e2e-{:08x}", hash as u32);
        ok(Command::new("docker")
            .args(["build", "-q", "-f", "docker/agents/Dockerfile", "-t", &tag])
            .args(["--build-arg", "VERSION=v0.0.0-e2e"])
            .arg(".")
            .current_dir(root()));
        tag
    })
}

/// A compose project in its own directory, taken down with its volumes on drop.
pub struct Project {
    pub name: String,
    pub dir: TempDir,
    pub env: Vec<(String, String)>,
}

impl Project {
    /// Generates the compose file for `agents_image` into a fresh factory directory.
    pub fn new(prefix: &str, agents_image: &str) -> Project {
        let dir = TempDir::new(prefix).unwrap();
        let project = Project {
            name: unique(prefix),
            dir,
            env: vec![],
        };
        project.generate(agents_image);
        project
    }

    pub fn generate(&self, agents_image: &str) {
        ok(xtask()
            .args(["gen-compose", "--output"])
            .arg(self.dir.path().join("docker-compose.yml"))
            .env("AGENTS_IMAGE", agents_image)
            .env_remove("AGENT_CLI_BIN"));
    }

    pub fn compose(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("compose")
            .arg("-p")
            .arg(&self.name)
            .arg("-f")
            .arg(self.dir.path().join("docker-compose.yml"))
            .current_dir(self.dir.path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// The id of the running container of `service`.
    pub fn container(&self, service: &str) -> String {
        ok(self.compose().args(["ps", "-q", service]))
            .trim()
            .to_string()
    }

    /// All containers of the project, running or not.
    pub fn all_containers(&self) -> Vec<String> {
        let label = format!("label=com.docker.compose.project={}", self.name);
        ok(Command::new("docker").args(["ps", "-aq", "--filter", &label]))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self
            .compose()
            .args([
                "--profile",
                "*",
                "down",
                "-v",
                "--remove-orphans",
                "-t",
                "1",
            ])
            .output();
    }
}

/// Waits until the container's health status is `healthy` (panics after `limit`).
pub fn wait_healthy(container: &str, limit: std::time::Duration) {
    let start = std::time::Instant::now();
    loop {
        let status = ok(Command::new("docker").args([
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            container,
        ]));
        if status.trim() == "healthy" {
            return;
        }
        if start.elapsed() > limit {
            let logs = output(Command::new("docker").args(["logs", "--tail", "20", container]));
            panic!(
                "{container} is {} after {limit:?}:\n{}{}",
                status.trim(),
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Mounts of `container` that are anonymous volumes (a volume named by 64 hex digits).
pub fn anonymous_mounts(container: &str) -> Vec<String> {
    anonymous_mounts_by(Command::new("docker"), container)
}

/// [`anonymous_mounts`] through `docker`, a `docker` command to be given its arguments.
pub fn anonymous_mounts_by(mut docker: Command, container: &str) -> Vec<String> {
    let json = ok(docker.args(["inspect", "--format", "{{json .Mounts}}", container]));
    let mounts: Vec<serde_yaml::Value> = serde_yaml::from_str(&json).unwrap();
    mounts
        .iter()
        .filter(|m| m["Type"].as_str() == Some("volume"))
        .filter_map(|m| m["Name"].as_str())
        .filter(|name| name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()))
        .map(|name| format!("{container}: anonymous volume {name}"))
        .collect()
}

pub use xtask::scratch::git;

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    xtask::scratch::copy_tree(from, to).unwrap();
}

/// A disinto checkout of its own (the files a release needs), with a bare `origin` and a
/// bare `mirror` remote, all in one temp dir.
pub struct Checkout {
    pub tmp: TempDir,
}

impl Checkout {
    pub fn new(version: &str) -> Checkout {
        let tmp = TempDir::new("checkout").unwrap();
        xtask::scratch::checkout(&root(), tmp.path(), version).unwrap();
        Checkout { tmp }
    }

    pub fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    pub fn bare(&self, name: &str) -> PathBuf {
        self.tmp.path().join(format!("{name}.git"))
    }

    /// Sets VERSION and commits it, as a release starts.
    pub fn bump(&self, version: &str) {
        xtask::scratch::bump(&self.work(), version).unwrap();
    }

    /// The xtask binary working on this checkout (`-C`), with git's test identity.
    pub fn xtask(&self) -> Command {
        let mut x = Command::new(env!("CARGO_BIN_EXE_xtask"));
        x.arg("-C")
            .arg(self.work())
            .current_dir(self.work())
            .env("CARGO_TARGET_DIR", xtask::scratch::shared_target(&root()));
        xtask::scratch::with_identity(&mut x);
        xtask::scratch::quick_release_profile(&mut x);
        // One platform, the engine's, unless a test names several (the formula's default
        // adds arm64, built under emulation: minutes a test about something else spends).
        x.env("DISINTO_PLATFORMS", "linux/amd64");
        x
    }

    pub fn head(&self) -> String {
        ok(git(&self.work()).args(["rev-parse", "HEAD"]))
            .trim()
            .to_string()
    }

    /// `refs/tags/*` of a repository (the work tree or a bare remote), as `sha ref` lines.
    pub fn tags(dir: &Path) -> String {
        ok(git(dir).args([
            "for-each-ref",
            "refs/tags",
            "--format=%(objectname) %(refname)",
        ]))
    }
}

/// `args` of a disinto command with `--insecure-skip-verify` added when it rolls out images
/// (`up`, `rollback`, `upgrade`, `watch --revert`): for tests whose images are built here and
/// never pushed, so no registry holds a signature for them. The gate is e2e_verify's subject.
pub fn unverified<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut args = args.to_vec();
    let rolls_out = match args.first() {
        Some(&"up" | &"rollback" | &"upgrade") => true,
        Some(&"watch") => args.contains(&"--revert"),
        _ => false,
    };
    if rolls_out && !args.contains(&"--dry-run") {
        args.push("--insecure-skip-verify");
    }
    args
}

/// The release key of this test process: every release here is signed with it (as CI signs
/// with its secret), and every factory here trusts it (`DISINTO_TRUSTED_KEYS`).
pub fn signing_key() -> &'static xtask::testbed::SigningKey {
    static KEY: std::sync::OnceLock<xtask::testbed::SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| xtask::testbed::SigningKey::generate().expect("a throwaway cosign key pair"))
}

/// `cargo xtask release VERSION` in `c` to `registry`, without restart-agents (the tests
/// bring factories up themselves).
pub fn release(c: &Checkout, registry: &xtask::testbed::Registry, version: &str) {
    release_for(c, registry, version, "linux/amd64")
}

/// [`release`] for `platforms` (`DISINTO_PLATFORMS`).
pub fn release_for(
    c: &Checkout,
    registry: &xtask::testbed::Registry,
    version: &str,
    platforms: &str,
) {
    let mut cmd = c.xtask();
    cmd.args(["release", version, "--no-pull", "--skip", "restart-agents"])
        .env("DISINTO_PLATFORMS", platforms)
        .env_remove("DISINTO_MIRRORS");
    let out = output(signing_key().sign_env(registry.release_env(&mut cmd)));
    assert!(
        out.status.success(),
        "release {version}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes every local tag of our images under `ns`, so what runs next must come from the
/// registry. The release's local build tags (`disinto-agents:v0.1.0`) are every checkout's on
/// this engine: removing one could delete an image another test's release has just built and
/// not yet tagged (its tag-image then found no image). `cargo xtask test` removes the builds
/// no tag names any more once every lane has ended.
pub fn forget_local_images(ns: &str, versions: &[&str]) {
    for name in ["agents", "edge", "reproduce"] {
        let mut refs = vec![];
        // A release of several platforms tags each platform's image too.
        let platforms = ["", "linux-amd64-", "linux-arm64-"];
        for platform in platforms {
            refs.push(format!("{ns}/{name}:{platform}latest"));
        }
        for v in versions {
            for platform in platforms {
                refs.push(format!("{ns}/{name}:{platform}{v}"));
            }
        }
        for r in refs {
            let _ = Command::new("docker").args(["rmi", &r]).output();
        }
    }
}

/// `docker build -t TAG -` with the Dockerfile on standard input.
pub fn build_from_stdin(tag: &str, dockerfile: &str) {
    use std::io::Write;
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "docker build {tag} failed");
}

/// The agents image's VOLUME paths (the compose model's mounts, which check-volumes holds to
/// the Dockerfile).
pub fn volume_paths() -> Vec<&'static str> {
    disinto::model::compose::AGENT_MOUNTS
        .iter()
        .map(|(_, path)| *path)
        .collect()
}

/// Writes `marker` into `marker` files in every agent volume of `container`, as user agent.
pub fn write_markers(container: &str, marker: &str) {
    write_markers_by(|| Command::new("docker"), container, marker);
}

/// [`write_markers`] through the engine `docker` commands (given their arguments) talk to.
pub fn write_markers_by(docker: impl Fn() -> Command, container: &str, marker: &str) {
    for p in volume_paths() {
        ok(docker().args([
            "exec",
            "-u",
            "agent",
            container,
            "sh",
            "-c",
            &format!("echo {marker} > {p}/marker"),
        ]));
    }
}

/// What the `marker` files in every agent volume of `container` say (empty where none is).
pub fn read_markers(container: &str) -> Vec<String> {
    read_markers_by(|| Command::new("docker"), container)
}

/// [`read_markers`] through the engine `docker` commands (given their arguments) talk to.
pub fn read_markers_by(docker: impl Fn() -> Command, container: &str) -> Vec<String> {
    volume_paths()
        .iter()
        .map(|p| {
            let out = output(docker().args(["exec", container, "cat", &format!("{p}/marker")]));
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect()
}

/// The third-party images of the generated compose file, by their exact names.
pub const THIRD_PARTY: [&str; 3] = [
    "codeberg.org/forgejo/forgejo:11.0.7",
    "woodpeckerci/woodpecker-server:v3.10.0",
    "woodpeckerci/woodpecker-agent:v3.10.0",
];

/// A PATH with the system's tools and no cargo or rustup (they live under ~/.cargo here).
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// forgejo and woodpecker cannot be pulled here (no public registry is reachable): tiny local
/// images stand in for them, tagged with their exact names, only where none is present.
pub fn stand_in_for_third_party_images() {
    for image in THIRD_PARTY {
        if disinto::engine::docker::image_present(image) {
            continue;
        }
        build_from_stdin(
            image,
            &format!(
                "FROM {}\nLABEL org.disinto.stand-in=\"{image}\"\nCMD [\"sleep\", \"infinity\"]\n",
                xtask::testbed::BASE_IMAGE
            ),
        );
    }
}

/// `docker run --rm --entrypoint cat IMAGE /usr/local/bin/disinto > DEST`, as an operator
/// gets the program (with the client config `docker_config`), made executable.
pub fn extract_disinto(docker_config: &Path, image: &str, dest: &Path) {
    let out = output(docker(docker_config).args([
        "run",
        "--rm",
        "--entrypoint",
        "cat",
        image,
        "/usr/local/bin/disinto",
    ]));
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "extracting disinto from {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The bytes as docker printed them: the binary, not text.
    std::fs::write(dest, &out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let mut perms = std::fs::metadata(dest).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(dest, perms).unwrap();
}

/// Standard output then standard error of `out`, which must have succeeded (else a panic
/// naming `what` with everything it printed).
pub fn succeeded(out: &Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// The container running agents in compose project `project`, if one runs.
pub fn agents_of(project: &str) -> Option<String> {
    let id = ok(Command::new("docker")
        .args(["ps", "-q", "--no-trunc", "--filter"])
        .arg(format!("label=com.docker.compose.project={project}"))
        .args(["--filter", "label=com.docker.compose.service=agents"]));
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// The image id agents runs in `project` (empty when none runs, or when the container went
/// away between `ps` and `inspect`: a rollout may be replacing it while the test looks).
pub fn agents_image_id_of(project: &str) -> String {
    let image = |c: String| {
        let out = output(Command::new("docker").args(["inspect", "--format", "{{.Image}}", &c]));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    agents_of(project).map(image).unwrap_or_default()
}

/// `bin/disinto` as an operator runs it on the factory in `dir` (compose project `project`):
/// this workspace's binary, nothing of the test's own environment that would change what it
/// does, AGENTS_IMAGE when given. The watch after the health gate is e2e_work's subject;
/// elsewhere it would only add its span to every rollout.
pub fn operator(dir: &Path, project: &str, agents_image: Option<&str>) -> Command {
    let mut cmd = Command::new(root().join("bin/disinto"));
    cmd.current_dir(dir)
        .env("DISINTO_TRUSTED_KEYS", signing_key().public_key_file())
        .env("DISINTO_BIN", disinto_bin())
        .env("COMPOSE_PROJECT_NAME", project)
        .env("DISINTO_WATCH", "0")
        .env_remove("DISINTO_ROOT")
        .env_remove("DISINTO_REGISTRY")
        .env_remove("AGENTS_IMAGE");
    if let Some(image) = agents_image {
        cmd.env("AGENTS_IMAGE", image);
    }
    cmd
}

/// Appends a line to `lib/agent-loop.sh` and commits it: v0.2.0's change in the tests that
/// release twice (the factory's own files, not its packages).
pub fn change_one_script(c: &Checkout) {
    let script = c.work().join("lib/agent-loop.sh");
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("# v0.2.0: one script changed\n");
    std::fs::write(&script, text).unwrap();
    ok(git(&c.work()).args(["commit", "--quiet", "-am", "agent loop: a change"]));
}

/// The three releases the swarm tests deploy, in one registry: v0.1.0, v0.2.0 (one script
/// changed) by `cargo xtask release`, and v0.3.0, v0.2.0 with a health check that always
/// fails (edge and reproduce unchanged), pushed with the client config `docker_config`
/// (logged in here). Local tags are forgotten afterwards: what runs next comes from the
/// registry. Each test makes its own (a registry lives as long as its test).
pub struct SwarmReleases {
    pub checkout: Checkout,
    /// agents' registry digests of v0.1.0 and v0.2.0.
    pub v1: String,
    pub v2: String,
}

pub fn swarm_releases(registry: &xtask::testbed::Registry, docker_config: &Path) -> SwarmReleases {
    let ns = registry.namespace();
    let c = Checkout::new("v0.1.0");
    release(&c, registry, "v0.1.0");
    change_one_script(&c);
    c.bump("v0.2.0");
    release(&c, registry, "v0.2.0");
    let (v1, v2) = (
        release_digest(&c, "v0.1.0", "agents"),
        release_digest(&c, "v0.2.0", "agents"),
    );
    xtask::secret::login(
        docker_config,
        &registry.addr,
        &registry.user,
        &registry.password,
    )
    .unwrap();
    build_from_stdin(
        &format!("{ns}/agents:v0.3.0"),
        &format!(
            "FROM {ns}/agents:v0.2.0\nHEALTHCHECK --interval=2s --timeout=1s --retries=1 CMD false\n"
        ),
    );
    for image in ["edge", "reproduce"] {
        ok(Command::new("docker").args([
            "tag",
            &format!("{ns}/{image}:v0.2.0"),
            &format!("{ns}/{image}:v0.3.0"),
        ]));
    }
    for image in ["agents", "edge", "reproduce"] {
        ok(docker(docker_config).args(["push", "--quiet", &format!("{ns}/{image}:v0.3.0")]));
    }
    // Signed as a release is (edge and reproduce are v0.2.0's digests, signed already):
    // factories verify what they deploy, and this one is to fail its health check, not that.
    let agents = ok(Command::new("docker").args([
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        &format!("{ns}/agents:v0.3.0"),
    ]));
    ok(&mut signing_key().cosign_sign(agents.trim(), docker_config));
    forget_local_images(&ns, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    SwarmReleases {
        checkout: c,
        v1,
        v2,
    }
}

/// The registry digest a release recorded for one of its images.
pub fn release_digest(c: &Checkout, version: &str, image: &str) -> String {
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(c.work().join(format!("release/{version}.json"))).unwrap(),
    )
    .unwrap();
    let digest = record["images"][image]["digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:"), "{record}");
    digest.to_string()
}

/// Removes a container the test started, and its anonymous volumes, whatever the test's
/// outcome.
pub struct Container(pub String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", "--volumes", &self.0])
            .output();
    }
}
