//! Configuration, read once: every variable the factory and the release read, as typed values.
//! Each comes from the process environment first, then `.env` in the directory it belongs to
//! (the factory's, or the checkout's for a release). `docs/configuration.md` lists them all.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::image_ref::{parse_registry, AgentsImage};

/// The variables a factory reads (this table and `docs/configuration.md` agree).
pub mod var {
    /// What agents and runner run: empty for dev mode, a version, or a full reference.
    pub const AGENTS_IMAGE: &str = "AGENTS_IMAGE";
    /// Registry plus namespace of released images (default `ghcr.io/disinto`).
    pub const DISINTO_REGISTRY: &str = "DISINTO_REGISTRY";
    /// Host path of an agent CLI binary bound read-only into agents and runner.
    pub const AGENT_CLI_BIN: &str = "AGENT_CLI_BIN";
    /// The factory directory `disinto` works on (default: the current directory).
    pub const DISINTO_ROOT: &str = "DISINTO_ROOT";
}

/// A snapshot of raw variables, in lookup order: the process environment over `.env`.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    process: BTreeMap<String, String>,
    dotenv: BTreeMap<String, String>,
}

/// Where a value came from; a warning can then say which one wins and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Environment,
    DotEnv,
    Unset,
}

impl Settings {
    /// Reads the process environment and `<dir>/.env` (which may be missing).
    pub fn load(dir: &Path) -> Result<Settings> {
        let path = dir.join(".env");
        let dotenv = if path.is_file() {
            parse_dotenv(&path)?
        } else {
            BTreeMap::new()
        };
        Ok(Settings::with_dotenv(dotenv))
    }

    /// The process environment over the given `.env` values.
    pub fn with_dotenv(dotenv: BTreeMap<String, String>) -> Settings {
        // vars() would panic on one non-UTF-8 variable anywhere in the environment.
        let process = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Settings { process, dotenv }
    }

    /// Builds settings from explicit maps (tests, and callers that already know the values).
    pub fn from_maps(process: BTreeMap<String, String>, dotenv: BTreeMap<String, String>) -> Self {
        Settings { process, dotenv }
    }

    /// The value of `key`: the process environment wins over `.env`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.process
            .get(key)
            .or_else(|| self.dotenv.get(key))
            .map(String::as_str)
    }

    /// The value of `key` in the process environment alone (secrets are never read from files).
    pub fn from_environment(&self, key: &str) -> Option<&str> {
        self.process.get(key).map(String::as_str)
    }

    /// Where `key`'s value comes from.
    pub fn origin(&self, key: &str) -> Origin {
        if self.process.contains_key(key) {
            Origin::Environment
        } else if self.dotenv.contains_key(key) {
            Origin::DotEnv
        } else {
            Origin::Unset
        }
    }

    /// The value `.env` alone gives `key`.
    pub fn dotenv_value(&self, key: &str) -> Option<&str> {
        self.dotenv.get(key).map(String::as_str)
    }

    /// A list variable: items separated by commas or whitespace.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// A factory's settings, validated: what every operator command works from.
#[derive(Debug, Clone, PartialEq)]
pub struct FactoryConfig {
    /// `AGENTS_IMAGE`, parsed.
    pub agents: AgentsImage,
    /// Where `AGENTS_IMAGE` was read from.
    pub agents_origin: Origin,
    /// `AGENTS_IMAGE` as `.env` alone says it (what the next plain `up` returns to).
    pub agents_in_dotenv: Option<String>,
    /// `DISINTO_REGISTRY`, validated, with its default applied.
    pub registry: String,
    /// `AGENT_CLI_BIN`: an absolute host path, or none.
    pub agent_cli: Option<String>,
}

impl FactoryConfig {
    /// Reads and validates every factory variable; errors name the variable and the value.
    pub fn from_settings(settings: &Settings) -> Result<FactoryConfig> {
        let agents = AgentsImage::parse(settings.get(var::AGENTS_IMAGE))?;
        let registry = parse_registry(settings.get(var::DISINTO_REGISTRY))?;
        let agent_cli = match settings.get(var::AGENT_CLI_BIN) {
            None | Some("") => None,
            Some(path) if path.starts_with('/') && !path.contains(char::is_whitespace) => {
                Some(path.to_string())
            }
            Some(path) => bail!(
                "AGENT_CLI_BIN={path:?} must be an absolute host path without spaces, \
                 e.g. /usr/local/bin/claude"
            ),
        };
        Ok(FactoryConfig {
            agents,
            agents_origin: settings.origin(var::AGENTS_IMAGE),
            agents_in_dotenv: settings.dotenv_value(var::AGENTS_IMAGE).map(str::to_string),
            registry,
            agent_cli,
        })
    }

    /// The reference Docker runs for agents and runner (`None` in dev mode).
    pub fn agents_reference(&self) -> Option<String> {
        self.agents.resolved(&self.registry)
    }
}

/// `.env`'s text with `key` set to `value`: the line that defines it (the last one, which is
/// the one Compose reads) changed in place, every other byte kept; appended when absent.
/// `value` must need no quoting (callers pass validated versions and image references).
pub fn set_in_dotenv(text: &str, key: &str, value: &str) -> String {
    let defines = |line: &str| {
        let l = line.trim_start();
        let l = l.strip_prefix("export ").map_or(l, str::trim_start);
        l.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    match lines.iter().rposition(|l| defines(l)) {
        Some(i) => {
            let line = lines[i];
            let eq = line.find('=').unwrap_or(line.len());
            let ending = if line.ends_with("\r\n") {
                "\r\n"
            } else if line.ends_with('\n') {
                "\n"
            } else {
                ""
            };
            let mut out: String = lines[..i].concat();
            out.push_str(&line[..=eq.min(line.len() - 1)]);
            out.push_str(value);
            out.push_str(ending);
            out.push_str(&lines[i + 1..].concat());
            out
        }
        None => {
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("{key}={value}\n"));
            out
        }
    }
}

/// Parses a `.env` file with the same rules Docker Compose applies (quotes, comments, `export`).
pub fn parse_dotenv(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_dotenv_bytes(&text, &path.display().to_string())
}

/// Parses `.env` content; `origin` names it in errors.
pub fn parse_dotenv_bytes(text: &[u8], origin: &str) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for item in dotenvy::from_read_iter(text) {
        let (key, value) = item.map_err(|e| {
            anyhow::anyhow!("{origin} is not a valid .env file: {e}; fix that line (KEY=value)")
        })?;
        map.insert(key, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_in_dotenv_changes_one_line_and_keeps_every_other_byte() {
        let text =
            "# pinned\r\nAGENTS_IMAGE=v0.1.0\nexport  AGENTS_IMAGE = v0.2.0 # last wins\nX=1";
        assert_eq!(
            set_in_dotenv(text, "AGENTS_IMAGE", "v0.1.1"),
            "# pinned\r\nAGENTS_IMAGE=v0.1.0\nexport  AGENTS_IMAGE =v0.1.1\nX=1"
        );
        assert_eq!(
            set_in_dotenv("A=1\r\nAGENTS_IMAGE=\r\n", "AGENTS_IMAGE", "v1.0.0"),
            "A=1\r\nAGENTS_IMAGE=v1.0.0\r\n"
        );
        assert_eq!(
            set_in_dotenv("AGENTS_IMAGES=x\nA=1", "AGENTS_IMAGE", "v1.0.0"),
            "AGENTS_IMAGES=x\nA=1\nAGENTS_IMAGE=v1.0.0\n"
        );
        assert_eq!(set_in_dotenv("", "K", "v"), "K=v\n");
        let back = parse_dotenv_bytes(
            set_in_dotenv(text, "AGENTS_IMAGE", "v0.1.1").as_bytes(),
            "t",
        )
        .unwrap();
        assert_eq!(back["AGENTS_IMAGE"], "v0.1.1");
        assert_eq!(back["X"], "1");
    }

    #[test]
    fn process_environment_wins_over_dotenv() {
        let process = BTreeMap::from([("AGENTS_IMAGE".to_string(), "v0.2.0".to_string())]);
        let dotenv = BTreeMap::from([
            ("AGENTS_IMAGE".to_string(), "v0.1.0".to_string()),
            (
                "DISINTO_REGISTRY".to_string(),
                "127.0.0.1:5000/x".to_string(),
            ),
        ]);
        let s = Settings::from_maps(process, dotenv);
        assert_eq!(s.get("AGENTS_IMAGE"), Some("v0.2.0"));
        assert_eq!(s.get("DISINTO_REGISTRY"), Some("127.0.0.1:5000/x"));
        assert_eq!(s.get("MISSING"), None);
    }

    #[test]
    fn dotenv_file_is_parsed_with_quotes_and_comments() {
        let dir = crate::fsx::TempDir::new("settings").unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "# pinned\nAGENTS_IMAGE=v0.1.1\nexport DISINTO_REGISTRY=\"127.0.0.1:5000/disinto\"\nEMPTY=\n",
        )
        .unwrap();
        let map = parse_dotenv(&path).unwrap();
        assert_eq!(map["AGENTS_IMAGE"], "v0.1.1");
        assert_eq!(map["DISINTO_REGISTRY"], "127.0.0.1:5000/disinto");
        assert_eq!(map["EMPTY"], "");
    }

    #[test]
    fn broken_dotenv_is_an_error_naming_the_file() {
        let dir = crate::fsx::TempDir::new("settings").unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "AGENTS_IMAGE='v0.1.1\n").unwrap();
        let message = format!("{:#}", parse_dotenv(&path).unwrap_err());
        assert!(
            message.contains(".env is not a valid .env file"),
            "{message}"
        );
    }
}
