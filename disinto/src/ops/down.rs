//! `disinto down`: stop the factory. Named volumes (all agent data) are kept unless
//! `--volumes` says otherwise, and then the command names them first.

use std::path::Path;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::factory::Factory;

pub(crate) fn down(sh: &Shell, root: &Path, volumes: bool, dry_run: bool) -> Result<()> {
    let factory = Factory::open_to_stop(root)?;
    crate::engine::docker::require_client()?;
    if !factory.compose_file().is_file() {
        bail!(
            "{} has no docker-compose.yml: nothing to stop (run `disinto init` to create it)",
            root.display()
        );
    }
    let mut args = vec!["--profile", "*", "down"];
    if volumes {
        let names = factory
            .compose(sh, &["config", "--volumes"])
            .quiet()
            .read()
            .context("cannot list the factory's volumes")?;
        let names: Vec<&str> = names.split_whitespace().collect();
        let verb = if dry_run { "would delete" } else { "deleting" };
        eprintln!(
            "--volumes: {verb} the named volumes {} and all data in them",
            names.join(", ")
        );
        args.push("--volumes");
    }
    if dry_run {
        println!(
            "$ {}",
            crate::engine::docker::shell_line(factory.compose(sh, &args))
        );
        return Ok(());
    }
    factory.compose(sh, &args).run()?;
    if !volumes {
        eprintln!("Named volumes kept (agent data is safe); `disinto down --volumes` deletes them");
    }
    Ok(())
}
