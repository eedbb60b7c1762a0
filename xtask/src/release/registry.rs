//! Talking to the image registry: a logged-in session in a throwaway Docker client config,
//! remote manifest lookups, and pushes with retries. The token only travels on stdin.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use disinto::engine::docker::last_line;

pub use super::config::Credentials;
use disinto::fsx::TempDir;

/// What the registry holds under a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The manifest digest (what `image@sha256:...` pins).
    pub digest: String,
    /// The config digest, equal to the local image id of the same image.
    pub config: String,
    /// The layers, bottom first: (digest, compressed size in bytes), what a pull downloads.
    pub layers: Vec<(String, u64)>,
}

impl Remote {
    /// The bytes a host that has `old` downloads to get this image: its layers `old` lacks.
    pub fn download_from(&self, old: &Remote) -> u64 {
        self.layers
            .iter()
            .filter(|(digest, _)| !old.layers.iter().any(|(d, _)| d == digest))
            .map(|(_, size)| size)
            .sum()
    }

    /// Every layer's compressed size: what a first pull downloads.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|(_, size)| size).sum()
    }
}

/// A logged-in registry session; its Docker config directory is deleted on drop, so the
/// credential never outlives the command.
pub struct Session {
    pub host: String,
    config: TempDir,
    attempts: u32,
}

impl Session {
    pub fn login(host: &str, credentials: &Credentials, attempts: u32) -> Result<Session> {
        let config = TempDir::new("docker-config")?;
        // With no `auths` at all, the Docker CLI hands logins to a desktop credential helper
        // (pass, secretservice) when one is installed, and the token would outlive this
        // directory. An entry keeps it in this file, which is deleted with the session.
        std::fs::write(
            config.path().join("config.json"),
            "{\"auths\": {\"disinto.invalid\": {}}}\n",
        )?;
        retry(&format!("docker login {host}"), attempts, || {
            crate::secret::login(config.path(), host, &credentials.user, &credentials.token)
        })?;
        Ok(Session {
            host: host.to_string(),
            config,
            attempts,
        })
    }

    pub fn config_dir(&self) -> &Path {
        self.config.path()
    }

    /// What the registry holds under `reference`, or `None` when it holds nothing there.
    pub fn inspect(&self, sh: &Shell, reference: &str) -> Result<Option<Remote>> {
        retry(&format!("looking up {reference}"), self.attempts, || {
            inspect_once(sh, self.config_dir(), reference)
        })
    }

    /// The manifest `docker manifest inspect -v` prints for `reference` (JSON), or `None`
    /// when the registry holds nothing there: for what [`Remote`] leaves out (annotations).
    pub fn inspect_json(&self, sh: &Shell, reference: &str) -> Result<Option<String>> {
        retry(&format!("looking up {reference}"), self.attempts, || {
            inspect_raw(sh, self.config_dir(), reference)
        })
    }

    /// Runs `cmd` (cosign, docker pull) in this session's login: retried like a push, its
    /// output returned on success, its last line of error otherwise.
    pub fn run(
        &self,
        what: &str,
        mut cmd: impl FnMut() -> std::process::Command,
    ) -> Result<std::process::Output> {
        retry(what, self.attempts, || {
            let out = cmd()
                .env("DOCKER_CONFIG", self.config_dir())
                .stdin(std::process::Stdio::null())
                .output()
                .with_context(|| format!("cannot run {what}"))?;
            if !out.status.success() {
                bail!("{}", last_line(&out.stderr));
            }
            Ok(out)
        })
    }

    /// `docker push reference`, retried with backoff on transient failures; returns the
    /// manifest digest the registry answered with.
    pub fn push(&self, sh: &Shell, reference: &str) -> Result<String> {
        let config = self.config_dir();
        retry(&format!("docker push {reference}"), self.attempts, || {
            let out = with_config(push_cmd(sh, reference), config)?;
            if !out.status.success() {
                bail!("{}", last_line(&out.stderr));
            }
            parse_push_digest(&String::from_utf8_lossy(&out.stdout))
                .with_context(|| format!("docker push {reference} reported no digest"))
        })
    }
}

/// The digest in `docker push`'s closing line (`v0.2.0: digest: sha256:… size: 528`).
pub fn parse_push_digest(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .find_map(|l| l.split_once("digest: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .filter(|d| d.starts_with("sha256:"))
        .map(str::to_string)
}

/// Runs a docker command in the session's client config, whatever its exit status.
fn with_config(cmd: xshell::Cmd<'_>, config: &Path) -> Result<std::process::Output> {
    Ok(cmd
        .env("DOCKER_CONFIG", config)
        .quiet()
        .ignore_status()
        .output()?)
}

/// Plain HTTP is only ever allowed to loopback registries, as Docker itself does.
pub(crate) fn is_loopback(reference: &str) -> bool {
    let host = disinto::model::image_ref::registry_host(reference);
    let name = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    name == "localhost"
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The manifest lookup, as run and as a dry run prints it.
pub fn inspect_cmd<'a>(sh: &'a Shell, reference: &str) -> xshell::Cmd<'a> {
    let insecure = is_loopback(reference).then_some("--insecure");
    cmd!(sh, "docker manifest inspect {insecure...} -v {reference}")
}

/// The push, as run and as a dry run prints it.
pub fn push_cmd<'a>(sh: &'a Shell, reference: &str) -> xshell::Cmd<'a> {
    cmd!(sh, "docker push {reference}")
}

/// The login as a dry run prints it: the same arguments the session passes, token masked.
pub fn login_lines(host: &str) -> [String; 2] {
    let args = crate::secret::login_args(host, "\"$GITHUB_ACTOR\"").join(" ");
    [
        "export DOCKER_CONFIG=$(mktemp -d)   # throwaway, removed afterwards".into(),
        format!("printf '%s' \"$GITHUB_TOKEN\" | docker {args}   # token: ***"),
    ]
}

/// The end of a session, as a dry run prints it.
pub const LOGOUT_LINE: &str = "rm -rf \"$DOCKER_CONFIG\"";

fn inspect_once(sh: &Shell, config: &Path, reference: &str) -> Result<Option<Remote>> {
    match inspect_raw(sh, config, reference)? {
        Some(json) => parse_manifest_inspect(&json).map(Some),
        None => Ok(None),
    }
}

fn inspect_raw(sh: &Shell, config: &Path, reference: &str) -> Result<Option<String>> {
    let out = with_config(inspect_cmd(sh, reference), config)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("no such manifest") || stderr.contains("manifest unknown") {
            return Ok(None);
        }
        bail!("{}", last_line(&out.stderr));
    }
    Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// Reads the manifest and config digests from `docker manifest inspect -v` output.
pub fn parse_manifest_inspect(json: &str) -> Result<Remote> {
    let value: serde_json::Value =
        serde_json::from_str(json).context("docker manifest inspect printed no JSON")?;
    // A multi-platform index prints a list; ours are single-platform, take the first.
    let entry = match &value {
        serde_json::Value::Array(items) => items.first().cloned().unwrap_or_default(),
        other => other.clone(),
    };
    let digest = entry["Descriptor"]["digest"]
        .as_str()
        .context("no Descriptor.digest in docker manifest inspect output")?;
    let manifest = ["SchemaV2Manifest", "OCIManifest"]
        .iter()
        .map(|k| &entry[*k])
        .find(|m| !m.is_null())
        .context("no image manifest in docker manifest inspect output")?;
    let config = manifest["config"]["digest"]
        .as_str()
        .context("no config digest in the manifest")?;
    let layers = manifest["layers"]
        .as_array()
        .map(|layers| {
            layers
                .iter()
                .filter_map(|l| Some((l["digest"].as_str()?.to_string(), l["size"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Remote {
        digest: digest.to_string(),
        config: config.to_string(),
        layers,
    })
}

/// Whether a registry error is worth retrying: the network or the server, not the request.
pub fn is_transient(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    let permanent = [
        "denied",
        "unauthorized",
        "authentication required",
        "forbidden",
        "name unknown",
        "invalid reference",
    ];
    if permanent.iter().any(|p| m.contains(p)) {
        return false;
    }
    let transient = [
        "connection refused",
        "connection reset",
        "timeout",
        "timed out",
        "eof",
        "tls handshake",
        "no route to host",
        "temporary failure",
        "500 internal",
        "502 bad gateway",
        "503 service",
        "504 gateway",
        "too many requests",
        "toomanyrequests",
        "429",
        "broken pipe",
    ];
    transient.iter().any(|t| m.contains(t))
}

/// Runs `f` until it succeeds, fails permanently, or runs out of attempts (1s, 2s, 4s, ...).
pub fn retry<T>(what: &str, attempts: u32, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let attempts = attempts.max(1);
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=attempts {
        disinto::signals::check()?;
        match f() {
            Ok(value) => return Ok(value),
            Err(e) => {
                let message = format!("{e:#}");
                if !is_transient(&message) || attempt == attempts {
                    let tried = if attempt > 1 {
                        format!(" (after {attempt} attempts)")
                    } else {
                        String::new()
                    };
                    bail!("{what} failed{tried}: {message}");
                }
                eprintln!(
                    "  {what}: {message}; retrying in {}s ({attempt}/{attempts})",
                    delay.as_secs()
                );
                disinto::signals::sleep(delay)?;
                delay *= 2;
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// disinto's registry client on the release's registry, logged in with its token (for what
/// the Docker CLI cannot push: image indexes, the bundle).
pub(crate) fn client(
    config: &super::config::ReleaseConfig,
) -> Result<disinto::engine::registry::Registry> {
    let host = disinto::model::image_ref::registry_host(&config.registry);
    let credentials = config.credentials()?;
    Ok(
        disinto::engine::registry::Registry::new(&host)?.with_credentials(
            disinto::model::docker_config::Credentials::Basic {
                user: credentials.user.clone(),
                password: credentials.token.clone(),
            },
        ),
    )
}

/// The repository's path on the release's registry (`REGISTRY/NAME` without the host).
pub(crate) fn repository_path(
    config: &super::config::ReleaseConfig,
    repository: &str,
) -> Result<String> {
    let host = disinto::model::image_ref::registry_host(&config.registry);
    repository
        .strip_prefix(&format!("{host}/"))
        .map(str::to_string)
        .with_context(|| format!("{repository} names no repository on {host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_inspect_output_is_parsed() {
        let json = r#"{"Ref":"127.0.0.1:5999/x/base:v1","Descriptor":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:df7b","size":528},
            "SchemaV2Manifest":{"schemaVersion":2,"config":{"digest":"sha256:0f1e"},"layers":[
              {"digest":"sha256:a","size":900},{"digest":"sha256:b","size":100}]}}"#;
        let remote = parse_manifest_inspect(json).unwrap();
        assert_eq!(remote.digest, "sha256:df7b");
        assert_eq!(remote.config, "sha256:0f1e");
        assert_eq!(remote.size(), 1000);
        let older = Remote {
            layers: vec![("sha256:a".into(), 900), ("sha256:old".into(), 50)],
            ..remote.clone()
        };
        assert_eq!(remote.download_from(&older), 100);
        assert_eq!(remote.download_from(&remote), 0);
        let oci = format!("[{}]", json.replace("SchemaV2Manifest", "OCIManifest"));
        assert_eq!(parse_manifest_inspect(&oci).unwrap(), remote);
        assert!(parse_manifest_inspect("{}").is_err());
        assert!(parse_manifest_inspect("not json").is_err());
    }

    #[test]
    fn push_digest_is_read_from_the_closing_line() {
        let log = "The push refers to repository [127.0.0.1:5999/x/base]\n34bab2a61c1e: Pushed\nv1: digest: sha256:df7b59 size: 528\n";
        assert_eq!(parse_push_digest(log).as_deref(), Some("sha256:df7b59"));
        assert_eq!(parse_push_digest("34bab2a61c1e: Pushed\n"), None);
    }

    #[test]
    fn transient_failures_are_told_apart() {
        for m in [
            "dial tcp 127.0.0.1:5000: connect: connection refused",
            "net/http: TLS handshake timeout",
            "received unexpected HTTP status: 503 Service Unavailable",
            "unexpected EOF",
        ] {
            assert!(is_transient(m), "{m}");
        }
        for m in [
            "denied: requested access to the resource is denied",
            "unauthorized: authentication required",
            "tag does not exist",
        ] {
            assert!(!is_transient(m), "{m}");
        }
    }

    #[test]
    fn retry_stops_at_a_permanent_failure() {
        let mut calls = 0;
        let r: Result<()> = retry("x", 4, || {
            calls += 1;
            bail!("denied: no")
        });
        assert_eq!(calls, 1);
        assert_eq!(format!("{:#}", r.unwrap_err()), "x failed: denied: no");
    }

    #[test]
    fn loopback_registries_only_get_plain_http() {
        assert!(is_loopback("127.0.0.1:5000/disinto/agents:v1"));
        assert!(is_loopback("localhost:5000/agents:v1"));
        assert!(!is_loopback("ghcr.io/disinto/agents:v1"));
        assert!(!is_loopback("127.example.com/agents:v1"));
    }

    #[test]
    fn credentials_never_print_the_token() {
        let c = Credentials {
            user: "me".into(),
            token: "s3cr3t".into(),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
