//! `disinto update --check`: are there releases newer than the one that runs (the registry's
//! tag list, semver order, within a channel)? Exit 10 when there is one, 0 when up to date.
//! And an alarm of its own: our release tags never move, so the tag that runs naming another
//! digest on the registry than the one this factory deployed is tampering or a mistake.

use std::path::Path;

use anyhow::{bail, Result};

use crate::engine::registry::Location;
use crate::factory::Factory;
use crate::model::channel::{self, Channel};
use crate::model::history::History;
use crate::model::image_ref::{AgentsImage, ImageRef};
use crate::model::signature::IMAGE_MANIFEST_TYPES;
use crate::Exit;

/// A newer release exists.
pub const NEWER: u8 = 10;
/// The running release's tag names another digest on the registry than the one deployed.
pub const TAG_MOVED: u8 = 11;

pub(crate) fn check(root: &Path, channel: Channel, pre: bool, json: bool) -> Result<()> {
    let factory = Factory::open(root)?;
    let running = match &factory.config.agents {
        AgentsImage::Release(v) => v.clone(),
        AgentsImage::Dev => {
            bail!("this factory runs dev mode (built from source): there is no release to compare")
        }
        AgentsImage::Reference(r) => bail!(
            "this factory runs the image {r}, not a release (vX.Y.Z): there is nothing to compare"
        ),
    };
    let reference = factory
        .config
        .agents
        .resolved(&factory.config.registry)
        .unwrap_or_default();
    let image = ImageRef::parse(&reference)?;
    let at = Location::of(&image)?;
    let tags = at.registry.tags(&at.path)?;
    let newer = channel::newer(&running, &tags, channel, pre)?;

    // What this factory deployed of the running version, by digest, if the history knows.
    let history = History::load(&factory.dir)?;
    let deployed = history
        .entries()
        .iter()
        .rev()
        .find(|d| d.runs() && d.version == running)
        .and_then(|d| ImageRef::parse(&d.image).ok())
        .and_then(|r| r.digest().map(str::to_string));
    let on_registry = at
        .registry
        .manifest(&at.path, &running, IMAGE_MANIFEST_TYPES)?
        .map(|(_, digest)| digest);
    let moved = match (&deployed, &on_registry) {
        (Some(d), Some(r)) if d != r => Some((d.clone(), r.clone())),
        _ => None,
    };

    if json {
        let value = serde_json::json!({
            "running": running,
            "channel": channel.name(),
            "newer": newer,
            "newest": newer.last(),
            "deployed_digest": deployed,
            "registry_digest": on_registry,
            "tag_moved": moved.is_some(),
        });
        println!("{value}");
    } else {
        match newer.last() {
            Some(newest) => println!(
                "{running} runs; newer in the {} channel: {} (`disinto upgrade {newest}`)",
                channel.name(),
                newer.join(", ")
            ),
            None => println!(
                "{running} runs: up to date in the {} channel",
                channel.name()
            ),
        }
        if on_registry.is_none() {
            println!("warning: {reference} is no longer on the registry");
        }
    }
    if let Some((deployed, registry)) = moved {
        eprintln!(
            "ALARM: {reference} names {registry} on the registry, but this factory deployed {deployed}: release tags never move, so this is tampering or a mistake; upgrade nothing until it is explained"
        );
        return Err(Exit(TAG_MOVED).into());
    }
    match newer.is_empty() {
        true => Ok(()),
        false => Err(Exit(NEWER).into()),
    }
}
