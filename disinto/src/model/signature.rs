//! Cosign's signatures and attestations as a registry holds them, checked without cosign: the
//! `sha256-<hex>.sig` manifest (simple-signing payloads, an ECDSA signature in an annotation)
//! and the `.att` manifest (DSSE envelopes of in-toto statements). Pure: the blobs come from
//! whoever calls (the registry client), through a closure, and every byte of them is hostile
//! until its digest, its signature and its subject are checked.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde::Deserialize;

use super::keys::{Signature, TrustedKey};

/// The media type of a cosign signature layer (its blob is the signed payload).
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The media type of a cosign attestation layer (its blob is a DSSE envelope).
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The annotation of a signature layer that holds the base64 signature of its blob.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// What the registry client accepts for the manifest of a signature or attestation tag.
pub const SIGNATURE_MANIFEST_TYPES: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
/// What it accepts for an image's own manifest: an index is what a multi-platform release
/// pushes, and the digest Docker pins (and cosign signs) is the index's.
pub const IMAGE_MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
/// The payload type of an in-toto statement in a DSSE envelope.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The predicate types `disinto verify` summarizes.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";
pub const SPDX: &str = "https://spdx.dev/Document";

/// The largest manifest read: a signature manifest is a few hundred bytes a signature.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// The largest signature payload read (cosign's are about 250 bytes).
pub const MAX_SIGNATURE_BLOB: u64 = 64 << 10;
/// The largest attestation envelope read: an SBOM of a few thousand packages, in base64.
pub const MAX_ATTESTATION_BLOB: u64 = 32 << 20;
/// More layers than this in a signature manifest is not a release's doing.
const MAX_LAYERS: usize = 64;

/// A digest as a registry names content: `sha256:` and 64 lower-case hex digits. Anything
/// else (another algorithm, a path, a bad length) is refused before it goes into a URL.
pub fn check_digest(digest: &str) -> Result<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("{digest:?} is not a sha256 digest"))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        bail!("{digest:?} is not a sha256 digest (64 lower-case hex digits)");
    }
    Ok(digest)
}

/// The digest of `bytes` as a registry names it.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hex: String = ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> Result<String> {
    Ok(format!("{}.sig", check_digest(digest)?.replace(':', "-")))
}

/// The tag cosign stores the attestations of `digest` under: `sha256-<hex>.att`.
pub fn attestation_tag(digest: &str) -> Result<String> {
    Ok(format!("{}.att", check_digest(digest)?.replace(':', "-")))
}

/// An OCI (or Docker v2) image manifest: only what a signature manifest needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// One layer of a manifest: its content is fetched by digest and must match it.
#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Parses a signature or attestation manifest; what is not one is refused, saying why.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    if bytes.len() as u64 > MAX_MANIFEST {
        bail!(
            "its manifest is {} bytes, more than a signature manifest ever is",
            bytes.len()
        );
    }
    let manifest: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| anyhow!("its manifest is not JSON a registry serves ({e})"))?;
    if manifest.layers.len() > MAX_LAYERS {
        bail!(
            "its manifest has {} layers, more than {MAX_LAYERS}",
            manifest.layers.len()
        );
    }
    for layer in &manifest.layers {
        check_digest(&layer.digest).context("a layer of its manifest")?;
    }
    Ok(manifest)
}

/// Checks a fetched blob against the descriptor that named it: a blob that is not what its
/// manifest says (other bytes, cut short) has been tampered with.
pub fn check_blob(descriptor: &Descriptor, bytes: &[u8]) -> Result<()> {
    if bytes.len() as u64 != descriptor.size {
        bail!(
            "tampered: blob {} is {} bytes, its manifest says {}",
            descriptor.digest,
            bytes.len(),
            descriptor.size
        );
    }
    let actual = sha256_digest(bytes);
    if actual != descriptor.digest {
        bail!("tampered: blob {} has digest {actual}", descriptor.digest);
    }
    Ok(())
}

/// The signed claim of a simple-signing payload: which image, in which repository.
#[derive(Debug, Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Debug, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
}

#[derive(Debug, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Debug, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// An image whose signature checked out: which trusted key signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub key_id: String,
}

/// How one layer fared, ranked so the refusal names the most telling reason.
#[derive(Debug)]
enum Verdict {
    Bad(String),
    UnknownKey,
    OtherSubject(String),
}

impl Verdict {
    fn rank(&self) -> u8 {
        match self {
            Verdict::Bad(_) => 0,
            Verdict::UnknownKey => 1,
            Verdict::OtherSubject(_) => 2,
        }
    }
}

/// The one repository spelling both sides compare: Docker Hub's two host names are one.
fn same_repository(a: &str, b: &str) -> bool {
    let norm = |r: &str| {
        r.strip_prefix("index.docker.io/")
            .or_else(|| r.strip_prefix("docker.io/"))
            .map(|rest| format!("docker.io/{rest}"))
            .unwrap_or_else(|| r.to_string())
    };
    norm(a) == norm(b)
}

/// Verifies the signature manifest of `digest` in `repository`: passes when any layer is a
/// simple-signing payload whose blob matches its digest, whose signature one of `keys`
/// verifies, and which names this digest in this repository. `blob` fetches a layer's
/// content (at most [`MAX_SIGNATURE_BLOB`] bytes). Otherwise the most telling reason.
pub fn verify_signatures(
    manifest: &Manifest,
    mut blob: impl FnMut(&Descriptor) -> Result<Vec<u8>>,
    keys: &[TrustedKey],
    repository: &str,
    digest: &str,
) -> Result<Signed> {
    if keys.is_empty() {
        bail!("no trusted key to check it with");
    }
    let mut worst: Option<Verdict> = None;
    for layer in &manifest.layers {
        let verdict = match verify_layer(layer, &mut blob, keys, repository, digest) {
            Ok(signed) => return Ok(signed),
            Err(v) => v,
        };
        if worst.as_ref().is_none_or(|w| verdict.rank() >= w.rank()) {
            worst = Some(verdict);
        }
    }
    Err(match worst {
        None => anyhow!("unsigned: its signature manifest holds no signature"),
        Some(Verdict::Bad(why)) => anyhow!("{why}"),
        Some(Verdict::UnknownKey) => anyhow!(
            "signed by an unknown key (trusted: {})",
            keys.iter()
                .map(|k| k.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(Verdict::OtherSubject(what)) => anyhow!("{what}"),
    })
}

fn verify_layer(
    layer: &Descriptor,
    blob: &mut impl FnMut(&Descriptor) -> Result<Vec<u8>>,
    keys: &[TrustedKey],
    repository: &str,
    digest: &str,
) -> std::result::Result<Signed, Verdict> {
    if layer.media_type != SIMPLE_SIGNING {
        return Err(Verdict::Bad(format!(
            "unsigned: its signature layer has media type {:?}, not cosign's {SIMPLE_SIGNING}",
            layer.media_type
        )));
    }
    let Some(encoded) = layer.annotations.get(SIGNATURE_ANNOTATION) else {
        return Err(Verdict::Bad(format!(
            "unsigned: its signature layer has no {SIGNATURE_ANNOTATION} annotation"
        )));
    };
    let signature = decode_signature(encoded).map_err(|e| Verdict::Bad(format!("{e:#}")))?;
    if layer.size > MAX_SIGNATURE_BLOB {
        return Err(Verdict::Bad(format!(
            "its signature payload is {} bytes, more than {MAX_SIGNATURE_BLOB}",
            layer.size
        )));
    }
    let payload = blob(layer)
        .and_then(|bytes| check_blob(layer, &bytes).map(|()| bytes))
        .map_err(|e| Verdict::Bad(format!("{e:#}")))?;
    let Some(key) = keys.iter().find(|k| k.key.verifies(&payload, &signature)) else {
        return Err(Verdict::UnknownKey);
    };
    // Only a payload a trusted key signed is read: its claim is what the key vouches for.
    let claim: SimpleSigning = serde_json::from_slice(&payload).map_err(|e| {
        Verdict::Bad(format!(
            "its signed payload is not cosign's simple-signing JSON ({e})"
        ))
    })?;
    let signed_digest = claim.critical.image.docker_manifest_digest;
    if signed_digest != digest {
        return Err(Verdict::OtherSubject(format!(
            "signed for another image: the signature is for {signed_digest}, not {digest}"
        )));
    }
    let signed_repo = claim.critical.identity.docker_reference;
    if !same_repository(&signed_repo, repository) {
        return Err(Verdict::OtherSubject(format!(
            "signed for another repository: the signature is for {signed_repo}, not {repository}"
        )));
    }
    Ok(Signed {
        key_id: key.id.clone(),
    })
}

/// An ECDSA signature as cosign stores it: base64 of its ASN.1 (DER) form.
fn decode_signature(encoded: &str) -> Result<Signature> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| anyhow!("tampered: its signature annotation is not base64"))?;
    Signature::parse(&der).ok_or_else(|| {
        anyhow!("tampered: its signature annotation is not an ECDSA P-256 signature")
    })
}

/// A DSSE envelope, as cosign attaches attestations.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

/// DSSE's pre-authentication encoding: what an envelope's signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// An in-toto statement: the subjects it speaks of and what it says of them.
#[derive(Debug, Deserialize)]
struct Statement {
    #[serde(default)]
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    #[serde(default)]
    predicate: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Subject {
    #[serde(default)]
    digest: BTreeMap<String, String>,
}

/// One attestation whose envelope a trusted key signed, about the image checked.
#[derive(Debug, Clone)]
pub struct Attestation {
    pub predicate_type: String,
    pub key_id: String,
    pub predicate: serde_json::Value,
}

/// Verifies one DSSE envelope (`bytes`) about `digest`: a trusted key signed its PAE, it is
/// an in-toto statement, and one of its subjects is this image.
pub fn verify_envelope(bytes: &[u8], keys: &[TrustedKey], digest: &str) -> Result<Attestation> {
    let envelope: Envelope = serde_json::from_slice(bytes)
        .map_err(|e| anyhow!("an attestation is not a DSSE envelope ({e})"))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(envelope.payload.trim())
        .map_err(|_| anyhow!("an attestation's payload is not base64"))?;
    let signed = pae(&envelope.payload_type, &payload);
    let key = envelope
        .signatures
        .iter()
        .filter_map(|s| decode_signature(&s.sig).ok())
        .find_map(|sig| keys.iter().find(|k| k.key.verifies(&signed, &sig)))
        .context("an attestation is not signed by a trusted key")?;
    if envelope.payload_type != IN_TOTO {
        bail!(
            "an attestation's payload is {:?}, not an in-toto statement",
            envelope.payload_type
        );
    }
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| anyhow!("an attestation's payload is not an in-toto statement ({e})"))?;
    let hex = check_digest(digest)?.trim_start_matches("sha256:");
    if !statement
        .subject
        .iter()
        .any(|s| s.digest.get("sha256").map(String::as_str) == Some(hex))
    {
        bail!(
            "an attestation ({}) is about another image, not {digest}",
            statement.predicate_type
        );
    }
    Ok(Attestation {
        predicate_type: statement.predicate_type,
        key_id: key.id.clone(),
        predicate: statement.predicate,
    })
}

/// Every attestation of the `.att` manifest a trusted key signed about `digest`; a layer that
/// does not verify is an error (an attestation tag is the release's alone to write).
pub fn verify_attestations(
    manifest: &Manifest,
    mut blob: impl FnMut(&Descriptor) -> Result<Vec<u8>>,
    keys: &[TrustedKey],
    digest: &str,
) -> Result<Vec<Attestation>> {
    let mut out = vec![];
    for layer in &manifest.layers {
        if layer.media_type != DSSE_ENVELOPE {
            bail!(
                "an attestation layer has media type {:?}, not {DSSE_ENVELOPE}",
                layer.media_type
            );
        }
        if layer.size > MAX_ATTESTATION_BLOB {
            bail!(
                "an attestation is {} bytes, more than {MAX_ATTESTATION_BLOB}",
                layer.size
            );
        }
        let bytes = blob(layer)?;
        check_blob(layer, &bytes)?;
        out.push(verify_envelope(&bytes, keys, digest)?);
    }
    Ok(out)
}

/// What a provenance statement says of the build: the source commit, the builder, when.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Provenance {
    pub commit: Option<String>,
    pub builder: Option<String>,
    pub when: Option<String>,
}

/// Reads a SLSA provenance predicate (v1, or v0.2's names).
pub fn provenance(predicate: &serde_json::Value) -> Provenance {
    let text = |pointer: &str| {
        predicate
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let deps = predicate
        .pointer("/buildDefinition/resolvedDependencies")
        .or_else(|| predicate.pointer("/materials"))
        .and_then(|v| v.as_array());
    let commit = deps.into_iter().flatten().find_map(|d| {
        let digest = d.get("digest")?;
        digest
            .get("gitCommit")
            .or_else(|| digest.get("sha1"))
            .and_then(|c| c.as_str())
            .map(str::to_string)
    });
    Provenance {
        commit,
        builder: text("/runDetails/builder/id").or_else(|| text("/builder/id")),
        when: text("/runDetails/metadata/finishedOn")
            .or_else(|| text("/runDetails/metadata/startedOn"))
            .or_else(|| text("/metadata/buildFinishedOn"))
            .or_else(|| text("/metadata/buildStartedOn")),
    }
}

/// The packages an SPDX document lists: name and version.
pub fn sbom_packages(predicate: &serde_json::Value) -> Vec<(String, String)> {
    predicate
        .get("packages")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .map(|p| {
            let field = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            (field("name"), field("versionInfo"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::keys::parse_keys;
    use crate::model::keys::testing::SigningKey;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const REPO: &str = "127.0.0.1:5000/disinto/agents";

    fn signing(seed: u8) -> (SigningKey, TrustedKey) {
        let key = SigningKey::seeded(seed);
        let trusted = key.trusted();
        (key, trusted)
    }

    fn payload(repo: &str, digest: &str) -> Vec<u8> {
        format!(r#"{{"critical":{{"identity":{{"docker-reference":"{repo}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#).into_bytes()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// A signature manifest of one layer over `payload`, signed by `key`; and its blobs.
    fn signed(key: &SigningKey, payload: &[u8]) -> (Manifest, BTreeMap<String, Vec<u8>>) {
        let sig = key.sign(payload);
        let digest = sha256_digest(payload);
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{}},"layers":[{{"mediaType":"{SIMPLE_SIGNING}","digest":"{digest}","size":{},"annotations":{{"{SIGNATURE_ANNOTATION}":"{}"}}}}]}}"#,
            payload.len(),
            b64(&sig)
        );
        let manifest = parse_manifest(json.as_bytes()).unwrap();
        (manifest, BTreeMap::from([(digest, payload.to_vec())]))
    }

    fn check(
        manifest: &Manifest,
        blobs: &BTreeMap<String, Vec<u8>>,
        keys: &[TrustedKey],
        repo: &str,
        digest: &str,
    ) -> Result<Signed> {
        verify_signatures(
            manifest,
            |d| blobs.get(&d.digest).cloned().context("404"),
            keys,
            repo,
            digest,
        )
    }

    #[test]
    fn a_payload_signed_by_a_trusted_key_for_this_image_passes() {
        let (key, trusted) = signing(7);
        let (_, other) = signing(9);
        let (manifest, blobs) = signed(&key, &payload(REPO, DIGEST));
        let ok = check(
            &manifest,
            &blobs,
            &[other.clone(), trusted.clone()],
            REPO,
            DIGEST,
        )
        .unwrap();
        assert_eq!(ok.key_id, trusted.id);
        // Not by a trusted key: refused as such.
        let e = check(&manifest, &blobs, &[other], REPO, DIGEST).unwrap_err();
        assert!(e.to_string().contains("unknown key"), "{e}");
    }

    #[test]
    fn a_signature_for_another_digest_or_repository_is_refused() {
        let (key, trusted) = signing(7);
        // A signature tag pointing at another image's signature manifest.
        let (manifest, blobs) = signed(&key, &payload(REPO, OTHER));
        let e = check(
            &manifest,
            &blobs,
            std::slice::from_ref(&trusted),
            REPO,
            DIGEST,
        )
        .unwrap_err();
        assert!(e.to_string().contains("another image"), "{e}");
        let (manifest, blobs) = signed(&key, &payload("127.0.0.1:5000/evil/agents", DIGEST));
        let e = check(&manifest, &blobs, &[trusted], REPO, DIGEST).unwrap_err();
        assert!(e.to_string().contains("another repository"), "{e}");
    }

    #[test]
    fn tampered_truncated_or_foreign_blobs_are_refused() {
        let (key, trusted) = signing(7);
        let (manifest, blobs) = signed(&key, &payload(REPO, DIGEST));
        let keys = [trusted];
        // Other bytes than the manifest names.
        let mut swapped = blobs.clone();
        swapped.values_mut().for_each(|b| b[0] ^= 1);
        let e = check(&manifest, &swapped, &keys, REPO, DIGEST).unwrap_err();
        assert!(e.to_string().contains("tampered"), "{e}");
        // Cut short.
        let mut cut = blobs.clone();
        cut.values_mut().for_each(|b| b.truncate(10));
        let e = check(&manifest, &cut, &keys, REPO, DIGEST).unwrap_err();
        assert!(e.to_string().contains("tampered"), "{e}");
        // A signed payload that is not JSON.
        let (m2, b2) = signed(&key, b"not json at all");
        let e = check(&m2, &b2, &keys, REPO, DIGEST).unwrap_err();
        assert!(e.to_string().contains("not cosign's simple-signing"), "{e}");
        // Another media type.
        let mut wrong = manifest.clone();
        wrong.layers[0].media_type = "application/octet-stream".into();
        let e = check(&wrong, &blobs, &keys, REPO, DIGEST).unwrap_err();
        assert!(e.to_string().contains("media type"), "{e}");
        // A huge blob is not even fetched.
        let mut huge = manifest.clone();
        huge.layers[0].size = 1 << 40;
        let e = verify_signatures(&huge, |_| panic!("fetched"), &keys, REPO, DIGEST).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
        // The signature annotation garbled.
        let mut garbled = manifest.clone();
        garbled.layers[0]
            .annotations
            .insert(SIGNATURE_ANNOTATION.into(), "%%%".into());
        let e = check(&garbled, &blobs, &keys, REPO, DIGEST).unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
        // No layer at all.
        let empty = parse_manifest(br#"{"layers":[]}"#).unwrap();
        let e = check(&empty, &blobs, &keys, REPO, DIGEST).unwrap_err();
        assert!(e.to_string().contains("unsigned"), "{e}");
    }

    #[test]
    fn manifests_that_are_not_manifests_are_refused() {
        assert!(parse_manifest(b"<html>")
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
        assert!(parse_manifest(
            br#"{"layers":[{"mediaType":"x","digest":"sha256:../../etc","size":1}]}"#
        )
        .is_err());
        let huge = vec![b' '; (MAX_MANIFEST + 1) as usize];
        assert!(parse_manifest(&huge)
            .unwrap_err()
            .to_string()
            .contains("bytes"));
        let layer = format!(r#"{{"mediaType":"x","digest":"{DIGEST}","size":1}}"#);
        let many = format!(r#"{{"layers":[{}]}}"#, vec![layer; 65].join(","));
        assert!(parse_manifest(many.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("layers"));
        assert!(parse_manifest(br#"{"layers":[{"mediaType":"x"}]}"#).is_err());
    }

    #[test]
    fn tags_and_digests() {
        let hex = "a".repeat(64);
        assert_eq!(
            signature_tag(&format!("sha256:{hex}")).unwrap(),
            format!("sha256-{hex}.sig")
        );
        assert!(attestation_tag(&format!("sha256:{hex}"))
            .unwrap()
            .ends_with(".att"));
        assert!(signature_tag("sha256:../x").is_err());
        assert!(signature_tag(&format!("sha512:{hex}")).is_err());
        assert!(check_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
        // `printf abc | sha256sum`: an outside oracle.
        assert_eq!(
            sha256_digest(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_real_cosign_signature_verifies() {
        // `cosign sign-blob --key release.key payload.json` (cosign 2.5), made once: cosign's
        // own DER encoding, whatever the s it chose.
        let keys = parse_keys(COSIGN_PUB, "cosign.pub").unwrap();
        let payload = COSIGN_PAYLOAD.as_bytes();
        let sig = decode_signature(COSIGN_SIG).unwrap();
        assert!(keys[0].key.verifies(payload, &sig));
        assert!(!keys[0].key.verifies(b"other", &sig));
    }

    fn envelope(key: &SigningKey, payload_type: &str, statement: &str) -> Vec<u8> {
        let sig = key.sign(&pae(payload_type, statement.as_bytes()));
        format!(
            r#"{{"payloadType":"{payload_type}","payload":"{}","signatures":[{{"keyid":"","sig":"{}"}}]}}"#,
            b64(statement.as_bytes()),
            b64(&sig)
        )
        .into_bytes()
    }

    #[test]
    fn dsse_envelopes_verify_over_pae_and_name_the_image() {
        assert_eq!(pae("t", b"hi"), b"DSSEv1 1 t 2 hi");
        let (key, trusted) = signing(7);
        let (_, other) = signing(9);
        let hex = DIGEST.trim_start_matches("sha256:");
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"{REPO}","digest":{{"sha256":"{hex}"}}}}],"predicateType":"{SLSA_PROVENANCE_V1}","predicate":{{"buildDefinition":{{"resolvedDependencies":[{{"uri":"git+https://x","digest":{{"gitCommit":"abc123"}}}}]}},"runDetails":{{"builder":{{"id":"https://ci.example/release"}},"metadata":{{"finishedOn":"2026-12-01T10:00:00Z"}}}}}}}}"#
        );
        let bytes = envelope(&key, IN_TOTO, &statement);
        let att = verify_envelope(&bytes, std::slice::from_ref(&trusted), DIGEST).unwrap();
        assert_eq!(att.key_id, trusted.id);
        assert_eq!(
            provenance(&att.predicate),
            Provenance {
                commit: Some("abc123".into()),
                builder: Some("https://ci.example/release".into()),
                when: Some("2026-12-01T10:00:00Z".into()),
            }
        );
        let e = verify_envelope(&bytes, &[other], DIGEST).unwrap_err();
        assert!(e.to_string().contains("trusted key"), "{e}");
        let e = verify_envelope(&bytes, std::slice::from_ref(&trusted), OTHER).unwrap_err();
        assert!(e.to_string().contains("another image"), "{e}");
        // Signed over the payload alone (not PAE): refused.
        let sig = key.sign(statement.as_bytes());
        let raw = format!(
            r#"{{"payloadType":"{IN_TOTO}","payload":"{}","signatures":[{{"sig":"{}"}}]}}"#,
            b64(statement.as_bytes()),
            b64(&sig)
        );
        assert!(verify_envelope(raw.as_bytes(), std::slice::from_ref(&trusted), DIGEST).is_err());
        assert!(verify_envelope(b"{", &[trusted], DIGEST).is_err());
    }

    #[test]
    fn an_spdx_document_lists_its_packages() {
        let doc: serde_json::Value = serde_json::from_str(
            r#"{"spdxVersion":"SPDX-2.3","packages":[{"name":"bash","versionInfo":"5.2"},{"name":"anyhow","versionInfo":"1.0.0"}]}"#,
        )
        .unwrap();
        assert_eq!(sbom_packages(&doc).len(), 2);
        assert_eq!(sbom_packages(&serde_json::json!("x")).len(), 0);
    }

    const COSIGN_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5h3hYRRn6aa3H5qbYAHYnNNqtchR
D1X24z0Nj+dqZKZO0guBtn3ckb+pUg0+uwtgD9dBC2svBmFS/YWeulsG1A==
-----END PUBLIC KEY-----
";
    const COSIGN_PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/disinto/agents"},"image":{"docker-manifest-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"type":"cosign container image signature"},"optional":null}"#;
    const COSIGN_SIG: &str =
        "MEQCIES41FnfrhR1Qj5atlVktdx9/ok1gz9jJYo6z6C2IS9hAiArk1SOES0dX2WeG4LFyFTcQw9tpwEmtFp/L06MvSJigQ==";
}
