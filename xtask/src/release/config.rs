//! The release's settings, read once from the environment (then the checkout's `.env`):
//! where images go, which mirrors get the tag, the source URL stamped on the image, the
//! registry credentials and how often a push is retried. `docs/configuration.md` lists them.

use anyhow::{bail, Result};
use disinto::model::config::{var, Settings};
use disinto::model::image_ref::parse_registry;
use disinto::model::platform::Platform;

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
    /// The release's private signing key, cosign's encrypted PEM text (as a CI secret holds
    /// it). Only ever in the environment: cosign reads it itself (`env://`).
    pub const COSIGN_PRIVATE_KEY: &str = "COSIGN_PRIVATE_KEY";
    /// The password of that key, cosign's own name for it. Environment only.
    pub const COSIGN_PASSWORD: &str = "COSIGN_PASSWORD";
    /// The platforms every image is built for (`os/arch[/variant]`, comma or space
    /// separated); overrides the formula's `platforms`.
    pub const DISINTO_PLATFORMS: &str = "DISINTO_PLATFORMS";
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
    /// `DISINTO_PLATFORMS`, when set: the platforms to build, in order.
    pub platforms: Option<Vec<Platform>>,
    /// Absent until needed: a dry run or a release without push-image needs none.
    credentials: Option<Credentials>,
    missing_credentials: Option<String>,
    /// Why the release cannot sign (a key variable is missing), if it cannot. The key itself
    /// is not kept: cosign reads it from the environment the release inherited.
    missing_signing_key: Option<String>,
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
        let key = settings.from_environment(COSIGN_PRIVATE_KEY)?;
        let password = settings.from_environment(COSIGN_PASSWORD)?;
        let missing: Vec<&str> = [
            (
                COSIGN_PRIVATE_KEY,
                key.is_some_and(|k| !k.trim().is_empty()),
            ),
            // An empty password is a password (cosign generate-key-pair allows one); an
            // unset one would make cosign ask a terminal the release does not have.
            (COSIGN_PASSWORD, password.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| !set)
        .map(|(name, _)| name)
        .collect();
        let missing_signing_key = (!missing.is_empty()).then(|| {
            format!(
                "{} {} not set: a release signs every image with the project's key (COSIGN_PRIVATE_KEY, the PEM text, and COSIGN_PASSWORD; docs/release.md), or pass --unsigned to release unsigned images on purpose",
                missing.join(" and "),
                if missing.len() == 1 { "is" } else { "are" }
            )
        });
        let platforms = match settings.get(DISINTO_PLATFORMS)? {
            None => None,
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(
                Platform::parse_list(v).map_err(|e| anyhow::anyhow!("DISINTO_PLATFORMS: {e:#}"))?,
            ),
        };
        Ok(ReleaseConfig {
            registry,
            platforms,
            mirrors: settings.list(DISINTO_MIRRORS)?,
            source_url: settings
                .get(DISINTO_SOURCE_URL)?
                .filter(|v| !v.is_empty())
                .unwrap_or(DEFAULT_SOURCE_URL)
                .to_string(),
            push_attempts,
            credentials,
            missing_credentials,
            missing_signing_key,
        })
    }

    /// Whether the signing key is in the environment, or a one-line error naming both
    /// variables and `--unsigned`.
    pub fn signing_key(&self) -> Result<()> {
        match &self.missing_signing_key {
            Some(why) => bail!("{why}"),
            None => Ok(()),
        }
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
        assert_eq!(c.platforms, None);
        let c = config(&[("DISINTO_PLATFORMS", "linux/arm64 linux/amd64")]).unwrap();
        let names: Vec<String> = c
            .platforms
            .clone()
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(names, ["linux/arm64", "linux/amd64"]);
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
        let e = format!(
            "{:#}",
            config(&[("DISINTO_PLATFORMS", "linux/amd64,arm64")]).unwrap_err()
        );
        assert!(
            e.starts_with("DISINTO_PLATFORMS: platform \"arm64\" is not os/arch[/variant]"),
            "{e}"
        );
        let c = config(&[("GITHUB_TOKEN", "t0ken")]).unwrap();
        let e = format!("{:#}", c.credentials().unwrap_err());
        assert!(e.starts_with("GITHUB_ACTOR is not set"), "{e}");
        let c = config(&[("GITHUB_TOKEN", "t0ken"), ("GITHUB_ACTOR", "me")]).unwrap();
        assert!(!format!("{:?}", c).contains("t0ken"));
    }

    #[test]
    fn a_missing_signing_key_names_both_variables_and_unsigned() {
        for pairs in [
            &[][..],
            &[("COSIGN_PASSWORD", "pw")][..],
            &[("COSIGN_PRIVATE_KEY", "  "), ("COSIGN_PASSWORD", "pw")][..],
            &[(
                "COSIGN_PRIVATE_KEY",
                "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----",
            )][..],
        ] {
            let e = format!("{:#}", config(pairs).unwrap().signing_key().unwrap_err());
            assert!(
                e.contains("COSIGN_PRIVATE_KEY") && e.contains("COSIGN_PASSWORD"),
                "{e}"
            );
            assert!(e.contains("--unsigned") && !e.contains('\n'), "{e}");
        }
        let c = config(&[("COSIGN_PRIVATE_KEY", "pem"), ("COSIGN_PASSWORD", "")]).unwrap();
        c.signing_key().unwrap();
        assert!(!format!("{c:?}").contains("pem"));
    }
}
