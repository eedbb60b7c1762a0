//! `disinto down`: stop the factory. Named volumes (all agent data) are kept unless
//! `--volumes` says otherwise, and then the command names them first.

use std::path::Path;

use anyhow::{bail, Result};
use xshell::Shell;

use crate::engine::{docker, Runner};
use crate::factory::Factory;

pub(crate) fn down(sh: &Shell, root: &Path, volumes: bool, dry_run: bool) -> Result<()> {
    let factory = Factory::open_to_stop(root)?;
    let runner = Runner::new(sh, dry_run);
    docker::require_client()?;
    if !factory.compose_file().is_file() {
        bail!(
            "{} has no docker-compose.yml: nothing to stop (run `disinto init` to create it)",
            root.display()
        );
    }
    let mut args = vec!["--profile", "*", "down"];
    if volumes {
        let names = factory.volume_names(sh)?;
        let verb = if dry_run { "would delete" } else { "deleting" };
        eprintln!(
            "--volumes: {verb} the named volumes {} and all data in them",
            names.join(", ")
        );
        args.push("--volumes");
    }
    runner.exec(factory.compose(sh, &args))?;
    if !volumes && !dry_run {
        eprintln!("Named volumes kept (agent data is safe); `disinto down --volumes` deletes them");
    }
    Ok(())
}
