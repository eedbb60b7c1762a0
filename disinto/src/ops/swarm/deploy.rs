//! `disinto swarm deploy`: pull and pin our images, write the stack file, deploy it, and
//! wait until agents has settled: on its new image, healthy, or rolled back by Swarm (an
//! error). Either way the rollout goes into the factory's history.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use super::{
    check_stack_name, companion_images, drain_agents, follow, preflight, put_back, settle,
};
use crate::engine::swarm::{nodes, require_manager, service_name, this_node};
use crate::engine::{docker, Runner};
use crate::factory::{Factory, PROJECTS_DIR};
use crate::fsx::{self, Written};
use crate::model::compose::{ComposeInput, PROJECT_NAME_VAR};
use crate::model::history::{History, Outcome};
use crate::model::image_ref::{AgentsImage, ImageRef, OUR_IMAGES};
use crate::model::stack::{self, Node, StackInput, STACK_FILE, VOLUMES_LABEL};
use crate::ops::drain::DrainPolicy;
use crate::ops::images::pull_and_pin;
use crate::ops::rollout::record;
use crate::ops::trust::Trust;

pub(crate) fn deploy(
    sh: &Shell,
    root: &Path,
    stack_name: &str,
    dry_run: bool,
    timeout: Duration,
    policy: DrainPolicy,
    skip_verify: bool,
) -> Result<()> {
    check_stack_name(stack_name)?;
    let runner = Runner::new(sh, dry_run);
    let factory = Factory::open(root)?;
    let config = &factory.config;
    if config.agents == AgentsImage::Dev {
        bail!(stack::DEV_REFUSED);
    }
    if !dry_run {
        refuse_if_compose_runs(&factory, stack_name)?;
    }
    let mut input = StackInput::new(ComposeInput::from(config), &factory.dir, &factory.settings)?;
    // What a swarm cannot run (a host address on edge's port, ...), a stack file that is not
    // ours to write, or a path docker cannot be given is refused before anything is pulled,
    // labelled or written.
    stack::generate(&input)?;
    let file = factory.dir.join(STACK_FILE);
    check_stack_file(&file)?;
    let file_arg = stack::compose_file_arg(&file)?;
    // A dry run asks the swarm what it would label, when there is one to ask.
    let is_manager = if dry_run {
        require_manager().is_ok()
    } else {
        docker::require_daemon()?;
        require_manager()?;
        true
    };
    let swarm_nodes = match is_manager {
        true => nodes()?,
        false => vec![],
    };
    let to_label: Option<Node> = match is_manager {
        true => stack::volume_node(&swarm_nodes)?.cloned(),
        false => None,
    };
    // Nothing is pulled, labelled or written before every image's signature checks out.
    let mut trust = Trust::load(&factory, skip_verify)?;
    // The nodes may be of other platforms than this host: each pulls its own entry of a
    // release's image index, so every entry must be signed.
    trust.every_platform = true;
    let pinned = pull_and_pin(&runner, config, OUR_IMAGES, &mut trust)?;
    input.compose.pinned = pinned.refs;
    // Every node must run the same bytes: an image with no registry digest (built or tagged
    // only here) could be something else on another node.
    let undigested = input
        .compose
        .pinned
        .iter()
        .find(|(_, r)| ImageRef::parse(r).map_or(true, |r| r.digest().is_none()));
    if let Some((name, reference)) = undigested {
        bail!("{name} would run {reference}, which has no registry digest (built or tagged only on this host): a swarm deploys what a registry holds; push a release and deploy that");
    }
    // On several nodes, what this host proved for itself (the pull, the `projects` directory)
    // is asked of the others, through Swarm, before anything of the stack changes.
    if swarm_nodes.len() > 1 {
        let here = this_node()?;
        let projects = factory.dir.join(PROJECTS_DIR);
        let projects = projects
            .to_str()
            .with_context(|| format!("{} is not UTF-8", projects.display()))?;
        let away = swarm_nodes.iter().find(|n| n.labelled && n.id != here);
        let image = input
            .compose
            .pinned
            .get("agents")
            .cloned()
            .unwrap_or_else(|| input.compose.agents.to_string());
        preflight::check(
            &runner,
            stack_name,
            &image,
            &swarm_nodes,
            away.map(|node| (projects, node)),
            timeout,
        )?;
    }

    let label_arg = format!("{VOLUMES_LABEL}=true");
    if !is_manager {
        runner.note(&format!(
            "(no swarm manager answers here: on a single-node swarm, the node gets {label_arg}:)"
        ));
        runner.exec(cmd!(sh, "docker node update --label-add {label_arg} NODE"))?;
    }
    if let Some(node) = &to_label {
        let id = &node.id;
        runner
            .exec(cmd!(sh, "docker node update --label-add {label_arg} {id}").ignore_stdout())
            .with_context(|| format!("cannot label node {}", node.hostname))?;
        if !dry_run {
            eprintln!(
                "Labelled node {} {label_arg}: the factory's named volumes live there",
                node.hostname
            );
        }
    }
    runner.note(&format!(
        "write {} (agents: {})",
        file.display(),
        input.compose.agents
    ));
    if !dry_run {
        write_stack(&factory, &file, &input)?;
    }
    // What edge and reproduce run before: put back should Swarm roll agents back.
    let before = match dry_run {
        true => Default::default(),
        false => companion_images(stack_name),
    };
    // Held until the deploy has settled; dropping it lifts the drain of a task left running.
    let drained = drain_agents(&runner, stack_name, policy)?;
    // --resolve-image never: the file pins our images by digest already, and asking a registry
    // for the third-party images' digests would only fail where no registry is reachable.
    runner
        .exec(cmd!(
            sh,
            "docker stack deploy --compose-file {file_arg} --with-registry-auth --resolve-image never --prune {stack_name}"
        ))
        .with_context(|| format!("docker stack deploy refused {}", file.display()))?;
    let agents = service_name(stack_name, "agents");
    runner.note(&format!(
        "wait until {agents} runs its new image, healthy and watched for {}, or Swarm has rolled it back (at most {}s); then runner follows agents' image (and, after a rollback, edge and reproduce go back too)",
        stack::MONITOR,
        timeout.as_secs()
    ));
    if dry_run {
        return Ok(());
    }

    let rolled_back = settle(&agents, timeout)?;
    let runs = follow(&runner, stack_name)?;
    let tried = input
        .compose
        .pinned
        .get("agents")
        .cloned()
        .unwrap_or_else(|| input.compose.agents.to_string());
    let version = config.agents.as_setting();
    let (outcome, image) = match rolled_back {
        true => (Outcome::Reverted, &tried),
        false => (Outcome::Deployed, &runs),
    };
    let mut entry = record(
        version,
        image,
        &docker::image_id(image).unwrap_or_default(),
        outcome,
    );
    entry.swarm = Some(stack_name.to_string());
    pinned.passed.stamp(&mut entry);
    entry.interrupted_session = drained.as_ref().and_then(|d| d.interrupted.clone());
    History::load(&factory.dir)?.append(entry)?;
    if rolled_back {
        put_back(&runner, &before)
            .with_context(|| format!("Swarm rolled {agents} back ({tried} failed its update)"))?;
        bail!(
            "Swarm rolled {agents} back: {tried} failed its update (see `docker service ps --no-trunc {agents}`); it runs {runs} again, and runner with it (edge and reproduce are back where they were); AGENTS_IMAGE={version} still names the failed release: change it before the next deploy"
        );
    }
    eprintln!("{agents} runs {runs}, healthy");
    Ok(())
}

/// Two containers must never write one volume, and one factory must not run twice. The
/// compose project named like the stack shares the stack's volumes (that is how its data moves
/// to the swarm); this factory's own compose project, named as compose names it
/// (COMPOSE_PROJECT_NAME, environment then `.env`, else the compose file's `name:`), would run
/// beside the stack, its agents on other volumes. Either must be down first. A factory with
/// neither a compose file nor COMPOSE_PROJECT_NAME has no compose project of its own: another
/// factory's `disinto` elsewhere on the host is not this one.
fn refuse_if_compose_runs(factory: &Factory, stack_name: &str) -> Result<()> {
    let named = factory
        .settings
        .get(PROJECT_NAME_VAR)?
        .is_some_and(|n| !n.is_empty());
    let own = match factory.compose_file().exists() || named {
        true => factory.project_name()?,
        false => stack_name.to_string(),
    };
    let running = |project: &str| -> Result<bool> {
        let ids = docker::read(
            &[
                "ps",
                "--quiet",
                "--filter",
                &format!("label=com.docker.compose.project={project}"),
            ],
            "list the compose factory's containers",
        )?;
        Ok(!ids.trim().is_empty())
    };
    if running(stack_name)? {
        bail!("the compose factory {stack_name} runs on this host and shares the stack's volumes ({stack_name}_agent-data, ...): stop it with `disinto down` first (two containers must never write one volume)");
    }
    if own != stack_name && running(&own)? {
        bail!("this factory runs under compose as project {own} (COMPOSE_PROJECT_NAME, else its compose file's name:): stop it with `disinto down` first, or stack {stack_name} would run the factory a second time, on other volumes");
    }
    Ok(())
}

/// The stack file as it stands must be nothing yet or a regular file: it holds every secret of
/// `.env`, so it is never written through a symlink (to wherever that points, with whatever
/// mode is there) nor into a device or a FIFO. One line, before anything changes.
fn check_stack_file(file: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => bail!("cannot read {}: {}", file.display(), fsx::reason(&e)),
        Ok(meta) => meta,
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        bail!(
            "{} is a symlink: the stack file holds .env's secrets and is written only as a regular file of the factory; remove the link (deploy writes the file anew)",
            file.display()
        );
    }
    if !kind.is_file() {
        bail!(
            "{} is not a regular file: the stack file is written only as one; remove it (deploy writes the file anew)",
            file.display()
        );
    }
    if meta.mode() & 0o077 != 0 && meta.nlink() > 1 {
        bail!(
            "{} is readable by others and has {} hard links: making it private would change the other names too; remove it (deploy writes the file anew)",
            file.display(),
            meta.nlink()
        );
    }
    Ok(())
}

/// Narrows an existing stack file to 0600 before a byte of the new text is written, so the
/// replacement (which keeps the old file's mode) is private from its creation on. The mode is
/// changed through the file opened, and only when it is the very regular file checked by name
/// (same device and inode): never through a link, never on a device.
fn make_private(file: &Path) -> Result<()> {
    check_stack_file(file)?;
    let Ok(named) = std::fs::symlink_metadata(file) else {
        return Ok(());
    };
    if named.mode() & 0o077 == 0 {
        return Ok(());
    }
    let cannot = |e: std::io::Error| {
        anyhow::anyhow!(
            "cannot make {} private: {}",
            file.display(),
            fsx::reason(&e)
        )
    };
    let opened = std::fs::File::open(file).map_err(cannot)?;
    let meta = opened.metadata().map_err(cannot)?;
    if !meta.is_file() || meta.dev() != named.dev() || meta.ino() != named.ino() {
        bail!(
            "{} changed while deploy looked at it: run deploy again",
            file.display()
        );
    }
    opened
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(cannot)
}

/// Writes the stack file, private from creation to the end, and the `projects/` its bind needs.
fn write_stack(factory: &Factory, file: &Path, input: &StackInput) -> Result<()> {
    // Swarm, unlike compose, does not create a missing bind source: the task would be rejected.
    let projects = factory.dir.join(PROJECTS_DIR);
    std::fs::create_dir_all(&projects)
        .with_context(|| format!("cannot create {}", projects.display()))?;
    let written = write_private(
        file,
        &stack::generate(input)?,
        fsx::write_private_if_changed,
    )?;
    let verb = match written {
        Written::Generated => "Generated",
        Written::Unchanged => "Unchanged",
    };
    eprintln!("{verb} {} ({})", file.display(), input.compose.agents);
    Ok(())
}

/// Writes `text` to the stack file with `write` (which keeps an existing file's mode): the old
/// file is made private first, so no moment exists when the new text is readable by others.
fn write_private(
    file: &Path,
    text: &str,
    write: impl Fn(&Path, &str) -> Result<Written>,
) -> Result<Written> {
    make_private(file)?;
    let written = write(file, text)?;
    // What was written is held to the promise (a regular file nobody else reads), not fixed
    // after the fact: a chmod now would come too late for the secrets.
    let meta = std::fs::symlink_metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    if !meta.is_file() || meta.mode() & 0o077 != 0 {
        bail!(
            "{} was written, but is not a private regular file (mode {:o}): remove it and deploy again",
            file.display(),
            meta.mode() & 0o7777
        );
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsx::TempDir;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_redeploy_never_leaves_the_new_text_readable_by_others() {
        let dir = TempDir::new("stack-file").unwrap();
        let file = dir.path().join(STACK_FILE);
        std::fs::write(&file, "old secrets\n").unwrap();
        set_mode(&file, 0o644);
        // The mode of the file at the moment the new text goes in is the mode the new file
        // gets (the write keeps it): it must already be private then.
        let seen = std::cell::Cell::new(0);
        let write = |path: &Path, text: &str| {
            seen.set(mode(path));
            fsx::write_private_if_changed(path, text)
        };
        assert_eq!(
            write_private(&file, "new\n", write).unwrap(),
            Written::Generated
        );
        assert_eq!(seen.get(), 0o600);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new\n");
        // Unchanged text: still made private.
        set_mode(&file, 0o640);
        assert_eq!(
            write_private(&file, "new\n", fsx::write_private_if_changed).unwrap(),
            Written::Unchanged
        );
        assert_eq!(mode(&file), 0o600);
        // A new file is private from its creation.
        let new = dir.path().join("new.yml");
        write_private(&new, "x\n", fsx::write_private_if_changed).unwrap();
        assert_eq!(mode(&new), 0o600);
    }

    #[test]
    fn a_stack_file_that_is_a_link_a_device_or_shared_is_refused_and_left_alone() {
        let dir = TempDir::new("stack-file").unwrap();
        let file = dir.path().join(STACK_FILE);
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "someone's file\n").unwrap();
        set_mode(&elsewhere, 0o644);
        let refused = |what: &str| {
            let e = check_stack_file(&file).expect_err(what);
            assert_eq!(format!("{e:#}").lines().count(), 1, "{what}: {e:#}");
            let e = write_private(&file, "secret\n", fsx::write_private_if_changed);
            assert!(e.is_err(), "{what}");
        };

        std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
        refused("a symlink");
        assert_eq!(mode(&elsewhere), 0o644);
        assert_eq!(
            std::fs::read_to_string(&elsewhere).unwrap(),
            "someone's file\n"
        );
        std::fs::remove_file(&file).unwrap();

        std::fs::create_dir(&file).unwrap();
        refused("a directory");
        std::fs::remove_dir(&file).unwrap();

        // A FIFO is refused without being opened (which would wait for a writer).
        let status = std::process::Command::new("mkfifo")
            .arg(&file)
            .status()
            .unwrap();
        assert!(status.success());
        refused("a FIFO");
        std::fs::remove_file(&file).unwrap();

        // A hard link readable by others: narrowing it would narrow the other name too.
        std::fs::hard_link(&elsewhere, &file).unwrap();
        refused("a shared file");
        assert_eq!(mode(&elsewhere), 0o644);
        // Already private, it is replaced, and the other name keeps its text.
        set_mode(&elsewhere, 0o600);
        write_private(&file, "secret\n", fsx::write_private_if_changed).unwrap();
        assert_eq!(
            std::fs::read_to_string(&elsewhere).unwrap(),
            "someone's file\n"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "secret\n");
    }
}
