//! Building for a platform other than the engine's (linux/arm64 on an amd64 machine): the
//! local name of its base image, qemu's binfmt_misc entry that runs its binaries, and the
//! cross toolchain (Debian's rustc-web, its std for the target, a GNU cross linker) that builds
//! the `disinto` binary for it. Names and parsing are pure and unit-tested; only
//! `emulation_ready`, `toolchain` and `check` read the machine (the engine's and an image's
//! platform are `disinto::engine::docker`'s to ask).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use disinto::model::image_ref::ImageRef;
use disinto::model::platform::Platform;
use xshell::{cmd, Shell};

/// Debian's rustc (package `rustc-web` on bookworm: 1.96, with a std for each architecture as
/// `libstd-rust-web-dev:<arch>`). rustup's rustc stays the machine's own: the cross build runs
/// this one, with its own target directory, so neither invalidates the other's artifacts.
pub const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
/// Overrides [`DEBIAN_RUSTC`]: any rustc whose sysroot holds the target's std (say rustup's
/// after `rustup target add aarch64-unknown-linux-gnu`).
pub const RUSTC_ENV: &str = "DISINTO_CROSS_RUSTC";
/// Where binfmt_misc lives; mounted by the testbed when it is not.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// The local name of `base` built for `platform` (not the engine's): its tag with
/// `-<tag_part>` appended, the repository (a registry host with a port included) unchanged.
/// `debian:bookworm-slim` → `debian:bookworm-slim-linux-arm64`; `debian` →
/// `debian:latest-linux-arm64`. No registry can be pulled from on the bench, so the testbed
/// makes this image (debootstrap) and the release builds the platform `FROM` it. A
/// digest-pinned base is an error: a digest names one platform's bytes (or an index), so no
/// local name can stand for it; pin the engine's base by tag, or pull by digest where a
/// registry answers.
pub fn base_for(base: &str, platform: &Platform) -> Result<String> {
    let image = ImageRef::parse(base)?;
    if image.digest().is_some() {
        bail!("base image {base} is pinned to a digest: its {platform} counterpart has no local name; name the base by tag (e.g. debian:bookworm-slim)");
    }
    Ok(format!(
        "{}:{}-{}",
        image.repository(),
        image.tag().unwrap_or("latest"),
        platform.tag_part()
    ))
}

/// The GNU triple of the platform's C cross toolchain (`aarch64-linux-gnu`): the prefix of its
/// gcc and ar, and (with `_` as `-`) the Debian package `gcc-<triple>`.
pub fn gnu_triple(platform: &Platform) -> Option<&'static str> {
    match platform.rust_target()? {
        "x86_64-unknown-linux-gnu" => Some("x86_64-linux-gnu"),
        "aarch64-unknown-linux-gnu" => Some("aarch64-linux-gnu"),
        "armv7-unknown-linux-gnueabihf" => Some("arm-linux-gnueabihf"),
        "riscv64gc-unknown-linux-gnu" => Some("riscv64-linux-gnu"),
        "powerpc64le-unknown-linux-gnu" => Some("powerpc64le-linux-gnu"),
        "s390x-unknown-linux-gnu" => Some("s390x-linux-gnu"),
        _ => None,
    }
}

/// The Debian package of the GNU cross compiler for `triple` (`gcc-aarch64-linux-gnu`,
/// `gcc-x86-64-linux-gnu`).
pub fn gcc_package(triple: &str) -> String {
    format!("gcc-{}", triple.replace('_', "-"))
}

/// The Debian package of the target's C library for the cross compiler (headers, crt1.o):
/// only recommended by `gcc-<triple>`, and ring's C and the final link need it.
pub fn libc_package(debian_arch: &str) -> String {
    format!("libc6-dev-{debian_arch}-cross")
}

/// The Debian packages a cross build for `platform` needs on this machine (arch-qualified
/// std), for the testbed to install and for the errors to name.
pub fn toolchain_packages(platform: &Platform) -> Result<Vec<String>> {
    let (Some(arch), Some(triple)) = (platform.debian_arch(), gnu_triple(platform)) else {
        bail!("platform {platform} has no known Rust target or Debian architecture: no cross toolchain for it");
    };
    Ok(vec![
        "rustc-web".to_string(),
        format!("libstd-rust-web-dev:{arch}"),
        gcc_package(triple),
        libc_package(arch),
    ])
}

/// Why a binfmt_misc entry (the text of `/proc/sys/fs/binfmt_misc/qemu-<name>`) cannot run
/// the platform's binaries in containers, or None when it can: it must be enabled and carry
/// the F flag (the interpreter opened at registration, so it works inside any container's
/// root, where `/usr/libexec/qemu-binfmt` does not exist).
pub fn binfmt_problem(entry: &str) -> Option<&'static str> {
    let mut lines = entry.lines().map(str::trim);
    if lines.next() != Some("enabled") {
        return Some("is disabled");
    }
    let flags = entry
        .lines()
        .find_map(|l| l.trim().strip_prefix("flags:"))
        .map(str::trim)
        .unwrap_or("");
    match flags.contains('F') {
        true => None,
        false => Some("lacks the F (fix-binary) flag"),
    }
}

/// The interpreter a binfmt_misc entry names (`interpreter /usr/libexec/qemu-binfmt/...`).
pub fn binfmt_interpreter(entry: &str) -> Option<&str> {
    entry
        .lines()
        .find_map(|l| l.trim().strip_prefix("interpreter "))
        .map(str::trim)
}

/// The major version `qemu-<name> --version` says (`qemu-aarch64 version 10.0.13 (Debian …)`).
pub fn qemu_major(version: &str) -> Option<u64> {
    let mut words = version.split_whitespace();
    words.find(|w| *w == "version")?;
    words.next()?.split('.').next()?.parse().ok()
}

/// The line that registers `conf` (a `/usr/lib/binfmt.d/qemu-*.conf` of qemu-user-static,
/// `:name:type:offset:magic:mask:interpreter:flags`) with the F flag, whatever flags the file
/// gives. Comment and blank lines are skipped; the first entry counts.
pub fn register_line(conf: &str) -> Result<String> {
    let line = conf
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .context("the binfmt.d file holds no entry")?;
    let fields: Vec<&str> = line.split(':').collect();
    // A leading ':' makes an empty first field: 8 fields, the last the flags.
    if fields.len() != 8 || !fields[0].is_empty() || fields[1].is_empty() {
        bail!(
            "{line:?} is not a binfmt_misc entry (:name:type:offset:magic:mask:interpreter:flags)"
        );
    }
    let flags = fields[7];
    Ok(match flags.contains('F') {
        true => line.to_string(),
        false => format!("{}:{flags}F", fields[..7].join(":")),
    })
}

/// Ok when the engine can run `platform`'s binaries: its own platform, or another with qemu's
/// binfmt_misc entry enabled and fix-binary (F). Else one line naming the platform and the way.
pub fn emulation_ready(platform: &Platform, engine: &Platform) -> Result<()> {
    if platform == engine {
        return Ok(());
    }
    let Some(qemu) = platform.qemu_name() else {
        bail!("platform {platform} cannot be built here: qemu has no emulator known for it; set DISINTO_PLATFORMS={engine}");
    };
    let path = Path::new(BINFMT_DIR).join(format!("qemu-{qemu}"));
    let problem = match std::fs::read_to_string(&path) {
        Ok(entry) => {
            binfmt_problem(&entry).map(|p| format!("the binfmt_misc entry qemu-{qemu} {p}"))
        }
        Err(_) => Some(format!("no qemu-{qemu} binfmt_misc entry with the F flag")),
    };
    match problem {
        None => Ok(()),
        Some(problem) => bail!("platform {platform} cannot be built here: {problem}; as root run `cargo xtask test` (it provisions qemu-user-static and binfmt_misc), or set DISINTO_PLATFORMS={engine}"),
    }
}

/// How the `disinto` binary is built for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    platform: Platform,
    cross: Option<Cross>,
}

/// What a cross build adds to the machine's cargo.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cross {
    rustc: PathBuf,
    target: &'static str,
    /// `aarch64-linux-gnu`: the prefix of the C cross compiler and archiver.
    gnu: &'static str,
}

/// The toolchain that builds `disinto` for `platform` on an engine of platform `engine`: the
/// machine's cargo for the engine's own platform, else cargo driving Debian's rustc-web (or
/// [`RUSTC_ENV`]) with the target's std and a GNU cross linker. Refuses in one line, naming
/// the package, when a piece is missing.
pub fn toolchain(platform: &Platform, engine: &Platform) -> Result<Toolchain> {
    if platform == engine {
        return Ok(Toolchain {
            platform: platform.clone(),
            cross: None,
        });
    }
    let (Some(target), Some(gnu), Some(arch)) = (
        platform.rust_target(),
        gnu_triple(platform),
        platform.debian_arch(),
    ) else {
        bail!("platform {platform} has no known Rust target: the disinto binary cannot be built for it; set DISINTO_PLATFORMS={engine}");
    };
    let install = "as root run `cargo xtask test`, which installs it";
    let rustc = std::env::var_os(RUSTC_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBIAN_RUSTC));
    let sh = Shell::new()?;
    let sysroot = cmd!(sh, "{rustc} --print sysroot")
        .quiet()
        .ignore_stderr()
        .read()
        .map_err(|_| {
            anyhow::anyhow!(
                "platform {platform} cannot be built here: no rustc at {} (Debian's rustc-web: apt-get install rustc-web; or set {RUSTC_ENV}); {install}",
                rustc.display()
            )
        })?;
    let std_dir = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(target)
        .join("lib");
    if !std_dir.is_dir() {
        bail!(
            "platform {platform} cannot be built here: {} has no standard library for {target} (no {}; Debian: dpkg --add-architecture {arch} && apt-get install libstd-rust-web-dev:{arch}); {install}",
            rustc.display(),
            std_dir.display()
        );
    }
    for tool in ["gcc", "ar"] {
        let program = format!("{gnu}-{tool}");
        if which::which(&program).is_err() {
            bail!(
                "platform {platform} cannot be built here: no {program} on PATH (Debian package {}); {install}",
                gcc_package(gnu)
            );
        }
    }
    // The cross gcc finds the target's C library (a path) or echoes the bare name back.
    let gcc = format!("{gnu}-gcc");
    let crt = cmd!(sh, "{gcc} -print-file-name=crt1.o")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    if !Path::new(crt.trim()).is_absolute() {
        bail!(
            "platform {platform} cannot be built here: {gcc} has no C library for {arch} (Debian package {}); {install}",
            libc_package(arch)
        );
    }
    Ok(Toolchain {
        platform: platform.clone(),
        cross: Some(Cross { rustc, target, gnu }),
    })
}

impl Toolchain {
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Whether it builds for another platform than the engine's.
    pub fn is_cross(&self) -> bool {
        self.cross.is_some()
    }

    /// Cargo's target directory for this toolchain, given the checkout's (`xtask::target_dir`):
    /// the same for the engine's platform, `<target>/cross` for another, so the two rustc
    /// versions never invalidate each other's artifacts.
    pub fn cargo_target_dir(&self, target_dir: &Path) -> PathBuf {
        match &self.cross {
            None => target_dir.to_path_buf(),
            Some(_) => target_dir.join("cross"),
        }
    }

    /// `cargo build --release --locked -p disinto`, for this platform, into
    /// [`Self::cargo_target_dir`], quietly. The caller adds the DISINTO_* stamps (`.env`);
    /// the process environment passes through, so CARGO_PROFILE_RELEASE_* (the tests' quick
    /// profile) applies to both.
    pub fn build_command<'a>(&self, sh: &'a Shell, target_dir: &Path) -> xshell::Cmd<'a> {
        let build = cmd!(sh, "cargo build --quiet --release --locked -p disinto");
        // The engine's platform builds where cargo builds anyway (CARGO_TARGET_DIR or the
        // checkout's target), as a plain `cargo build` would.
        let Some(cross) = &self.cross else {
            return build;
        };
        let var = cross.target.replace('-', "_");
        let gcc = format!("{}-gcc", cross.gnu);
        build
            .args(["--target", cross.target])
            .env("CARGO_TARGET_DIR", self.cargo_target_dir(target_dir))
            .env("RUSTC", &cross.rustc)
            .env(format!("CARGO_TARGET_{}_LINKER", var.to_uppercase()), &gcc)
            // ring compiles C and assembly for the target through the cc crate.
            .env(format!("CC_{var}"), &gcc)
            .env(format!("AR_{var}"), format!("{}-ar", cross.gnu))
    }

    /// Where [`Self::build_command`] leaves the binary.
    pub fn binary(&self, target_dir: &Path) -> PathBuf {
        let dir = self.cargo_target_dir(target_dir);
        match &self.cross {
            None => dir.join("release/disinto"),
            Some(cross) => dir.join(cross.target).join("release/disinto"),
        }
    }
}

/// The ELF machine (`e_machine`) of the file's header, little-endian ELF only (what every
/// platform here is): 0x3E x86-64, 0xB7 AArch64, 0x28 ARM.
pub fn elf_machine(header: &[u8]) -> Option<u16> {
    if header.len() < 20 || &header[..4] != b"\x7fELF" || header[5] != 1 {
        return None;
    }
    Some(u16::from_le_bytes([header[18], header[19]]))
}

/// The ELF machine a binary for `platform` carries, if known.
pub fn elf_machine_of(platform: &Platform) -> Option<u16> {
    match gnu_triple(platform)? {
        "x86_64-linux-gnu" => Some(0x3E),
        "aarch64-linux-gnu" => Some(0xB7),
        "arm-linux-gnueabihf" => Some(0x28),
        "riscv64-linux-gnu" => Some(0xF3),
        "powerpc64le-linux-gnu" => Some(0x15),
        "s390x-linux-gnu" => Some(0x16),
        _ => None,
    }
}

/// Everything a build for `platform` needs here, said before anything is built: the
/// toolchain, the emulation that runs its binaries and package steps, and the local base image
/// ([`base_for`] of `base`) of that platform. Nothing to check for the engine's platform.
pub fn check(platform: &Platform, engine: &Platform, base: &str) -> Result<()> {
    if platform == engine {
        return Ok(());
    }
    toolchain(platform, engine)?;
    emulation_ready(platform, engine)?;
    let local = base_for(base, platform)?;
    let has = disinto::engine::docker::image_platform(&local).map_err(|_| {
        anyhow::anyhow!("platform {platform} cannot be built here: no local base image {local} (no registry is asked for it); as root run `cargo xtask test`, which makes it with debootstrap, or set DISINTO_PLATFORMS={engine}")
    })?;
    if !platform.matches(&has.os, &has.arch, has.variant.as_deref()) {
        bail!("platform {platform} cannot be built here: the local base image {local} is {has}, not {platform}; remove it and run `cargo xtask test` as root to make it again");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm() -> Platform {
        Platform::parse("linux/arm64").unwrap()
    }

    #[test]
    fn a_base_for_another_platform_keeps_its_repository_and_extends_its_tag() {
        let b = |s: &str| base_for(s, &arm()).unwrap();
        assert_eq!(
            b("debian:bookworm-slim"),
            "debian:bookworm-slim-linux-arm64"
        );
        assert_eq!(b("debian"), "debian:latest-linux-arm64");
        assert_eq!(
            b("127.0.0.1:5000/x/debian"),
            "127.0.0.1:5000/x/debian:latest-linux-arm64"
        );
        assert_eq!(
            b("localhost:5000/debian:12"),
            "localhost:5000/debian:12-linux-arm64"
        );
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(
            base_for("debian:bookworm-slim", &v7).unwrap(),
            "debian:bookworm-slim-linux-arm-v7"
        );
        let digest = format!("debian:bookworm-slim@sha256:{}", "a".repeat(64));
        let e = format!("{:#}", base_for(&digest, &arm()).unwrap_err());
        assert!(e.contains("digest") && e.contains(&digest), "{e}");
        assert!(!e.contains('\n'));
        assert!(base_for("Not A Ref", &arm()).is_err());
    }

    #[test]
    fn toolchain_names_come_from_the_platform() {
        assert_eq!(gnu_triple(&arm()), Some("aarch64-linux-gnu"));
        assert_eq!(gcc_package("aarch64-linux-gnu"), "gcc-aarch64-linux-gnu");
        assert_eq!(gcc_package("x86_64-linux-gnu"), "gcc-x86-64-linux-gnu");
        assert_eq!(
            toolchain_packages(&arm()).unwrap(),
            [
                "rustc-web",
                "libstd-rust-web-dev:arm64",
                "gcc-aarch64-linux-gnu",
                "libc6-dev-arm64-cross"
            ]
        );
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            toolchain_packages(&amd).unwrap()[1..],
            [
                "libstd-rust-web-dev:amd64",
                "gcc-x86-64-linux-gnu",
                "libc6-dev-amd64-cross"
            ]
        );
        assert!(toolchain_packages(&Platform::parse("windows/amd64").unwrap()).is_err());
        assert_eq!(elf_machine_of(&arm()), Some(0xB7));
        assert_eq!(elf_machine_of(&amd), Some(0x3E));
    }

    #[test]
    fn binfmt_entries_need_enabled_and_fix_binary() {
        let good = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c46\n";
        assert_eq!(binfmt_problem(good), None);
        assert_eq!(
            binfmt_problem(&good.replace("enabled", "disabled")),
            Some("is disabled")
        );
        assert_eq!(
            binfmt_problem(&good.replace("POF", "OC")),
            Some("lacks the F (fix-binary) flag")
        );
        assert_eq!(binfmt_problem(""), Some("is disabled"));
        assert_eq!(
            binfmt_interpreter(good),
            Some("/usr/libexec/qemu-binfmt/aarch64-binfmt-P")
        );
        assert_eq!(binfmt_interpreter("enabled\n"), None);
        assert_eq!(
            qemu_major("qemu-aarch64 version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)\nCopyright"),
            Some(10)
        );
        assert_eq!(qemu_major("qemu-aarch64 version 7.2.22 (Debian)"), Some(7));
        assert_eq!(qemu_major("bash: qemu: not found"), None);
    }

    #[test]
    fn the_register_line_always_carries_f() {
        let conf = r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02:\xff\xff\xff\xff\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF";
        assert_eq!(register_line(&format!("# qemu\n\n{conf}\n")).unwrap(), conf);
        let without = conf.trim_end_matches("OPF").to_string() + "P";
        assert_eq!(register_line(&without).unwrap(), conf.replace("OPF", "PF"));
        let none = conf.trim_end_matches("OPF");
        assert!(register_line(none).unwrap().ends_with("aarch64-binfmt-P:F"));
        assert!(register_line("# nothing\n").is_err());
        assert!(register_line("qemu-aarch64:M::x").is_err());
    }

    #[test]
    fn elf_headers_say_their_machine() {
        let mut header = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
        header.extend([0; 8]);
        header.extend([2, 0, 0xB7, 0]);
        assert_eq!(elf_machine(&header), Some(0xB7));
        header[18] = 0x3E;
        assert_eq!(elf_machine(&header), Some(0x3E));
        assert_eq!(elf_machine(b"#!/bin/sh\n echo hello world"), None);
        assert_eq!(elf_machine(&header[..10]), None);
    }

    #[test]
    fn the_engine_platform_builds_natively_and_another_in_its_own_target_dir() {
        let amd = Platform::parse("linux/amd64").unwrap();
        let native = toolchain(&amd, &amd).unwrap();
        assert!(!native.is_cross());
        let t = Path::new("/t");
        assert_eq!(native.binary(t), Path::new("/t/release/disinto"));
        let sh = Shell::new().unwrap();
        let shown = native.build_command(&sh, t).to_string();
        assert_eq!(shown, "cargo build --quiet --release --locked -p disinto");
        let cross = Toolchain {
            platform: arm(),
            cross: Some(Cross {
                rustc: PathBuf::from(DEBIAN_RUSTC),
                target: "aarch64-unknown-linux-gnu",
                gnu: "aarch64-linux-gnu",
            }),
        };
        assert_eq!(cross.cargo_target_dir(t), Path::new("/t/cross"));
        assert_eq!(
            cross.binary(t),
            Path::new("/t/cross/aarch64-unknown-linux-gnu/release/disinto")
        );
        assert_eq!(
            cross.build_command(&sh, t).to_string(),
            "cargo build --quiet --release --locked -p disinto --target aarch64-unknown-linux-gnu"
        );
        // Emulation is never asked of the engine's own platform.
        assert!(emulation_ready(&amd, &amd).is_ok());
        assert!(check(&amd, &amd, "debian@sha256:x").is_ok());
    }
}
