//! The SLSA v1 provenance predicate of each released image (in-toto `predicateType`
//! `https://slsa.dev/provenance/v1`, cosign's `--type slsaprovenance1`): the source commit,
//! the formula and the steps that ran, the base image's digest, the builder. Pure: the release
//! gathers the facts, this shapes them.

use serde_json::{json, Value};

/// cosign's `--type` for this predicate, and the predicate type it stands for.
pub const TYPE: &str = "slsaprovenance1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

/// The build type: what `externalParameters` mean (this formula, run by `cargo xtask release`).
pub const BUILD_TYPE: &str =
    "https://github.com/disinto/disinto/blob/main/docs/release.md#sbom-and-provenance";

/// One step as it ran (or did not).
#[derive(Debug, Clone)]
pub struct RanStep {
    pub id: String,
    pub status: String,
    pub started: Option<String>,
    pub finished: Option<String>,
}

/// What one image's provenance states.
#[derive(Debug, Clone)]
pub struct ProvenanceInput {
    /// `agents`, `edge` or `reproduce`.
    pub name: String,
    pub version: String,
    /// The repository's URL (`DISINTO_SOURCE_URL`).
    pub source_url: String,
    pub git_sha: String,
    pub dockerfile: String,
    /// The formula's path in the checkout, its SHA-256 and its step ids in order.
    pub formula_path: String,
    pub formula_sha256: String,
    pub formula_steps: Vec<String>,
    /// Every step of this release so far, in formula order.
    pub steps: Vec<RanStep>,
    /// The base image: its name in the Dockerfile and its digest (`sha256:...`).
    pub base: Option<(String, String)>,
    /// build-image's flags that change what is built.
    pub refresh_packages: bool,
    pub pull: bool,
    /// Who ran the release: the CI pipeline's URL when there is one, else this tool.
    pub builder_id: String,
    pub invocation_id: Option<String>,
    pub started: Option<String>,
    pub finished: String,
}

/// A digest `sha256:<hex>` as an in-toto DigestSet (`{"sha256": "<hex>"}`).
fn digest_set(digest: &str) -> Value {
    match digest.split_once(':') {
        Some((algorithm, hex)) => json!({ algorithm: hex }),
        None => json!({ "sha256": digest }),
    }
}

/// The provenance predicate of one image.
pub fn predicate(input: &ProvenanceInput) -> Value {
    let source = format!(
        "git+{}@refs/tags/{}",
        input.source_url.trim_end_matches('/'),
        input.version
    );
    let mut dependencies = vec![json!({
        "uri": source,
        "digest": { "gitCommit": input.git_sha },
    })];
    if let Some((name, digest)) = &input.base {
        dependencies.push(json!({
            "name": "base image",
            "uri": format!("pkg:docker/{name}"),
            "digest": digest_set(digest),
        }));
    }
    let steps: Vec<Value> = input
        .steps
        .iter()
        .map(|s| {
            let mut step = json!({ "id": s.id, "status": s.status });
            if let Some(t) = &s.started {
                step["started"] = json!(t);
            }
            if let Some(t) = &s.finished {
                step["finished"] = json!(t);
            }
            step
        })
        .collect();
    let mut metadata = json!({ "finishedOn": input.finished });
    if let Some(t) = &input.started {
        metadata["startedOn"] = json!(t);
    }
    if let Some(id) = &input.invocation_id {
        metadata["invocationId"] = json!(id);
    }
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "version": input.version,
                "image": input.name,
                "dockerfile": input.dockerfile,
                "source": { "uri": source, "digest": { "gitCommit": input.git_sha } },
                "formula": {
                    "path": input.formula_path,
                    "digest": { "sha256": input.formula_sha256 },
                    "steps": input.formula_steps,
                },
            },
            "internalParameters": {
                "refreshPackages": input.refresh_packages,
                "pull": input.pull,
                "steps": steps,
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {
                "id": input.builder_id,
                "version": { "xtask": env!("CARGO_PKG_VERSION") },
            },
            "metadata": metadata,
        },
    })
}

/// A line for the record: what the provenance names.
pub fn summary(input: &ProvenanceInput) -> String {
    let short: String = input.git_sha.chars().take(12).collect();
    format!("commit {short}, built by {}", input.builder_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ProvenanceInput {
        ProvenanceInput {
            name: "edge".into(),
            version: "v0.2.0".into(),
            source_url: "https://github.com/disinto/disinto/".into(),
            git_sha: "0123456789abcdef0123456789abcdef01234567".into(),
            dockerfile: "docker/edge/Dockerfile".into(),
            formula_path: "formulas/release.toml".into(),
            formula_sha256: "ff".repeat(32),
            formula_steps: vec!["preflight".into(), "build-image".into()],
            steps: vec![
                RanStep {
                    id: "preflight".into(),
                    status: "done".into(),
                    started: Some("2026-12-02T12:00:00Z".into()),
                    finished: Some("2026-12-02T12:00:01Z".into()),
                },
                RanStep {
                    id: "tag-main".into(),
                    status: "skipped".into(),
                    started: None,
                    finished: None,
                },
            ],
            base: Some(("debian:bookworm-slim".into(), "sha256:beef".into())),
            refresh_packages: false,
            pull: true,
            builder_id: "https://ci.example/repos/1/pipeline/7".into(),
            invocation_id: Some("https://ci.example/repos/1/pipeline/7".into()),
            started: Some("2026-12-02T12:00:00Z".into()),
            finished: "2026-12-02T12:05:00Z".into(),
        }
    }

    #[test]
    fn the_predicate_names_the_commit_the_formula_the_base_and_the_builder() {
        let p = predicate(&input());
        let def = &p["buildDefinition"];
        assert_eq!(def["buildType"], BUILD_TYPE);
        let source = &def["externalParameters"]["source"];
        assert_eq!(
            source["uri"],
            "git+https://github.com/disinto/disinto@refs/tags/v0.2.0"
        );
        assert_eq!(source["digest"]["gitCommit"], input().git_sha);
        assert_eq!(
            def["externalParameters"]["formula"]["steps"][1],
            "build-image"
        );
        assert_eq!(
            def["externalParameters"]["formula"]["digest"]["sha256"]
                .as_str()
                .unwrap()
                .len(),
            64
        );
        let deps = def["resolvedDependencies"].as_array().unwrap();
        assert_eq!(deps.len(), 2);
        assert_eq!(deps[1]["uri"], "pkg:docker/debian:bookworm-slim");
        assert_eq!(deps[1]["digest"]["sha256"], "beef");
        let steps = &def["internalParameters"]["steps"];
        assert_eq!(steps[0]["finished"], "2026-12-02T12:00:01Z");
        assert!(steps[1].get("started").is_none());
        let run = &p["runDetails"];
        assert_eq!(
            run["builder"]["id"],
            "https://ci.example/repos/1/pipeline/7"
        );
        assert_eq!(run["metadata"]["startedOn"], "2026-12-02T12:00:00Z");
        assert_eq!(
            summary(&input()),
            "commit 0123456789ab, built by https://ci.example/repos/1/pipeline/7"
        );
    }

    #[test]
    fn without_a_base_or_an_invocation_the_fields_are_left_out() {
        let p = predicate(&ProvenanceInput {
            base: None,
            invocation_id: None,
            started: None,
            ..input()
        });
        assert_eq!(
            p["buildDefinition"]["resolvedDependencies"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(p["runDetails"]["metadata"].get("invocationId").is_none());
        assert!(p["runDetails"]["metadata"].get("startedOn").is_none());
    }
}
