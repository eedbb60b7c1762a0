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

/// A registry's `WWW-Authenticate` challenge: `Basic`, or `Bearer` and where to get a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header (RFC 7235: a scheme, then `key="value"` pairs, values
/// that may hold commas inside their quotes); `None` for a scheme no registry uses.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| *c != ',')));
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.remove("realm")?,
            service: params.remove("service"),
            scope: params.remove("scope"),
        }),
        _ => None,
    }
}

/// The token a registry's token service answers (`token`, or OAuth2's `access_token`).
pub fn token_answer(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
    }
    let a: Answer = serde_json::from_slice(bytes).ok()?;
    a.token.or(a.access_token).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_as_registries_send_them() {
        assert_eq!(
            parse_challenge(r#"Basic realm="disinto-test""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:disinto/agents:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: Some("repository:disinto/agents:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(""), None);
        assert_eq!(token_answer(br#"{"access_token":"t"}"#), Some("t".into()));
        assert_eq!(token_answer(br#"{"token":""}"#), None);
    }

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
