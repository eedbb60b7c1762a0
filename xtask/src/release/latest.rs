//! Whether a release moves `latest`: only to the highest full release. A backport (v0.1.5 after
//! v0.2.0) and a pre-release leave it where it is, so `latest` never goes backwards.
//! Pure: the versions released so far come in (see `released_versions` in the release).

use std::fmt;

use semver::Version;

/// What a release does with `latest`, decided before its first step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Latest {
    /// The highest release so far: `latest` moves to it.
    Moves,
    /// A pre-release never holds `latest`.
    PreRelease,
    /// A higher full release exists (`vX.Y.Z`): `latest` stays on it.
    Behind(String),
}

impl Latest {
    /// The decision for `version`, given every version released so far (itself included or
    /// not: a resumed release finds its own tag). Pre-releases among them do not count: they
    /// never moved `latest`.
    pub fn decide(version: &Version, released: &[Version]) -> Latest {
        if !version.pre.is_empty() {
            return Latest::PreRelease;
        }
        match released
            .iter()
            .filter(|v| v.pre.is_empty() && *v > version)
            .max()
        {
            Some(higher) => Latest::Behind(format!("v{higher}")),
            None => Latest::Moves,
        }
    }

    pub fn moves(&self) -> bool {
        *self == Latest::Moves
    }
}

impl fmt::Display for Latest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Latest::Moves => f.write_str("latest moves to this release, the highest so far"),
            Latest::PreRelease => f.write_str("latest stays where it is: this is a pre-release"),
            Latest::Behind(higher) => write!(
                f,
                "latest stays on {higher}: it is a higher release than this one"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        disinto::model::image_ref::parse_version(text).unwrap()
    }

    fn decide(version: &str, released: &[&str]) -> Latest {
        let released: Vec<Version> = released.iter().map(|r| v(r)).collect();
        Latest::decide(&v(version), &released)
    }

    #[test]
    fn latest_only_moves_to_the_highest_release() {
        assert_eq!(decide("v0.1.0", &[]), Latest::Moves);
        assert_eq!(decide("v0.3.0", &["v0.1.0", "v0.2.0"]), Latest::Moves);
        // A backport.
        assert_eq!(
            decide("v0.1.5", &["v0.1.4", "v0.2.0", "v0.1.0"]),
            Latest::Behind("v0.2.0".into())
        );
        // Resumed: its own tag is there already.
        assert_eq!(decide("v0.2.0", &["v0.1.0", "v0.2.0"]), Latest::Moves);
        // Pre-releases never hold latest, so a higher one does not hold it back.
        assert_eq!(decide("v0.2.1", &["v0.2.0", "v0.3.0-rc.1"]), Latest::Moves);
        assert_eq!(decide("v0.3.0", &["v0.3.0-rc.1"]), Latest::Moves);
        assert_eq!(decide("v0.3.0-rc.2", &["v0.2.0"]), Latest::PreRelease);
        assert!(decide("v1.0.0", &["v0.9.9"]).moves());
        assert!(!decide("v1.0.0", &["v1.0.1"]).moves());
    }
}
