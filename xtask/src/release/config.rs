//! The release's settings, read once from the environment (then the checkout's `.env`):
//! where images go, which mirrors get the tag, the source URL stamped on the image, the
//! registry credentials and how often a push is retried. `docs/configuration.md` lists them.

use anyhow::{bail, Result};
use disinto::model::config::{var, Settings};
use disinto::model::image_ref::parse_registry;

/// Release variables beyond the factory's (`disinto::model::config::var`).
pub mod release_var {
    /// Git remotes the release tag is also pushed to (comma or space separated).
    pub const DISINTO_MIRRORS: &str = "DISINTO_MIRRORS";
    /// The source URL stamped on the image (`org.opencontainers.image.source`).
    pub const DISINTO_SOURCE_URL: &str = "DISINTO_SOURCE_URL";
    /// Attempts for a registry operation that fails transiently (default 4).
    pub const DISINTO_PUSH_ATTEMPTS: &str = "DISINTO_PUSH_ATTEMPTS";
    /// The registry token (GHCR: a token with packages:write). Only ever on standard input.
    pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
    /// The user the token belongs to.
    pub const GITHUB_ACTOR: &str = "GITHUB_ACTOR";
}

use release_var::*;

const DEFAULT_SOURCE_URL: &str = "https://github.com/disinto/disinto";
const DEFAULT_PUSH_ATTEMPTS: u32 = 4;

/// Registry credentials: a user and a token.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ user: {:?}, token: *** }}", self.user)
    }
}

/// Everything a release reads from its environment, validated.
#[derive(Debug, Clone)]
pub struct ReleaseConfig {
    /// `DISINTO_REGISTRY`, default applied.
    pub registry: String,
    pub mirrors: Vec<String>,
    pub source_url: String,
    pub push_attempts: u32,
    /// Absent until needed: a dry run or a release without push-image needs none.
    credentials: Option<Credentials>,
    missing_credentials: Option<String>,
}

impl ReleaseConfig {
    pub fn from_settings(settings: &Settings) -> Result<ReleaseConfig> {
        let registry = parse_registry(settings.get(var::DISINTO_REGISTRY)?)?;
        let push_attempts = match settings.get(DISINTO_PUSH_ATTEMPTS)? {
            None | Some("") => DEFAULT_PUSH_ATTEMPTS,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => bail!("DISINTO_PUSH_ATTEMPTS={v:?} must be a whole number of at least 1"),
            },
        };
        // Credentials come from the process environment only: never from a file.
        let token = settings.from_environment(GITHUB_TOKEN)?.unwrap_or_default();
        let user = settings.from_environment(GITHUB_ACTOR)?.unwrap_or_default();
        let (credentials, missing_credentials) = if token.trim().is_empty() {
            (None, Some(format!("GITHUB_TOKEN is not set: a token with packages:write is needed to push to {} (docs/release.md)", disinto::model::image_ref::registry_host(&registry))))
        } else if user.trim().is_empty() {
            (
                None,
                Some("GITHUB_ACTOR is not set: set it to the user the token belongs to".into()),
            )
        } else {
            (
                Some(Credentials {
                    user: user.to_string(),
                    token: token.to_string(),
                }),
                None,
            )
        };
        Ok(ReleaseConfig {
            registry,
            mirrors: settings.list(DISINTO_MIRRORS)?,
            source_url: settings
                .get(DISINTO_SOURCE_URL)?
                .filter(|v| !v.is_empty())
                .unwrap_or(DEFAULT_SOURCE_URL)
                .to_string(),
            push_attempts,
            credentials,
            missing_credentials,
        })
    }

    /// The registry credentials, or a one-line error saying what to set.
    pub fn credentials(&self) -> Result<&Credentials> {
        match (&self.credentials, &self.missing_credentials) {
            (Some(c), _) => Ok(c),
            (None, Some(why)) => bail!("{why}"),
            (None, None) => bail!("no registry credentials"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(pairs: &[(&str, &str)]) -> Result<ReleaseConfig> {
        let process = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ReleaseConfig::from_settings(&Settings::from_maps(process, BTreeMap::new()))
    }

    #[test]
    fn defaults_and_lists() {
        let c = config(&[("DISINTO_MIRRORS", "codeberg, backup  other")]).unwrap();
        assert_eq!(c.registry, "ghcr.io/disinto");
        assert_eq!(c.mirrors, ["codeberg", "backup", "other"]);
        assert_eq!(c.push_attempts, 4);
        let e = format!("{:#}", c.credentials().unwrap_err());
        assert!(e.starts_with("GITHUB_TOKEN is not set"), "{e}");
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        let e = format!(
            "{:#}",
            config(&[("DISINTO_PUSH_ATTEMPTS", "0")]).unwrap_err()
        );
        assert!(e.starts_with("DISINTO_PUSH_ATTEMPTS=\"0\""), "{e}");
        let c = config(&[("GITHUB_TOKEN", "t0ken")]).unwrap();
        let e = format!("{:#}", c.credentials().unwrap_err());
        assert!(e.starts_with("GITHUB_ACTOR is not set"), "{e}");
        let c = config(&[("GITHUB_TOKEN", "t0ken"), ("GITHUB_ACTOR", "me")]).unwrap();
        assert!(!format!("{:?}", c).contains("t0ken"));
    }
}
