//! The operator's Docker client configuration (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): where the credentials for a registry are, as `docker pull` finds
//! them: a credential helper for that host, else the default store, else the file's `auths`.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use base64::Engine as _;
use serde::Deserialize;

/// Where the credentials for one registry come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// None: the registry is asked anonymously.
    Anonymous,
    /// A user name and password (or token), from `auths`.
    Basic { user: String, password: String },
    /// A helper program, `docker-credential-<name>`, asked with the host on its stdin.
    Helper(String),
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The hosts Docker Hub answers to, all keyed as `docker login` keys them.
const DOCKER_HUB: [&str; 4] = [
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "https://index.docker.io/v1/",
];

/// The host an `auths` key names: keys are written `host`, `https://host` or
/// `https://host/v1/` by different versions of `docker login`.
fn key_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn same_host(key: &str, host: &str) -> bool {
    let hub = |h: &str| DOCKER_HUB.contains(&h);
    let k = key_host(key);
    k == host || (hub(k) && hub(host))
}

/// Where the credentials of `host` are, by the config file `bytes` (named `source` in
/// errors); a file that is not Docker's JSON is an error naming it.
pub fn credentials_for(bytes: &[u8], source: &str, host: &str) -> Result<Credentials> {
    let config: ConfigFile = serde_json::from_slice(bytes)
        .map_err(|e| anyhow!("{source} is not a Docker client configuration ({e})"))?;
    if let Some((_, helper)) = config.cred_helpers.iter().find(|(k, _)| same_host(k, host)) {
        return Ok(Credentials::Helper(helper.clone()));
    }
    if let Some(store) = config.creds_store.filter(|s| !s.is_empty()) {
        return Ok(Credentials::Helper(store));
    }
    let Some((_, entry)) = config.auths.iter().find(|(k, _)| same_host(k, host)) else {
        return Ok(Credentials::Anonymous);
    };
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Credentials::Basic {
            user: user.clone(),
            password: password.clone(),
        });
    }
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(Credentials::Anonymous);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(|| anyhow!("{source}: the auth of {host} is not base64 of user:password"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| anyhow!("{source}: the auth of {host} is not base64 of user:password"))?;
    Ok(Credentials::Basic {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// What a credential helper answers to `get`.
#[derive(Debug, Deserialize)]
pub struct HelperAnswer {
    #[serde(rename = "Username")]
    pub username: String,
    #[serde(rename = "Secret")]
    pub secret: String,
}

/// Reads a credential helper's answer; `None` for what is no answer.
pub fn helper_answer(bytes: &[u8]) -> Option<Credentials> {
    let answer: HelperAnswer = serde_json::from_slice(bytes).ok()?;
    Some(Credentials::Basic {
        user: answer.username,
        password: answer.secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_finds_credentials_in_this_order() {
        // base64("u:p:w") — a password may hold a colon.
        let file = br#"{"auths":{"https://127.0.0.1:5000/v1/":{"auth":"dTpwOnc="},"ghcr.io":{}},
            "credHelpers":{"gcr.io":"gcloud"}}"#;
        assert_eq!(
            credentials_for(file, "c", "127.0.0.1:5000").unwrap(),
            Credentials::Basic {
                user: "u".into(),
                password: "p:w".into()
            }
        );
        assert_eq!(
            credentials_for(file, "c", "gcr.io").unwrap(),
            Credentials::Helper("gcloud".into())
        );
        assert_eq!(
            credentials_for(file, "c", "ghcr.io").unwrap(),
            Credentials::Anonymous
        );
        assert_eq!(
            credentials_for(file, "c", "quay.io").unwrap(),
            Credentials::Anonymous
        );
        let store = br#"{"auths":{"ghcr.io":{}},"credsStore":"pass"}"#;
        assert_eq!(
            credentials_for(store, "c", "ghcr.io").unwrap(),
            Credentials::Helper("pass".into())
        );
        let hub = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"YTpi"}}}"#;
        assert!(matches!(
            credentials_for(hub, "c", "registry-1.docker.io").unwrap(),
            Credentials::Basic { .. }
        ));
    }

    #[test]
    fn a_config_that_is_not_dockers_is_named() {
        let e = credentials_for(b"not json", "/x/config.json", "h").unwrap_err();
        assert!(e.to_string().contains("/x/config.json"), "{e}");
        let e = credentials_for(br#"{"auths":{"h":{"auth":"%%%"}}}"#, "c", "h").unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
        assert_eq!(
            helper_answer(br#"{"ServerURL":"h","Username":"u","Secret":"s"}"#),
            Some(Credentials::Basic {
                user: "u".into(),
                password: "s".into()
            })
        );
        assert_eq!(
            helper_answer(b"credentials not found in native keychain"),
            None
        );
    }
}
