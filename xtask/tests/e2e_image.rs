//! End-to-end: the agents image's build. Its context is a few files (never target/), a
//! change under bin/ reuses the package layers, and release metadata is on the image.

mod common;

use std::process::Command;

use common::*;
use xtask::build_log::{parse_build_steps, parse_context_size};

fn build(context: &std::path::Path, tag: &str) -> String {
    // BuildKit, as releases build: its plain log names each step and says when it is cached.
    let out = output(
        Command::new("docker")
            .args([
                "build",
                "--progress=plain",
                "-f",
                "docker/agents/Dockerfile",
                "-t",
                tag,
                ".",
            ])
            .current_dir(context),
    );
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "docker build failed:\n{log}");
    log
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn editing_bin_reuses_the_package_layers_and_the_context_stays_small() {
    let _sh = bench();
    let ctx = TempDir::new("e2e-cache").unwrap();
    for dir in ["docker", "lib", "bin"] {
        copy_tree(&root().join(dir), &ctx.path().join(dir));
    }
    std::fs::copy(
        root().join(".dockerignore"),
        ctx.path().join(".dockerignore"),
    )
    .unwrap();
    // A fat target/ directory, as every contributor's checkout has: it must not be sent.
    std::fs::create_dir_all(ctx.path().join("target")).unwrap();
    std::fs::write(ctx.path().join("target/big"), vec![7u8; 8 << 20]).unwrap();

    let tag = format!("disinto-agents:{}", unique("cache-"));
    let mut first = build(ctx.path(), &tag);
    // BuildKit shares a context transfer with a concurrent build (other test lanes build
    // the same Dockerfile at the same time) and then logs none for this one: build again.
    for _ in 0..3 {
        if parse_context_size(&first).is_some() {
            break;
        }
        std::fs::write(ctx.path().join("bin/.nudge"), unique("nudge-")).unwrap();
        first = build(ctx.path(), &tag);
    }
    let size = parse_context_size(&first)
        .unwrap_or_else(|| panic!("the build log states no context size:\n{first}"));
    assert!(size < 2_000_000, "build context is {size} bytes:\n{first}");

    let launcher = ctx.path().join("bin/disinto");
    let mut text = std::fs::read_to_string(&launcher).unwrap();
    // Unique to this run: BuildKit keeps its cache after the image is removed, so an edit
    // made by an earlier run would be a cache hit.
    text.push_str(&format!("# an edit {}\n", unique("")));
    std::fs::write(&launcher, text).unwrap();
    let second = build(ctx.path(), &tag);
    let steps = parse_build_steps(&second);
    let step = |prefix: &str| {
        steps
            .iter()
            .find(|s| s.instruction.starts_with(prefix))
            .unwrap_or_else(|| panic!("no step {prefix}:\n{second}"))
    };
    // The package stage's steps start by noting the time (their files are dated after it).
    let run = |what: &str| {
        steps
            .iter()
            .find(|s| s.instruction.starts_with("RUN ") && s.instruction.contains(what))
            .unwrap_or_else(|| panic!("no RUN step with {what}:\n{second}"))
    };
    assert!(run("apt-get update").cached, "packages rebuilt:\n{second}");
    assert!(run("groupadd").cached, "user layer rebuilt:\n{second}");
    assert!(
        !step("COPY bin/").cached,
        "the edit was not picked up:\n{second}"
    );
    let _ = output(Command::new("docker").args(["rmi", &tag]));
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn release_metadata_is_on_the_image_and_inside_the_container() {
    let _sh = bench();
    let image = agents_image();
    let labels = ok(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        image,
    ]));
    let labels: serde_yaml::Value = serde_yaml::from_str(&labels).unwrap();
    assert_eq!(
        labels["org.opencontainers.image.version"].as_str(),
        Some("v0.0.0-e2e")
    );
    for key in ["revision", "created", "source"] {
        let key = format!("org.opencontainers.image.{key}");
        assert!(
            labels[key.as_str()].as_str().is_some_and(|v| !v.is_empty()),
            "{key}"
        );
    }
    let volumes = ok(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Volumes}}",
        image,
    ]));
    let volumes: std::collections::BTreeMap<String, serde_yaml::Value> =
        serde_yaml::from_str(&volumes).unwrap();
    let declared: Vec<&str> = volumes.keys().map(String::as_str).collect();
    assert_eq!(
        declared,
        [
            "/home/agent/data",
            "/home/agent/disinto/projects",
            "/home/agent/disinto/state",
            "/home/agent/repos"
        ]
    );
    let version =
        ok(Command::new("docker").args(["run", "--rm", image, "printenv", "DISINTO_VERSION"]));
    assert_eq!(version.trim(), "v0.0.0-e2e");
}
