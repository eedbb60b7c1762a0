//! The SBOM each released image carries, as SPDX 2.3 JSON: its Debian packages (what
//! `dpkg-query` lists in the image) and, for agents, the crates of the `disinto` binary
//! (`cargo tree`, checksums from `Cargo.lock`). Pure: the release runs the two commands and
//! hands their output here, so the document is a function of what the build already knows.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};

/// The `dpkg-query -W -f` format [`parse_dpkg`] reads: one installed package a line.
pub const DPKG_FORMAT: &str =
    "${db:Status-Abbrev}\\t${Package}\\t${Version}\\t${Architecture}\\t${source:Package}\\n";

/// One Debian package installed in an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// The source package it was built from (for the purl's `upstream`).
    pub source: String,
}

/// One crate compiled into a binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// `registry+https://...` for a registry crate; none for the workspace's own.
    pub source: Option<String>,
    /// The SHA-256 Cargo.lock holds for a registry crate.
    pub checksum: Option<String>,
}

/// A binary shipped in the image, with the crates it is built from.
#[derive(Debug, Clone)]
pub struct Binary {
    pub name: String,
    pub version: String,
    /// Where it lives in the image.
    pub path: String,
    pub crates: Vec<Crate>,
}

/// What one image's SBOM describes.
#[derive(Debug, Clone)]
pub struct SbomInput {
    /// `agents`, `edge` or `reproduce`.
    pub name: String,
    /// `REPOSITORY` (no tag).
    pub repository: String,
    pub version: String,
    /// The manifest digest the SBOM is attached to.
    pub digest: String,
    /// When the document was made (RFC 3339, UTC).
    pub created: String,
    /// The project's URL, the base of the document's namespace.
    pub source_url: String,
    pub debs: Vec<DebPackage>,
    pub binary: Option<Binary>,
}

/// The installed packages in `dpkg-query -W -f DPKG_FORMAT` output; packages that are not
/// fully installed (`rc`, half-configured) are left out. A line of another shape is an error
/// naming it: an SBOM that silently lists less than the image holds is worse than none.
pub fn parse_dpkg(output: &str) -> Result<Vec<DebPackage>> {
    let mut packages = Vec::new();
    for (n, line) in output.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [status, name, version, arch, source] = fields[..] else {
            bail!(
                "dpkg-query output line {}: {line:?} is not status, package, version, architecture and source separated by tabs",
                n + 1
            );
        };
        if name.is_empty() || version.is_empty() {
            bail!(
                "dpkg-query output line {}: {line:?} has no package name or version",
                n + 1
            );
        }
        if status.trim() != "ii" {
            continue;
        }
        packages.push(DebPackage {
            name: name.to_string(),
            version: version.to_string(),
            arch: arch.to_string(),
            source: if source.is_empty() { name } else { source }.to_string(),
        });
    }
    if packages.is_empty() {
        bail!("dpkg-query listed no installed package: the image has no Debian package database");
    }
    packages.sort();
    packages.dedup();
    Ok(packages)
}

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

/// The crates of `cargo tree --prefix none --format '{p}'` output (`name vX.Y.Z`, maybe
/// followed by a path or `(*)`), each with its source and checksum from `lock` (Cargo.lock's
/// text). A crate the lock lacks, or a line of another shape, is an error.
pub fn crates(tree: &str, lock: &str) -> Result<Vec<Crate>> {
    let lock: Lock = toml::from_str(lock).context("Cargo.lock is not a TOML lock file")?;
    let locked: BTreeMap<(&str, &str), &LockPackage> = lock
        .package
        .iter()
        .map(|p| ((p.name.as_str(), p.version.as_str()), p))
        .collect();
    let mut crates = Vec::new();
    for (n, line) in tree.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            bail!(
                "cargo tree output line {}: {line:?} is not `name vX.Y.Z`",
                n + 1
            );
        };
        let Some(version) = version.strip_prefix('v') else {
            bail!(
                "cargo tree output line {}: {line:?} is not `name vX.Y.Z`",
                n + 1
            );
        };
        let package = locked.get(&(name, version)).with_context(|| {
            format!("cargo tree lists {name} v{version}, which Cargo.lock does not hold: run the release from a checkout whose Cargo.lock is current (cargo build --locked)")
        })?;
        crates.push(Crate {
            name: name.to_string(),
            version: version.to_string(),
            source: package.source.clone(),
            checksum: package.checksum.clone(),
        });
    }
    if crates.is_empty() {
        bail!("cargo tree listed no crate");
    }
    crates.sort();
    crates.dedup();
    Ok(crates)
}

/// An SPDX id from free text: SPDX allows letters, digits, `.` and `-` only.
fn spdx_id(kind: &str, index: usize, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                true => c,
                false => '-',
            },
        )
        .collect();
    format!("SPDXRef-{kind}-{index}-{clean}")
}

/// A purl qualifier value, percent-encoded where purl requires it.
fn purl_encode(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            ':' => "%3A".to_string(),
            '/' => "%2F".to_string(),
            '@' => "%40".to_string(),
            '+' => "%2B".to_string(),
            '?' => "%3F".to_string(),
            '#' => "%23".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn purl(locator: String) -> Value {
    json!([{
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": locator,
    }])
}

/// The SPDX 2.3 document of one image (a JSON value; `serde_json::to_string` writes it).
pub fn spdx(input: &SbomInput) -> Value {
    let image_id = "SPDXRef-Image";
    let hex = input.digest.trim_start_matches("sha256:");
    let mut packages = vec![json!({
        "SPDXID": image_id,
        "name": input.name,
        "versionInfo": input.version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": hex}],
        "externalRefs": purl(format!(
            "pkg:oci/{}@{}?repository_url={}&tag={}",
            input.name,
            purl_encode(&input.digest),
            purl_encode(&input.repository),
            input.version
        )),
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    let contains = |from: &str, to: &str| json!({"spdxElementId": from, "relationshipType": "CONTAINS", "relatedSpdxElement": to});
    for (i, deb) in input.debs.iter().enumerate() {
        let id = spdx_id("deb", i, &deb.name);
        let mut locator = format!(
            "pkg:deb/debian/{}@{}?arch={}",
            deb.name,
            purl_encode(&deb.version),
            deb.arch
        );
        if deb.source != deb.name {
            locator.push_str(&format!("&upstream={}", purl_encode(&deb.source)));
        }
        packages.push(json!({
            "SPDXID": id,
            "name": deb.name,
            "versionInfo": deb.version,
            "supplier": "Organization: Debian",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "LIBRARY",
            "sourceInfo": format!("built from the Debian source package {}", deb.source),
            "externalRefs": purl(locator),
        }));
        relationships.push(contains(image_id, &id));
    }
    if let Some(binary) = &input.binary {
        let bin_id = spdx_id("bin", 0, &binary.name);
        packages.push(json!({
            "SPDXID": bin_id,
            "name": binary.name,
            "versionInfo": binary.version,
            "downloadLocation": input.source_url,
            "filesAnalyzed": false,
            "primaryPackagePurpose": "APPLICATION",
            "comment": format!("installed at {}", binary.path),
        }));
        relationships.push(contains(image_id, &bin_id));
        for (i, c) in binary.crates.iter().enumerate() {
            let id = spdx_id("crate", i, &c.name);
            let registry = c
                .source
                .as_deref()
                .is_some_and(|s| s.starts_with("registry+"));
            let mut package = json!({
                "SPDXID": id,
                "name": c.name,
                "versionInfo": c.version,
                "downloadLocation": match registry {
                    true => format!("https://crates.io/api/v1/crates/{}/{}/download", c.name, c.version),
                    false => "NOASSERTION".to_string(),
                },
                "filesAnalyzed": false,
                "primaryPackagePurpose": "LIBRARY",
                "externalRefs": purl(format!("pkg:cargo/{}@{}", c.name, c.version)),
            });
            if let Some(sum) = &c.checksum {
                package["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sum}]);
            }
            packages.push(package);
            relationships.push(json!({
                "spdxElementId": bin_id,
                "relationshipType": "DEPENDS_ON",
                "relatedSpdxElement": id,
            }));
        }
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}:{}", input.repository, input.version),
        "documentNamespace": format!(
            "{}/spdx/{}/{}/{hex}",
            input.source_url.trim_end_matches('/'),
            input.name,
            input.version
        ),
        "creationInfo": {
            "created": input.created,
            "creators": ["Tool: disinto-xtask-release", "Organization: disinto"],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

/// A line for the record: how many packages of each kind the SBOM lists.
pub fn summary(input: &SbomInput) -> String {
    match &input.binary {
        Some(b) => format!(
            "{} Debian packages; {} {} with {} crates",
            input.debs.len(),
            b.name,
            b.version,
            b.crates.len()
        ),
        None => format!("{} Debian packages", input.debs.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DPKG: &str = "ii \tbase-files\t12.4+deb12u5\tamd64\tbase-files\n\
        ii \tlibc6\t2.36-9+deb12u4\tamd64\tglibc\n\
        rc \told-thing\t1.0\tamd64\told-thing\n\
        ii \tca-certificates\t20230311\tall\t\n";

    const LOCK: &str = r#"
version = 4

[[package]]
name = "anyhow"
version = "1.0.86"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "b3d1d046238990b9cf5bcde22a3fb3584ee5cf65fb2765f454ed428c7a0063da"

[[package]]
name = "disinto"
version = "0.1.0"
dependencies = ["anyhow"]
"#;

    fn input() -> SbomInput {
        SbomInput {
            name: "agents".into(),
            repository: "127.0.0.1:5000/disinto/agents".into(),
            version: "v0.2.0".into(),
            digest: "sha256:abcd".into(),
            created: "2026-12-02T12:00:00Z".into(),
            source_url: "https://github.com/disinto/disinto".into(),
            debs: parse_dpkg(DPKG).unwrap(),
            binary: Some(Binary {
                name: "disinto".into(),
                version: "v0.2.0".into(),
                path: "/usr/local/bin/disinto".into(),
                crates: crates(
                    "disinto v0.1.0 (/src/disinto)\nanyhow v1.0.86\nanyhow v1.0.86 (*)\n",
                    LOCK,
                )
                .unwrap(),
            }),
        }
    }

    #[test]
    fn dpkg_output_lists_installed_packages_only() {
        let debs = parse_dpkg(DPKG).unwrap();
        let names: Vec<&str> = debs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["base-files", "ca-certificates", "libc6"]);
        assert_eq!(debs[2].source, "glibc");
        assert_eq!(
            debs[1].source, "ca-certificates",
            "an empty source is the package's own"
        );
    }

    #[test]
    fn bad_dpkg_output_is_a_one_line_error() {
        for (text, want) in [
            ("ii \tlibc6\t2.36\n", "line 1"),
            (
                "ii \tlibc6\t2.36\tamd64\tglibc\nnot dpkg at all\n",
                "line 2",
            ),
            ("ii \t\t2.36\tamd64\tx\n", "no package name"),
            ("", "no installed package"),
            ("rc \tgone\t1\tamd64\tgone\n", "no installed package"),
        ] {
            let e = format!("{:#}", parse_dpkg(text).unwrap_err());
            assert!(e.contains(want) && !e.contains('\n'), "{text:?}: {e}");
        }
    }

    #[test]
    fn crates_come_from_the_tree_with_the_lock_s_checksums() {
        let c = crates(
            "anyhow v1.0.86\ndisinto v0.1.0 (/x)\nanyhow v1.0.86 (*)\n",
            LOCK,
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name, "anyhow");
        assert_eq!(c[0].checksum.as_deref().map(str::len), Some(64));
        assert_eq!(c[1].source, None);
        for (tree, lock, want) in [
            ("serde v1.0.0\n", LOCK, "Cargo.lock does not hold"),
            ("anyhow 1.0.86\n", LOCK, "not `name vX.Y.Z`"),
            ("anyhow\n", LOCK, "not `name vX.Y.Z`"),
            ("", LOCK, "no crate"),
            ("anyhow v1.0.86\n", "[[package]\n", "not a TOML lock file"),
        ] {
            let e = format!("{:#}", crates(tree, lock).unwrap_err());
            assert!(e.contains(want), "{tree:?}: {e}");
        }
    }

    #[test]
    fn the_document_is_spdx_2_3_with_every_package_related_to_the_image() {
        let doc = spdx(&input());
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["dataLicense"], "CC0-1.0");
        assert_eq!(doc["SPDXID"], "SPDXRef-DOCUMENT");
        assert_eq!(
            doc["documentNamespace"],
            "https://github.com/disinto/disinto/spdx/agents/v0.2.0/abcd"
        );
        let packages = doc["packages"].as_array().unwrap();
        // The image, three Debian packages, the binary and two crates.
        assert_eq!(packages.len(), 7);
        let ids: Vec<&str> = packages
            .iter()
            .map(|p| p["SPDXID"].as_str().unwrap())
            .collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "SPDX ids must be unique: {ids:?}");
        for id in &ids {
            let rest = id.strip_prefix("SPDXRef-").unwrap();
            assert!(
                rest.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
                "{id}"
            );
        }
        // Every package but the image is reached from it, and the document describes it.
        let relationships = doc["relationships"].as_array().unwrap();
        assert_eq!(relationships.len(), packages.len());
        for id in &ids[1..] {
            assert!(
                relationships.iter().any(|r| r["relatedSpdxElement"] == *id),
                "{id} is related to nothing"
            );
        }
        let libc = packages.iter().find(|p| p["name"] == "libc6").unwrap();
        assert_eq!(
            libc["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&upstream=glibc"
        );
        let anyhow = packages.iter().find(|p| p["name"] == "anyhow").unwrap();
        assert_eq!(
            anyhow["externalRefs"][0]["referenceLocator"],
            "pkg:cargo/anyhow@1.0.86"
        );
        assert_eq!(anyhow["checksums"][0]["algorithm"], "SHA256");
        assert_eq!(
            summary(&input()),
            "3 Debian packages; disinto v0.2.0 with 2 crates"
        );
    }

    #[test]
    fn an_image_without_a_binary_lists_its_packages() {
        let doc = spdx(&SbomInput {
            binary: None,
            ..input()
        });
        assert_eq!(doc["packages"].as_array().unwrap().len(), 4);
    }
}
