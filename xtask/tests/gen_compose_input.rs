//! `cargo xtask gen-compose` on its inputs, without Docker: which `.env` applies to the file
//! it writes (the one beside it, as compose reads it), and a bad one writes nothing.

mod common;

use common::*;

/// A directory holding a `.env` of `text`.
fn with_env(prefix: &str, text: &str) -> TempDir {
    let dir = TempDir::new(prefix).unwrap();
    std::fs::write(dir.path().join(".env"), text).unwrap();
    dir
}

/// `cargo xtask -C checkout gen-compose ARGS` with no factory variable in the environment.
fn gen_compose(checkout: &std::path::Path, args: &[&std::ffi::OsStr]) -> std::process::Command {
    let mut cmd = xtask();
    cmd.arg("-C")
        .arg(checkout)
        .arg("gen-compose")
        .args(args)
        .env_remove("AGENTS_IMAGE")
        .env_remove("DISINTO_REGISTRY")
        .env_remove("AGENT_CLI_BIN");
    cmd
}

#[test]
fn output_into_a_factory_reads_that_factory_s_env() {
    // The checkout is in dev mode; the factory is pinned (the README's example).
    let checkout = with_env("gen-checkout", "AGENTS_IMAGE=\n");
    let factory = with_env("gen-factory", "AGENTS_IMAGE=v0.1.1\n");
    let file = factory.path().join("docker-compose.yml");
    ok(&mut gen_compose(
        checkout.path(),
        &["--output".as_ref(), file.as_os_str()],
    ));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("/agents:v0.1.1"), "{text}");
    assert!(
        !text.contains("build:"),
        "dev mode written into a pinned factory:\n{text}"
    );
    ok(&mut gen_compose(
        checkout.path(),
        &["--check".as_ref(), "--output".as_ref(), file.as_os_str()],
    ));

    // A relative --output is relative to the working directory, and so is its .env.
    std::fs::remove_file(&file).unwrap();
    ok(gen_compose(
        checkout.path(),
        &["--output".as_ref(), "docker-compose.yml".as_ref()],
    )
    .current_dir(factory.path()));
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("/agents:v0.1.1"));
}

#[test]
fn a_bad_factory_env_is_one_line_and_writes_nothing() {
    let checkout = with_env("gen-checkout", "AGENTS_IMAGE=v0.1.1\n");
    let factory = with_env("gen-factory", "AGENTS_IMAGE=v1.2\n");
    let file = factory.path().join("docker-compose.yml");
    let out = output(&mut gen_compose(
        checkout.path(),
        &["--output".as_ref(), file.as_os_str()],
    ));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    assert!(!file.exists());
}
