//! `disinto init`: `.env` from `.env.example` when there is none (never rewritten, except that
//! `--add-missing-keys` appends the keys it lacks), `projects/`, and the compose file. All of it
//! is worked out and checked before anything is written. `.env.example` is built into the
//! binary, so no checkout is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::factory::{Factory, DOTENV_FILE, PROJECTS_DIR};
use crate::fsx;
use crate::model::compose::{self, render, ComposeInput};
use crate::model::config::{read_dotenv_file, Environment, Settings};
use crate::model::dotenv;

/// The `.env.example` of the release this binary was built from.
const EMBEDDED_EXAMPLE: &str = include_str!("../../../.env.example");

/// Where the example settings come from: the factory's own `.env.example`, or the built-in one.
struct Example {
    origin: String,
    text: Vec<u8>,
}

impl Example {
    fn find(root: &Path) -> Result<Example> {
        let path = root.join(".env.example");
        if let Some(text) = read_dotenv_file(&path)? {
            return Ok(Example {
                origin: path.display().to_string(),
                text,
            });
        }
        Ok(Example {
            origin: "the built-in .env.example".into(),
            text: EMBEDDED_EXAMPLE.as_bytes().to_vec(),
        })
    }

    /// Its variables, in the file's order (a map would sort them).
    fn pairs(&self, env: &Environment) -> Result<Vec<(String, String)>> {
        example_pairs(&self.text, &self.origin, env)
    }
}

/// The example's values as compose would read them once copied to `.env`, in the file's order.
/// A key the example leaves bare (`KEY` alone) is left out: its value is the process
/// environment's, which compose reads anyway, and appending it would write that value (maybe a
/// secret) into `.env`.
fn example_pairs(text: &[u8], origin: &str, env: &Environment) -> Result<Vec<(String, String)>> {
    let mut bare = BTreeSet::new();
    for s in dotenv::statements(text, origin)? {
        match s.raw {
            dotenv::Raw::Bare => bare.insert(s.key),
            _ => bare.remove(&s.key),
        };
    }
    let mut example = env.read_dotenv(text, origin)?;
    Ok(example
        .order
        .into_iter()
        .filter(|k| !bare.contains(k))
        .filter_map(|k| example.values.remove(&k).map(|v| (k, v)))
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

/// `.env` `text` with `missing` appended, each value written so it reads back as itself.
/// The result is read back before it is returned: what `init` writes is what it checked.
fn with_missing_keys(
    text: &[u8],
    missing: &[(String, String)],
    origin: &str,
    env: &Environment,
) -> Result<(Vec<u8>, BTreeMap<String, String>)> {
    let read = |text: &[u8]| env.read_dotenv(text, origin).map(|d| d.values);
    let mut expected = read(text)?;
    let mut new = text.to_vec();
    if !new.is_empty() && !new.ends_with(b"\n") {
        new.push(b'\n');
    }
    new.extend_from_slice(b"# Added by `disinto init --add-missing-keys` from .env.example:\n");
    for (k, v) in missing {
        new.extend_from_slice(format!("{k}={}\n", dotenv::quote(v)).as_bytes());
        expected.insert(k.clone(), v.clone());
    }
    let got = read(&new)?;
    if let Some(key) = expected
        .keys()
        .chain(got.keys())
        .find(|k| got.get(*k) != expected.get(*k))
    {
        bail!(
            "{origin} left unchanged: with the missing keys appended, {key} would not read back \
             as it should (check the end of the file, or add the keys by hand)"
        );
    }
    Ok((new, got))
}

pub(crate) fn init(root: &Path, add_missing_keys: bool) -> Result<()> {
    if root.exists() && !root.is_dir() {
        bail!(
            "factory directory {} is not a directory: point --root at the directory that holds .env",
            root.display()
        );
    }
    if !root.is_dir() {
        bail!(
            "factory directory {} does not exist: create it first",
            root.display()
        );
    }
    let example = Example::find(root)?;
    let env_path = root.join(DOTENV_FILE);
    let origin = env_path.display().to_string();
    // One snapshot of the process environment: `.env` is resolved against it, as compose will.
    let process = Environment::current();
    // Work out and validate everything `.env` and the compose file will be made of before
    // writing anything at all, so a failure leaves the factory as it was.
    let mut new_env = None;
    let message;
    let dotenv = if let Some(text) = read_dotenv_file(&env_path)? {
        let current = process.read_dotenv(&text, &origin)?.values;
        // Every key a statement names counts, a bare one unset in the environment too.
        let existing: Vec<String> = dotenv::statements(&text, &origin)?
            .into_iter()
            .map(|s| s.key)
            .collect();
        let missing = missing_keys(&existing, &example.pairs(&process)?);
        let names: Vec<&str> = missing.iter().map(|(k, _)| k.as_str()).collect();
        if missing.is_empty() {
            message = format!("Unchanged {origin}: it has every key of .env.example");
            current
        } else if add_missing_keys {
            let (text, dotenv) = with_missing_keys(&text, &missing, &origin, &process)?;
            message = format!("Appended to {origin}: {}", names.join(", "));
            new_env = Some(text);
            dotenv
        } else {
            message = format!(
                "Unchanged {origin}; it lacks {} (defaults apply; `disinto init --add-missing-keys` appends them)",
                names.join(", ")
            );
            current
        }
    } else {
        message = format!("Created {origin} from {}", example.origin);
        new_env = Some(example.text.clone());
        process.read_dotenv(&example.text, &example.origin)?.values
    };
    let settings = Settings::new(process, dotenv);
    let factory = Factory::with_settings(root, settings)?;
    factory.require_build_context()?;
    // One model, checked before anything is written and written as it is.
    let input = ComposeInput::from(&factory.config);
    let model = compose::model(&input);
    render(&input, &model)?;
    let projects = root.join(PROJECTS_DIR);
    if projects.symlink_metadata().is_ok() && !projects.is_dir() {
        bail!(
            "{} is not a directory: it is mounted as the agents' projects directory",
            projects.display()
        );
    }
    if let Some(text) = new_env {
        // Private: `.env` holds, or will hold, the factory's secrets.
        fsx::write_atomic_private(&env_path, &text)?;
    }
    eprintln!("{message}");
    if !projects.is_dir() {
        std::fs::create_dir_all(&projects)
            .with_context(|| format!("cannot create {}", projects.display()))?;
        eprintln!("Created {}", projects.display());
    }
    factory.write_compose(&input, &model)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;
    use crate::model::config::{parse_dotenv, parse_dotenv_bytes};
    use crate::model::image_ref::AgentsImage;

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
        let pairs = example_pairs(
            EMBEDDED_EXAMPLE.as_bytes(),
            "built-in",
            &Environment::default(),
        )
        .unwrap();
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(&names[..2], ["AGENTS_IMAGE", "DISINTO_REGISTRY"]);
        // Every variable the generated compose file reads is documented.
        let text = compose::generate(&ComposeInput {
            agents: AgentsImage::Release("v0.1.1".into()),
            agent_cli: None,
            pinned: Default::default(),
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

    /// Values whose meaning a bare `KEY=value` line would change, and plain ones.
    fn tricky() -> Vec<(String, String)> {
        [
            ("HASH", "abc # not a comment"),
            ("HASH_TIGHT", "pa#ss"),
            ("DOLLAR", "$HOME"),
            ("BRACED", "${PATH}x"),
            ("SPACES", "  two  spaces  "),
            ("SINGLE", "it's"),
            ("DOUBLE", "say \"hi\""),
            ("BACKSLASH", "C:\\dir\\"),
            ("NEWLINE", "line one\nline two"),
            ("ALL", "a'b\"c\\d$E ${F} #g\nh\t"),
            ("EMPTY", ""),
            ("PLAIN", "http://localhost:80/a_b-c.d,e+f=g@h"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn appended_values_read_back_as_themselves() {
        let old = "# mine\nAGENTS_IMAGE=v0.1.1\nKEEP='$HOME'"; // no final newline
        let (text, map) =
            with_missing_keys(old.as_bytes(), &tricky(), "test", &Environment::default()).unwrap();
        // Read back with the crate's own reader, as `disinto up` reads it.
        let again = parse_dotenv_bytes(&text, "test").unwrap();
        assert_eq!(again, map);
        let mut expected = BTreeMap::from([
            ("AGENTS_IMAGE".to_string(), "v0.1.1".to_string()),
            ("KEEP".to_string(), "$HOME".to_string()),
        ]);
        expected.extend(tricky());
        assert_eq!(again, expected, "{}", String::from_utf8_lossy(&text));
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with(&format!("{old}\n# Added by")), "{text}");
        assert!(
            text.contains("\nPLAIN=http://localhost:80/a_b-c.d,e+f=g@h\n"),
            "{text}"
        );
        assert!(text.contains("\nEMPTY=\n"), "{text}");
    }

    #[test]
    fn bare_example_keys_are_never_appended_with_the_environment_value() {
        let env = Environment::from(BTreeMap::from([
            ("TOKEN".to_string(), "s3cret".to_string()),
            ("HOST".to_string(), "h".to_string()),
        ]));
        let pairs = example_pairs(b"A=1\nTOKEN\nHOST\nHOST=${HOST:-x}\n", "example", &env);
        let names: Vec<String> = pairs.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["A", "HOST"]);
    }

    #[test]
    fn random_appended_values_read_back_as_themselves() {
        let pieces = [
            "a", " ", "#", " #", "$", "$HOME", "${X:-y}", "{", "}", "'", "\"", "\\", "\n", "\r\n",
            "\t", "=", ":", "é", "\u{a0}", "\u{feff}", "\\0101",
        ];
        let mut state = 0x1217_u64;
        let mut below = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let env = Environment::from(BTreeMap::from([("HOME".to_string(), "/h".to_string())]));
        for _ in 0..128 {
            let value: String = (0..below(7)).map(|_| pieces[below(pieces.len())]).collect();
            let missing = [("K".to_string(), value.clone())];
            let (_, map) = with_missing_keys(b"A=1", &missing, "test", &env).unwrap();
            assert_eq!(map["K"], value);
        }
    }

    #[test]
    fn values_are_quoted_the_way_compose_reads_them() {
        // Compose (compose-go v2): single quotes are literal; in double quotes `\\`, `\"`,
        // `\n` are escapes and `\$` is a literal `$`.
        assert_eq!(dotenv::quote("v0.1.1"), "v0.1.1");
        assert_eq!(dotenv::quote("$HOME #x"), "'$HOME #x'");
        assert_eq!(dotenv::quote("it's $X"), "\"it's \\$X\"");
        assert_eq!(dotenv::quote("a\\b\n\"c\""), "\"a\\\\b\\n\\\"c\\\"\"");
        assert_eq!(dotenv::quote(""), "");
        // The reader agrees with compose that `$` in single quotes is literal.
        let map = parse_dotenv_bytes(b"A='$HOME ${PATH}'\n", "test").unwrap();
        assert_eq!(map["A"], "$HOME ${PATH}");
    }

    /// A factory directory holding `.env` and its own `.env.example`.
    fn factory(env: &str, example: &str) -> fsx::TempDir {
        let dir = fsx::TempDir::new("init").unwrap();
        std::fs::write(dir.path().join(DOTENV_FILE), env).unwrap();
        std::fs::write(dir.path().join(".env.example"), example).unwrap();
        dir
    }

    /// An example whose values a bare `KEY=value` line would change.
    const TRICKY_EXAMPLE: &str = r#"AGENTS_IMAGE=v0.1.1
HASH='abc # not a comment'
DOLLAR='$HOME ${PATH}'
SINGLE="it's \$HOME"
BACKSLASH="C:\\dir\\"
NEWLINE="line one\nline two"
QUOTES='say "hi"'
PLAIN=http://localhost:80/x
"#;

    #[test]
    fn add_missing_keys_keeps_a_symlinked_env_its_mode_and_owner() {
        let dir = factory("", TRICKY_EXAMPLE);
        let env = dir.path().join(DOTENV_FILE);
        let real = dir.path().join("real.env");
        std::fs::remove_file(&env).unwrap();
        std::fs::write(&real, "AGENTS_IMAGE=v0.1.1\n").unwrap();
        std::os::unix::fs::symlink("real.env", &env).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let root = std::fs::metadata(dir.path()).unwrap().uid() == 0;
        if root {
            std::os::unix::fs::chown(&real, Some(1234), Some(1234)).unwrap();
        }
        init(dir.path(), true).unwrap();
        assert!(env.symlink_metadata().unwrap().file_type().is_symlink());
        let meta = std::fs::metadata(&real).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640);
        if root {
            assert_eq!((meta.uid(), meta.gid()), (1234, 1234));
        }
        // Every value reads as it does in the example.
        let expected = parse_dotenv_bytes(TRICKY_EXAMPLE.as_bytes(), "example").unwrap();
        assert_eq!(expected["BACKSLASH"], "C:\\dir\\");
        assert_eq!(parse_dotenv(&real).unwrap(), expected);
        assert!(dir.path().join("docker-compose.yml").is_file());
    }

    #[test]
    fn a_failing_init_leaves_env_untouched() {
        // The example's registry is invalid: known only once the missing keys are added.
        let env = "AGENTS_IMAGE=v0.1.1\n";
        let dir = factory(env, "AGENTS_IMAGE=\nDISINTO_REGISTRY=not/a/Registry/\n");
        let text = format!("{:#}", init(dir.path(), true).unwrap_err());
        assert!(text.contains("DISINTO_REGISTRY"), "{text}");
        let path = dir.path().join(DOTENV_FILE);
        assert_eq!(std::fs::read_to_string(path).unwrap(), env);
        assert!(!dir.path().join("docker-compose.yml").exists());
    }

    #[test]
    fn a_new_env_is_private() {
        let dir = factory("", "AGENTS_IMAGE=v0.1.1\nSECRET=\n");
        std::fs::remove_file(dir.path().join(DOTENV_FILE)).unwrap();
        init(dir.path(), false).unwrap();
        let meta = std::fs::metadata(dir.path().join(DOTENV_FILE)).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600);
    }

    #[test]
    fn a_dangling_projects_link_is_named_before_anything_is_written() {
        let dir = factory("", "AGENTS_IMAGE=v0.1.1\n");
        std::fs::remove_file(dir.path().join(DOTENV_FILE)).unwrap();
        let projects = dir.path().join(PROJECTS_DIR);
        std::os::unix::fs::symlink("nowhere", &projects).unwrap();
        let text = format!("{:#}", init(dir.path(), false).unwrap_err());
        assert!(
            text.contains(&format!("{} is not a directory", projects.display())),
            "{text}"
        );
        assert!(!dir.path().join(DOTENV_FILE).exists());
    }
}
