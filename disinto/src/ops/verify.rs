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

/// What `verify` found of one image.
#[derive(Debug, Default, Serialize)]
struct Report {
    image: String,
    digest: Option<String>,
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
        .filter(|r| !r.verified)
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
    let digest = match image.digest() {
        Some(d) => Ok(d.to_string()),
        None => registry::resolve(image),
    };
    let digest = match digest {
        Ok(d) => d,
        Err(e) => {
            r.error = Some(format!("{e:#}"));
            return r;
        }
    };
    r.digest = Some(digest.clone());
    match registry::verify(image, &digest, keys) {
        Ok(signed) => {
            r.verified = true;
            r.key = Some(signed.key_id);
        }
        Err(e) => {
            r.error = Some(format!("{e:#}"));
            return r;
        }
    }
    match registry::attestations(image, &digest, keys) {
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
        println!("  digest      {d}");
    }
    match (&r.key, &r.error) {
        (Some(key), None) => println!("  signature   verified, key {key}"),
        (Some(key), Some(e)) => println!("  signature   verified, key {key}; but {e}"),
        (None, Some(e)) => println!("  signature   NOT VERIFIED: {e}"),
        (None, None) => {}
    }
    if r.key.is_none() {
        return;
    }
    match &r.provenance {
        Some(p) => println!(
            "  provenance  commit {}, builder {}, built {}",
            p.commit.as_deref().unwrap_or("-"),
            p.builder.as_deref().unwrap_or("-"),
            p.when.as_deref().unwrap_or("-")
        ),
        None => println!("  provenance  none attached"),
    }
    match &r.sbom {
        Some(s) => {
            println!("  sbom        {} packages (SPDX)", s.packages);
            if list {
                for p in s.list.iter().flatten() {
                    println!("    {} {}", p.name, p.version);
                }
            }
        }
        None => println!("  sbom        none attached"),
    }
}
