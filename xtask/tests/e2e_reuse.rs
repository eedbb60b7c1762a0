//! End-to-end: a release after a one-line script change reuses every package layer of the
//! previous release, byte for byte, on a machine whose build cache holds several results of
//! the package steps (the issue "Layer reuse by construction, not by the build cache's
//! choice"); its record says they were reused, from which package image, and why.

mod common;

use std::process::Command;

use common::*;
use xtask::release::registry::{Credentials, Remote, Session};
use xtask::testbed::Registry;

/// Local tags this test made under its registry's namespace, removed at the end.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let listed = Command::new("docker")
            .args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
            .output();
        let Ok(listed) = listed else { return };
        for reference in String::from_utf8_lossy(&listed.stdout).lines() {
            if reference.starts_with(&format!("{}/", self.0)) {
                let _ = Command::new("docker").args(["rmi", reference]).output();
            }
        }
    }
}

fn remote(registry: &Registry, reference: &str) -> Remote {
    let credentials = Credentials {
        user: registry.user.clone(),
        token: registry.password.clone(),
    };
    let session = Session::login(&registry.addr, &credentials, 4).unwrap();
    let sh = xshell::Shell::new().unwrap();
    session
        .inspect(&sh, reference)
        .unwrap()
        .unwrap_or_else(|| panic!("the registry holds no {reference}"))
}

fn digests(remote: &Remote) -> Vec<&str> {
    remote.layers.iter().map(|(d, _)| d.as_str()).collect()
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn a_script_change_reuses_every_package_layer_whatever_the_cache_holds() {
    bench();
    let registry = Registry::start().unwrap();
    let ns = registry.namespace();
    let _cleanup = Cleanup(ns.clone());
    // Versions no other test releases: the local build tag (disinto-NAME:VERSION) is shared
    // by every checkout on the engine, and another test's cleanup must not remove ours.
    let c = Checkout::new("v1.4.0");

    // A warm machine: the package steps built twice from scratch before, so BuildKit holds
    // several results of them to choose from.
    for image in disinto::model::image_ref::OUR_IMAGES {
        for _ in 0..2 {
            ok(Command::new("docker")
                .current_dir(c.work())
                .args(["build", "--quiet", "--no-cache", "--file", image.dockerfile])
                .arg("."));
        }
    }
    release(&c, &registry, "v1.4.0");

    let script = c.work().join("lib/agent-loop.sh");
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("# one line more\n");
    std::fs::write(&script, text).unwrap();
    ok(git(&c.work()).args(["commit", "--quiet", "-am", "agent-loop: one line"]));
    c.bump("v1.5.0");
    release(&c, &registry, "v1.5.0");

    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(c.work().join("release/v1.5.0.json")).unwrap(),
    )
    .unwrap();
    for image in disinto::model::image_ref::OUR_IMAGES {
        let name = image.name;
        let v1 = remote(&registry, &format!("{ns}/{name}:v1.4.0"));
        let v2 = remote(&registry, &format!("{ns}/{name}:v1.5.0"));
        // The package image v1.4.0 built, published beside it, is what both are built on.
        let packages = remote(&registry, &format!("{ns}/{name}:packages-v1.4.0"));
        let package_layers = digests(&packages);
        assert!(package_layers.len() >= 2, "{name}: {package_layers:?}");
        assert!(
            digests(&v1).starts_with(&package_layers),
            "{name} v1.4.0 is not built on its package image"
        );
        assert!(
            digests(&v2).starts_with(&package_layers),
            "{name} v1.5.0 does not share every package layer with v1.4.0:\n{:?}\n{:?}",
            digests(&v1),
            digests(&v2)
        );
        let entry = &record["images"][name];
        let note = entry["packages"].as_str().unwrap_or_default();
        assert!(
            note.starts_with("reused from the previous release (v1.4.0)")
                && note.contains("unchanged"),
            "{name}: {note}"
        );
        assert_eq!(
            entry["packages_image"].as_str(),
            Some(format!("{ns}/{name}:packages-v1.4.0@{}", packages.digest).as_str()),
            "{name}"
        );
        // No second package image for v1.5.0: nothing was rebuilt.
        let sh = xshell::Shell::new().unwrap();
        let credentials = Credentials {
            user: registry.user.clone(),
            token: registry.password.clone(),
        };
        let session = Session::login(&registry.addr, &credentials, 4).unwrap();
        assert_eq!(
            session
                .inspect(&sh, &format!("{ns}/{name}:packages-v1.5.0"))
                .unwrap(),
            None,
            "{name}"
        );
        if name == "agents" {
            // What an upgraded factory downloads: the layers above the packages alone.
            let above: u64 = v2.layers[package_layers.len()..]
                .iter()
                .map(|(_, size)| size)
                .sum();
            eprintln!(
                "agents: the upgrade downloads {} of {} bytes; the layers above the {} package layers are {above}",
                v2.download_from(&v1),
                v2.size(),
                package_layers.len()
            );
            assert!(v2.download_from(&v1) <= above, "{name}");
            assert!(
                v2.download_from(&v1) * 10 < v2.size(),
                "agents v1.5.0 downloads {} of {} bytes",
                v2.download_from(&v1),
                v2.size()
            );
        }
    }
}
