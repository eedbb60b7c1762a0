//! `disinto up [SERVICE...]`: the rollout ([`super::rollout`]) on the image the factory's
//! configuration names.

use std::path::Path;

use anyhow::Result;
use xshell::Shell;

use super::rollout::Rollout;
use crate::factory::Factory;

pub(crate) fn up(sh: &Shell, root: &Path, rollout: Rollout) -> Result<()> {
    rollout.run(sh, &Factory::open(root)?)
}
