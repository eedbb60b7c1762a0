//! The `disinto --version` stamp when checkouts share a target directory (the tests' scratch
//! target, or a contributor's CARGO_TARGET_DIR): each build says its own checkout's VERSION.
//! Cargo shares one compiled build script between such checkouts, so a path baked into it
//! once read another checkout's VERSION (a release then refused its own binary).

mod common;

use std::process::Command;

use common::{ok, root, Checkout};

/// `cargo build --release -p disinto` in `c` on the shared target, as the release runs it
/// (naming its version and revision), then its `--version`.
fn build_and_ask(c: &Checkout, version: &str) -> String {
    let target = xtask::scratch::shared_target(&root());
    let _lock = xtask::release::build_lock(&target).unwrap();
    ok(
        xtask::scratch::quick_release_profile(&mut Command::new("cargo"))
            .args(["build", "--quiet", "--release", "--locked", "-p", "disinto"])
            .current_dir(c.work())
            .env("CARGO_TARGET_DIR", &target)
            .env("DISINTO_REVISION", c.head())
            .env("DISINTO_RELEASE_VERSION", version),
    );
    ok(Command::new(target.join("release/disinto")).arg("--version"))
}

#[test]
#[ignore = "builds the disinto binary twice (cargo xtask test runs it)"]
fn each_checkout_sharing_a_target_stamps_its_own_version() {
    // Made in this order on purpose: the later checkout's build script is newer, so the
    // earlier one's build reuses it rather than compiling its own.
    let first = Checkout::new("v7.1.0");
    let second = Checkout::new("v7.2.0");
    let says = build_and_ask(&second, "v7.2.0");
    assert_eq!(
        says.trim(),
        format!("disinto v7.2.0 (revision {})", second.head())
    );
    drop(second);
    let says = build_and_ask(&first, "v7.1.0");
    assert_eq!(
        says.trim(),
        format!("disinto v7.1.0 (revision {})", first.head())
    );
}
