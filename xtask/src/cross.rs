//! STUB (the cross helper's module replaces this at merge): building for another platform.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use disinto::model::platform::Platform;

pub fn base_for(base: &str, platform: &Platform) -> Result<String> {
    let (name, tag) = match base.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ => (base, "latest"),
    };
    Ok(format!("{name}:{tag}-{}", platform.tag_part()))
}

pub fn engine_platform() -> Result<Platform> {
    let out =
        disinto::engine::docker::run(&["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    Platform::parse(out.trim())
}

pub struct Toolchain {
    target: Option<String>,
}

pub fn toolchain(platform: &Platform, engine: &Platform) -> Result<Toolchain> {
    if platform == engine {
        return Ok(Toolchain { target: None });
    }
    bail!("stub")
}

pub fn check(platform: &Platform, engine: &Platform, _base: &str) -> Result<()> {
    toolchain(platform, engine).map(drop)
}

impl Toolchain {
    pub fn build_command<'a>(&self, sh: &'a xshell::Shell, _target_dir: &Path) -> xshell::Cmd<'a> {
        xshell::cmd!(sh, "cargo build --quiet --release --locked -p disinto")
    }
    pub fn binary(&self, target_dir: &Path) -> PathBuf {
        match &self.target {
            None => target_dir.join("release/disinto"),
            Some(t) => target_dir.join(t).join("release/disinto"),
        }
    }
}
