//! The `disinto` command line: a flat dispatch to one module per command (`swarm` has its
//! own subcommands), on the factory directory (`--root`, `DISINTO_ROOT`, or the current directory).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::lock::Lock;
use crate::ops;

/// The version of this binary and the git revision it was built from.
pub const VERSION: &str = concat!(
    env!("DISINTO_VERSION"),
    " (revision ",
    env!("DISINTO_GIT_REVISION"),
    ")"
);

/// disinto: run a factory on versioned images.
#[derive(Debug, Parser)]
#[command(name = "disinto", version = VERSION)]
struct Cli {
    /// The factory directory [default: the current directory]
    #[arg(long, value_name = "DIR", env = "DISINTO_ROOT", global = true)]
    root: Option<PathBuf>,
    /// Wait up to SECONDS for another command's lock on the factory instead of refusing
    #[arg(long, value_name = "SECONDS", default_value_t = 0, global = true)]
    lock_wait: u64,
    #[command(subcommand)]
    command: Command,
}

/// How a rollout goes (`up`, `rollback`).
#[derive(Debug, clap::Args)]
struct RolloutFlags {
    /// Print the commands and change nothing
    #[arg(long)]
    dry_run: bool,
    /// Seconds to wait for agents to turn healthy
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    health_timeout: u64,
    /// Seconds to watch agents once healthy: a restart, exit or failing health reverts it
    /// (0: no watch)
    #[arg(
        long,
        value_name = "SECONDS",
        env = "DISINTO_WATCH",
        default_value_t = 30
    )]
    watch: u64,
    #[command(flatten)]
    drain: DrainFlags,
    #[command(flatten)]
    verify: VerifyFlags,
}

/// The signature gate of a rollout (`up`, `rollback`, `watch --revert`, `swarm deploy`).
#[derive(Debug, clap::Args)]
struct VerifyFlags {
    /// Run our images WITHOUT checking their cosign signatures (loud; recorded in the history)
    #[arg(long)]
    insecure_skip_verify: bool,
}

/// Letting the agent session in flight end before agents stops (`up`, `rollback`, `down`).
#[derive(Debug, clap::Args)]
struct DrainFlags {
    /// Seconds the agent session in flight may take to end before agents is replaced or
    /// stopped; then the command refuses, unless --force
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    drain_timeout: u64,
    /// When the drain timeout is up, go ahead and cut the session (recorded in the history)
    #[arg(long)]
    force: bool,
}

impl DrainFlags {
    fn policy(&self) -> ops::drain::DrainPolicy {
        ops::drain::DrainPolicy {
            timeout: Duration::from_secs(self.drain_timeout),
            force: self.force,
        }
    }
}

impl RolloutFlags {
    fn rollout(&self, services: Vec<String>) -> ops::rollout::Rollout {
        ops::rollout::Rollout {
            drain_timeout: Duration::from_secs(self.drain.drain_timeout),
            force: self.drain.force,
            watch: Duration::from_secs(self.watch),
            skip_verify: self.verify.insecure_skip_verify,
            ..ops::rollout::Rollout::new(
                services,
                self.dry_run,
                Duration::from_secs(self.health_timeout),
            )
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write docker-compose.yml, and .env from .env.example when there is none
    Init {
        /// Append the keys .env lacks (from .env.example) instead of only listing them
        #[arg(long)]
        add_missing_keys: bool,
    },
    /// Bring the factory (or just SERVICE...) up on the image AGENTS_IMAGE names
    Up {
        /// Services to bring up, without their dependencies [default: the whole stack]
        services: Vec<String>,
        #[command(flatten)]
        rollout: RolloutFlags,
    },
    /// Stop the factory; named volumes are kept unless --volumes
    Down {
        /// Also delete the named volumes (all agent data): says which first
        #[arg(long)]
        volumes: bool,
        /// Print the commands and change nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        drain: DrainFlags,
    },
    /// Put an earlier version back and keep it in .env [default: the previous deployment]
    Rollback {
        /// The version (or image reference) to go back to
        version: Option<String>,
        #[command(flatten)]
        rollout: RolloutFlags,
    },
    /// Per service: image, digest, version, state and health; what is deployed since when
    Status {
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Check the signatures, provenance and SBOM of a release's images (default: AGENTS_IMAGE)
    /// at their registry, with the trusted keys; changes nothing
    Verify {
        /// A version (v0.1.1) or an image reference [default: the factory's AGENTS_IMAGE]
        target: Option<String>,
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
        /// Also print every package the SBOM lists
        #[arg(long)]
        sbom: bool,
    },
    /// Every rollout of this factory, oldest first (state/deployments.jsonl)
    History {
        /// Print one JSON object a line, the fields the file stores
        #[arg(long)]
        json: bool,
    },
    /// A read-only verdict: compose file, pins, kept images, volumes, lock, restarts, disk
    /// (exit 0 clean, 1 drift, 2 when it could not look)
    Doctor {
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// One look at agents for a timer: restarted, exited or unhealthy since the last look?
    /// (exit 0 fine, 3 failing, 4 failing and reverted with --revert)
    Watch {
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
        /// When agents is failing, go back to the previous deployment (exit 4)
        #[arg(long)]
        revert: bool,
        /// With --revert: only when the current deployment is at most SECONDS old
        #[arg(
            long,
            value_name = "SECONDS",
            default_value_t = 3600,
            requires = "revert"
        )]
        since: u64,
        #[command(flatten)]
        rollout: RolloutFlags,
    },
    /// Releases newer than what runs, from the registry (exit 10: there is one, 0: up to date,
    /// 11: the running tag now names another digest than the one deployed)
    Update {
        /// Only look (an upgrade is `disinto upgrade VERSION`)
        #[arg(long, required = true)]
        check: bool,
        /// How far from the running release to look
        #[arg(long, value_enum, default_value_t = crate::model::channel::Channel::Minor)]
        channel: crate::model::channel::Channel,
        /// Count pre-releases (vX.Y.Z-rc.N) too
        #[arg(long)]
        pre: bool,
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Upgrade to VERSION: fetch and verify, drain, snapshot, migrate .env, replace the
    /// extracted binary, roll out with the gate and the watch; all put back if it fails
    Upgrade {
        /// The release to upgrade to (vX.Y.Z)
        version: String,
        /// Go ahead without asking (needed when standard input is not a terminal)
        #[arg(long, short)]
        yes: bool,
        /// Snapshot agent-repos too (clones can be made again, so it is left out by default)
        #[arg(long)]
        include_repos: bool,
        #[command(flatten)]
        rollout: RolloutFlags,
    },
    /// Copy the agents' volumes (agent-state, agent-data) to backups/, agents drained meanwhile
    Backup {
        /// Also copy agent-repos (clones can be made again, so it is left out by default)
        #[arg(long)]
        include_repos: bool,
        /// How many snapshots of this factory to keep (older ones are deleted)
        #[arg(long, value_name = "N", default_value_t = crate::model::snapshot::KEEP_DEFAULT as u64,
              value_parser = clap::value_parser!(u64).range(1..))]
        keep: u64,
        /// Print what would be done and change nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        drain: DrainFlags,
    },
    /// Put a snapshot from backups/ back into the agents' volumes (checked first)
    Restore {
        /// The archive (or its .json manifest): a name in backups/ or a path
        backup: String,
        /// Restore a snapshot taken on another version than the one that runs
        #[arg(long)]
        any_version: bool,
        /// Check the snapshot, print what would be done and change nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        drain: DrainFlags,
    },
    /// Freeze the factory: every command that changes it refuses until `disinto unlock`
    Lock {
        /// Why (recorded with who and when, and named by every refusal)
        #[arg(short, long, value_name = "WHY")]
        message: String,
    },
    /// Lift the freeze `disinto lock` set
    Unlock,
    /// Run the pinned factory on a Docker Swarm (this node must be a manager)
    Swarm {
        /// The stack's name: its services are STACK_agents..., its volumes STACK_agent-data...
        /// [default: the factory's compose project: COMPOSE_PROJECT_NAME, else disinto]
        #[arg(long, env = "DISINTO_STACK", global = true)]
        stack: Option<String>,
        #[command(subcommand)]
        command: SwarmCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SwarmCommand {
    /// Pin the release by digest, write docker-stack.yml, deploy it; Swarm rolls agents back
    /// by itself when the new image fails its health check
    Deploy {
        /// Print the commands and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for agents to settle (healthy and watched, or rolled back)
        #[arg(long, value_name = "SECONDS", default_value_t = 300)]
        timeout: u64,
        #[command(flatten)]
        drain: DrainFlags,
        #[command(flatten)]
        verify: VerifyFlags,
    },
    /// Per service: image, digest, version, replicas and where its last update stands
    Status {
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Put agents (and runner) back on the spec before the last deploy (docker service rollback)
    Rollback {
        /// Print the commands and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Seconds to wait for agents to run its previous image, healthy
        #[arg(long, value_name = "SECONDS", default_value_t = 300)]
        timeout: u64,
        #[command(flatten)]
        drain: DrainFlags,
    },
    /// Remove the stack; named volumes are kept unless --volumes
    Rm {
        /// Also delete the stack's named volumes on this node (all agent data): says which first
        #[arg(long)]
        volumes: bool,
        /// Print the commands and change nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        drain: DrainFlags,
    },
}

fn try_main() -> Result<()> {
    let cli = Cli::parse();
    let sh = xshell::Shell::new()?;
    let root = match cli.root {
        Some(dir) => dir,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    sh.change_dir(&root);
    // A rollout stopped by SIGINT or SIGTERM while it waits for health would leave an
    // unverified image running, unrecorded: the signal makes it fail, and revert, instead.
    // The same for every command that changes the factory: a drain it waits on is lifted,
    // and a rollout it runs reverts, when it stops (a second signal ends it at once).
    if cli.command.changes().is_some() {
        crate::signals::defer_interrupts();
    }
    // Every command that changes the factory holds its lock for its whole run (a dry run
    // changes nothing and takes none).
    let _lock = match cli.command.changes() {
        Some(name) if root.is_dir() => Some(Lock::acquire(
            &root,
            name,
            Duration::from_secs(cli.lock_wait),
        )?),
        _ => None,
    };
    match cli.command {
        Command::Lock { message } => {
            ops::freeze::lock(&root, &message, Duration::from_secs(cli.lock_wait))
        }
        Command::Unlock => ops::freeze::unlock(&root),
        Command::Doctor { json } => ops::doctor::doctor(&sh, &root, json),
        Command::Watch {
            json,
            revert,
            since,
            rollout,
        } => ops::watch::watch(
            &sh,
            &root,
            json,
            revert.then(|| ops::watch::Revert {
                since: Duration::from_secs(since),
                rollout: rollout.rollout(vec!["agents".into()]),
            }),
        ),
        Command::Init { add_missing_keys } => ops::init::init(&root, add_missing_keys),
        Command::Up { services, rollout } => ops::up::up(&sh, &root, rollout.rollout(services)),
        Command::Rollback { version, rollout } => {
            ops::rollback::rollback(&sh, &root, version, rollout.rollout(vec!["agents".into()]))
        }
        Command::Down {
            volumes,
            dry_run,
            drain,
        } => ops::down::down(&sh, &root, volumes, dry_run, drain.policy()),
        Command::Status { json } => ops::status::status(&sh, &root, json),
        Command::Update {
            check: _,
            channel,
            pre,
            json,
        } => ops::update::check(&root, channel, pre, json),
        Command::Upgrade {
            version,
            yes,
            include_repos,
            rollout,
        } => ops::upgrade::upgrade(
            &sh,
            &root,
            ops::upgrade::Upgrade {
                version,
                yes,
                include_repos,
                rollout: rollout.rollout(vec!["agents".into()]),
            },
        ),
        Command::Backup {
            include_repos,
            keep,
            dry_run,
            drain,
        } => ops::backup::backup(
            &sh,
            &root,
            include_repos,
            keep as usize,
            dry_run,
            drain.policy(),
        ),
        Command::Restore {
            backup,
            any_version,
            dry_run,
            drain,
        } => ops::restore::restore(&sh, &root, &backup, any_version, dry_run, drain.policy()),
        Command::History { json } => ops::history::history(&root, json),
        Command::Verify { target, json, sbom } => ops::verify::verify(&root, target, json, sbom),
        Command::Swarm { stack, command } => {
            // Only status reads on past an unreadable .env: it changes nothing.
            let lenient = matches!(command, SwarmCommand::Status { .. });
            let stack = ops::swarm::stack_name(&root, stack, lenient)?;
            swarm(&sh, &root, &stack, command)
        }
    }
}

impl Command {
    /// The command's name when it changes the factory (and is no dry run): it takes the lock.
    fn changes(&self) -> Option<&'static str> {
        match self {
            Command::Up { rollout, .. } if !rollout.dry_run => Some("up"),
            Command::Rollback { rollout, .. } if !rollout.dry_run => Some("rollback"),
            Command::Down { dry_run: false, .. } => Some("down"),
            Command::Backup { dry_run: false, .. } => Some("backup"),
            Command::Upgrade { rollout, .. } if !rollout.dry_run => Some("upgrade"),
            Command::Restore { dry_run: false, .. } => Some("restore"),
            Command::Watch {
                revert: true,
                rollout,
                ..
            } if !rollout.dry_run => Some("watch --revert"),
            Command::Swarm { command, .. } => match command {
                SwarmCommand::Deploy { dry_run: false, .. } => Some("swarm deploy"),
                SwarmCommand::Rollback { dry_run: false, .. } => Some("swarm rollback"),
                SwarmCommand::Rm { dry_run: false, .. } => Some("swarm rm"),
                _ => None,
            },
            _ => None,
        }
    }
}

fn swarm(
    sh: &xshell::Shell,
    root: &std::path::Path,
    stack: &str,
    command: SwarmCommand,
) -> Result<()> {
    use crate::ops::swarm;
    match command {
        SwarmCommand::Deploy {
            dry_run,
            timeout,
            drain,
            verify,
        } => swarm::deploy::deploy(
            sh,
            root,
            stack,
            dry_run,
            Duration::from_secs(timeout),
            drain.policy(),
            verify.insecure_skip_verify,
        ),
        SwarmCommand::Status { json } => swarm::status::status(stack, json),
        SwarmCommand::Rollback {
            dry_run,
            timeout,
            drain,
        } => swarm::rollback::rollback(
            sh,
            root,
            stack,
            dry_run,
            Duration::from_secs(timeout),
            drain.policy(),
        ),
        SwarmCommand::Rm {
            volumes,
            dry_run,
            drain,
        } => swarm::rm::rm(sh, stack, volumes, dry_run, drain.policy()),
    }
}

/// The `disinto` program: runs the command line, prints the whole error chain on one line.
pub fn main() -> ExitCode {
    run_main(try_main)
}

/// How both programs (`disinto`, `cargo xtask`) run: a closed pipe ends them quietly, and an
/// error is one line, `error: ` and its whole chain.
pub fn run_main(main: impl FnOnce() -> Result<()>) -> ExitCode {
    crate::signals::quiet_broken_pipe();
    match main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<crate::Exit>().is_some() => {
            ExitCode::from(e.downcast_ref::<crate::Exit>().map_or(1, |x| x.0))
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed_and_named_disinto() {
        super::Cli::command().debug_assert();
        let help = super::Cli::command().render_help().to_string();
        assert!(help.contains("Usage: disinto"), "{help}");
        assert!(super::VERSION.starts_with('v'), "{}", super::VERSION);
    }
}
