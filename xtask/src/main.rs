//! `cargo xtask`: a flat dispatch to one module per command.
//! Run `cargo xtask --help` for the list; each command's doc comment is its help text.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "disinto's build, release and test tasks",
    version
)]
struct Cli {
    /// Work on the disinto source checkout in DIR [default: the one this xtask was built from]
    #[arg(short = 'C', long = "directory", value_name = "DIR", global = true)]
    directory: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the factory's docker-compose.yml (pinned when AGENTS_IMAGE is set)
    GenCompose(xtask::gen_compose::GenCompose),
    /// Fail when a Dockerfile VOLUME is not mounted at exactly its path by a service using it
    CheckVolumes(xtask::check_volumes::CheckVolumes),
    /// Release agents, edge and reproduce: run formulas/release.toml step by step (resumable)
    Release(xtask::release::Release),
    /// Push ${DISINTO_REGISTRY}/{agents,edge,reproduce}:vX.Y.Z (and latest): push-image alone
    Push(xtask::release::Push),
    /// Ask the factory's approval flow for a release: a vault action on a branch of the ops repo
    ReleaseRequest(xtask::release_request::ReleaseRequest),
    /// Measure the pipeline: build, start, compose, image, release and rollback figures
    Bench(xtask::bench::Bench),
    /// Provision the testbed (Docker, compose v2, base image, registry) and run every check
    Test(xtask::test_cmd::Test),
}

fn try_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sh = xshell::Shell::new()?;
    let root = match cli.directory {
        Some(dir) if !dir.is_dir() => anyhow::bail!("-C {}: no such directory", dir.display()),
        Some(dir) => dir,
        None => xtask::project_root(),
    };
    sh.change_dir(root);
    // These hold a registry login (or a half-made branch) on disk while they run: a signal
    // must unwind them, so what they made is removed, rather than end them where they stand.
    if matches!(
        cli.command,
        Command::Release(_) | Command::Push(_) | Command::ReleaseRequest(_)
    ) {
        disinto::signals::defer_interrupts();
    }
    match cli.command {
        Command::GenCompose(cmd) => cmd.run(&xtask::Checkout::of(&sh)),
        Command::CheckVolumes(cmd) => cmd.run(&sh),
        Command::Release(cmd) => cmd.run(&sh),
        Command::Push(cmd) => cmd.run(&sh),
        Command::ReleaseRequest(cmd) => cmd.run(&sh),
        Command::Bench(cmd) => cmd.run(&sh),
        Command::Test(cmd) => cmd.run(&sh),
    }
}

fn main() -> ExitCode {
    disinto::cli::run_main(try_main)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
