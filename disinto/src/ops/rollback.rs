//! `disinto rollback [VERSION]`: put an earlier version back (by default the one deployed
//! before the current one) and keep it in `.env` ([`super::back`]).

use std::path::Path;

use anyhow::Result;
use xshell::Shell;

use super::back::back_to;
use super::rollout::Rollout;

pub(crate) fn rollback(
    sh: &Shell,
    root: &Path,
    version: Option<String>,
    rollout: Rollout,
) -> Result<()> {
    back_to(sh, root, version, rollout)
}
