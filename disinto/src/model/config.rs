//! Configuration, read once: every variable the factory and the release read, as typed values.
//! Each comes from the process environment first, then `.env` in the directory it belongs to
//! (the factory's, or the checkout's for a release). `docs/configuration.md` lists them all.
//! `.env` is read as Docker Compose reads it ([`crate::model::dotenv`]): its values are the ones compose
//! runs with, interpolation done.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::model::dotenv::{self, Dotenv};
use crate::model::image_ref::{parse_registry, AgentsImage};

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
    /// The Swarm stack `disinto swarm` works on (default `disinto`).
    pub const DISINTO_STACK: &str = "DISINTO_STACK";
}

/// The process environment, as compose sees it: every variable, including those whose value is
/// not UTF-8 (compose uses their bytes; disinto cannot check them, so reading one is an error).
#[derive(Debug, Default, Clone)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    not_utf8: BTreeSet<String>,
}

impl Environment {
    /// This process's environment.
    pub fn current() -> Environment {
        let mut env = Environment::default();
        // vars() would panic on one non-UTF-8 variable anywhere in the environment. A name that
        // is not UTF-8 cannot be one disinto or a `.env` names, so it is left out.
        for (k, v) in std::env::vars_os() {
            let Ok(k) = k.into_string() else { continue };
            match v.into_string() {
                Ok(v) => {
                    env.vars.insert(k, v);
                }
                Err(_) => {
                    env.not_utf8.insert(k);
                }
            }
        }
        env
    }

    /// The value of `key`; an error when it is set to bytes that are not UTF-8.
    pub fn get(&self, key: &str) -> Result<Option<&str>> {
        if self.not_utf8.contains(key) {
            bail!(
                "{key} is set in the process environment, but not to UTF-8 text: fix or unset it"
            );
        }
        Ok(self.vars.get(key).map(String::as_str))
    }

    /// Whether `key` is set, to any bytes.
    pub fn contains(&self, key: &str) -> bool {
        self.vars.contains_key(key) || self.not_utf8.contains(key)
    }

    /// An environment with these variables set to bytes that are not UTF-8 (tests).
    pub fn with_not_utf8(mut self, keys: &[&str]) -> Environment {
        self.not_utf8.extend(keys.iter().map(|k| k.to_string()));
        self
    }

    /// Reads `.env` content with these variables as compose's process environment.
    /// `origin` names it in errors.
    pub fn read_dotenv(&self, text: &[u8], origin: &str) -> Result<Dotenv> {
        dotenv::parse(text, origin, &|k| Ok(self.get(k)?.map(str::to_string)))
    }
}

impl From<BTreeMap<String, String>> for Environment {
    fn from(vars: BTreeMap<String, String>) -> Environment {
        Environment {
            vars,
            not_utf8: BTreeSet::new(),
        }
    }
}

/// A snapshot of variables, in lookup order: the process environment over `.env`.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    process: Environment,
    /// `.env`'s values as compose resolves them.
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
    /// Reads the process environment and `<dir>/.env` (which may be missing), as compose does.
    pub fn load(dir: &Path) -> Result<Settings> {
        Settings::load_with(dir, Environment::current())
    }

    /// [`Settings::load`] with `process` as the process environment.
    pub fn load_with(dir: &Path, process: Environment) -> Result<Settings> {
        let path = dir.join(".env");
        let dotenv = match read_dotenv_file(&path)? {
            Some(text) => {
                process
                    .read_dotenv(&text, &path.display().to_string())?
                    .values
            }
            None => BTreeMap::new(),
        };
        Ok(Settings { process, dotenv })
    }

    /// The given environment over the given `.env` values (already resolved against it).
    pub fn new(process: Environment, dotenv: BTreeMap<String, String>) -> Settings {
        Settings { process, dotenv }
    }

    /// Builds settings from explicit maps (tests, and callers that already know the values).
    pub fn from_maps(process: BTreeMap<String, String>, dotenv: BTreeMap<String, String>) -> Self {
        Settings::new(process.into(), dotenv)
    }

    /// The value of `key`: the process environment wins over `.env`. An error when the process
    /// environment has it, but not as UTF-8 text (compose would use those bytes).
    pub fn get(&self, key: &str) -> Result<Option<&str>> {
        Ok(match self.process.get(key)? {
            Some(v) => Some(v),
            None => self.dotenv.get(key).map(String::as_str),
        })
    }

    /// The value of `key` in the process environment alone (secrets are never read from files).
    pub fn from_environment(&self, key: &str) -> Result<Option<&str>> {
        self.process.get(key)
    }

    /// Where `key`'s value comes from.
    pub fn origin(&self, key: &str) -> Origin {
        if self.process.contains(key) {
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
    pub fn list(&self, key: &str) -> Result<Vec<String>> {
        Ok(self
            .get(key)?
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect())
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
        let agents = AgentsImage::parse(settings.get(var::AGENTS_IMAGE)?)?;
        FactoryConfig::with_agents(settings, agents)
    }

    /// [`FactoryConfig::from_settings`] with `agents` for AGENTS_IMAGE, whose value is not
    /// read (nor refused): for `rollback`, which rewrites that very setting.
    pub fn with_agents(settings: &Settings, agents: AgentsImage) -> Result<FactoryConfig> {
        let registry = parse_registry(settings.get(var::DISINTO_REGISTRY)?)?;
        let agent_cli = match settings.get(var::AGENT_CLI_BIN)? {
            None | Some("") => None,
            // ':', '$' and spaces are fine: the compose file binds it in the long form, with
            // '$' escaped (compose::cli_mount).
            Some(path) if path.starts_with('/') && !path.contains(char::is_control) => {
                Some(path.to_string())
            }
            Some(path) => bail!(
                "AGENT_CLI_BIN={path:?} must be an absolute host path (no control characters), \
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

/// `.env`'s text with `key` set to `value`: the statement that defines it (the last one, which
/// is the one Compose reads) changed from its separator to the end of its line, every other
/// byte kept; appended when absent. The value is quoted when it needs to be.
pub fn set_in_dotenv(text: &str, key: &str, value: &str) -> Result<String> {
    dotenv::set(text, key, value, ".env")
}

/// The largest `.env` disinto reads: far above any settings file (a few KiB), and a bound on
/// what a link to `/dev/zero` or a runaway file makes it hold in memory. Compose has none: on
/// `/dev/zero` it reads until memory runs out.
pub const MAX_DOTENV_BYTES: usize = 1 << 20;

/// The bytes of a `.env` file, or `None` where compose reads none: nothing there, a dangling
/// symbolic link, or a directory. Anything else that cannot be read (a symbolic link loop, a
/// FIFO, no permission, more than [`MAX_DOTENV_BYTES`]) is a one-line error.
pub fn read_dotenv_file(path: &Path) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("cannot read {shown}: {}", crate::fsx::reason(&e)),
        Ok(meta) => meta,
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        return Ok(None);
    }
    // A character device is read as compose reads it (`/dev/null`: no settings); a FIFO or a
    // socket could block or fail half-way, so it is refused.
    if !kind.is_file() && !kind.is_char_device() {
        bail!("cannot read {shown}: it is not a regular file");
    }
    let too_big = || {
        anyhow::anyhow!(
            "cannot read {shown}: it is larger than {} KiB, which no settings file is",
            MAX_DOTENV_BYTES >> 10
        )
    };
    if kind.is_file() && meta.len() > MAX_DOTENV_BYTES as u64 {
        return Err(too_big());
    }
    // A device has no length to check first: read one byte past the bound at most.
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_DOTENV_BYTES as u64 + 1).read_to_end(&mut text))
        .map_err(|e| anyhow::anyhow!("cannot read {shown}: {}", crate::fsx::reason(&e)))?;
    if text.len() > MAX_DOTENV_BYTES {
        return Err(too_big());
    }
    Ok(Some(text))
}

/// Parses a `.env` file with the rules Docker Compose applies, against this process's
/// environment (quotes, comments, `export`, interpolation).
pub fn parse_dotenv(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = read_dotenv_file(path)?
        .with_context(|| format!("cannot read {}: it does not exist", path.display()))?;
    parse_dotenv_bytes(&text, &path.display().to_string())
}

/// Parses `.env` content against this process's environment; `origin` names it in errors.
pub fn parse_dotenv_bytes(text: &[u8], origin: &str) -> Result<BTreeMap<String, String>> {
    Ok(Environment::current().read_dotenv(text, origin)?.values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_in_dotenv_changes_one_line_and_keeps_every_other_byte() {
        let text =
            "# pinned\r\nAGENTS_IMAGE=v0.1.0\nexport  AGENTS_IMAGE = v0.2.0 # last wins\nX=1";
        assert_eq!(
            set_in_dotenv(text, "AGENTS_IMAGE", "v0.1.1").unwrap(),
            "# pinned\r\nAGENTS_IMAGE=v0.1.0\nexport  AGENTS_IMAGE =v0.1.1\nX=1"
        );
        assert_eq!(
            set_in_dotenv("A=1\r\nAGENTS_IMAGE=\r\n", "AGENTS_IMAGE", "v1.0.0").unwrap(),
            "A=1\r\nAGENTS_IMAGE=v1.0.0\r\n"
        );
        assert_eq!(
            set_in_dotenv("AGENTS_IMAGES=x\nA=1", "AGENTS_IMAGE", "v1.0.0").unwrap(),
            "AGENTS_IMAGES=x\nA=1\nAGENTS_IMAGE=v1.0.0\n"
        );
        assert_eq!(set_in_dotenv("", "K", "v").unwrap(), "K=v\n");
        let back = parse_dotenv_bytes(
            set_in_dotenv(text, "AGENTS_IMAGE", "v0.1.1")
                .unwrap()
                .as_bytes(),
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
        assert_eq!(s.get("AGENTS_IMAGE").unwrap(), Some("v0.2.0"));
        assert_eq!(s.get("DISINTO_REGISTRY").unwrap(), Some("127.0.0.1:5000/x"));
        assert_eq!(s.get("MISSING").unwrap(), None);
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

    /// The factory configuration of `.env` `text` with `env` as the process environment.
    fn factory(text: &str, env: &[(&str, &str)]) -> Result<FactoryConfig> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = Environment::from(env);
        let dotenv = env.read_dotenv(text.as_bytes(), "f/.env")?.values;
        FactoryConfig::from_settings(&Settings::new(env, dotenv))
    }

    #[test]
    fn dotenv_values_are_the_ones_compose_runs_with() {
        let text = "AGENTS_IMAGE=${PIN:-v0.1.1}\nDISINTO_REGISTRY=${REG:-127.0.0.1:5000/disinto}\n";
        // Compose runs v0.1.1 from the local registry: not dev mode, not ghcr.io.
        let c = factory(text, &[]).unwrap();
        assert_eq!(c.agents, AgentsImage::Release("v0.1.1".into()));
        assert_eq!(c.agents_in_dotenv.as_deref(), Some("v0.1.1"));
        assert_eq!(
            c.agents_reference().unwrap(),
            "127.0.0.1:5000/disinto/agents:v0.1.1"
        );
        // The process environment comes first in interpolation, as in compose.
        let c = factory(text, &[("PIN", "v0.2.0"), ("REG", "ghcr.io/other")]).unwrap();
        assert_eq!(c.agents_reference().unwrap(), "ghcr.io/other/agents:v0.2.0");
        // A byte order mark, `KEY: value`, and a bare key taken from the environment.
        let env = [("DISINTO_REGISTRY", "127.0.0.1:5000/x")];
        let c = factory("\u{feff}AGENTS_IMAGE: v0.1.1\nDISINTO_REGISTRY\n", &env).unwrap();
        assert_eq!(
            c.agents_reference().unwrap(),
            "127.0.0.1:5000/x/agents:v0.1.1"
        );
        let c = factory("DISINTO_REGISTRY\nAGENTS_IMAGE=v0.1.1\n", &[]).unwrap();
        assert_eq!(c.registry, "ghcr.io/disinto");
    }

    #[test]
    fn what_compose_refuses_is_refused() {
        let e = factory("A=1\nAGENTS_IMAGE=${PIN:?set PIN to a release}\n", &[]).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "f/.env:2: AGENTS_IMAGE: required variable PIN is missing a value: set PIN to a release"
        );
        assert!(factory("AGENTS_IMAGE=${PIN:?}\n", &[("PIN", "v0.1.1")]).is_ok());
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error_naming_the_variable() {
        let env = Environment::default().with_not_utf8(&["AGENTS_IMAGE", "PIN"]);
        let dotenv = BTreeMap::from([("AGENTS_IMAGE".to_string(), "v0.1.1".to_string())]);
        let settings = Settings::new(env.clone(), dotenv);
        assert_eq!(settings.origin("AGENTS_IMAGE"), Origin::Environment);
        let e = format!("{:#}", FactoryConfig::from_settings(&settings).unwrap_err());
        assert_eq!(
            e,
            "AGENTS_IMAGE is set in the process environment, but not to UTF-8 text: fix or unset it"
        );
        let e = env
            .read_dotenv(b"AGENTS_IMAGE=${PIN:-v0.1.1}", "f")
            .unwrap_err();
        assert!(
            format!("{e:#}").starts_with("f:1: AGENTS_IMAGE: PIN is set"),
            "{e:#}"
        );
    }

    #[test]
    fn env_file_kinds_read_as_compose_reads_them() {
        let dir = crate::fsx::TempDir::new("settings").unwrap();
        let env = dir.path().join(".env");
        // A symbolic link loop is an error, not "no .env" (compose stops on it too).
        std::os::unix::fs::symlink(".env", &env).unwrap();
        let e = format!("{:#}", Settings::load(dir.path()).unwrap_err());
        assert_eq!(
            e,
            format!(
                "cannot read {}: Too many levels of symbolic links",
                env.display()
            )
        );
        // A dangling link and a directory are skipped, as compose skips them.
        std::fs::remove_file(&env).unwrap();
        std::os::unix::fs::symlink("nowhere", &env).unwrap();
        assert_eq!(read_dotenv_file(&env).unwrap(), None);
        std::fs::remove_file(&env).unwrap();
        std::fs::create_dir(&env).unwrap();
        assert_eq!(read_dotenv_file(&env).unwrap(), None);
        std::fs::remove_dir(&env).unwrap();
        std::os::unix::fs::symlink("/dev/null", &env).unwrap();
        assert_eq!(read_dotenv_file(&env).unwrap(), Some(Vec::new()));
        std::fs::remove_file(&env).unwrap();
        std::fs::write(&env, "A='x").unwrap();
        let e = format!("{:#}", Settings::load(dir.path()).unwrap_err());
        assert!(e.starts_with(&format!("{}:1: A: ", env.display())), "{e}");
        std::fs::write(&env, "AGENTS_IMAGE_TEST_ONLY=${NOT_SET_HERE:-v1}").unwrap();
        let s = Settings::load(dir.path()).unwrap();
        assert_eq!(s.dotenv_value("AGENTS_IMAGE_TEST_ONLY"), Some("v1"));
    }

    #[test]
    fn an_endless_or_huge_env_is_an_error_not_all_of_memory() {
        let dir = crate::fsx::TempDir::new("settings").unwrap();
        let env = dir.path().join(".env");
        // Compose reads /dev/zero until memory runs out; disinto stops past the bound.
        std::os::unix::fs::symlink("/dev/zero", &env).unwrap();
        let e = format!("{:#}", Settings::load(dir.path()).unwrap_err());
        assert!(
            e.starts_with(&format!("cannot read {}: ", env.display())),
            "{e}"
        );
        std::fs::remove_file(&env).unwrap();
        let line = "A=1\n".repeat(MAX_DOTENV_BYTES / 4);
        std::fs::write(&env, &line).unwrap();
        assert_eq!(
            read_dotenv_file(&env).unwrap().unwrap().len(),
            MAX_DOTENV_BYTES
        );
        std::fs::write(&env, format!("{line}\n")).unwrap();
        assert!(read_dotenv_file(&env).is_err());
    }
}
