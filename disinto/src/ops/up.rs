//! `disinto up [SERVICE...]`: the rollout ([`super::rollout`]) on the image the factory's
//! configuration names.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use xshell::Shell;

use super::rollout::Rollout;
use crate::factory::Factory;

pub(crate) fn up(
    sh: &Shell,
    root: &Path,
    services: Vec<String>,
    dry_run: bool,
    health_timeout: Duration,
) -> Result<()> {
    Rollout::new(services, dry_run, health_timeout).run(sh, &Factory::open(root)?)
}
