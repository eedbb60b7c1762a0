//! Which releases an upgrade may move to: the registry's tags read as versions (`vX.Y.Z`,
//! semantic versioning's order), newer than what runs, within a channel (`patch`: same
//! minor; `minor`: same major; `major`: any), pre-releases only when asked.

use anyhow::{bail, Result};
use semver::Version;

/// How far an upgrade may go from the version that runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Channel {
    /// vX.Y.* only
    Patch,
    /// vX.*.* (the default: never across a major version on its own)
    #[default]
    Minor,
    /// Any newer release
    Major,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Patch => "patch",
            Channel::Minor => "minor",
            Channel::Major => "major",
        }
    }

    fn admits(self, from: &Version, to: &Version) -> bool {
        match self {
            Channel::Patch => to.major == from.major && to.minor == from.minor,
            Channel::Minor => to.major == from.major,
            Channel::Major => true,
        }
    }
}

/// A tag as a release version, if it is one (`v` and a semantic version, no build metadata).
fn release(tag: &str) -> Option<Version> {
    let v = Version::parse(tag.strip_prefix('v')?).ok()?;
    v.build.is_empty().then_some(v)
}

/// The release tags newer than `running` within `channel`, oldest first; pre-releases only
/// with `pre`. Tags that are not versions (`latest`, signatures) are not releases.
pub fn newer(running: &str, tags: &[String], channel: Channel, pre: bool) -> Result<Vec<String>> {
    let Some(from) = release(running) else {
        bail!("AGENTS_IMAGE={running:?} is not a release (vX.Y.Z): there is nothing to compare the registry's releases with");
    };
    let mut found: Vec<(Version, &String)> = tags
        .iter()
        .filter_map(|t| release(t).map(|v| (v, t)))
        .filter(|(v, _)| *v > from && (pre || v.pre.is_empty()) && channel.admits(&from, v))
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, t)| t.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn newer_releases_in_semver_order_within_the_channel() {
        let all = tags(&[
            "latest",
            "v0.10.0",
            "v0.2.0",
            "v0.1.1",
            "v1.0.0",
            "v0.2.1-rc.1",
            "sha256-abc.sig",
            "v0.1.0",
            "0.3.0",
            "v0.9.0+build",
        ]);
        assert_eq!(
            newer("v0.1.0", &all, Channel::Patch, false).unwrap(),
            ["v0.1.1"]
        );
        assert_eq!(
            newer("v0.1.0", &all, Channel::Minor, false).unwrap(),
            ["v0.1.1", "v0.2.0", "v0.10.0"]
        );
        assert_eq!(
            newer("v0.1.0", &all, Channel::Major, true).unwrap(),
            ["v0.1.1", "v0.2.0", "v0.2.1-rc.1", "v0.10.0", "v1.0.0"]
        );
        assert!(newer("v1.0.0", &all, Channel::Major, false)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_running_version_that_is_not_a_release_is_said() {
        let e = newer("ghcr.io/x/agents@sha256:ab", &[], Channel::Minor, false).unwrap_err();
        assert!(e.to_string().contains("is not a release"), "{e}");
    }
}
