//! `disinto init`: `.env` from `.env.example` when there is none (never rewritten), `projects/`,
//! and the compose file. `.env.example` is built into the binary, so no checkout is needed.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Result};

use crate::compose::ComposeInput;
use crate::config::{parse_dotenv, parse_dotenv_bytes, FactoryConfig, Settings};
use crate::factory::{require_build_context, Factory, DOTENV_FILE, PROJECTS_DIR};
use crate::fsx;

/// The `.env.example` of the release this binary was built from.
const EMBEDDED_EXAMPLE: &str = include_str!("../../.env.example");

/// Where the example settings come from: the factory's own `.env.example`, or the built-in one.
struct Example {
    origin: String,
    text: Vec<u8>,
}

impl Example {
    fn find(root: &Path) -> Result<Example> {
        let path = root.join(".env.example");
        if path.is_file() {
            return Ok(Example {
                origin: path.display().to_string(),
                text: std::fs::read(&path)?,
            });
        }
        Ok(Example {
            origin: "the built-in .env.example".into(),
            text: EMBEDDED_EXAMPLE.as_bytes().to_vec(),
        })
    }

    /// Its variables, in the file's order (a map would sort them).
    fn pairs(&self) -> Result<Vec<(String, String)>> {
        example_pairs(&self.text, &self.origin)
    }
}

fn example_pairs(text: &[u8], origin: &str) -> Result<Vec<(String, String)>> {
    let values = parse_dotenv_bytes(text, origin)?;
    Ok(String::from_utf8_lossy(text)
        .lines()
        .map(|l| {
            let l = l.trim_start();
            l.strip_prefix("export ").unwrap_or(l)
        })
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter_map(|k| values.get(&k).map(|v| (k, v.clone())))
        .collect())
}

/// Keys of `example` that `existing` lacks, in the example's order.
pub(crate) fn missing_keys(
    existing: &[String],
    example: &[(String, String)],
) -> Vec<(String, String)> {
    let have: BTreeSet<&str> = existing.iter().map(String::as_str).collect();
    example
        .iter()
        .filter(|(k, _)| !have.contains(k.as_str()))
        .cloned()
        .collect()
}

pub(crate) fn init(root: &Path, add_missing_keys: bool) -> Result<()> {
    if !root.is_dir() {
        bail!(
            "factory directory {} does not exist: create it first",
            root.display()
        );
    }
    let example = Example::find(root)?;
    let env_path = root.join(DOTENV_FILE);
    // Validate what the compose file will be made of before writing anything at all.
    let dotenv = if env_path.exists() {
        parse_dotenv(&env_path)?
    } else {
        parse_dotenv_bytes(&example.text, &example.origin)?
    };
    let config = FactoryConfig::from_settings(&Settings::with_dotenv(dotenv))?;
    require_build_context(root, &config.agents)?;
    if env_path.exists() {
        let pairs = example.pairs()?;
        let existing: Vec<String> = parse_dotenv(&env_path)?.into_keys().collect();
        let missing = missing_keys(&existing, &pairs);
        let names: Vec<&str> = missing.iter().map(|(k, _)| k.as_str()).collect();
        if missing.is_empty() {
            eprintln!(
                "Unchanged {}: it has every key of .env.example",
                env_path.display()
            );
        } else if add_missing_keys {
            let mut text = std::fs::read_to_string(&env_path)?;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("# Added by `disinto init --add-missing-keys` from .env.example:\n");
            for (k, v) in &missing {
                text.push_str(&format!("{k}={v}\n"));
            }
            fsx::write_atomic(&env_path, text.as_bytes())?;
            eprintln!("Appended to {}: {}", env_path.display(), names.join(", "));
        } else {
            eprintln!(
                "Unchanged {}; it lacks {} (defaults apply; `disinto init --add-missing-keys` appends them)",
                env_path.display(),
                names.join(", ")
            );
        }
    } else {
        fsx::write_atomic(&env_path, &example.text)?;
        eprintln!("Created {} from {}", env_path.display(), example.origin);
    }
    write_compose_for(root)
}

/// The second half of `init`: `projects/` and the compose file from `.env`.
fn write_compose_for(root: &Path) -> Result<()> {
    let projects = root.join(PROJECTS_DIR);
    if !projects.exists() {
        std::fs::create_dir_all(&projects)?;
        eprintln!("Created {}", projects.display());
    }
    let factory = Factory::open(root)?;
    factory.require_build_context()?;
    factory.write_compose(&ComposeInput::from(&factory.config))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::generate;
    use crate::image_ref::AgentsImage;

    #[test]
    fn missing_keys_keep_the_example_order() {
        let example = vec![
            ("AGENTS_IMAGE".to_string(), String::new()),
            ("DISINTO_REGISTRY".to_string(), String::new()),
            ("POLL_INTERVAL".to_string(), "60".to_string()),
        ];
        let existing = vec!["POLL_INTERVAL".to_string(), "OTHER".to_string()];
        let missing = missing_keys(&existing, &example);
        let names: Vec<&str> = missing.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["AGENTS_IMAGE", "DISINTO_REGISTRY"]);
    }

    #[test]
    fn the_example_documents_the_image_variables_first() {
        let pairs = example_pairs(EMBEDDED_EXAMPLE.as_bytes(), "built-in").unwrap();
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(&names[..2], ["AGENTS_IMAGE", "DISINTO_REGISTRY"]);
        // Every variable the generated compose file reads is documented.
        let text = generate(&ComposeInput {
            agents: AgentsImage::Release("v0.1.1".into()),
            agent_cli: None,
        })
        .unwrap();
        for var in text
            .split("${")
            .skip(1)
            .filter_map(|s| s.split([':', '}']).next())
        {
            assert!(names.contains(&var), "{var} is not in .env.example");
        }
        assert!(names.contains(&"AGENT_CLI_BIN"));
    }
}
