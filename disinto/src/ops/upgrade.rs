//! `disinto upgrade VERSION`: everything around "edit one line of .env and run up", in order
//! and printed step by step: the new image is fetched (and verified, as every rollout's images
//! are); the lock is held (taken by the CLI, for the whole command); the agent session in
//! flight ends; the agents' volumes are snapshotted; `.env` is migrated (AGENTS_IMAGE and the
//! release's declared changes, every other byte kept); an extracted `disinto` binary is
//! replaced by the release's own; and the health-gated, watched rollout runs. When the
//! rollout fails, its images are reverted (as every rollout's are), and so are `.env`, the
//! compose file, the binary and, because the new version ran against the volumes, the data.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use xshell::Shell;

use super::drain;
use super::images::pull_and_pin;
use super::rollout::Rollout;
use super::snapshot;
use super::trust::Trust;
use crate::engine::{docker, Runner};
use crate::factory::Factory;
use crate::fsx;
use crate::model::config::{read_dotenv_file, set_in_dotenv, var};
use crate::model::image_ref::{parse_version, AgentsImage, AGENTS};
use crate::model::migrate::{self, MIGRATIONS_FILE};
use crate::model::snapshot::KEEP_DEFAULT;

/// Where the agents image keeps what an upgrade reads from it.
const IMAGE_MIGRATIONS: &str = "/opt/disinto/migrations.yml";
const IMAGE_BINARY: &str = "/usr/local/bin/disinto";

/// What the operator asked for.
pub(crate) struct Upgrade {
    pub version: String,
    /// Go ahead without asking (a timer, a script).
    pub yes: bool,
    pub include_repos: bool,
    pub rollout: Rollout,
}

/// Prints one numbered step.
struct Steps {
    at: usize,
}

impl Steps {
    const ALL: usize = 6;
    fn next(&mut self, what: &str) {
        self.at += 1;
        eprintln!("[{}/{}] {what}", self.at, Steps::ALL);
    }
}

pub(crate) fn upgrade(sh: &Shell, root: &Path, ask: Upgrade) -> Result<()> {
    let dry_run = ask.rollout.dry_run;
    let mut factory = Factory::open(root)?;
    let from = match &factory.config.agents {
        AgentsImage::Release(v) => v.clone(),
        AgentsImage::Dev => bail!("this factory runs dev mode (built from source): upgrade it with `git pull` and `disinto up`"),
        AgentsImage::Reference(r) => bail!("this factory runs the image {r}, not a release: set AGENTS_IMAGE to a version (vX.Y.Z) in .env first"),
    };
    let to = ask.version.clone();
    let (old, new) = (parse_version(&from)?, parse_version(&to)?);
    if new == old {
        println!("already on {to}: nothing to do");
        return Ok(());
    }
    if new < old {
        bail!("{to} is older than {from}, which runs: going back is `disinto rollback {to}`");
    }
    let target = AgentsImage::Release(to.clone());
    let image = target
        .resolved(&factory.config.registry)
        .unwrap_or_else(|| to.clone());
    let runner = Runner::new(sh, dry_run);
    let mut steps = Steps { at: 0 };

    steps.next(&format!("fetch and verify {image}"));
    let mut with_target = factory.config.clone();
    with_target.agents = target.clone();
    let mut trust = Trust::load(&factory, ask.rollout.skip_verify)?;
    let pinned = pull_and_pin(&runner, &with_target, [AGENTS], &mut trust)?;
    let pinned = pinned
        .refs
        .get(AGENTS.name)
        .cloned()
        .unwrap_or_else(|| image.clone());

    // Everything that will change is worked out, and shown, before anything does.
    let env_path = factory.dotenv_file();
    let env_before = read_dotenv_file(&env_path)?.unwrap_or_default();
    let env_text = String::from_utf8(env_before.clone()).map_err(|_| {
        anyhow!(
            "{} is not UTF-8 text: upgrade it by hand",
            env_path.display()
        )
    })?;
    let migrations = match dry_run {
        true => Vec::new(),
        false => release_migrations(&pinned)?,
    };
    let (env_after, changes) = migrate::apply(
        &env_text,
        &migrate::between(&migrations, &from, &to),
        &env_path.display().to_string(),
    )?;
    let env_after = set_in_dotenv(&env_after, var::AGENTS_IMAGE, &to)?;
    fsx::check_writable(&env_path, env_after.as_bytes()).with_context(|| {
        format!(
            "the upgrade writes {}, which cannot be written; nothing was changed",
            env_path.display()
        )
    })?;
    let binary = replaceable_binary(&factory);
    eprintln!("upgrade {from} → {to}:");
    eprintln!("  .env: AGENTS_IMAGE={to}");
    for change in &changes {
        eprintln!("  .env: {change}");
    }
    match &binary {
        Some(path) => eprintln!(
            "  binary: {} (the old one kept as {}.prev)",
            path.display(),
            path.display()
        ),
        None => eprintln!(
            "  binary: left alone (a checkout's launcher, or one this command cannot replace)"
        ),
    }
    if dry_run {
        runner.note(&format!(
            "{}; snapshot agent-state, agent-data to backups/; migrate .env; roll out {to}",
            ask.rollout.drain_policy().plan()
        ));
        return Ok(());
    }
    if !ask.yes {
        confirm(&from, &to)?;
    }

    steps.next("let the agent session in flight end");
    let drained = match factory.running(sh, "agents") {
        Some(agents) => Some(drain::drain(&agents, ask.rollout.drain_policy())?),
        None => None,
    };

    steps.next("snapshot the agents' volumes");
    let snap = snapshot::take(
        sh,
        &factory,
        ask.include_repos,
        KEEP_DEFAULT,
        &format!("upgrade to {to}"),
        None,
    )?;
    eprintln!("  backups/{} ({} bytes)", snap.archive, snap.bytes);

    steps.next("migrate .env");
    let compose_before = std::fs::read(factory.compose_file()).ok();
    fsx::write_atomic(&env_path, env_after.as_bytes())?;

    steps.next("replace the disinto binary");
    let replaced = match &binary {
        Some(path) => match replace_binary(path, &pinned, &to) {
            Ok(()) => true,
            Err(e) => {
                restore_env(&env_path, &env_before);
                return Err(e.context("nothing else was changed; .env is as it was"));
            }
        },
        None => false,
    };

    steps.next(&format!("roll out {to}"));
    // Opened again: the migrated .env is what the new version runs with.
    factory = Factory::open(root)?;
    factory.config.agents = target;
    factory.config.agents_in_dotenv = Some(to.clone());
    let policy = ask.rollout.drain_policy();
    let health_timeout = ask.rollout.health_timeout;
    let rollout = Rollout {
        version: Some(to.clone()),
        ..ask.rollout
    };
    // Still drained: the rollout's own drain finds agents idle at once.
    let rolled = rollout.run(sh, &factory);
    drop(drained);
    let Err(failed) = rolled else {
        println!(
            "upgraded: {from} → {to} (snapshot backups/{})",
            snap.archive
        );
        return Ok(());
    };
    // The rollout put the old images back; the rest of what the upgrade changed goes back too.
    eprintln!(
        "the rollout of {to} failed: putting .env, the compose file, the binary and the data back"
    );
    restore_env(&env_path, &env_before);
    if let Some(text) = compose_before {
        if let Err(e) = fsx::write_atomic(&factory.compose_file(), &text) {
            eprintln!("warning: cannot put the compose file back: {e:#}");
        }
    }
    if replaced {
        if let Some(path) = &binary {
            restore_binary(path);
        }
    }
    let factory = Factory::open(root)?;
    let (dir, manifest) = snapshot::check(&factory, &snap.archive, false)?;
    eprintln!(
        "  {to} ran against the agents' volumes before it was reverted: restoring the snapshot taken before it (backups/{})",
        snap.archive
    );
    let restored = snapshot::restore(sh, &factory, &dir, &manifest, policy, health_timeout);
    match restored {
        Ok(()) => Err(failed.context(format!("upgrade to {to} failed; {from} runs with its data as before the upgrade"))),
        Err(e) => Err(anyhow!(
            "upgrade to {to} failed ({failed:#}), and restoring the snapshot failed too ({e:#}): restore it by hand with `disinto restore {}`",
            snap.archive
        )),
    }
}

/// The migrations the release carries (none in a release made before they existed).
fn release_migrations(image: &str) -> Result<Vec<migrate::Migration>> {
    let Some(bytes) = docker::file_from_image(image, IMAGE_MIGRATIONS)? else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("{image}: {MIGRATIONS_FILE} is not UTF-8 text"))?;
    migrate::parse(&text, &format!("{image}:{IMAGE_MIGRATIONS}"))
}

/// The extracted `disinto` this process runs from, when the upgrade may replace it: not in a
/// source checkout (its launcher builds from source), not a build of cargo's, and writable.
fn replaceable_binary(factory: &Factory) -> Option<PathBuf> {
    if factory.is_checkout() || std::env::var_os("DISINTO_BIN").is_some() {
        return None;
    }
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let cargo_build = exe
        .ancestors()
        .any(|a| a.file_name().is_some_and(|n| n == "target"));
    let dir = exe.parent()?;
    let writable = fsx::check_writable(&dir.join(".disinto-upgrade-probe"), b"").is_ok();
    (!cargo_build && writable).then_some(exe)
}

/// The release's binary in place of `path` (checked to say `version` first), the old one
/// kept beside it as `NAME.prev`; atomic: a rename.
fn replace_binary(path: &Path, image: &str, version: &str) -> Result<()> {
    let bytes = docker::file_from_image(image, IMAGE_BINARY)?
        .with_context(|| format!("{image} has no {IMAGE_BINARY}"))?;
    let dir = path.parent().context("the binary has no directory")?;
    let new = tempfile::Builder::new()
        .prefix(".disinto.new.")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?
        // Closed before it runs: Linux refuses to run a file open for writing.
        .into_temp_path();
    std::fs::write(&new, &bytes)?;
    let mut perms = std::fs::metadata(path)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&new, perms)?;
    let says = crate::engine::runner::program_version(&new);
    if !says.starts_with(&format!("disinto {version} ")) {
        bail!(
            "the disinto binary in {image} says {:?}, not {version}: not replaced",
            says.trim()
        );
    }
    let prev = prev_path(path);
    std::fs::copy(path, &prev)
        .with_context(|| format!("cannot keep the old binary as {}", prev.display()))?;
    new.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

fn prev_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".prev");
    path.with_file_name(name)
}

fn restore_binary(path: &Path) {
    if let Err(e) = std::fs::rename(prev_path(path), path) {
        eprintln!(
            "warning: cannot put the old binary back ({e}): it is {}",
            prev_path(path).display()
        );
    }
}

fn restore_env(path: &Path, before: &[u8]) {
    if let Err(e) = fsx::write_atomic(path, before) {
        eprintln!(
            "warning: cannot put {} back as it was: {e:#}",
            path.display()
        );
    }
}

/// Asks on a terminal; refuses without one (a timer passes --yes).
fn confirm(from: &str, to: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("upgrade {from} → {to} needs a yes: pass --yes (standard input is not a terminal)");
    }
    eprint!("Upgrade {from} → {to}? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    match answer.trim() {
        "y" | "Y" | "yes" => Ok(()),
        _ => Err(anyhow!("not upgraded: nothing was changed")),
    }
}
