//! Image indexes: one tag, one manifest per platform. Parsed as registries serve them (the
//! OCI image index and Docker's manifest list, which are the same shape), and written as
//! an OCI image index, the form the release pushes. Pure: fetching and pushing are the
//! registry client's.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::platform::Platform;
use super::signature::check_digest;

/// The OCI image index media type (what the release writes).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's manifest list, the older name of the same thing (what `docker manifest` writes).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The single-platform manifest media type `docker push` writes.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The OCI single-platform manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// An index has at most this many entries: more is not an image index a release makes.
const MAX_ENTRIES: usize = 64;

/// One platform's manifest in an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub platform: Platform,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<WireEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireEntry {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<WirePlatform>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WirePlatform {
    architecture: String,
    os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
}

/// Whether a manifest's bytes are an index (by its mediaType field, or by the content type
/// the registry served it with).
pub fn is_index(bytes: &[u8], content_type: Option<&str>) -> bool {
    #[derive(Deserialize)]
    struct Kind {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    let kind = serde_json::from_slice::<Kind>(bytes).ok();
    let declared = kind.as_ref().and_then(|k| k.media_type.clone());
    match declared.as_deref().or(content_type) {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(_) => false,
        // An OCI index may omit its mediaType: its `manifests` list says what it is.
        None => kind.is_some_and(|k| k.manifests.is_some()),
    }
}

/// The platform entries of an index, in its order. Entries without a platform, or of
/// `unknown/unknown` (BuildKit's attestation manifests), are not platforms and are left out.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>> {
    let wire: Wire = serde_json::from_slice(bytes)
        .map_err(|e| anyhow!("the image index is not JSON a registry serves ({e})"))?;
    if wire.schema_version != 2 {
        bail!(
            "the image index has schemaVersion {}, not 2",
            wire.schema_version
        );
    }
    if wire.manifests.len() > MAX_ENTRIES {
        bail!(
            "the image index has {} entries, more than {MAX_ENTRIES}",
            wire.manifests.len()
        );
    }
    let mut entries = vec![];
    for m in wire.manifests {
        check_digest(&m.digest).context("an entry of the image index")?;
        let Some(p) = m.platform else { continue };
        if p.os == "unknown" || p.architecture == "unknown" {
            continue;
        }
        let text = match &p.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", p.os, p.architecture),
            _ => format!("{}/{}", p.os, p.architecture),
        };
        let platform = Platform::parse(&text).context("an entry of the image index")?;
        entries.push(Entry {
            platform,
            digest: m.digest,
            media_type: m.media_type,
            size: m.size,
        });
    }
    Ok(entries)
}

/// The OCI image index of `entries`, in their order: the bytes to push (their SHA-256 is
/// the index's digest). Refuses an empty list and a platform listed twice.
pub fn render(entries: &[Entry]) -> Result<Vec<u8>> {
    if entries.is_empty() {
        bail!("an image index needs at least one platform");
    }
    for (i, e) in entries.iter().enumerate() {
        check_digest(&e.digest).with_context(|| format!("the {} entry", e.platform))?;
        if entries[..i].iter().any(|o| o.platform == e.platform) {
            bail!("platform {} is in the image index twice", e.platform);
        }
    }
    let wire = Wire {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_string()),
        manifests: entries
            .iter()
            .map(|e| WireEntry {
                media_type: e.media_type.clone(),
                digest: e.digest.clone(),
                size: e.size,
                platform: Some(WirePlatform {
                    architecture: e.platform.arch.clone(),
                    os: e.platform.os.clone(),
                    variant: e.platform.variant.clone(),
                }),
            })
            .collect(),
    };
    Ok(serde_json::to_vec_pretty(&wire)?)
}

/// The entry for `platform`, if the index has it.
pub fn find<'e>(entries: &'e [Entry], platform: &Platform) -> Option<&'e Entry> {
    entries.iter().find(|e| {
        platform.matches(
            &e.platform.os,
            &e.platform.arch,
            e.platform.variant.as_deref(),
        )
    })
}

/// The entry the engine of `host` runs from the index `named` (`REPO@sha256:…`); an index
/// without one is refused in one line that says what it has instead.
pub fn for_host<'e>(entries: &'e [Entry], host: &Platform, named: &str) -> Result<&'e Entry> {
    if let Some(entry) = find(entries, host) {
        return Ok(entry);
    }
    let has: Vec<String> = entries.iter().map(|e| e.platform.to_string()).collect();
    let has = match has.is_empty() {
        true => "no platform at all".to_string(),
        false => has.join(", "),
    };
    bail!("{named} has no {host} image (it has {has}): this release was not built for this host")
}

/// The entries whose signatures the gate checks for a host of `host`: its own (refused as
/// [`for_host`] when missing), then, with `every` (a swarm, whose nodes may be of other
/// platforms and pull their own entries), every other entry too.
pub fn to_verify<'e>(
    entries: &'e [Entry],
    host: &Platform,
    named: &str,
    every: bool,
) -> Result<Vec<&'e Entry>> {
    let own = for_host(entries, host, named)?;
    let mut out = vec![own];
    if every {
        out.extend(entries.iter().filter(|e| e.digest != own.digest));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn entry(platform: &str, c: char) -> Entry {
        Entry {
            platform: Platform::parse(platform).unwrap(),
            digest: digest(c),
            media_type: DOCKER_MANIFEST.into(),
            size: 1234,
        }
    }

    #[test]
    fn renders_an_oci_index_that_parses_back() {
        let entries = vec![entry("linux/amd64", 'a'), entry("linux/arm64", 'b')];
        let bytes = render(&entries).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["mediaType"], OCI_INDEX);
        assert_eq!(json["schemaVersion"], 2);
        assert_eq!(json["manifests"][1]["platform"]["architecture"], "arm64");
        assert!(json["manifests"][1]["platform"].get("variant").is_none());
        assert!(is_index(&bytes, None));
        assert_eq!(parse(&bytes).unwrap(), entries);
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(find(&entries, &arm).unwrap().digest, digest('b'));
        assert!(find(&entries, &Platform::parse("linux/s390x").unwrap()).is_none());
    }

    #[test]
    fn reads_docker_manifest_lists_and_skips_attestation_entries() {
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
              {{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":7,"platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":8,"platform":{{"architecture":"unknown","os":"unknown"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":9}}]}}"#,
            digest('c'),
            digest('d'),
            digest('e')
        );
        assert!(is_index(list.as_bytes(), None));
        let entries = parse(list.as_bytes()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].platform.to_string(), "linux/arm/v7");
        // An index without its mediaType is known by its manifests list; an image is not.
        assert!(is_index(br#"{"schemaVersion":2,"manifests":[]}"#, None));
        assert!(!is_index(
            format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","layers":[]}}"#)
                .as_bytes(),
            Some(OCI_INDEX)
        ));
        assert!(is_index(b"{}", Some(DOCKER_LIST)));
    }

    #[test]
    fn the_hosts_entry_is_found_or_refused_naming_what_there_is() {
        let entries = vec![entry("linux/amd64", 'a'), entry("linux/arm/v7", 'b')];
        let amd64 = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            for_host(&entries, &amd64, "r@x").unwrap().digest,
            digest('a')
        );
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let e = for_host(&entries, &arm64, "r/agents@sha256:ff").unwrap_err();
        assert_eq!(
            e.to_string(),
            "r/agents@sha256:ff has no linux/arm64 image (it has linux/amd64, linux/arm/v7): \
             this release was not built for this host"
        );
        // An index of attestation manifests alone has no platform to offer.
        let e = for_host(&[], &amd64, "r@x").unwrap_err();
        assert!(e.to_string().contains("(it has no platform at all)"), "{e}");
        // arm64 with the variant Docker implies is still arm64.
        let v8 = [entry("linux/arm64/v8", 'c')];
        assert_eq!(for_host(&v8, &arm64, "r@x").unwrap().digest, digest('c'));
    }

    #[test]
    fn a_host_checks_its_own_entry_and_a_swarm_every_entry() {
        let entries = vec![
            entry("linux/arm64", 'b'),
            entry("linux/amd64", 'a'),
            entry("linux/arm/v7", 'c'),
        ];
        let amd64 = Platform::parse("linux/amd64").unwrap();
        let digests = |every| -> Vec<String> {
            to_verify(&entries, &amd64, "r@x", every)
                .unwrap()
                .iter()
                .map(|e| e.digest.clone())
                .collect()
        };
        assert_eq!(digests(false), [digest('a')]);
        // The host's own first: a refusal names the entry this host would have run.
        assert_eq!(digests(true), [digest('a'), digest('b'), digest('c')]);
        // A swarm whose manager's platform is missing is refused as a host is.
        let s390x = Platform::parse("linux/s390x").unwrap();
        assert!(to_verify(&entries, &s390x, "r@x", true).is_err());
    }

    #[test]
    fn bad_indexes_and_lists_are_refused_saying_why() {
        assert!(format!("{:#}", parse(b"nope").unwrap_err()).contains("not JSON"));
        assert!(
            format!("{:#}", parse(br#"{"schemaVersion":1}"#).unwrap_err())
                .contains("schemaVersion 1")
        );
        let bad = r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"md5:1","size":1,"platform":{"architecture":"amd64","os":"linux"}}]}"#;
        assert!(parse(bad.as_bytes()).is_err());
        assert!(render(&[]).is_err());
        let twice = [entry("linux/amd64", 'a'), entry("linux/amd64", 'b')];
        assert!(format!("{:#}", render(&twice).unwrap_err()).contains("twice"));
        let mut wrong = entry("linux/amd64", 'a');
        wrong.digest = "sha256:short".into();
        assert!(render(&[wrong]).is_err());
    }
}
