//! Golden tests: the generated compose file in both modes, and the swarm stack file, pinned
//! byte for byte.
//! They are the product's contract, so they live in its crate: `cargo test -p disinto` checks
//! them. After an intended change, regenerate with `UPDATE_GOLDEN=1 cargo test -p disinto --test golden`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use disinto::model::compose::{generate, ComposeInput};
use disinto::model::config::Settings;

fn golden(name: &str, process: &[(&str, &str)]) {
    let process: BTreeMap<String, String> = process
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let settings = Settings::from_maps(process, BTreeMap::new());
    let text = generate(&ComposeInput::from(
        &disinto::model::config::FactoryConfig::from_settings(&settings).unwrap(),
    ))
    .unwrap();
    check(name, &text);
}

/// Compares `text` with the golden file `name` (rewrites it first with UPDATE_GOLDEN set).
fn check(name: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == text,
        "{} differs from the generated file:\n{}\nif the change is intended: UPDATE_GOLDEN=1 cargo test -p disinto --test golden",
        path.display(),
        first_difference(&want, text)
    );
}

/// The first line where `want` and `got` differ, both sides shown.
fn first_difference(want: &str, got: &str) -> String {
    let (mut w, mut g) = (want.lines(), got.lines());
    for n in 1.. {
        match (w.next(), g.next()) {
            (None, None) => return "(they differ in line endings)".into(),
            (a, b) if a != b => {
                return format!(
                    "line {n}:\n- {}\n+ {}",
                    a.unwrap_or("(end)"),
                    b.unwrap_or("(end)")
                )
            }
            _ => {}
        }
    }
    unreachable!()
}

#[test]
fn dev_mode() {
    golden("compose-dev.yml", &[]);
}

#[test]
fn pinned_release() {
    golden("compose-pinned-release.yml", &[("AGENTS_IMAGE", "v0.1.1")]);
}

#[test]
fn pinned_digest() {
    golden(
        "compose-pinned-digest.yml",
        &[(
            "AGENTS_IMAGE",
            "ghcr.io/disinto/agents:v0.1.1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )],
    );
}

/// The stack file `disinto swarm deploy` writes, for a release pinned by digest.
#[test]
fn swarm_stack() {
    use disinto::model::stack::{generate, StackInput};
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let process: BTreeMap<String, String> = [
        ("AGENTS_IMAGE", "v0.1.1"),
        ("DISINTO_REGISTRY", "127.0.0.1:5000/disinto"),
        ("EDGE_HTTP_PORT", "8080"),
        ("WOODPECKER_AGENT_SECRET", "s3cret$"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::from_maps(process, BTreeMap::new());
    let config = disinto::model::config::FactoryConfig::from_settings(&settings).unwrap();
    let mut compose = ComposeInput::from(&config);
    for image in ["agents", "edge", "reproduce"] {
        compose.pinned.insert(
            image,
            format!("127.0.0.1:5000/disinto/{image}:v0.1.1@{digest}"),
        );
    }
    let input = StackInput::new(compose, std::path::Path::new("/srv/factory"), &settings).unwrap();
    check("stack-pinned-release.yml", &generate(&input).unwrap());
}
