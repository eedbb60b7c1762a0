//! End-to-end: the generated compose file against real compose v2, and the registry bench
//! (push refused without login, accepted after `docker login --password-stdin`, pulled back).

mod common;

use common::*;
use serde_yaml::Value;

fn generate(dir: &std::path::Path, agents_image: Option<&str>) -> std::path::PathBuf {
    let file = dir.join("docker-compose.yml");
    let mut cmd = xtask();
    cmd.args(["gen-compose", "--output"]).arg(&file);
    cmd.env_remove("AGENTS_IMAGE")
        .env_remove("DISINTO_REGISTRY");
    if let Some(image) = agents_image {
        cmd.env("AGENTS_IMAGE", image);
    }
    ok(&mut cmd);
    file
}

/// `docker compose config` of `file` with every profile on, as parsed YAML.
fn compose_config(file: &std::path::Path, registry: Option<&str>) -> Value {
    let compose = |args: &[&str]| {
        let mut cmd = std::process::Command::new("docker");
        cmd.args(["compose", "--profile", "*", "-f"])
            .arg(file)
            .arg("--project-directory")
            .arg(root())
            .args(args)
            .env_remove("DISINTO_REGISTRY");
        if let Some(r) = registry {
            cmd.env("DISINTO_REGISTRY", r);
        }
        ok(&mut cmd)
    };
    assert_eq!(
        compose(&["config", "-q"]),
        "",
        "config -q printed something"
    );
    serde_yaml::from_str(&compose(&["config", "--format", "json"])).unwrap()
}

fn image_of(config: &Value, service: &str) -> String {
    config["services"][service]["image"]
        .as_str()
        .unwrap_or_else(|| panic!("{service} has no image"))
        .to_string()
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn dev_mode_file_is_valid_compose_and_builds_agents_and_runner() {
    let _sh = bench();
    let dir = TempDir::new("e2e-dev").unwrap();
    let config = compose_config(&generate(dir.path(), None), None);
    for service in ["agents", "runner"] {
        let build = &config["services"][service]["build"];
        assert!(
            build["dockerfile"]
                .as_str()
                .unwrap()
                .ends_with("docker/agents/Dockerfile"),
            "{service}: {build:?}"
        );
    }
    assert_eq!(image_of(&config, "agents"), image_of(&config, "runner"));
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn pinned_file_is_valid_compose_and_agents_and_runner_share_the_image() {
    let _sh = bench();
    let dir = TempDir::new("e2e-pinned").unwrap();
    let file = generate(dir.path(), Some("v0.1.1"));

    let default = compose_config(&file, None);
    assert_eq!(
        image_of(&default, "agents"),
        "ghcr.io/disinto/agents:v0.1.1"
    );
    assert_eq!(
        image_of(&default, "runner"),
        "ghcr.io/disinto/agents:v0.1.1"
    );

    let local = compose_config(&file, Some("127.0.0.1:5000/disinto"));
    assert_eq!(
        image_of(&local, "agents"),
        "127.0.0.1:5000/disinto/agents:v0.1.1"
    );
    assert_eq!(image_of(&local, "runner"), image_of(&local, "agents"));
    for image in ["edge", "reproduce"] {
        assert_eq!(
            image_of(&local, image),
            format!("127.0.0.1:5000/disinto/{image}:v0.1.1")
        );
    }
    // A pinned factory never needs a build context.
    for service in ["agents", "runner", "edge", "reproduce"] {
        assert!(
            local["services"][service].get("build").is_none(),
            "{service} builds"
        );
    }

    let digest = "ghcr.io/disinto/agents:v0.1.1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let pinned = compose_config(&generate(dir.path(), Some(digest)), None);
    assert_eq!(image_of(&pinned, "agents"), digest);
    assert_eq!(image_of(&pinned, "runner"), digest);
    // Edge and reproduce follow the tag; the digest pins agents alone.
    assert_eq!(image_of(&pinned, "edge"), "ghcr.io/disinto/edge:v0.1.1");
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn bad_agents_image_leaves_the_existing_file_untouched() {
    let _sh = bench();
    let dir = TempDir::new("e2e-bad").unwrap();
    let file = generate(dir.path(), Some("v0.1.1"));
    let before = std::fs::read(&file).unwrap();
    let out = output(
        xtask()
            .args(["gen-compose", "--output"])
            .arg(&file)
            .env("AGENTS_IMAGE", "ghcr.io/Disinto/agents:v0.1.1"),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("AGENTS_IMAGE=\"ghcr.io/Disinto/agents:v0.1.1\""),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "a temp file was left"
    );
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn check_mode_reports_drift_and_writes_nothing() {
    let _sh = bench();
    let dir = TempDir::new("e2e-check").unwrap();
    let file = generate(dir.path(), Some("v0.1.1"));
    ok(xtask()
        .args(["gen-compose", "--check", "--output"])
        .arg(&file)
        .env("AGENTS_IMAGE", "v0.1.1"));
    let out = output(
        xtask()
            .args(["gen-compose", "--check", "--output"])
            .arg(&file)
            .env("AGENTS_IMAGE", "v0.2.0"),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("+") && stderr.contains("agents:v0.2.0"),
        "{stderr}"
    );
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("agents:v0.1.1"));
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn registry_refuses_push_without_login_and_round_trips_after_it() {
    bench();
    let registry = xtask::testbed::Registry::start().unwrap();
    let config = TempDir::new("e2e-docker-config").unwrap();
    let ctx = TempDir::new("e2e-smoke").unwrap();
    let marker = unique("smoke-");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nLABEL disinto.test.marker={marker}\n",
            xtask::testbed::BASE_IMAGE
        ),
    )
    .unwrap();
    let image = format!("{}/smoke:{marker}", registry.namespace());
    ok(docker(config.path())
        .args(["build", "-q", "-t", &image])
        .arg(ctx.path()));
    let id = ok(docker(config.path()).args(["image", "inspect", "--format", "{{.Id}}", &image]));

    let denied = output(docker(config.path()).args(["push", &image]));
    assert!(!denied.status.success(), "push without login succeeded");

    let bad = xtask::secret::login(
        config.path(),
        &registry.addr,
        &registry.user,
        "wrong-password",
    );
    assert!(bad.is_err(), "login with a wrong password succeeded");

    xtask::secret::login(
        config.path(),
        &registry.addr,
        &registry.user,
        &registry.password,
    )
    .unwrap();
    ok(docker(config.path()).args(["push", &image]));
    ok(docker(config.path()).args(["rmi", &image]));
    ok(docker(config.path()).args(["pull", &image]));
    let pulled =
        ok(docker(config.path()).args(["image", "inspect", "--format", "{{.Id}}", &image]));
    assert_eq!(pulled, id);
    let _ = output(docker(config.path()).args(["rmi", &image]));
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn an_agent_cli_path_with_colons_dollars_and_spaces_is_bound_as_written() {
    let _sh = bench();
    let dir = TempDir::new("e2e-cli").unwrap();
    let file = dir.path().join("docker-compose.yml");
    let cli = "/opt/a:b/$HOME ${X:-y}/claude";
    ok(xtask()
        .args(["gen-compose", "--output"])
        .arg(&file)
        .env("AGENTS_IMAGE", "v0.1.1")
        .env("AGENT_CLI_BIN", cli));
    let config = compose_config(&file, None);
    for service in ["agents", "runner"] {
        let mounts = config["services"][service]["volumes"]
            .as_sequence()
            .unwrap();
        let bind = mounts
            .iter()
            .find(|m| m["target"] == "/usr/local/bin/claude")
            .unwrap_or_else(|| panic!("{service}: no CLI mount: {mounts:?}"));
        assert_eq!(bind["type"], "bind", "{bind:?}");
        // `config` prints a compose file again, where a literal '$' is written '$$'.
        let source = bind["source"].as_str().unwrap_or("").replace("$$", "$");
        assert_eq!(source, cli, "{bind:?}");
        assert_eq!(bind["read_only"], true, "{bind:?}");
    }
}
