//! The public keys a factory trusts: cosign's format (a P-256 SubjectPublicKeyInfo in a
//! `PUBLIC KEY` PEM block), several to a file so a key can rotate, each named by a key id
//! the release record, `verify`, `status` and `history` all print the same way.

use anyhow::{bail, Context, Result};
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};

/// One trusted public key and where it came from (the binary, or a file of the operator's).
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub key: VerifyingKey,
    /// `sha256:` and the first 16 hex digits of the SHA-256 of the key's DER encoding.
    pub id: String,
    pub source: String,
}

/// The key id of a verifying key: short enough to read, long enough not to collide by chance.
pub fn key_id(key: &VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default();
    let hex: String = Sha256::digest(&der)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Every `PUBLIC KEY` block in `text` (PEM, as cosign writes `cosign.pub`), named by
/// `source` in errors. Anything else in the file (a private key, a certificate, garbage) is
/// refused: a trust file that silently trusts less than its owner thinks is worse than none.
pub fn parse_keys(text: &str, source: &str) -> Result<Vec<TrustedKey>> {
    const BEGIN: &str = "-----BEGIN ";
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let label_end = block[BEGIN.len()..]
            .find("-----")
            .with_context(|| format!("{source}: a PEM header is not closed"))?;
        let label = &block[BEGIN.len()..BEGIN.len() + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = block
            .find(&end_marker)
            .with_context(|| format!("{source}: the {label} block has no END line"))?
            + end_marker.len();
        if label != "PUBLIC KEY" {
            bail!("{source}: holds a {label}, not a PUBLIC KEY: give the public half (cosign.pub)");
        }
        let key = VerifyingKey::from_public_key_pem(&block[..end]).map_err(|e| {
            anyhow::anyhow!("{source}: a PUBLIC KEY block is not an ECDSA P-256 key ({e})")
        })?;
        keys.push(TrustedKey {
            id: key_id(&key),
            key,
            source: source.to_string(),
        });
        rest = &block[end..];
    }
    if keys.is_empty() && !text.trim().is_empty() {
        bail!("{source}: no PEM PUBLIC KEY block in it: give cosign's public key (cosign.pub)");
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Public halves of two `cosign generate-key-pair` runs, made once for these tests.
    const ONE: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9cVNYdv+h44hzHw8etbiHNBbS3Bg
Cn15MB8B/ZP4O3GqRGk/STSLa7Q8ecoLoMt2rVJxLW67OR/iflBZqJGfmg==
-----END PUBLIC KEY-----
";
    const TWO: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEznIW/4eqTOUVUJMVAvDAUWmMKOTl
ATVHIinEbcbuPjPArRUHRWqDyK5nvnBciXWR4b977LNRH97nRmU7mgbVIw==
-----END PUBLIC KEY-----
";
    // The key of signature.rs's cosign-made signature.
    const COSIGN: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5h3hYRRn6aa3H5qbYAHYnNNqtchR
D1X24z0Nj+dqZKZO0guBtn3ckb+pUg0+uwtgD9dBC2svBmFS/YWeulsG1A==
-----END PUBLIC KEY-----
";
    const BROKEN: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPLACEHOLDER
-----END PUBLIC KEY-----
";

    #[test]
    fn a_file_of_several_keys_gives_each_its_id() {
        let keys = parse_keys(&format!("# rotated in 2026\n{ONE}\n{TWO}"), "trusted.pem").unwrap();
        assert_eq!(keys.len(), 2);
        // `openssl pkey -pubin -outform DER | sha256sum`, first 16 digits: an outside oracle.
        assert_eq!(keys[0].id, "sha256:47c32c8bf45cc616");
        assert_ne!(keys[0].id, keys[1].id);
        assert_eq!(keys[1].source, "trusted.pem");
    }

    #[test]
    fn key_ids_are_those_recorded_before_ring() {
        // Computed by the p256-based key_id (before verification moved to ring) and by
        // `base64 -d | sha256sum`: ids are in state files and release records, so they never change.
        let ids = |text: &str| -> Vec<String> {
            parse_keys(text, "k")
                .unwrap()
                .into_iter()
                .map(|k| k.id)
                .collect()
        };
        assert_eq!(ids(TWO), ["sha256:e4631235880e3cae"]);
        assert_eq!(ids(COSIGN), ["sha256:869dc9baede6b6b1"]);
    }

    #[test]
    fn a_private_key_or_garbage_is_refused_by_name() {
        let e = parse_keys(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nabc\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "keys.pem",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("ENCRYPTED SIGSTORE PRIVATE KEY"),
            "{e}"
        );
        let e = parse_keys("hello", "keys.pem").unwrap_err();
        assert!(e.to_string().contains("no PEM PUBLIC KEY"), "{e}");
        let e = parse_keys(BROKEN, "keys.pem").unwrap_err();
        assert!(e.to_string().contains("not an ECDSA P-256 key"), "{e}");
        assert!(parse_keys("", "empty").unwrap().is_empty());
    }
}
