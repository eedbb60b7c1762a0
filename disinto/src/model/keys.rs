//! The public keys a factory trusts: cosign's format (a P-256 SubjectPublicKeyInfo in a
//! `PUBLIC KEY` PEM block), several to a file so a key can rotate, each named by a key id
//! the release record, `verify`, `status` and `history` all print the same way.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED};

/// One trusted public key and where it came from (the binary, or a file of the operator's).
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub key: PublicKey,
    /// `sha256:` and the first 16 hex digits of the SHA-256 of the key's DER encoding.
    pub id: String,
    pub source: String,
}

/// An ECDSA P-256 public key: its point, uncompressed (`04 || x || y`), checked to be on the
/// curve. Verification is ring's (already in the binary for TLS): no second crypto stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    point: [u8; 65],
}

/// What every P-256 SubjectPublicKeyInfo with an uncompressed point starts with, in DER:
/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (no unused bits) }.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The OIDs' contents (DER, without tag and length): id-ecPublicKey and prime256v1.
const ID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

impl PublicKey {
    /// A point as SEC1 writes it; only the uncompressed form (cosign's) is taken.
    pub fn from_point(point: &[u8]) -> std::result::Result<PublicKey, String> {
        let point: [u8; 65] = match point.first() {
            Some(0x04) => point
                .try_into()
                .map_err(|_| format!("its point is {} bytes, not 65", point.len()))?,
            Some(0x02 | 0x03) => {
                return Err("its point is compressed (cosign writes it uncompressed)".into())
            }
            _ => return Err("its point is not a SEC1 point".into()),
        };
        if !curve::on_curve(&point[1..33], &point[33..]) {
            return Err("its point is not on the P-256 curve".into());
        }
        Ok(PublicKey { point })
    }

    /// A SubjectPublicKeyInfo (the DER inside a `PUBLIC KEY` PEM block): id-ecPublicKey on
    /// prime256v1 and nothing else, whose point is then taken.
    pub fn from_spki_der(der: &[u8]) -> std::result::Result<PublicKey, String> {
        let (spki, rest) = der::take(der, der::SEQUENCE)?;
        if !rest.is_empty() {
            return Err("bytes follow its SubjectPublicKeyInfo".into());
        }
        let (algorithm, spki) = der::take(spki, der::SEQUENCE)?;
        let (bits, spki) = der::take(spki, der::BIT_STRING)?;
        if !spki.is_empty() {
            return Err("its SubjectPublicKeyInfo has more than two fields".into());
        }
        let (oid, algorithm) = der::take(algorithm, der::OID)?;
        if oid != ID_EC_PUBLIC_KEY {
            return Err("its algorithm is not id-ecPublicKey (an RSA or Ed25519 key?)".into());
        }
        let (curve, algorithm) = der::take(algorithm, der::OID)
            .map_err(|_| "its curve is not a named curve".to_string())?;
        if curve != PRIME256V1 || !algorithm.is_empty() {
            return Err("its curve is not P-256 (prime256v1)".into());
        }
        match bits.split_first() {
            Some((0, point)) => PublicKey::from_point(point),
            _ => Err("its key is not a whole number of bytes".into()),
        }
    }

    /// The key's SubjectPublicKeyInfo in DER, as `openssl pkey -pubin -outform DER` writes it.
    pub fn to_spki_der(&self) -> Vec<u8> {
        [&SPKI_P256_PREFIX[..], &self.point[..]].concat()
    }

    /// Whether `signature` is this key's ECDSA P-256 / SHA-256 signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &Signature) -> bool {
        let (algorithm, bytes) = match signature {
            Signature::Der(der) => (&ECDSA_P256_SHA256_ASN1, der.as_slice()),
            Signature::Fixed(rs) => (&ECDSA_P256_SHA256_FIXED, &rs[..]),
        };
        UnparsedPublicKey::new(algorithm, &self.point)
            .verify(message, bytes)
            .is_ok()
    }
}

/// An ECDSA P-256 signature in either form cosign's tools write: ASN.1 DER (what cosign puts
/// in annotations and envelopes) or the fixed 64 bytes `r || s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    Der(Vec<u8>),
    Fixed([u8; 64]),
}

impl Signature {
    /// DER if it is a well-formed one, else the fixed form; r and s in 1..n either way.
    pub fn parse(bytes: &[u8]) -> Option<Signature> {
        let der = || -> std::result::Result<(), String> {
            let (seq, rest) = der::take(bytes, der::SEQUENCE)?;
            let (r, seq) = der::take(seq, der::INTEGER)?;
            let (s, seq) = der::take(seq, der::INTEGER)?;
            if !rest.is_empty() || !seq.is_empty() {
                return Err("bytes after r and s".into());
            }
            for int in [r, s] {
                let value = der::positive_integer(int)?;
                if !curve::scalar_in_range(value) {
                    return Err("out of range".into());
                }
            }
            Ok(())
        };
        if der().is_ok() {
            return Some(Signature::Der(bytes.to_vec()));
        }
        let rs: [u8; 64] = bytes.try_into().ok()?;
        (curve::scalar_in_range(&rs[..32]) && curve::scalar_in_range(&rs[32..]))
            .then_some(Signature::Fixed(rs))
    }
}

/// The key id of a public key: short enough to read, long enough not to collide by chance.
pub fn key_id(key: &PublicKey) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, &key.to_spki_der());
    let hex: String = digest
        .as_ref()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The key in one `PUBLIC KEY` PEM block (`block` runs from its BEGIN line to its END line).
fn parse_public_key_pem(block: &str) -> std::result::Result<PublicKey, String> {
    let body = block
        .split_once('\n')
        .and_then(|(_, rest)| rest.rsplit_once("-----END "))
        .map(|(body, _)| body)
        .ok_or("its BEGIN and END lines are not on lines of their own")?;
    let text: String = body.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("its body is not base64: {e}"))?;
    PublicKey::from_spki_der(&der)
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
        let key = parse_public_key_pem(&block[..end]).map_err(|e| {
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

/// Just enough DER to take a SubjectPublicKeyInfo and an ECDSA signature apart: definite
/// lengths in their shortest form, as DER has them (anything else is refused).
mod der {
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;

    /// The contents of the element of type `tag` at the start of `bytes`, and what follows it.
    pub fn take(bytes: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
        let [found, first, rest @ ..] = bytes else {
            return Err("its DER is cut short".into());
        };
        if *found != tag {
            return Err(format!(
                "its DER has tag {found:#04x} where {tag:#04x} belongs"
            ));
        }
        let (len, rest) = match *first {
            n @ 0..=0x7f => (n as usize, rest),
            0x81 => match rest {
                [n @ 0x80..=0xff, rest @ ..] => (*n as usize, rest),
                _ => return Err("its DER has a length not in its shortest form".into()),
            },
            0x82 => match rest {
                [hi @ 1..=0xff, lo, rest @ ..] => ((*hi as usize) << 8 | *lo as usize, rest),
                _ => return Err("its DER has a length not in its shortest form".into()),
            },
            _ => return Err("its DER has a length this small a key never needs".into()),
        };
        if rest.len() < len {
            return Err("its DER is cut short".into());
        }
        Ok(rest.split_at(len))
    }

    /// The big-endian magnitude of a non-negative INTEGER's contents, minimally encoded.
    pub fn positive_integer(int: &[u8]) -> Result<&[u8], String> {
        match int {
            [] => Err("an empty INTEGER".into()),
            [0x80..=0xff, ..] => Err("a negative INTEGER".into()),
            [0, next, ..] if *next < 0x80 => Err("an INTEGER not in its shortest form".into()),
            [0, rest @ ..] => Ok(rest),
            _ => Ok(int),
        }
    }
}

/// The P-256 arithmetic ring does not expose: whether a point is on the curve (ring checks
/// it only when a signature is verified; a key file is checked when it is read) and whether
/// a scalar is in range. Slow and simple (it runs once per key and signature).
mod curve {
    /// 256-bit numbers as four 64-bit limbs, least significant first.
    type U256 = [u64; 4];

    /// The field's prime: 2^256 - 2^224 + 2^192 + 2^96 - 1.
    const P: U256 = [
        0xffff_ffff_ffff_ffff,
        0x0000_0000_ffff_ffff,
        0x0000_0000_0000_0000,
        0xffff_ffff_0000_0001,
    ];
    /// The curve's b (y^2 = x^3 - 3x + b).
    const B: U256 = [
        0x3bce_3c3e_27d2_604b,
        0x651d_06b0_cc53_b0f6,
        0xb3eb_bd55_7698_86bc,
        0x5ac6_35d8_aa3a_93e7,
    ];
    /// The group's order.
    const N: U256 = [
        0xf3b9_cac2_fc63_2551,
        0xbce6_faad_a717_9e84,
        0xffff_ffff_ffff_ffff,
        0xffff_ffff_0000_0000,
    ];

    /// A big-endian number of at most 32 bytes; None if longer.
    fn from_be(bytes: &[u8]) -> Option<U256> {
        if bytes.len() > 32 {
            return None;
        }
        let mut padded = [0u8; 32];
        padded[32 - bytes.len()..].copy_from_slice(bytes);
        let mut out = [0u64; 4];
        for (i, chunk) in padded.chunks_exact(8).enumerate() {
            out[3 - i] = u64::from_be_bytes(chunk.try_into().unwrap_or_default());
        }
        Some(out)
    }

    fn less(a: &U256, b: &U256) -> bool {
        a.iter().rev().cmp(b.iter().rev()) == std::cmp::Ordering::Less
    }

    /// a + b and the carry out.
    fn add(a: &U256, b: &U256) -> (U256, bool) {
        let mut out = [0u64; 4];
        let mut carry = false;
        for i in 0..4 {
            let (s, c1) = a[i].overflowing_add(b[i]);
            let (s, c2) = s.overflowing_add(carry as u64);
            out[i] = s;
            carry = c1 || c2;
        }
        (out, carry)
    }

    /// a - b and the borrow out.
    fn sub(a: &U256, b: &U256) -> (U256, bool) {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for i in 0..4 {
            let (d, b1) = a[i].overflowing_sub(b[i]);
            let (d, b2) = d.overflowing_sub(borrow as u64);
            out[i] = d;
            borrow = b1 || b2;
        }
        (out, borrow)
    }

    /// (a + b) mod p, for a and b below p.
    fn add_mod(a: &U256, b: &U256) -> U256 {
        let (sum, carry) = add(a, b);
        if carry || !less(&sum, &P) {
            sub(&sum, &P).0
        } else {
            sum
        }
    }

    /// (a - b) mod p, for a and b below p.
    fn sub_mod(a: &U256, b: &U256) -> U256 {
        match sub(a, b) {
            (d, true) => add(&d, &P).0,
            (d, false) => d,
        }
    }

    /// (a * b) mod p, for a and b below p: double and add, from a's top bit down.
    fn mul_mod(a: &U256, b: &U256) -> U256 {
        let mut acc = [0u64; 4];
        for bit in (0..256).rev() {
            acc = add_mod(&acc, &acc);
            if a[bit / 64] >> (bit % 64) & 1 == 1 {
                acc = add_mod(&acc, b);
            }
        }
        acc
    }

    /// Whether (x, y), 32 big-endian bytes each, is a point of P-256: both below p and
    /// y^2 = x^3 - 3x + b (mod p). The point at infinity has no such encoding.
    pub fn on_curve(x: &[u8], y: &[u8]) -> bool {
        let (Some(x), Some(y)) = (from_be(x), from_be(y)) else {
            return false;
        };
        if !less(&x, &P) || !less(&y, &P) {
            return false;
        }
        let three = [3, 0, 0, 0];
        let rhs = add_mod(&mul_mod(&x, &sub_mod(&mul_mod(&x, &x), &three)), &B);
        mul_mod(&y, &y) == rhs
    }

    /// Whether a big-endian scalar is in 1..n, as an ECDSA signature's r and s must be.
    pub fn scalar_in_range(bytes: &[u8]) -> bool {
        from_be(bytes).is_some_and(|s| s != [0; 4] && less(&s, &N))
    }
}

/// Keys that sign, for tests: ring's (the same code as verifies), from its system RNG.
#[cfg(test)]
pub mod testing {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use ring::rand::SystemRandom;
    use ring::signature::{
        EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING,
    };

    use super::{key_id, PublicKey, TrustedKey};

    /// A P-256 key pair, usable for both signature forms.
    pub struct SigningKey {
        der: EcdsaKeyPair,
        fixed: EcdsaKeyPair,
        rng: SystemRandom,
    }

    impl SigningKey {
        pub fn generate() -> SigningKey {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .expect("a P-256 key");
            SigningKey::from_pkcs8(pkcs8.as_ref())
        }

        /// The same key for the same seed, within one test process (ring makes keys only
        /// from its RNG, so the first call for a seed makes it and later ones reuse it).
        pub fn seeded(seed: u8) -> SigningKey {
            static KEYS: Mutex<BTreeMap<u8, Vec<u8>>> = Mutex::new(BTreeMap::new());
            let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
            let pkcs8 = keys.entry(seed).or_insert_with(|| {
                let rng = SystemRandom::new();
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                    .expect("a P-256 key")
                    .as_ref()
                    .to_vec()
            });
            SigningKey::from_pkcs8(pkcs8)
        }

        fn from_pkcs8(pkcs8: &[u8]) -> SigningKey {
            let rng = SystemRandom::new();
            let pair = |alg| EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng).expect("its PKCS#8");
            SigningKey {
                der: pair(&ECDSA_P256_SHA256_ASN1_SIGNING),
                fixed: pair(&ECDSA_P256_SHA256_FIXED_SIGNING),
                rng,
            }
        }

        /// The signature of `message` in DER, as cosign writes it.
        pub fn sign(&self, message: &[u8]) -> Vec<u8> {
            let sig = self.der.sign(&self.rng, message).expect("a signature");
            sig.as_ref().to_vec()
        }

        /// The signature of `message` as the fixed 64 bytes `r || s`.
        pub fn sign_fixed(&self, message: &[u8]) -> Vec<u8> {
            let sig = self.fixed.sign(&self.rng, message).expect("a signature");
            sig.as_ref().to_vec()
        }

        pub fn public(&self) -> PublicKey {
            PublicKey::from_point(self.der.public_key().as_ref()).expect("ring's own point")
        }

        pub fn trusted(&self) -> TrustedKey {
            let key = self.public();
            TrustedKey {
                id: key_id(&key),
                key,
                source: "test".into(),
            }
        }
    }
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

    fn der_of(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    fn pem_of(der: &[u8]) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
    }

    #[test]
    fn the_der_written_back_is_the_der_read() {
        for pem in [ONE, TWO, COSIGN] {
            let key = parse_keys(pem, "k").unwrap().remove(0).key;
            assert_eq!(key.to_spki_der(), der_of(pem));
        }
        // The same key in CRLF lines and another wrapping: the same id.
        let body: String = ONE.lines().filter(|l| !l.starts_with("-----")).collect();
        let rewrapped = format!(
            "-----BEGIN PUBLIC KEY-----\r\n{}\r\n{}\r\n-----END PUBLIC KEY-----\r\n",
            &body[..40],
            &body[40..]
        );
        assert_eq!(
            parse_keys(&rewrapped, "k").unwrap()[0].id,
            "sha256:47c32c8bf45cc616"
        );
    }

    #[test]
    fn only_an_uncompressed_p256_point_on_the_curve_is_taken() {
        let good = der_of(ONE);
        let refused = |der: &[u8], why: &str| {
            let e = parse_keys(&pem_of(der), "keys.pem")
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("keys.pem: a PUBLIC KEY block is not an ECDSA P-256 key ("),
                "{e}"
            );
            assert!(e.contains(why), "{e}");
            assert!(!e.contains('\n'), "{e}");
        };
        // y changed in its last bit: off the curve.
        let mut off = good.clone();
        *off.last_mut().unwrap() ^= 1;
        refused(&off, "not on the P-256 curve");
        // x = p (not below the field's prime), y as it was.
        let mut big = good.clone();
        let p = [
            0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        big[27..59].copy_from_slice(&p);
        refused(&big, "not on the P-256 curve");
        // secp256k1 (1.3.132.0.10) in place of prime256v1, the same point.
        let mut k1 = good.clone();
        k1.splice(13..23, [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a]);
        k1[1] -= 3;
        k1[3] -= 3;
        refused(&k1, "not P-256");
        // An Ed25519 key (RFC 8410's example).
        refused(
            &base64::engine::general_purpose::STANDARD
                .decode("MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=")
                .unwrap(),
            "not id-ecPublicKey",
        );
        // The point compressed (02/03 and x): refused, not misread.
        let mut compressed = good[..27 + 32].to_vec();
        compressed[26] = 0x02 | (good[90] & 1);
        compressed[1] = 0x39;
        compressed[24] = 0x22;
        refused(&compressed, "compressed");
        // Bytes after the key.
        refused(&[good.as_slice(), &[0]].concat(), "follow");
    }

    #[test]
    fn signatures_are_taken_in_der_or_as_r_and_s_and_only_in_range() {
        let key = testing::SigningKey::generate();
        let public = key.public();
        let der = key.sign(b"m");
        let fixed = key.sign_fixed(b"m");
        let der = Signature::parse(&der).unwrap();
        let fixed = Signature::parse(&fixed).unwrap();
        assert!(matches!(der, Signature::Der(_)) && matches!(fixed, Signature::Fixed(_)));
        assert!(public.verifies(b"m", &der) && public.verifies(b"m", &fixed));
        assert!(!public.verifies(b"n", &der) && !public.verifies(b"n", &fixed));
        let other = testing::SigningKey::generate().public();
        assert!(!other.verifies(b"m", &der));
        // r = 0, or s = n: not signatures at all.
        assert_eq!(Signature::parse(&[0; 64]), None);
        let n = [
            0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
            0x25, 0x51,
        ];
        assert_eq!(Signature::parse(&[[1; 32], n].concat()), None);
        let mut below_n = n;
        below_n[31] -= 1;
        assert!(Signature::parse(&[[1; 32], below_n].concat()).is_some());
        // DER with s = n, or with an integer padded beyond its shortest form.
        let der_n = [&[0x30, 0x26, 0x02, 0x01, 0x01, 0x02, 0x21, 0x00][..], &n].concat();
        assert_eq!(Signature::parse(&der_n), None);
        assert!(Signature::parse(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]).is_some());
        assert_eq!(
            Signature::parse(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01]),
            None
        );
        assert_eq!(Signature::parse(b"not a signature"), None);
    }
}
