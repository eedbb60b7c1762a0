//! Throwaway disinto checkouts with local bare remotes, for end-to-end tests and the
//! benchmark: the files a release needs, committed, with `origin` and `mirror` remotes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Gives `cmd` a fixed git identity, so commits (its own or its children's) work anywhere.
pub fn with_identity(cmd: &mut Command) -> &mut Command {
    cmd.env("GIT_AUTHOR_NAME", "disinto test")
        .env("GIT_AUTHOR_EMAIL", "test@disinto.invalid")
        .env("GIT_COMMITTER_NAME", "disinto test")
        .env("GIT_COMMITTER_EMAIL", "test@disinto.invalid")
}

/// `git` in `dir` with a fixed identity.
pub fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir);
    with_identity(&mut cmd);
    cmd
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cargo target directory releases in scratch checkouts share, so the disinto binary's
/// dependencies are compiled once per machine, not once per checkout.
pub fn shared_target(source: &Path) -> PathBuf {
    crate::target_dir(source).join("scratch")
}

/// Builds the release's disinto binary for a test as fast as correctness allows: no LTO, many
/// codegen units. The shipped profile (size first: LTO, one unit) relinks everything for each
/// release's new version stamp, three times as long; tests check what the binary does, and
/// the benchmark measures the shipped profile's size and build time.
pub fn quick_release_profile(cmd: &mut Command) -> &mut Command {
    cmd.env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Makes `<parent>/work` (a checkout of `source`'s release files at `version`) with bare
/// remotes `<parent>/origin.git` and `<parent>/mirror.git`; returns the work tree.
pub fn checkout(source: &Path, parent: &Path, version: &str) -> Result<PathBuf> {
    let work = parent.join("work");
    // The release builds the disinto binary too, so the workspace comes along.
    for dir in ["docker", "lib", "bin", "formulas", "disinto", "xtask"] {
        copy_tree(&source.join(dir), &work.join(dir))?;
    }
    for file in [
        ".dockerignore",
        ".env.example",
        "Cargo.toml",
        "Cargo.lock",
        "migrations.yml",
    ] {
        std::fs::copy(source.join(file), work.join(file))?;
    }
    std::fs::write(
        work.join(".gitignore"),
        "/target\n/docker-compose.yml\n/docker/agents/dist/disinto\n/state/\n",
    )?;
    std::fs::write(
        work.join("VERSION"),
        format!("{}\n", version.trim_start_matches('v')),
    )?;
    for bare in ["origin.git", "mirror.git"] {
        run(git(parent).args(["init", "--quiet", "--bare", bare]))?;
    }
    run(git(&work).args(["init", "--quiet", "-b", "main"]))?;
    run(git(&work).args(["add", "-A"]))?;
    run(git(&work).args(["commit", "--quiet", "-m", "initial"]))?;
    for remote in ["origin", "mirror"] {
        run(git(&work)
            .args(["remote", "add", remote])
            .arg(parent.join(format!("{remote}.git"))))?;
    }
    run(git(&work).args(["push", "--quiet", "-u", "origin", "main"]))?;
    Ok(work)
}

/// Sets VERSION, commits and pushes it, as a release starts.
pub fn bump(work: &Path, version: &str) -> Result<()> {
    std::fs::write(
        work.join("VERSION"),
        format!("{}\n", version.trim_start_matches('v')),
    )?;
    run(git(work).args(["commit", "--quiet", "-am", &format!("version {version}")]))?;
    run(git(work).args(["push", "--quiet", "origin", "main"]))?;
    Ok(())
}
