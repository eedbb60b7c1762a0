//! Resolution of `AGENTS_IMAGE` into what the compose file runs (DESIGN.md, "Image references").
//! Pure: values in, a decision or a one-line error naming the variable out.

use std::fmt;

use anyhow::{bail, Result};
use container_image_dist_ref::err::Kind;
use container_image_dist_ref::ImgRef;

/// The registry plus namespace releases are pushed to when `DISINTO_REGISTRY` is not set.
pub const DEFAULT_REGISTRY: &str = "ghcr.io/disinto";

/// The local repository that keeps the images agents ran, so a revert needs no registry and
/// no tag that may have moved (`disinto-keep/agents:<first 12 hex of the image id>`).
pub const KEEP_REPOSITORY: &str = "disinto-keep/agents";

/// The repository name of the agents image below the registry namespace.
pub const AGENTS_REPOSITORY: &str = "agents";

/// One of our images: released together under one version, and pinned together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OurImage {
    /// The repository name below the registry namespace (`agents`, `edge`, `reproduce`).
    pub name: &'static str,
    /// Its Dockerfile, relative to a source checkout.
    pub dockerfile: &'static str,
}

/// The agents image; runner runs it too.
pub const AGENTS: OurImage = OurImage {
    name: AGENTS_REPOSITORY,
    dockerfile: "docker/agents/Dockerfile",
};
/// The edge proxy.
pub const EDGE: OurImage = OurImage {
    name: "edge",
    dockerfile: "docker/edge/Dockerfile",
};
/// The reproduce sandbox.
pub const REPRODUCE: OurImage = OurImage {
    name: "reproduce",
    dockerfile: "docker/reproduce/Dockerfile",
};
/// Every image a release publishes, agents first.
pub const OUR_IMAGES: [OurImage; 3] = [AGENTS, EDGE, REPRODUCE];

impl OurImage {
    /// The local tag dev builds get (`disinto-agents:dev`).
    pub fn dev_tag(self) -> String {
        format!("disinto-{}:dev", self.name)
    }
}

/// Where the agents (and runner) image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentsImage {
    /// `AGENTS_IMAGE` unset or empty: build from `docker/agents/Dockerfile` in the checkout.
    Dev,
    /// A bare release version such as `v0.1.1`; the registry is left to
    /// `${DISINTO_REGISTRY:-ghcr.io/disinto}` so compose resolves it at run time.
    Release(String),
    /// A full reference (tag and/or digest), used exactly as given.
    Reference(String),
}

impl AgentsImage {
    /// Parses the value of `AGENTS_IMAGE`; `None` means the variable is not set at all.
    pub fn parse(value: Option<&str>) -> Result<AgentsImage> {
        let value = match value {
            None | Some("") => return Ok(AgentsImage::Dev),
            Some(v) => v,
        };
        match classify(value) {
            Ok(image) => Ok(image),
            Err(why) => bail!("AGENTS_IMAGE={value:?} is not usable: {why}"),
        }
    }

    /// The value of `AGENTS_IMAGE` this stands for (empty for dev mode).
    pub fn as_setting(&self) -> &str {
        match self {
            AgentsImage::Dev => "",
            AgentsImage::Release(v) | AgentsImage::Reference(v) => v,
        }
    }

    /// The `image:` string for the compose file (`None` in dev mode).
    pub fn compose_image(&self) -> Option<String> {
        match self {
            AgentsImage::Dev => None,
            AgentsImage::Release(version) => Some(format!(
                "${{DISINTO_REGISTRY:-{DEFAULT_REGISTRY}}}/{AGENTS_REPOSITORY}:{version}"
            )),
            AgentsImage::Reference(reference) => Some(reference.clone()),
        }
    }

    /// The `image:` of one of our images in the compose file (`None` in dev mode): a release
    /// names every image of that version; a full reference names agents, and edge and
    /// reproduce follow it (see [`sibling`]).
    pub fn compose_image_for(&self, image: OurImage) -> Option<String> {
        match self {
            AgentsImage::Dev => None,
            AgentsImage::Release(version) => Some(format!(
                "${{DISINTO_REGISTRY:-{DEFAULT_REGISTRY}}}/{}:{version}",
                image.name
            )),
            AgentsImage::Reference(reference) => Some(sibling(reference, image)),
        }
    }

    /// [`AgentsImage::compose_image_for`] with `DISINTO_REGISTRY` substituted.
    pub fn resolved_for(&self, image: OurImage, registry: &str) -> Option<String> {
        match self {
            AgentsImage::Release(version) => Some(format!("{registry}/{}:{version}", image.name)),
            _ => self.compose_image_for(image),
        }
    }

    /// The reference Docker will actually use, with `DISINTO_REGISTRY` substituted.
    pub fn resolved(&self, registry: &str) -> Option<String> {
        match self {
            AgentsImage::Dev => None,
            AgentsImage::Release(version) => {
                Some(format!("{registry}/{AGENTS_REPOSITORY}:{version}"))
            }
            AgentsImage::Reference(reference) => Some(reference.clone()),
        }
    }
}

impl fmt::Display for AgentsImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentsImage::Dev => f.write_str("dev (built from docker/agents/Dockerfile)"),
            AgentsImage::Release(v) => write!(f, "release {v}"),
            AgentsImage::Reference(r) => f.write_str(r),
        }
    }
}

/// The image of the same release next to an agents reference: the repository's trailing
/// `agents` becomes the image's name and the tag is kept; the digest pins agents alone.
/// `r/disinto/agents:v1@sha256:…` → `r/disinto/edge:v1`; `disinto-agents:dev` → `disinto-edge:dev`.
/// [`AgentsImage::parse`] only accepts references this works for.
pub fn sibling(agents: &str, image: OurImage) -> String {
    if image.name == AGENTS_REPOSITORY {
        return agents.to_string();
    }
    // AgentsImage::parse accepted it, so it parses.
    let Ok(parsed) = ImageRef::parse(agents) else {
        return agents.to_string();
    };
    let repository = parsed.repository();
    let base = repository
        .strip_suffix(AGENTS_REPOSITORY)
        .unwrap_or(repository);
    match parsed.tag() {
        Some(tag) => format!("{base}{}:{tag}", image.name),
        None => format!("{base}{}", image.name),
    }
}

/// An image reference as Docker reads it (the distribution grammar, through
/// [`ImgRef`]), parsed once: every question about a reference (its repository, tag, digest,
/// registry, Docker's normal form) is a method here, never a split by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host (and port) as written, when the reference names one.
    domain: Option<String>,
    /// The repository as written: the domain and the path.
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parses `text`; a one-line error names it and says what is wrong.
    pub fn parse(text: &str) -> Result<ImageRef> {
        let parsed = ImgRef::new(text).map_err(|e| {
            anyhow::anyhow!(
                "{text:?} is not an image reference: {} at byte {}",
                describe(e.kind()),
                e.index()
            )
        })?;
        // The grammar takes any first component before a '/' for a domain; Docker
        // (splitDockerDomain) only one with a '.' or ':', `localhost`, or an upper-case letter.
        let domain = parsed.domain().map(|d| d.to_str().to_string()).filter(|d| {
            d.contains(['.', ':']) || d == "localhost" || d.chars().any(|c| c.is_ascii_uppercase())
        });
        Ok(ImageRef {
            domain,
            repository: parsed.name().to_str().to_string(),
            tag: parsed.tag().map(str::to_string),
            digest: parsed.digest().map(|d| d.to_str().to_string()),
        })
    }

    /// The repository without tag and digest (`127.0.0.1:5000/x/agents`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), when the reference is pinned to one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The registry Docker asks for it: the host named, else Docker Hub.
    pub fn registry(&self) -> &str {
        self.domain.as_deref().unwrap_or("docker.io")
    }

    /// The reference without its digest (`repo:tag`, or `repo`).
    pub fn without_digest(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}:{tag}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// The same image pinned to `digest` (`repo:tag@sha256:…`).
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.without_digest())
    }

    /// The reference as Docker resolves it: `docker.io` when no registry is named, `library/`
    /// for a Docker Hub name without namespace, `:latest` when there is neither tag nor digest.
    pub fn normalized(&self) -> String {
        let registry = match self.registry() {
            "index.docker.io" => "docker.io",
            other => other,
        };
        let path = match &self.domain {
            Some(domain) => &self.repository[domain.len() + 1..],
            None => self.repository.as_str(),
        };
        let mut out = match registry == "docker.io" && !path.contains('/') {
            true => format!("{registry}/library/{path}"),
            false => format!("{registry}/{path}"),
        };
        match (&self.tag, &self.digest) {
            (Some(tag), _) => out = format!("{out}:{tag}"),
            (None, None) => out.push_str(":latest"),
            (None, Some(_)) => {}
        }
        if let Some(digest) = &self.digest {
            out = format!("{out}@{digest}");
        }
        out
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.without_digest())?;
        match &self.digest {
            Some(digest) => write!(f, "@{digest}"),
            None => Ok(()),
        }
    }
}

/// The registry host of a registry namespace such as `DISINTO_REGISTRY` (`ghcr.io/disinto` →
/// `ghcr.io`); Docker Hub when it names none.
pub fn registry_host(namespace: &str) -> String {
    ImageRef::parse(namespace)
        .map(|r| r.registry().to_string())
        .unwrap_or_else(|_| "docker.io".into())
}

/// Validates `DISINTO_REGISTRY` (registry host plus namespace, no tag) and returns it.
pub fn parse_registry(value: Option<&str>) -> Result<String> {
    let registry = match value {
        None | Some("") => return Ok(DEFAULT_REGISTRY.to_string()),
        Some(v) => v,
    };
    let probe = format!("{registry}/{AGENTS_REPOSITORY}:v0.0.0");
    let ok = !registry.ends_with('/')
        && ImgRef::new(&probe).is_ok_and(|r| r.tag() == Some("v0.0.0") && r.digest().is_none());
    if !ok {
        bail!(
            "DISINTO_REGISTRY={registry:?} is not a registry and namespace: \
             expected something like ghcr.io/disinto or 127.0.0.1:5000/disinto"
        );
    }
    Ok(registry.to_string())
}

/// Parses a release version `vMAJOR.MINOR.PATCH[-PRE][+BUILD]` (semver with a leading `v`).
pub fn parse_version(value: &str) -> Result<semver::Version> {
    let Some(rest) = value.strip_prefix('v') else {
        bail!("version {value:?} must start with 'v', like v0.1.1");
    };
    let version = semver::Version::parse(rest).map_err(|e| {
        anyhow::anyhow!("version {value:?} is not vMAJOR.MINOR.PATCH (semantic versioning): {e}")
    })?;
    // The version is also every image's tag: Docker's tag grammar is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
    if !version.build.is_empty() {
        bail!("version {value:?} has build metadata (+{}), which a Docker tag cannot carry ('+' is not allowed): release {} instead", version.build, value.split('+').next().unwrap_or(value));
    }
    if value.len() > 128 {
        bail!(
            "version {value:?} is {} characters long: a Docker tag holds at most 128",
            value.len()
        );
    }
    Ok(version)
}

fn looks_like_version(value: &str) -> bool {
    let mut chars = value.chars();
    chars.next() == Some('v')
        && chars.next().is_some_and(|c| c.is_ascii_digit())
        && !value.contains(['/', ':', '@'])
}

/// A person's words for each of the parser's error kinds; its enum names (`HostOrPathTooLong`)
/// mean nothing to an operator. Exhaustive, so a new kind in the crate is a compile error here.
fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::PathInvalidChar
        | Kind::HostOrPathInvalidChar
        | Kind::PathComponentInvalidEnd
        | Kind::HostOrPathInvalidComponentEnd => {
            "repository names are lower-case letters and digits separated by '.', '_' or '-'"
        }
        Kind::PathMissing | Kind::HostOrPathMissing => "the repository name is missing",
        Kind::HostOrPathTooLong | Kind::NameTooLong | Kind::HostTooLong | Kind::PathTooLong => {
            "the name is longer than 255 characters"
        }
        Kind::HostMissing | Kind::HostComponentInvalidEnd | Kind::HostInvalidChar => {
            "the registry host is letters, digits, '.' and '-', like ghcr.io or 127.0.0.1"
        }
        Kind::Ipv6InvalidChar
        | Kind::Ipv6TooLong
        | Kind::Ipv6BadColon
        | Kind::Ipv6TooManyHexDigits
        | Kind::Ipv6TooManyGroups
        | Kind::Ipv6TooFewGroups
        | Kind::Ipv6MissingClosingBracket => {
            "an IPv6 registry address goes in brackets, like [::1]:5000"
        }
        Kind::Port | Kind::PortInvalidChar | Kind::PortTooLong | Kind::PortMissing => {
            "the registry port is digits after ':', like 127.0.0.1:5000"
        }
        Kind::TagMissing | Kind::PortOrTagMissing => "the tag after ':' is empty",
        Kind::TagInvalidChar | Kind::PortOrTagInvalidChar | Kind::TagTooLong => {
            "a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        }
        Kind::AlgorithmMissing
        | Kind::InvalidOciAlgorithm
        | Kind::AlgorithmInvalidNumericPrefix
        | Kind::OciRegisteredAlgorithmWrongDigestLength
        | Kind::AlgorithmInvalidChar
        | Kind::AlgorithmTooLong
        | Kind::EncodedMissing
        | Kind::EncodedInvalidChar
        | Kind::EncodedNonLowerHex
        | Kind::OciRegisteredDigestInvalidChar
        | Kind::EncodingTooShort
        | Kind::EncodingTooLong => {
            "the digest must be sha256: followed by 64 lower-case hex digits"
        }
        Kind::RefMissing => "the reference is empty",
    }
}

fn classify(value: &str) -> std::result::Result<AgentsImage, String> {
    if value.trim() != value || value.chars().any(char::is_whitespace) {
        return Err("it contains whitespace".into());
    }
    if looks_like_version(value) {
        return match parse_version(value) {
            Ok(_) => Ok(AgentsImage::Release(value.to_string())),
            Err(e) => Err(format!(
                "{e:#}; set a release version like v0.1.1 or a full image reference"
            )),
        };
    }
    let parsed = ImgRef::new(value).map_err(|e| {
        format!(
            "not a valid image reference ({} at byte {}); expected v0.1.1, \
             ghcr.io/disinto/agents:v0.1.1 or ghcr.io/disinto/agents@sha256:<64 hex>",
            describe(e.kind()),
            e.index()
        )
    })?;
    // distribution/reference caps tags at 128 characters; the parser crate allows more.
    if parsed.tag().is_some_and(|t| t.len() > 128) {
        return Err("its tag is longer than 128 characters".into());
    }
    match parsed.digest() {
        Some(digest) => {
            let digest = digest.to_str();
            let hex = digest.strip_prefix("sha256:").unwrap_or("");
            let lower_hex = hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
            if hex.len() != 64 || !lower_hex {
                return Err(format!(
                    "digest {digest:?} must be sha256: followed by 64 lower-case hex digits"
                ));
            }
        }
        None if parsed.tag().is_none() => {
            return Err("it names no tag or digest; pin one, e.g. …/agents:v0.1.1".into());
        }
        None => {}
    }
    // Edge and reproduce follow agents by repository and tag: both must say which.
    if parsed.tag().is_none() {
        return Err("a digest alone pins agents but names no release for edge and reproduce to follow; write …/agents:vX.Y.Z@sha256:… (the digest still pins agents)".into());
    }
    let name = parsed.name();
    let last = name.to_str().rsplit('/').next().unwrap_or_default();
    if !(last == AGENTS_REPOSITORY || last.ends_with(&format!("-{AGENTS_REPOSITORY}"))) {
        return Err("its repository does not end in 'agents' (or '-agents'), so edge and reproduce (same repository with 'edge'/'reproduce' in place of 'agents', same tag) cannot follow it".into());
    }
    Ok(AgentsImage::Reference(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn err(value: &str) -> String {
        format!("{:#}", AgentsImage::parse(Some(value)).unwrap_err())
    }

    #[test]
    fn unset_and_empty_mean_dev_mode() {
        assert_eq!(AgentsImage::parse(None).unwrap(), AgentsImage::Dev);
        assert_eq!(AgentsImage::parse(Some("")).unwrap(), AgentsImage::Dev);
        assert_eq!(AgentsImage::Dev.compose_image(), None);
    }

    #[test]
    fn bare_version_goes_through_the_registry_variable() {
        let image = AgentsImage::parse(Some("v0.1.1")).unwrap();
        assert_eq!(image, AgentsImage::Release("v0.1.1".into()));
        assert_eq!(
            image.compose_image().unwrap(),
            "${DISINTO_REGISTRY:-ghcr.io/disinto}/agents:v0.1.1"
        );
        assert_eq!(
            image.resolved("127.0.0.1:5000/disinto").unwrap(),
            "127.0.0.1:5000/disinto/agents:v0.1.1"
        );
        let pre = AgentsImage::parse(Some("v1.0.0-rc.1")).unwrap();
        assert_eq!(pre, AgentsImage::Release("v1.0.0-rc.1".into()));
    }

    #[test]
    fn full_tag_reference_is_used_as_given() {
        for value in [
            "ghcr.io/disinto/agents:v0.1.1",
            "127.0.0.1:5000/disinto/agents:v0.2.0",
            "disinto-agents:dev",
            "localhost/agents:latest",
        ] {
            let image = AgentsImage::parse(Some(value)).unwrap();
            assert_eq!(image, AgentsImage::Reference(value.into()), "{value}");
            assert_eq!(image.compose_image().unwrap(), value);
            assert_eq!(image.resolved("ignored/ns").unwrap(), value);
        }
    }

    #[test]
    fn digest_references_are_used_as_given() {
        let value = format!("ghcr.io/disinto/agents:v0.1.1@{DIGEST}");
        let image = AgentsImage::parse(Some(&value)).unwrap();
        assert_eq!(image.compose_image().unwrap(), value);
        // A digest alone names no release that edge and reproduce could follow.
        let e = err(&format!("ghcr.io/disinto/agents@{DIGEST}"));
        assert!(e.contains("a digest alone pins agents"), "{e}");
        assert_eq!(e.lines().count(), 1);
    }

    #[test]
    fn versions_must_be_docker_tags() {
        assert!(parse_version("v0.1.0-rc.1").is_ok());
        let e = format!("{:#}", parse_version("v0.1.0+build.7").unwrap_err());
        assert!(
            e.contains("build metadata (+build.7)") && e.contains("release v0.1.0 instead"),
            "{e}"
        );
        let long = format!("v1.0.0-{}", "a".repeat(122));
        assert_eq!(long.len(), 129);
        let e = format!("{:#}", parse_version(&long).unwrap_err());
        assert!(e.contains("at most 128"), "{e}");
        let fits = format!("v1.0.0-{}", "a".repeat(121));
        assert!(parse_version(&fits).is_ok());
    }

    #[test]
    fn edge_and_reproduce_follow_agents() {
        let release = AgentsImage::parse(Some("v0.1.1")).unwrap();
        assert_eq!(
            release.compose_image_for(EDGE).unwrap(),
            "${DISINTO_REGISTRY:-ghcr.io/disinto}/edge:v0.1.1"
        );
        assert_eq!(
            release.resolved_for(REPRODUCE, "127.0.0.1:5000/d").unwrap(),
            "127.0.0.1:5000/d/reproduce:v0.1.1"
        );
        let pinned = format!("127.0.0.1:5000/d/agents:v0.2.0@{DIGEST}");
        let reference = AgentsImage::parse(Some(&pinned)).unwrap();
        assert_eq!(reference.compose_image_for(AGENTS).unwrap(), pinned);
        assert_eq!(
            reference.compose_image_for(EDGE).unwrap(),
            "127.0.0.1:5000/d/edge:v0.2.0"
        );
        assert_eq!(sibling("disinto-agents:dev", EDGE), "disinto-edge:dev");
        assert_eq!(
            sibling("localhost/agents:latest", REPRODUCE),
            "localhost/reproduce:latest"
        );
        assert_eq!(AgentsImage::Dev.compose_image_for(EDGE), None);
        let e = err("ghcr.io/disinto/runner:v1");
        assert!(e.contains("does not end in 'agents'"), "{e}");
        // `myagents` is not `agents`: its siblings would be `myedge`, which nobody releases.
        let e = err("r/myagents:v1");
        assert!(e.contains("does not end in 'agents'"), "{e}");
    }

    #[test]
    fn malformed_values_are_one_line_errors_naming_the_variable() {
        let long_tag = format!("ghcr.io/disinto/agents:{}", "a".repeat(129));
        let bad = [
            " v0.1.1",
            "v0.1.1 ",
            "v0.1.1\n",
            "ghcr.io/disinto/agents:v0.1.1\nrm -rf /",
            "ghcr.io/disinto/agents :v0.1.1",
            "\t",
            "ghcr.io/Disinto/agents:v0.1.1",
            "ghcr.io/disinto/AGENTS:v0.1.1",
            "ghcr.io/disinto/agents:",
            "ghcr.io/disinto/agents:v0.1.1:extra",
            "ghcr.io/disinto/agents@sha256:abc",
            "ghcr.io/disinto/agents@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "ghcr.io/disinto/agents@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
            "ghcr.io/disinto/agents@md5:0123456789abcdef0123456789abcdef",
            "ghcr.io/disinto/agents@",
            "ghcr.io/disinto/agents",
            "ghcr.io//agents:v1",
            "/agents:v1",
            "agents:-v1",
            "ghcr.io/disinto/agents:.v1",
            "v1.2",
            "v1.2.3.4",
            "v01.2.3",
            "v1.2.x",
            "ghcr.io/disinto/agents:v1;reboot",
            "${DISINTO_REGISTRY}/agents:v1",
            long_tag.as_str(),
        ];
        assert!(bad.len() >= 15);
        for value in bad {
            let message = err(value);
            assert!(
                message.starts_with(&format!("AGENTS_IMAGE={value:?}")),
                "{value:?}: {message}"
            );
            assert!(!message.contains('\n'), "{value:?}: multi-line: {message}");
        }
    }

    #[test]
    fn error_messages_say_what_to_do() {
        assert!(err("v1.2").contains("like v0.1.1"), "{}", err("v1.2"));
        assert!(err("ghcr.io/disinto/agents").contains("no tag or digest"));
        assert!(err("ghcr.io/disinto/agents@sha256:abc").contains("64 lower-case hex"));
        assert!(err("v0.1.1 ").contains("whitespace"));
        assert!(err("ghcr.io/Disinto/agents:v1").contains("not a valid image reference"));
        // The parser's kind names never reach the operator.
        let long = err(&format!("ghcr.io/{}/agents:v1", "a".repeat(300)));
        assert!(long.contains("longer than 255 characters"), "{long}");
        assert!(!long.contains("TooLong"), "{long}");
    }

    #[test]
    fn registry_defaults_and_validates() {
        assert_eq!(parse_registry(None).unwrap(), "ghcr.io/disinto");
        assert_eq!(parse_registry(Some("")).unwrap(), "ghcr.io/disinto");
        assert_eq!(
            parse_registry(Some("127.0.0.1:5000/disinto")).unwrap(),
            "127.0.0.1:5000/disinto"
        );
        for bad in [
            "ghcr.io/Disinto",
            "ghcr.io/disinto/",
            "ghcr.io/x:tag",
            "a b",
        ] {
            let message = format!("{:#}", parse_registry(Some(bad)).unwrap_err());
            assert!(message.starts_with("DISINTO_REGISTRY="), "{message}");
        }
    }

    #[test]
    fn references_read_as_docker_reads_them() {
        let r = |text: &str| ImageRef::parse(text).unwrap();
        let pinned = r(&format!("127.0.0.1:5000/x/agents:v1@{DIGEST}"));
        assert_eq!(pinned.repository(), "127.0.0.1:5000/x/agents");
        assert_eq!(pinned.tag(), Some("v1"));
        assert_eq!(pinned.digest(), Some(DIGEST));
        assert_eq!(pinned.registry(), "127.0.0.1:5000");
        assert_eq!(pinned.without_digest(), "127.0.0.1:5000/x/agents:v1");
        assert_eq!(
            pinned.to_string(),
            format!("127.0.0.1:5000/x/agents:v1@{DIGEST}")
        );
        assert_eq!(
            r("localhost:5000/agents").repository(),
            "localhost:5000/agents"
        );
        assert_eq!(r("localhost:5000/agents").tag(), None);
        assert_eq!(r("disinto-agents:dev").repository(), "disinto-agents");
        assert_eq!(r("localhost/agents").registry(), "localhost");
        assert_eq!(r("disinto/agents:v1").registry(), "docker.io");
        assert_eq!(r("debian").normalized(), "docker.io/library/debian:latest");
        assert_eq!(r("index.docker.io/x/y:1").normalized(), "docker.io/x/y:1");
        assert_eq!(
            r(&format!("ghcr.io/d/agents@{DIGEST}")).normalized(),
            format!("ghcr.io/d/agents@{DIGEST}")
        );
        assert_eq!(registry_host("ghcr.io/disinto"), "ghcr.io");
        assert_eq!(registry_host("agents"), "docker.io");
        let e = format!("{:#}", ImageRef::parse("Bad Ref").unwrap_err());
        assert!(
            e.starts_with("\"Bad Ref\" is not an image reference"),
            "{e}"
        );
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("v0.1.1").unwrap(),
            semver::Version::new(0, 1, 1)
        );
        for bad in [
            "1.2.3", "v1.2", "v1.2.3.4", "v01.2.3", "", "v1.2.3 ", "v 1.2.3",
        ] {
            assert!(parse_version(bad).is_err(), "{bad:?}");
        }
    }
}
