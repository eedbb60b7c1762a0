//! End-to-end: building for a platform other than the engine's (linux/arm64 on amd64) with
//! what the testbed provides: the cross toolchain builds `disinto` (run under qemu), and the
//! engine's BuildKit builds the agents image for arm64 offline, from the local arm64 base.

mod common;

use std::io::Read;
use std::process::Command;

use common::*;
use disinto::model::platform::Platform;
use xtask::cross;

/// The platform of the release list that is not the engine's (arm64 on this bench).
fn other_platform(engine: &Platform) -> Platform {
    Platform::parse_list(disinto::model::platform::DEFAULT_PLATFORMS)
        .unwrap()
        .into_iter()
        .find(|p| p != engine)
        .expect("the default platforms name one besides the engine's")
}

/// Removes the test's image (by the tag it chose) whatever the test's outcome.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", "--force", &self.0])
            .output();
    }
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn the_other_platform_builds_disinto_and_the_agents_image_under_qemu() {
    let sh = bench();
    let engine = disinto::engine::docker::engine_platform().unwrap();
    let platform = other_platform(&engine);
    let base = cross::base_for(xtask::testbed::BASE_IMAGE, &platform).unwrap();
    // Everything the release's preflight asks, before anything is built.
    cross::check(&platform, &engine, xtask::testbed::BASE_IMAGE)
        .unwrap_or_else(|e| panic!("{e:#}"));

    // The binary, cross-built as the release builds it (the tests' quick profile), holding
    // the release's build lock on the cross target directory so no other build stamps it
    // between the build and the copy.
    let toolchain = cross::toolchain(&platform, &engine).unwrap();
    assert!(toolchain.is_cross());
    // The scratch checkouts' target directory: the releases of two platforms in the other
    // tests cross-build there too, so CI compiles the dependencies for arm64 once.
    let target = xtask::scratch::shared_target(&root());
    let dir = toolchain.cargo_target_dir(&target);
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".disinto-release-build.lock"))
        .unwrap();
    lock.lock().unwrap();
    let version = std::fs::read_to_string(root().join("VERSION")).unwrap();
    let version = version.trim();
    let revision = "e2e-cross";
    let started = std::time::Instant::now();
    toolchain
        .build_command(&sh, &target)
        .env("DISINTO_RELEASE_VERSION", version)
        .env("DISINTO_REVISION", revision)
        .env("DISINTO_RELEASE_PUBLIC_KEY", "")
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .run()
        .unwrap_or_else(|e| panic!("the cross build failed: {e}"));
    eprintln!(
        "cross build of disinto for {platform}: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let binary = toolchain.binary(&target);
    let ctx = TempDir::new("e2e-cross").unwrap();
    for sub in ["docker", "lib", "bin"] {
        copy_tree(&root().join(sub), &ctx.path().join(sub));
    }
    for file in [".dockerignore", "migrations.yml"] {
        std::fs::copy(root().join(file), ctx.path().join(file)).unwrap();
    }
    let dist = ctx.path().join("docker/agents/dist/disinto");
    std::fs::copy(&binary, &dist).unwrap();
    drop(lock);

    let mut header = [0u8; 20];
    std::fs::File::open(&dist)
        .unwrap()
        .read_exact(&mut header)
        .unwrap();
    assert_eq!(
        cross::elf_machine(&header),
        cross::elf_machine_of(&platform),
        "{} is not an ELF binary for {platform}",
        binary.display()
    );
    assert_ne!(cross::elf_machine(&header), cross::elf_machine_of(&engine));
    // Run directly: the kernel hands it to qemu through binfmt_misc.
    let says = ok(Command::new(&dist).arg("--version"));
    assert_eq!(
        says.trim(),
        format!("disinto v{version} (revision {revision})"),
        "the cross-built binary says {says:?}"
    );

    // The agents image for that platform, from the local base image of that platform: no
    // registry is reachable, so the build must take the engine's copy, not pull.
    let image = Image(format!("disinto-agents:{}", unique("e2e-cross-")));
    let started = std::time::Instant::now();
    let arg = format!("BASE_IMAGE={base}");
    let built = output(
        Command::new("docker")
            .args(["build", "--progress=plain", "--platform"])
            .arg(platform.to_string())
            .args(["--build-arg", &arg, "-f", "docker/agents/Dockerfile", "-t"])
            .arg(&image.0)
            .arg(".")
            .current_dir(ctx.path()),
    );
    assert!(
        built.status.success(),
        "docker build for {platform} failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    eprintln!(
        "agents image for {platform}: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let has = disinto::engine::docker::image_platform(&image.0).unwrap();
    assert!(
        platform.matches(&has.os, &has.arch, has.variant.as_deref()),
        "{} is {has}",
        image.0
    );
    let run = |args: &[&str]| {
        ok(Command::new("docker")
            .args(["run", "--rm", "--platform"])
            .arg(platform.to_string())
            .args(["--entrypoint", args[0], &image.0])
            .args(&args[1..]))
    };
    let machine = run(&["uname", "-m"]);
    assert_eq!(
        machine.trim(),
        platform.qemu_name().unwrap(),
        "uname -m in the {platform} image"
    );
    let says = run(&["disinto", "--version"]);
    assert_eq!(
        says.trim(),
        format!("disinto v{version} (revision {revision})")
    );
    // The image's own entrypoint and health command under qemu: tini -s needs a qemu that
    // knows PR_SET_CHILD_SUBREAPER (bookworm's 7.2 does not; the bench installs 10).
    let id = ok(Command::new("docker")
        .args(["run", "--detach", "--platform"])
        .arg(platform.to_string())
        .arg(&image.0));
    let container = Container(id.trim().to_string());
    wait_healthy(&container.0, std::time::Duration::from_secs(60));
}

/// The preflight's refusals are one line and name the platform: a platform with no
/// toolchain, a base that is not there.
#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn a_platform_the_bench_cannot_build_is_refused_in_one_line() {
    let _sh = bench();
    let engine = disinto::engine::docker::engine_platform().unwrap();
    let platform = other_platform(&engine);
    let e = format!(
        "{:#}",
        cross::check(&platform, &engine, "disinto-no-such-base:1").unwrap_err()
    );
    assert!(
        e.contains(&platform.to_string()) && e.contains("disinto-no-such-base:1-"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    let s390x = Platform::parse("linux/s390x").unwrap();
    let e = format!(
        "{:#}",
        cross::check(&s390x, &engine, xtask::testbed::BASE_IMAGE).unwrap_err()
    );
    assert!(e.contains("linux/s390x") && !e.contains('\n'), "{e}");
}
