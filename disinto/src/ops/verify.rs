//! `disinto verify [VERSION|IMAGE]`: what an auditor asks of a release's images, answered
//! at their registry with the trusted keys, and nothing changed: the signature (which key),
//! the provenance (commit, builder, when) and the SBOM (its packages). Every image is asked
//! afresh: the factory's remembered digests are for rollouts, not for audits.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use super::trust::trusted_keys;
use crate::engine::registry;
use crate::factory::Factory;
use crate::model::image_ref::{AgentsImage, ImageRef, OUR_IMAGES};
use crate::model::keys::TrustedKey;
use crate::model::signature::{self, Provenance};

/// What `verify` found of one image: for an image index, of the index and of each platform.
#[derive(Debug, Default, Serialize)]
struct Report {
    image: String,
    digest: Option<String>,
    #[serde(flatten)]
    checked: Checked,
    /// An image index's platforms, each checked as an image (empty for a single image).
    platforms: Vec<PlatformReport>,
}

/// One platform of an image index.
#[derive(Debug, Serialize)]
struct PlatformReport {
    platform: String,
    digest: String,
    #[serde(flatten)]
    checked: Checked,
}

/// The signature and attestations of one digest.
#[derive(Debug, Default, Serialize)]
struct Checked {
    verified: bool,
    /// The key id that signed it.
    key: Option<String>,
    /// Why it did not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    provenance: Option<Provenance>,
    sbom: Option<Sbom>,
}

#[derive(Debug, Serialize)]
struct Sbom {
    packages: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    list: Option<Vec<Package>>,
}

#[derive(Debug, Serialize)]
struct Package {
    name: String,
    version: String,
}

pub(crate) fn verify(root: &Path, target: Option<String>, json: bool, list: bool) -> Result<()> {
    let (factory, images) = images(root, target)?;
    let keys = trusted_keys(&factory.settings, &factory.dir)?;
    if keys.is_empty() {
        bail!("no trusted key: this disinto was not built by a release; set {} to a file of cosign public keys (cosign.pub)", super::trust::TRUSTED_KEYS_VAR);
    }
    let reports: Vec<Report> = images.iter().map(|i| report(i, &keys, list)).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            print_report(r, list);
        }
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.checked.verified)
        .map(|r| r.image.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("not verified: {}", failed.join(", "));
    }
    Ok(())
}

/// The images to verify: a release's three (a version, or the factory's AGENTS_IMAGE), or
/// the one image named.
fn images(root: &Path, target: Option<String>) -> Result<(Factory, Vec<ImageRef>)> {
    let (factory, agents) = match target {
        None => {
            let factory = Factory::open(root)?;
            let agents = factory.config.agents.clone();
            (factory, agents)
        }
        Some(target) => {
            let factory = Factory::open_to_set_agents(root)?;
            match AgentsImage::parse(Some(&target)) {
                Ok(release @ AgentsImage::Release(_)) => (factory, release),
                _ => match ImageRef::parse(&target) {
                    Ok(one) if target.contains(['/', ':', '@']) => return Ok((factory, vec![one])),
                    _ => bail!("{target:?} is neither a version (v0.1.1) nor an image reference"),
                },
            }
        }
    };
    if agents == AgentsImage::Dev {
        bail!("AGENTS_IMAGE is dev mode (built from this checkout): nothing signed to verify; name a version or an image");
    }
    let images = OUR_IMAGES
        .into_iter()
        .filter_map(|i| agents.resolved_for(i, &factory.config.registry))
        .map(|r| ImageRef::parse(&r))
        .collect::<Result<_>>()?;
    Ok((factory, images))
}

fn report(image: &ImageRef, keys: &[TrustedKey], list: bool) -> Report {
    let mut r = Report {
        image: image.to_string(),
        ..Report::default()
    };
    // One fetch names the digest and says whether it is an index.
    let fetched = match registry::resolve_manifest(image) {
        Ok(f) => f,
        Err(e) => {
            r.checked.error = Some(format!("{e:#}"));
            return r;
        }
    };
    r.digest = Some(fetched.digest.clone());
    let entries = match fetched.index() {
        Ok(entries) => entries,
        Err(e) => {
            r.checked.error = Some(format!("{e:#}"));
            return r;
        }
    };
    r.checked = check(image, &fetched.digest, keys, list);
    let Some(entries) = entries else {
        return r;
    };
    r.platforms = entries
        .iter()
        .map(|e| PlatformReport {
            platform: e.platform.to_string(),
            digest: e.digest.clone(),
            checked: check(image, &e.digest, keys, list),
        })
        .collect();
    // An index verifies when it and every platform in it do: a host runs only its own entry,
    // and an auditor vouches for them all.
    if r.checked.verified && !r.platforms.iter().all(|p| p.checked.verified) {
        r.checked.verified = false;
        let failed: Vec<&str> = r
            .platforms
            .iter()
            .filter(|p| !p.checked.verified)
            .map(|p| p.platform.as_str())
            .collect();
        r.checked.error = Some(format!("not verified for {}", failed.join(", ")));
    }
    if r.checked.verified && r.platforms.is_empty() {
        r.checked.verified = false;
        r.checked.error = Some("an image index with no platform in it".into());
    }
    r
}

/// The signature of `digest` in `image`'s repository, then its attestations.
fn check(image: &ImageRef, digest: &str, keys: &[TrustedKey], list: bool) -> Checked {
    let mut r = Checked::default();
    match registry::verify(image, digest, keys) {
        Ok(signed) => {
            r.verified = true;
            r.key = Some(signed.key_id);
        }
        Err(e) => {
            r.error = Some(format!("{e:#}"));
            return r;
        }
    }
    match registry::attestations(image, digest, keys) {
        Ok(atts) => {
            for a in atts {
                match a.predicate_type.as_str() {
                    signature::SLSA_PROVENANCE_V1 | signature::SLSA_PROVENANCE_V02 => {
                        r.provenance = Some(signature::provenance(&a.predicate));
                    }
                    signature::SPDX => {
                        let packages = signature::sbom_packages(&a.predicate);
                        r.sbom = Some(Sbom {
                            packages: packages.len(),
                            list: list.then(|| {
                                packages
                                    .into_iter()
                                    .map(|(name, version)| Package { name, version })
                                    .collect()
                            }),
                        });
                    }
                    _ => {}
                }
            }
        }
        // A signed image whose attestations do not check out is not verified either.
        Err(e) => {
            r.verified = false;
            r.error = Some(format!("attestations: {e:#}"));
        }
    }
    r
}

fn print_report(r: &Report, list: bool) {
    println!("{}", r.image);
    if let Some(d) = &r.digest {
        match r.platforms.is_empty() {
            true => println!("  digest      {d}"),
            false => println!(
                "  digest      {d} (image index, {} platforms)",
                r.platforms.len()
            ),
        }
    }
    let c = &r.checked;
    println!("  signature   {}", signature_words(c));
    if !r.platforms.is_empty() {
        // A line per platform; the index's own attestations only if the release made any.
        for p in &r.platforms {
            println!(
                "  {}  {}  {}; {}; {}",
                p.platform,
                p.digest,
                signature_words(&p.checked),
                provenance_words(&p.checked),
                sbom_words(&p.checked)
            );
            print_packages(&p.checked, list, "    ");
        }
        if c.provenance.is_some() || c.sbom.is_some() {
            println!("  index       {}; {}", provenance_words(c), sbom_words(c));
        }
        return;
    }
    if c.key.is_none() {
        return;
    }
    println!("  {}", provenance_words(c));
    println!("  {}", sbom_words(c));
    print_packages(c, list, "    ");
}

fn signature_words(c: &Checked) -> String {
    match (&c.key, &c.error) {
        (Some(key), None) => format!("verified, key {key}"),
        (Some(key), Some(e)) => format!("verified, key {key}; but {e}"),
        (None, Some(e)) => format!("NOT VERIFIED: {e}"),
        (None, None) => "NOT VERIFIED".into(),
    }
}

fn provenance_words(c: &Checked) -> String {
    match &c.provenance {
        Some(p) => format!(
            "provenance  commit {}, builder {}, built {}",
            p.commit.as_deref().unwrap_or("-"),
            p.builder.as_deref().unwrap_or("-"),
            p.when.as_deref().unwrap_or("-")
        ),
        None => "provenance  none attached".into(),
    }
}

fn sbom_words(c: &Checked) -> String {
    match &c.sbom {
        Some(s) => format!("sbom        {} packages (SPDX)", s.packages),
        None => "sbom        none attached".into(),
    }
}

fn print_packages(c: &Checked, list: bool, indent: &str) {
    if !list {
        return;
    }
    for p in c.sbom.iter().flat_map(|s| s.list.iter().flatten()) {
        println!("{indent}  {} {}", p.name, p.version);
    }
}
