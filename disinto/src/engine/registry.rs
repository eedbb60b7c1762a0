//! A small registry client (the distribution API's GETs of manifests and blobs), for reading
//! signatures before anything is pulled: every request time-limited, every body size-limited,
//! HTTPS unless the registry is on loopback or named in `DISINTO_INSECURE_REGISTRIES`, and the
//! operator's own Docker credentials (`auths`, or a credential helper asked on stdin), sent
//! only once a registry asks (Basic, or a Bearer token from its token service).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;

use super::poll::{self, Look};
use crate::model::docker_config::{
    credentials_for, helper_answer, parse_challenge, token_answer, Challenge, Credentials,
};
use crate::model::image_ref::ImageRef;
use crate::model::index::{self, Entry};
use crate::model::keys::TrustedKey;
use crate::model::signature::{
    self, Attestation, Descriptor, Signed, IMAGE_MANIFEST_TYPES, MAX_MANIFEST,
    SIGNATURE_MANIFEST_TYPES,
};

/// Registries (host or host:port, comma- or space-separated) read over plain HTTP although
/// they are not on loopback: a private registry the operator vouches for.
pub const INSECURE_REGISTRIES_VAR: &str = "DISINTO_INSECURE_REGISTRIES";
/// Seconds one request may take, all of it (connect, answer, body).
pub const TIMEOUT_VAR: &str = "DISINTO_REGISTRY_TIMEOUT";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// A page of a thousand tags is a few tens of KiB.
const MAX_TAG_PAGE: u64 = 1 << 20;
/// More tags than a release history has: a registry that pages forever is cut off here.
const MAX_TAGS: usize = 100_000;
/// A token answer or an error page is small.
const MAX_SMALL: u64 = 64 << 10;

/// One registry, with the credentials and tokens it asked for, reused for every request.
pub struct Registry {
    agent: ureq::Agent,
    host: String,
    base: String,
    timeout: Duration,
    /// The Authorization header each repository's requests carry, once the registry asked.
    auth: RefCell<BTreeMap<String, String>>,
    credentials: RefCell<Option<Credentials>>,
}

/// A manifest as the registry served it: its bytes, their digest, and its content type.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub content_type: Option<String>,
}

impl Fetched {
    /// The platform entries when this is an image index; `None` for a single image.
    pub fn index(&self) -> Result<Option<Vec<Entry>>> {
        match index::is_index(&self.bytes, self.content_type.as_deref()) {
            true => Ok(Some(index::parse(&self.bytes)?)),
            false => Ok(None),
        }
    }
}

/// An image's place in a registry: the registry and the repository's path in it.
pub struct Location {
    pub registry: Registry,
    pub path: String,
}

/// Whether `host` (`name[:port]`) is read over plain HTTP: loopback, or named by the operator.
pub fn insecure(host: &str, named: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name == "localhost"
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || named
            .split([',', ' '])
            .any(|n| !n.is_empty() && (n == host || n == name))
}

impl Location {
    /// Where `image` lives: its registry (Docker Hub's API host for `docker.io`) and path.
    pub fn of(image: &ImageRef) -> Result<Location> {
        let host = match image.registry() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            other => other,
        };
        let path = match image
            .repository()
            .strip_prefix(&format!("{}/", image.registry()))
        {
            Some(path) => path.to_string(),
            None if !image.repository().contains('/') => format!("library/{}", image.repository()),
            None => image.repository().to_string(),
        };
        Ok(Location {
            registry: Registry::new(host)?,
            path,
        })
    }
}

impl Registry {
    pub fn new(host: &str) -> Result<Registry> {
        let named = std::env::var(INSECURE_REGISTRIES_VAR).unwrap_or_default();
        let scheme = match insecure(host, &named) {
            true => "http",
            false => "https",
        };
        let timeout = match std::env::var(TIMEOUT_VAR) {
            Ok(v) if !v.is_empty() => v
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0 && *s < 3600.0)
                .map(Duration::from_secs_f64)
                .with_context(|| format!("{TIMEOUT_VAR}={v:?} is not a number of seconds"))?,
            _ => DEFAULT_TIMEOUT,
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // A registry may send blobs to a storage host; never with our credentials.
            .max_redirects(5)
            .user_agent(concat!("disinto/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Registry {
            agent,
            host: host.to_string(),
            base: format!("{scheme}://{host}"),
            timeout,
            auth: RefCell::new(BTreeMap::new()),
            credentials: RefCell::new(None),
        })
    }

    /// This registry with `credentials` instead of the Docker configuration's (a release's
    /// token, which it holds and never writes down).
    pub fn with_credentials(self, credentials: Credentials) -> Registry {
        *self.credentials.borrow_mut() = Some(credentials);
        self
    }

    /// The manifest `reference` (a tag or a digest) of `path`, and its digest; `None` when
    /// the registry has none (404). At most [`MAX_MANIFEST`] bytes.
    pub fn manifest(
        &self,
        path: &str,
        reference: &str,
        accept: &str,
    ) -> Result<Option<(Vec<u8>, String)>> {
        Ok(self
            .fetch_manifest(path, reference, accept)?
            .map(|f| (f.bytes, f.digest)))
    }

    /// [`Registry::manifest`], with the content type it was served as: what tells an image
    /// index from a single image when the bytes do not say.
    pub fn fetch_manifest(
        &self,
        path: &str,
        reference: &str,
        accept: &str,
    ) -> Result<Option<Fetched>> {
        let url = format!("{}/v2/{path}/manifests/{reference}", self.base);
        match self.get_typed(path, &url, accept, MAX_MANIFEST)? {
            (404, _, _) => Ok(None),
            (200, content_type, bytes) => {
                let digest = signature::sha256_digest(&bytes);
                Ok(Some(Fetched {
                    bytes,
                    digest,
                    content_type,
                }))
            }
            (status, _, _) => bail!("{} answered {status} for {path}:{reference}", self.host),
        }
    }

    /// Every tag of `path` (`/v2/<path>/tags/list`), page by page as the distribution spec
    /// pages (`n` and `last`): a registry that answers fewer than asked has no more.
    pub fn tags(&self, path: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        const PAGE: usize = 1000;
        let mut all: Vec<String> = Vec::new();
        loop {
            let mut url = format!("{}/v2/{path}/tags/list?n={PAGE}", self.base);
            if let Some(last) = all.last() {
                url.push_str(&format!("&last={last}"));
            }
            let page = match self.get(path, &url, "application/json", MAX_TAG_PAGE)? {
                (404, _) => bail!("{} has no repository {path}", self.host),
                (200, body) => serde_json::from_slice::<Page>(&body).with_context(|| {
                    format!("{} answered a tag list that is not JSON", self.host)
                })?,
                (status, _) => bail!("{} answered {status} for the tags of {path}", self.host),
            };
            let tags = page.tags.unwrap_or_default();
            let done = tags.len() < PAGE || tags.last() == all.last();
            all.extend(tags);
            if done || all.len() > MAX_TAGS {
                return Ok(all);
            }
        }
    }

    /// The blob `descriptor` names in `path`, at most `max` bytes (its size is checked by the
    /// caller against the descriptor, with its digest).
    pub fn blob(&self, path: &str, descriptor: &Descriptor, max: u64) -> Result<Vec<u8>> {
        if descriptor.size > max {
            bail!(
                "blob {} is {} bytes, more than {max}",
                descriptor.digest,
                descriptor.size
            );
        }
        let digest = signature::check_digest(&descriptor.digest)?;
        let url = format!("{}/v2/{path}/blobs/{digest}", self.base);
        match self.get(path, &url, "*/*", max)? {
            (200, body) => Ok(body),
            (status, _) => bail!(
                "{} answered {status} for blob {digest} of {path}",
                self.host
            ),
        }
    }

    /// GETs `url` (of repository `path`), answering one authentication challenge: the status
    /// and the body, at most `max` bytes.
    fn get(&self, path: &str, url: &str, accept: &str, max: u64) -> Result<(u16, Vec<u8>)> {
        let (status, _, body) = self.get_typed(path, url, accept, max)?;
        Ok((status, body))
    }

    /// [`Registry::get`], with the answer's `Content-Type`.
    fn get_typed(
        &self,
        path: &str,
        url: &str,
        accept: &str,
        max: u64,
    ) -> Result<(u16, Option<String>, Vec<u8>)> {
        for asked in [false, true] {
            let mut request = self.agent.get(url).header("Accept", accept);
            if let Some(auth) = self.auth.borrow().get(path) {
                request = request.header("Authorization", auth);
            }
            let mut response = request.call().map_err(|e| self.unreachable(e))?;
            let status = response.status().as_u16();
            if status == 401 && !asked {
                self.answer(path, &response)?;
                continue;
            }
            if status == 401 || status == 403 {
                bail!(
                    "{} refused access ({status}) to {path}: `docker login {}` with an account that may pull it",
                    self.host,
                    self.host
                );
            }
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|h| h.to_str().ok())
                .map(|t| t.split(';').next().unwrap_or(t).trim().to_string());
            let limit = if status == 200 { max } else { MAX_SMALL };
            let body = response
                .body_mut()
                .with_config()
                .limit(limit)
                .read_to_vec()
                .map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(_) => {
                        anyhow!("{} sent more than {limit} bytes for {url}", self.host)
                    }
                    e => self.unreachable(e),
                })?;
            return Ok((status, content_type, body));
        }
        bail!("{} asked for authentication twice", self.host)
    }

    /// Sends `method` to `url` (of repository `path`) with `body`, answering one
    /// authentication challenge (a push asks for its own scope): the status and the
    /// `Location` header.
    fn send(
        &self,
        method: &str,
        path: &str,
        url: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(u16, Option<String>)> {
        for asked in [false, true] {
            let auth = self.auth.borrow().get(path).cloned();
            let mut response = match method {
                "HEAD" => {
                    let mut r = self.agent.head(url);
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    r.call()
                }
                "POST" => {
                    let mut r = self.agent.post(url);
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    r.header("Content-Type", content_type).send(body)
                }
                _ => {
                    let mut r = self.agent.put(url);
                    if let Some(a) = &auth {
                        r = r.header("Authorization", a);
                    }
                    r.header("Content-Type", content_type).send(body)
                }
            }
            .map_err(|e| self.unreachable(e))?;
            let status = response.status().as_u16();
            if status == 401 && !asked {
                self.answer(path, &response)?;
                continue;
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|h| h.to_str().ok())
                .map(str::to_string);
            // Drained, so the connection can serve the next request.
            let _ = response
                .body_mut()
                .with_config()
                .limit(MAX_SMALL)
                .read_to_vec();
            return Ok((status, location));
        }
        bail!("{} asked for authentication twice", self.host)
    }

    /// Pushes `bytes` as a blob of `path` (unless the registry has it): its digest.
    pub fn push_blob(&self, path: &str, bytes: &[u8]) -> Result<String> {
        let digest = signature::sha256_digest(bytes);
        let url = format!("{}/v2/{path}/blobs/{digest}", self.base);
        if self.send("HEAD", path, &url, "", &[])?.0 == 200 {
            return Ok(digest);
        }
        let start = format!("{}/v2/{path}/blobs/uploads/", self.base);
        let (status, location) =
            self.send("POST", path, &start, "application/octet-stream", &[])?;
        let Some(location) = location.filter(|_| status == 202) else {
            bail!("{} answered {status} to an upload to {path}", self.host);
        };
        let location = match location.starts_with('/') {
            true => format!("{}{location}", self.base),
            false => location,
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        match self
            .send("PUT", path, &put, "application/octet-stream", bytes)?
            .0
        {
            201 => Ok(digest),
            status => bail!(
                "{} answered {status} to the upload of {digest} to {path}",
                self.host
            ),
        }
    }

    /// Pushes a manifest of `media_type` under `tag` of `path`: its digest.
    pub fn push_manifest(
        &self,
        path: &str,
        tag: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let url = format!("{}/v2/{path}/manifests/{tag}", self.base);
        match self.send("PUT", path, &url, media_type, bytes)?.0 {
            201 => Ok(signature::sha256_digest(bytes)),
            status => bail!(
                "{} answered {status} to the manifest {path}:{tag}",
                self.host
            ),
        }
    }

    /// Answers a 401's challenge: the Authorization header `path`'s next requests carry.
    fn answer(&self, path: &str, response: &ureq::http::Response<ureq::Body>) -> Result<()> {
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|h| h.to_str().ok())
            .and_then(parse_challenge)
            .with_context(|| {
                format!("{} answered 401 with no challenge disinto knows", self.host)
            })?;
        let auth = self.authorize(path, &challenge)?;
        self.auth.borrow_mut().insert(path.to_string(), auth);
        Ok(())
    }

    fn unreachable(&self, e: ureq::Error) -> anyhow::Error {
        match e {
            ureq::Error::Timeout(_) => anyhow!(
                "{} did not answer within {}s ({TIMEOUT_VAR})",
                self.host,
                self.timeout.as_secs_f64()
            ),
            e => anyhow!("cannot reach {} ({e})", self.host),
        }
    }

    /// The Authorization header that answers `challenge` for `path`.
    fn authorize(&self, path: &str, challenge: &Challenge) -> Result<String> {
        let basic = match self.credentials()? {
            Credentials::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            _ => None,
        };
        match challenge {
            Challenge::Basic => basic.with_context(|| {
                format!(
                    "{} answered 401, asking for a login: `docker login {}`",
                    self.host, self.host
                )
            }),
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                // The token service gets the password: over HTTPS, or where the registry
                // itself is allowed plain HTTP.
                let realm_host = realm
                    .strip_prefix("https://")
                    .or_else(|| realm.strip_prefix("http://"))
                    .and_then(|r| r.split('/').next())
                    .with_context(|| {
                        format!("{}'s token service {realm:?} is not a URL", self.host)
                    })?;
                let named = std::env::var(INSECURE_REGISTRIES_VAR).unwrap_or_default();
                if realm.starts_with("http://") && !insecure(realm_host, &named) {
                    bail!(
                        "{}'s token service {realm} is plain HTTP: refused",
                        self.host
                    );
                }
                let scope = scope
                    .clone()
                    .unwrap_or_else(|| format!("repository:{path}:pull"));
                let mut request = self.agent.get(realm).query("scope", &scope);
                if let Some(service) = service {
                    request = request.query("service", service);
                }
                if let Some(basic) = &basic {
                    request = request.header("Authorization", basic);
                }
                let mut response = request.call().map_err(|e| self.unreachable(e))?;
                let status = response.status().as_u16();
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_SMALL)
                    .read_to_vec()
                    .map_err(|e| self.unreachable(e))?;
                if status != 200 {
                    bail!(
                        "{}'s token service answered {status} (the registry answered 401): `docker login {}`",
                        self.host,
                        self.host
                    );
                }
                let token = token_answer(&body)
                    .with_context(|| format!("{}'s token service sent no token", self.host))?;
                Ok(format!("Bearer {token}"))
            }
        }
    }

    /// The operator's credentials for this registry, read once (and only when asked for).
    fn credentials(&self) -> Result<Credentials> {
        if let Some(c) = self.credentials.borrow().as_ref() {
            return Ok(c.clone());
        }
        let found = docker_credentials(&self.host, self.timeout)?;
        *self.credentials.borrow_mut() = Some(found.clone());
        Ok(found)
    }
}

/// The Docker client configuration file, as the docker CLI finds it.
fn docker_config_file() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json")),
    }
}

/// The credentials the operator's Docker uses for `host`: a helper's answer, `auths`, or none.
pub fn docker_credentials(host: &str, timeout: Duration) -> Result<Credentials> {
    let Some(file) = docker_config_file() else {
        return Ok(Credentials::Anonymous);
    };
    let Some(bytes) = crate::fsx::read_regular(&file, 1 << 20)? else {
        return Ok(Credentials::Anonymous);
    };
    let key = match host {
        "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    };
    match credentials_for(&bytes, &file.display().to_string(), host)? {
        Credentials::Helper(name) => ask_helper(&name, key, timeout),
        found => Ok(found),
    }
}

/// `docker-credential-NAME get`, the host on its stdin, as the docker CLI asks it; the secret
/// comes back on its stdout and goes nowhere else. "Not found" is no credentials.
fn ask_helper(name: &str, host: &str, timeout: Duration) -> Result<Credentials> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        bail!("credential helper {name:?} in the Docker configuration is not a helper name");
    }
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!("the Docker configuration names {program}, which cannot be run")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(host.as_bytes());
    }
    // A helper may wait on a keychain prompt nobody answers: it gets the registry's time.
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![];
        if let Some(out) = stdout {
            let _ = std::io::Read::read_to_end(&mut std::io::Read::take(out, 1 << 20), &mut buf);
        }
        buf
    });
    let ended = poll::until(timeout, Duration::from_millis(20), |_| {
        Ok(match child.try_wait()? {
            Some(status) => Look::Done(status),
            None => Look::Wait(format!("{program} get did not answer")),
        })
    });
    let status = match ended {
        Ok(Ok(status)) => status,
        Ok(Err(why)) => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{why} within {}s", timeout.as_secs_f64());
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let out = reader.join().unwrap_or_default();
    Ok(match status.success() {
        true => helper_answer(&out).unwrap_or(Credentials::Anonymous),
        false => Credentials::Anonymous,
    })
}

/// The digest the registry names for `image` (its tag, or its digest checked).
pub fn resolve(image: &ImageRef) -> Result<String> {
    Ok(resolve_manifest(image)?.digest)
}

/// The manifest the registry serves for `image` (its tag, or its digest checked): an image
/// index or a single image, in one request.
pub fn resolve_manifest(image: &ImageRef) -> Result<Fetched> {
    let at = Location::of(image)?;
    let reference = image.digest().or(image.tag()).unwrap_or("latest");
    let fetched = at
        .registry
        .fetch_manifest(&at.path, reference, IMAGE_MANIFEST_TYPES)?
        .with_context(|| format!("{} has no {image}", at.registry.host))?;
    if let Some(pinned) = image.digest() {
        if pinned != fetched.digest {
            bail!(
                "{} served a manifest with digest {} for {pinned}",
                at.registry.host,
                fetched.digest
            );
        }
    }
    Ok(fetched)
}

/// The manifest `digest` of `image`'s repository, its digest checked.
pub fn manifest_of(image: &ImageRef, digest: &str) -> Result<Fetched> {
    let pinned = ImageRef::parse(&format!(
        "{}@{}",
        image.repository(),
        signature::check_digest(digest)?
    ))?;
    resolve_manifest(&pinned)
}

/// Every tag of `image`'s repository, from its registry.
pub fn tags_of(image: &ImageRef) -> Result<Vec<String>> {
    let at = Location::of(image)?;
    at.registry.tags(&at.path)
}

/// Verifies the cosign signature of `digest` in `image`'s repository with `keys`.
pub fn verify(image: &ImageRef, digest: &str, keys: &[TrustedKey]) -> Result<Signed> {
    let at = Location::of(image)?;
    let tag = signature::signature_tag(digest)?;
    let Some((bytes, _)) = at
        .registry
        .manifest(&at.path, &tag, SIGNATURE_MANIFEST_TYPES)?
    else {
        bail!("unsigned: {} has no signature ({tag})", image.repository());
    };
    let manifest = signature::parse_manifest(&bytes)?;
    signature::verify_signatures(
        &manifest,
        |d| at.registry.blob(&at.path, d, signature::MAX_SIGNATURE_BLOB),
        keys,
        image.repository(),
        digest,
    )
}

/// The attestations of `digest` in `image`'s repository that `keys` verify (none when the
/// release attached none).
pub fn attestations(
    image: &ImageRef,
    digest: &str,
    keys: &[TrustedKey],
) -> Result<Vec<Attestation>> {
    let at = Location::of(image)?;
    let tag = signature::attestation_tag(digest)?;
    let Some((bytes, _)) = at
        .registry
        .manifest(&at.path, &tag, SIGNATURE_MANIFEST_TYPES)?
    else {
        return Ok(vec![]);
    };
    let manifest = signature::parse_manifest(&bytes)?;
    signature::verify_attestations(
        &manifest,
        |d| {
            at.registry
                .blob(&at.path, d, signature::MAX_ATTESTATION_BLOB)
        },
        keys,
        digest,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A registry on loopback that wants a Bearer token (from its own token service) and
    /// serves one manifest, and a blob far bigger than its descriptor says.
    fn fake_registry() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let realm = format!("http://{addr}/token");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                let mut auth = String::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("authorization:") {
                        auth = v.trim().to_string();
                    }
                }
                let reply = |stream: &mut std::net::TcpStream,
                             status: &str,
                             headers: &str,
                             body: &[u8]| {
                    let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n", body.len());
                    let _ = stream.write_all(body);
                };
                if path.starts_with("/token?") {
                    assert!(path.contains("scope=repository%3Ar%3Apull"), "{path}");
                    reply(&mut stream, "200 OK", "", br#"{"token":"tok"}"#);
                } else if auth != "bearer tok" {
                    let challenge = format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\",scope=\"repository:r:pull\"\r\n");
                    reply(&mut stream, "401 Unauthorized", &challenge, b"{}");
                } else if path == "/v2/r/manifests/v1" {
                    reply(&mut stream, "200 OK", "", br#"{"layers":[]}"#);
                } else if path.starts_with("/v2/r/blobs/") {
                    reply(&mut stream, "200 OK", "", &vec![b'x'; 200_000]);
                } else {
                    reply(&mut stream, "404 Not Found", "", b"{}");
                }
            }
        });
        addr
    }

    #[test]
    fn a_bearer_challenge_is_answered_and_big_bodies_are_refused() {
        let addr = fake_registry();
        let registry = Registry::new(&addr).unwrap();
        let (body, digest) = registry
            .manifest("r", "v1", IMAGE_MANIFEST_TYPES)
            .unwrap()
            .unwrap();
        assert_eq!(body, br#"{"layers":[]}"#);
        assert_eq!(digest, signature::sha256_digest(&body));
        assert!(registry
            .manifest("r", "v2", IMAGE_MANIFEST_TYPES)
            .unwrap()
            .is_none());
        let small = Descriptor {
            media_type: signature::SIMPLE_SIGNING.into(),
            digest: signature::sha256_digest(b"x"),
            size: 1,
            annotations: Default::default(),
        };
        let e = registry.blob("r", &small, 1024).unwrap_err();
        assert!(e.to_string().contains("more than 1024 bytes"), "{e}");
        let huge = Descriptor {
            size: 1 << 40,
            ..small
        };
        let e = registry.blob("r", &huge, 1024).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }

    #[test]
    fn plain_http_only_for_loopback_or_what_the_operator_names() {
        assert!(insecure("127.0.0.1:5000", ""));
        assert!(insecure("localhost:5000", ""));
        assert!(insecure("[::1]:5000", ""));
        assert!(!insecure("ghcr.io", ""));
        assert!(!insecure("10.0.0.5:5000", ""));
        assert!(insecure("10.0.0.5:5000", "registry.lan, 10.0.0.5:5000"));
        assert!(insecure("registry.lan:5000", "registry.lan"));
        assert!(!insecure("registry.lan.evil", "registry.lan"));
    }
}
