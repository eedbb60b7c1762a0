//! Platforms as Docker and the OCI image index name them (`os/arch[/variant]`), and the
//! names one platform takes elsewhere: in a tag (`linux-arm64`), as a Rust target triple,
//! and as a Debian architecture. Pure: which platform the engine runs is the engine's to say.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

/// The platforms the project releases (the release formula's `platforms`, which a test
/// holds to this), and so the platforms the test bench provisions.
pub const DEFAULT_PLATFORMS: &str = "linux/amd64,linux/arm64";

/// One platform: `linux/amd64`, `linux/arm64`, `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]` as Docker's `--platform` takes it (lower case; the parts
    /// are names, not paths). The error names the input and the form.
    pub fn parse(text: &str) -> Result<Platform> {
        let trimmed = text.trim();
        let parts: Vec<&str> = trimmed.split('/').collect();
        let name = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| name(p)) {
            bail!("platform {text:?} is not os/arch[/variant] (lower case, e.g. linux/amd64, linux/arm64, linux/arm/v7)");
        }
        Ok(Platform {
            os: parts[0].to_string(),
            arch: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }

    /// A comma- or space-separated list, in order, each once; at least one.
    pub fn parse_list(text: &str) -> Result<Vec<Platform>> {
        let mut list: Vec<Platform> = vec![];
        for word in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
        {
            let platform = Platform::parse(word)?;
            if list.contains(&platform) {
                bail!("platform {word} is listed twice in {text:?}");
            }
            list.push(platform);
        }
        if list.is_empty() {
            bail!("no platform in {text:?}: name at least one, e.g. linux/amd64");
        }
        Ok(list)
    }

    /// The engine's way of saying its own platform (`docker version`'s Os and Arch, which
    /// use Go's names: amd64, arm64, arm).
    pub fn of_engine(os: &str, arch: &str) -> Result<Platform> {
        Platform::parse(&format!("{}/{}", os.trim(), arch.trim()))
    }

    /// The platform as a tag part: `linux-arm64`, `linux-arm-v7`.
    pub fn tag_part(&self) -> String {
        self.to_string().replace('/', "-")
    }

    /// The Rust target triple its binaries are built for, if we know it.
    pub fn rust_target(&self) -> Option<&'static str> {
        match (
            self.os.as_str(),
            self.arch.as_str(),
            self.variant.as_deref(),
        ) {
            ("linux", "amd64", None) => Some("x86_64-unknown-linux-gnu"),
            ("linux", "arm64", None | Some("v8")) => Some("aarch64-unknown-linux-gnu"),
            ("linux", "arm", Some("v7")) => Some("armv7-unknown-linux-gnueabihf"),
            ("linux", "riscv64", None) => Some("riscv64gc-unknown-linux-gnu"),
            ("linux", "ppc64le", None) => Some("powerpc64le-unknown-linux-gnu"),
            ("linux", "s390x", None) => Some("s390x-unknown-linux-gnu"),
            _ => None,
        }
    }

    /// Debian's name for the architecture (a package's `:arch` qualifier), if it has one.
    pub fn debian_arch(&self) -> Option<&'static str> {
        match (self.arch.as_str(), self.variant.as_deref()) {
            ("amd64", None) => Some("amd64"),
            ("arm64", None | Some("v8")) => Some("arm64"),
            ("arm", Some("v7")) => Some("armhf"),
            ("riscv64", None) => Some("riscv64"),
            ("ppc64le", None) => Some("ppc64el"),
            ("s390x", None) => Some("s390x"),
            _ => None,
        }
    }

    /// The name qemu's user-mode emulator and its binfmt_misc entry go by (`qemu-aarch64`).
    pub fn qemu_name(&self) -> Option<&'static str> {
        match self.rust_target()?.split('-').next()? {
            "x86_64" => Some("x86_64"),
            "aarch64" => Some("aarch64"),
            "armv7" => Some("arm"),
            "riscv64gc" => Some("riscv64"),
            "powerpc64le" => Some("ppc64le"),
            "s390x" => Some("s390x"),
            _ => None,
        }
    }

    /// Whether an image or index entry of `os`/`arch`/`variant` is this platform (arm64's
    /// variant v8 is implied, as Docker treats it).
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        let implied = |p: &Platform, v: Option<&str>| match (p.arch.as_str(), v) {
            ("arm64", None) => Some("v8".to_string()),
            (_, v) => v.map(str::to_string),
        };
        self.os == os
            && self.arch == arch
            && implied(self, self.variant.as_deref())
                == implied(self, variant.filter(|v| !v.is_empty()))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Platform> {
        Platform::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_forms_and_names_them_elsewhere() {
        let arm = Platform::parse("linux/arm64").unwrap();
        assert_eq!(arm.to_string(), "linux/arm64");
        assert_eq!(arm.tag_part(), "linux-arm64");
        assert_eq!(arm.rust_target(), Some("aarch64-unknown-linux-gnu"));
        assert_eq!(arm.debian_arch(), Some("arm64"));
        assert_eq!(arm.qemu_name(), Some("aarch64"));
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(v7.tag_part(), "linux-arm-v7");
        assert_eq!(v7.debian_arch(), Some("armhf"));
        assert_eq!(v7.qemu_name(), Some("arm"));
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(amd.rust_target(), Some("x86_64-unknown-linux-gnu"));
        assert_eq!(amd.qemu_name(), Some("x86_64"));
        assert_eq!(Platform::of_engine("linux", "amd64\n").unwrap(), amd);
        assert_eq!(
            Platform::parse("windows/amd64").unwrap().rust_target(),
            None
        );
    }

    #[test]
    fn bad_platforms_are_one_line_errors_naming_the_input() {
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v1/x",
            "Linux/AMD64",
            "linux amd64",
            "linux/am d64",
            "linux//v7",
            "../x",
        ] {
            let e = format!("{:#}", Platform::parse(bad).unwrap_err());
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains("os/arch[/variant]"),
                "{bad}: {e}"
            );
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn lists_keep_order_and_refuse_repeats_and_emptiness() {
        let list = Platform::parse_list(DEFAULT_PLATFORMS).unwrap();
        assert_eq!(
            list.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            ["linux/amd64", "linux/arm64"]
        );
        let list = Platform::parse_list(" linux/arm64  linux/amd64 ").unwrap();
        assert_eq!(list[0].arch, "arm64");
        let e = format!(
            "{:#}",
            Platform::parse_list("linux/amd64,linux/amd64").unwrap_err()
        );
        assert!(e.contains("twice"), "{e}");
        assert!(Platform::parse_list(" , ").is_err());
        assert!(Platform::parse_list("linux/amd64,linux").is_err());
    }

    #[test]
    fn arm64_matches_its_implied_variant() {
        let arm = Platform::parse("linux/arm64").unwrap();
        assert!(arm.matches("linux", "arm64", None));
        assert!(arm.matches("linux", "arm64", Some("v8")));
        assert!(arm.matches("linux", "arm64", Some("")));
        assert!(!arm.matches("linux", "amd64", None));
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(v7.matches("linux", "arm", Some("v7")));
        assert!(!v7.matches("linux", "arm", Some("v6")));
        assert!(!v7.matches("linux", "arm", None));
    }
}
