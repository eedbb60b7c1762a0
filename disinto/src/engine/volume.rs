//! Copies of named volumes, made and put back by a throwaway container (the operator's host
//! needs nothing but Docker, and the engine may be remote from the volumes' files): `tar`
//! streams a gzipped archive out on standard output, hashed as it is written; a restore
//! unpacks beside what is there first and swaps only once every volume unpacked.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// A volume of the snapshot: its compose key (the archive's top directory) and the name
/// Docker knows it by.
#[derive(Debug, Clone)]
pub struct Volume {
    pub key: String,
    pub name: String,
}

fn mounts(cmd: &mut Command, volumes: &[Volume], at: &str, read_only: bool) {
    for v in volumes {
        let ro = if read_only { ":ro" } else { "" };
        cmd.args(["--volume", &format!("{}:{at}/{}{ro}", v.name, v.key)]);
    }
}

/// Runs a throwaway container (`docker run ARGS`): its standard output, or one line saying
/// what `doing` failed on.
fn throwaway(args: &mut Command, doing: &str) -> Result<Vec<u8>> {
    let out = args
        .stdin(Stdio::null())
        .output()
        .context("cannot run docker")?;
    if !out.status.success() {
        bail!("{doing} failed: {}", super::docker::last_line(&out.stderr));
    }
    Ok(out.stdout)
}

/// A `docker run --rm` as root with no network, `volumes` mounted under `at`.
fn run_with(volumes: &[Volume], at: &str, read_only: bool) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(["run", "--rm", "--network", "none", "--user", "0:0"]);
    mounts(&mut cmd, volumes, at, read_only);
    cmd
}

/// The bytes the volumes hold (what a snapshot may need at most, before compression).
pub fn bytes_used(image: &str, volumes: &[Volume]) -> Result<u64> {
    // A container that exits at once can lose its output to the attach race (under load):
    // `du` always prints a total, so an empty answer is asked again.
    let mut text = String::new();
    for _ in 0..3 {
        let mut cmd = run_with(volumes, "/snapshot", true);
        cmd.args(["--entrypoint", "du", image, "-sbc", "/snapshot"]);
        text = String::from_utf8_lossy(&throwaway(&mut cmd, "measuring the agents volumes")?)
            .into_owned();
        if !text.trim().is_empty() {
            break;
        }
    }
    text.lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("du printed no total for the agents volumes")
}

/// Writes a gzipped tar of `volumes` (each under its key) to `dir/name`, from inside the
/// throwaway container (a bind mount: nothing streams through `docker run`'s output, which
/// a fast exit can cut short); returns the archive's SHA-256 (hex) and size. `tar` runs in
/// `image` as root, numeric owners kept.
pub fn archive(image: &str, volumes: &[Volume], dir: &Path, name: &str) -> Result<(String, u64)> {
    let mut cmd = run_with(volumes, "/snapshot", true);
    cmd.args(["--volume", &format!("{}:/backups", dir.display())]);
    // The drain request the snapshot is taken under is not part of the agents' state.
    cmd.args([
        "--entrypoint",
        "tar",
        image,
        "--numeric-owner",
        "--exclude=agent-state/drain",
        "-C",
        "/snapshot",
        "-czf",
        &format!("/backups/{name}"),
    ]);
    cmd.args(volumes.iter().map(|v| v.key.as_str()));
    throwaway(&mut cmd, "tar of the agents volumes")?;
    let path = dir.join(name);
    let bytes = std::fs::metadata(&path)
        .with_context(|| format!("tar wrote no {}", path.display()))?
        .len();
    // A gzip stream is never this short: an archive that is, is not one.
    if bytes < 20 {
        bail!(
            "tar wrote {bytes} bytes to {}: not an archive",
            path.display()
        );
    }
    Ok((sha256_file(&path)?, bytes))
}

/// The SHA-256 (hex) of a file, read in chunks.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The restore, as one shell script in the throwaway container: every volume is unpacked
/// into a staging directory inside itself first (so a full disk or a bad archive leaves every
/// volume as it was), and only then is each volume's content swapped for its staged copy.
const RESTORE_SCRIPT: &str = r#"set -eu
staged=""
cleanup() { for k in $staged; do rm -rf "/restore/$k/.disinto-restore"; done; }
trap cleanup EXIT
for k in $KEYS; do
  s="/restore/$k/.disinto-restore"
  rm -rf "$s"; mkdir "$s"; staged="$staged $k"
  tar --numeric-owner -xzf "/backups/$ARCHIVE" -C "$s" --strip-components=1 "$k"
done
for k in $KEYS; do
  s="/restore/$k/.disinto-restore"
  find "/restore/$k" -mindepth 1 -maxdepth 1 ! -name .disinto-restore -exec rm -rf {} +
  find "$s" -mindepth 1 -maxdepth 1 -exec mv {} "/restore/$k/" \;
  rmdir "$s"
done
staged=""
"#;

/// Puts `archive` (a file in `backups_dir`, made by [`archive`]) back into `volumes`, whose
/// containers must be stopped. Every other byte of the volumes is replaced.
pub fn restore(image: &str, volumes: &[Volume], backups_dir: &Path, archive: &str) -> Result<()> {
    let keys: Vec<&str> = volumes.iter().map(|v| v.key.as_str()).collect();
    let mut cmd = run_with(volumes, "/restore", false);
    cmd.args([
        "--volume",
        &format!("{}:/backups:ro", backups_dir.display()),
        "--env",
        &format!("KEYS={}", keys.join(" ")),
        "--env",
        &format!("ARCHIVE={archive}"),
        "--entrypoint",
        "sh",
        image,
        "-c",
        RESTORE_SCRIPT,
    ]);
    throwaway(
        &mut cmd,
        &format!("unpacking {archive} (the volumes are as they were)"),
    )
    .map(drop)
}
