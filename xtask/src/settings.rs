//! Factory settings: each variable from the process environment first, then `.env` at the root.
//! Read-only: `.env` belongs to the operator and is never rewritten here.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

/// A snapshot of the variables the factory reads, in lookup order.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    process: BTreeMap<String, String>,
    dotenv: BTreeMap<String, String>,
}

impl Settings {
    /// Reads the process environment and `<root>/.env` (which may be missing).
    pub fn load(root: &Path) -> Result<Settings> {
        let path = root.join(".env");
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
}

/// Parses a `.env` file with the same rules Docker Compose applies (quotes, comments, `export`).
pub fn parse_dotenv(path: &Path) -> Result<BTreeMap<String, String>> {
    let iter =
        dotenvy::from_path_iter(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut map = BTreeMap::new();
    for item in iter {
        let (key, value) = item.map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid .env file: {e}; fix that line (KEY=value)",
                path.display()
            )
        })?;
        map.insert(key, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

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
