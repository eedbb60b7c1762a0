//! `disinto init`: `.env` from `.env.example` when there is none (never rewritten, except that
//! `--add-missing-keys` appends the keys it lacks), `projects/`, and the compose file. All of it
//! is worked out and checked before anything is written, and a write that still fails undoes
//! the ones before it. `.env.example` is built into the binary, so no checkout is needed.
//!
//! The example's lines are templates: they are copied or appended as written, so
//! `GITHUB_TOKEN=${GITHUB_TOKEN}` stays that line and compose resolves it when it runs. Never
//! their values resolved against this process's environment: that would write whatever secret
//! the environment holds into `.env`, a file it was not in.
//!
//! `init --release vX.Y.Z` starts from that release's `.env.example` instead, read from its
//! signed bundle (`factory:vX.Y.Z`) and verified with the trusted keys before it is used.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::engine::registry::{self, Location};
use crate::factory::{Factory, DOTENV_FILE, PROJECTS_DIR};
use crate::fsx;
use crate::model::bundle;
use crate::model::compose::{self, render, ComposeInput};
use crate::model::config::var;
use crate::model::config::{read_dotenv_file, Environment, Settings};
use crate::model::dotenv::{self, Raw, Statement};
use crate::model::image_ref::{parse_registry, parse_version, ImageRef, DEFAULT_REGISTRY};
use crate::model::signature::sha256_digest;
use crate::ops::trust::{trusted_keys, TRUSTED_KEYS_VAR};

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

    /// The `.env.example` of release `version`, from its bundle (`factory:vX.Y.Z` beside the
    /// images), checked against the trusted keys first, with AGENTS_IMAGE set to `version`
    /// (and DISINTO_REGISTRY when it is not the default): a new `.env` runs that release.
    fn from_bundle(root: &Path, version: &str) -> Result<Example> {
        parse_version(version)?;
        let settings = Settings::load(root)?;
        let registry = parse_registry(settings.get(var::DISINTO_REGISTRY)?)?;
        let keys = trusted_keys(&settings, root)?;
        let reference = format!("{registry}/{}:{version}", bundle::REPOSITORY);
        let image = ImageRef::parse(&reference)?;
        let at = Location::of(&image)?;
        let (manifest, digest) = at
            .registry
            .manifest(&at.path, version, bundle::MANIFEST_TYPE)?
            .with_context(|| format!("{reference} does not exist: a release made before bundles were published has none (set AGENTS_IMAGE={version} and run `disinto init`)"))?;
        if keys.is_empty() {
            bail!("{reference}: no trusted key to verify it with: set {TRUSTED_KEYS_VAR} to the release's public key");
        }
        let signed = registry::verify(&image, &digest, &keys)
            .with_context(|| format!("{reference}: refused"))?;
        let files = bundle::files(&manifest, &reference)?;
        let (_, descriptor) = files
            .iter()
            .find(|(name, _)| name == ".env.example")
            .with_context(|| format!("{reference} holds no .env.example"))?;
        let bytes = at.registry.blob(&at.path, descriptor, bundle::MAX_FILE)?;
        if bytes.len() as u64 != descriptor.size || sha256_digest(&bytes) != descriptor.digest {
            bail!("{reference}: its .env.example does not match its digest: refused");
        }
        let origin = format!("the .env.example of {reference}");
        let text = String::from_utf8(bytes).map_err(|_| anyhow!("{origin} is not UTF-8 text"))?;
        let mut text = dotenv::set(&text, var::AGENTS_IMAGE, version, &origin)?;
        if registry != DEFAULT_REGISTRY {
            text = dotenv::set(&text, var::DISINTO_REGISTRY, &registry, &origin)?;
        }
        eprintln!(
            "{reference}@{digest}: verified (signed by {})",
            signed.key_id
        );
        Ok(Example {
            origin,
            text: text.into_bytes(),
        })
    }

    /// Its statements for the keys `existing` lacks, as written (see [`missing_lines`]).
    fn missing(&self, existing: &[String]) -> Result<Vec<Line>> {
        missing_lines(&self.text, &self.origin, existing)
    }
}

/// A statement of the example, as written.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    key: String,
    raw: Raw,
    /// The statement's text, from its `export` or key to the end of its last line.
    text: String,
}

/// The example's statements for the keys `existing` lacks, as written and in the example's
/// order: every statement of such a key, so the appended lines read as they do in the example.
/// A key the example only leaves bare (`KEY` alone) is left out: its value is the process
/// environment's, which compose reads anyway.
fn missing_lines(example: &[u8], origin: &str, existing: &[String]) -> Result<Vec<Line>> {
    let all = dotenv::statements(example, origin)?;
    // Valid UTF-8: the statements were read from it.
    let text = String::from_utf8_lossy(example);
    let have: BTreeSet<&str> = existing.iter().map(String::as_str).collect();
    let given: BTreeSet<&str> = all
        .iter()
        .filter(|s| s.raw != Raw::Bare)
        .map(|s| s.key.as_str())
        .collect();
    Ok(all
        .iter()
        .filter(|s| given.contains(s.key.as_str()) && !have.contains(s.key.as_str()))
        .map(|s| Line {
            key: s.key.clone(),
            raw: s.raw.clone(),
            text: text[s.start..s.rest.end].to_string(),
        })
        .collect())
}

/// The keys of `lines`, each once, in order.
fn keys(lines: &[Line]) -> Vec<&str> {
    let mut seen = BTreeSet::new();
    lines
        .iter()
        .map(|l| l.key.as_str())
        .filter(|k| seen.insert(*k))
        .collect()
}

/// `.env` `text` with `lines` appended as written. The result is read back before it is
/// returned: its statements must be the old ones and then the appended ones, unchanged, so
/// what `init` writes is what it checked.
fn with_missing_lines(text: &[u8], lines: &[Line], origin: &str) -> Result<Vec<u8>> {
    let mut new = text.to_vec();
    if !new.is_empty() && !new.ends_with(b"\n") {
        new.push(b'\n');
    }
    new.extend_from_slice(b"# Added by `disinto init --add-missing-keys` from .env.example:\n");
    for line in lines {
        new.extend_from_slice(line.text.as_bytes());
        new.push(b'\n');
    }
    let shape = |s: Vec<Statement>| s.into_iter().map(|s| (s.key, s.raw)).collect::<Vec<_>>();
    let mut expected = shape(dotenv::statements(text, origin)?);
    expected.extend(lines.iter().map(|l| (l.key.clone(), l.raw.clone())));
    let got = dotenv::statements(&new, origin).map(shape);
    if got.ok().as_ref() != Some(&expected) {
        bail!(
            "{origin} left unchanged: with the missing keys appended, its lines would not read \
             as they do in .env.example (check the end of the file, or add the keys by hand)"
        );
    }
    Ok(new)
}

pub(crate) fn init(root: &Path, add_missing_keys: bool, release: Option<String>) -> Result<()> {
    let example = match release {
        Some(version) if root.is_dir() => Some(Example::from_bundle(root, &version)?),
        _ => None,
    };
    init_from(root, add_missing_keys, Environment::current(), example)
}

/// [`init`] with `process` as the process environment (one snapshot: `.env` is resolved
/// against it, as compose will).
#[cfg(test)]
fn init_in(root: &Path, add_missing_keys: bool, process: Environment) -> Result<()> {
    init_from(root, add_missing_keys, process, None)
}

/// [`init_in`] with the `.env.example` to start from (a release bundle's), else the
/// factory's own or the built-in one.
fn init_from(
    root: &Path,
    add_missing_keys: bool,
    process: Environment,
    example: Option<Example>,
) -> Result<()> {
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
    let example = match example {
        Some(e) => e,
        None => Example::find(root)?,
    };
    let env_path = root.join(DOTENV_FILE);
    let origin = env_path.display().to_string();
    // Work out and validate everything `.env` and the compose file will be made of before
    // writing anything at all, so a failure leaves the factory as it was.
    let old_env = read_dotenv_file(&env_path)?;
    let mut new_env = None;
    let message;
    let dotenv = if let Some(text) = &old_env {
        let current = process.read_dotenv(text, &origin)?.values;
        // Every key a statement names counts, a bare one unset in the environment too.
        let existing: Vec<String> = dotenv::statements(text, &origin)?
            .into_iter()
            .map(|s| s.key)
            .collect();
        let missing = example.missing(&existing)?;
        let names = keys(&missing).join(", ");
        if missing.is_empty() {
            message = format!("Unchanged {origin}: it has every key of .env.example");
            current
        } else if add_missing_keys {
            let text = with_missing_lines(text, &missing, &origin)?;
            // Read as compose will read it: the appended templates resolved in `.env`.
            let dotenv = process.read_dotenv(&text, &origin).map_err(|e| {
                anyhow!("{origin} left unchanged: with {names} appended from {}, it would not read: {e:#}", example.origin)
            })?;
            message = format!("Appended to {origin}: {names}");
            new_env = Some(text);
            dotenv.values
        } else {
            message = format!(
                "Unchanged {origin}; it lacks {names} (defaults apply; `disinto init --add-missing-keys` appends them)"
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
    // Every path init writes can be written: what a path is, not only what goes in it.
    let projects = root.join(PROJECTS_DIR);
    if projects.symlink_metadata().is_ok() && !projects.is_dir() {
        bail!(
            "{} is not a directory: it is mounted as the agents' projects directory",
            projects.display()
        );
    }
    if let Some(text) = &new_env {
        fsx::check_writable(&env_path, text)?;
    }
    let compose_text = render(&input, &model)?;
    fsx::check_writable(&factory.compose_file(), compose_text.as_bytes())?;

    // What only a write can tell (no permission, a full disk) undoes the writes before it.
    let mut done = Done::default();
    let applied = (|| -> Result<()> {
        if let Some(text) = &new_env {
            // Private: `.env` holds, or will hold, the factory's secrets.
            fsx::write_atomic_private(&env_path, text)?;
            done.env = Some((env_path.clone(), old_env.clone()));
        }
        if !projects.is_dir() {
            std::fs::create_dir(&projects)
                .with_context(|| format!("cannot create {}", projects.display()))?;
            done.projects = Some(projects.clone());
        }
        factory.write_compose(&input, &model)?;
        Ok(())
    })();
    if let Err(e) = applied {
        return Err(match done.undo() {
            None => e,
            Some(clause) => anyhow!("{e:#} {clause}"),
        });
    }
    eprintln!("{message}");
    if let Some(projects) = &done.projects {
        eprintln!("Created {}", projects.display());
    }
    Ok(())
}

/// What `init` has written so far, to be undone when a later write fails.
#[derive(Default)]
struct Done {
    /// `.env` written, and what it held before (`None`: it was created).
    env: Option<(PathBuf, Option<Vec<u8>>)>,
    /// `projects/` created.
    projects: Option<PathBuf>,
}

impl Done {
    /// Undoes the writes, newest first, each whatever became of the others: the clause an
    /// error ends with, saying what was undone and what is left.
    fn undo(self) -> Option<String> {
        let mut undone = Vec::new();
        let mut left = Vec::new();
        if let Some(projects) = self.projects {
            // Created just now and empty: remove_dir refuses anything else.
            match std::fs::remove_dir(&projects) {
                Ok(()) => undone.push(format!("{} removed", projects.display())),
                Err(e) => left.push(format!(
                    "{} is left: {}",
                    projects.display(),
                    fsx::reason(&e)
                )),
            }
        }
        if let Some((path, old)) = self.env {
            let result = match &old {
                Some(text) => fsx::write_atomic_private(&path, text),
                // Created: remove the file, where a dangling symlink pointed too.
                None => path
                    .canonicalize()
                    .and_then(std::fs::remove_file)
                    .map_err(|e| anyhow!("{}", fsx::reason(&e))),
            };
            match (result, old) {
                (Ok(()), Some(_)) => undone.push(format!("{} restored", path.display())),
                (Ok(()), None) => undone.push(format!("{} removed", path.display())),
                (Err(e), _) => left.push(format!(
                    "{} is left as init wrote it: {e:#}",
                    path.display()
                )),
            }
        }
        match (undone.is_empty(), left.is_empty()) {
            (true, true) => None,
            (false, true) => Some(format!("({}: init changed nothing)", undone.join(", "))),
            _ => Some(format!(
                "(undone: {}; {})",
                undone.join(", "),
                left.join("; ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;
    use crate::model::config::{parse_dotenv, parse_dotenv_bytes};
    use crate::model::image_ref::AgentsImage;

    fn names(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.key.as_str()).collect()
    }

    #[test]
    fn missing_lines_keep_the_example_order_and_text() {
        let example = b"AGENTS_IMAGE=\nexport  DISINTO_REGISTRY = r # c\nPOLL_INTERVAL=60\n";
        let existing = vec!["POLL_INTERVAL".to_string(), "OTHER".to_string()];
        let missing = missing_lines(example, "example", &existing).unwrap();
        assert_eq!(names(&missing), ["AGENTS_IMAGE", "DISINTO_REGISTRY"]);
        let texts: Vec<&str> = missing.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["AGENTS_IMAGE=", "export  DISINTO_REGISTRY = r # c"]);
    }

    #[test]
    fn the_example_documents_the_image_variables_first() {
        let lines = missing_lines(EMBEDDED_EXAMPLE.as_bytes(), "built-in", &[]).unwrap();
        let names = keys(&lines);
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

    /// An example that gives each of `pairs` its value, in the form [`dotenv::quote`] writes.
    fn example_of(pairs: &[(String, String)]) -> String {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}\n", dotenv::quote(v)))
            .collect()
    }

    #[test]
    fn appended_lines_read_as_they_do_in_the_example() {
        let old = "# mine\nAGENTS_IMAGE=v0.1.1\nKEEP='$HOME'"; // no final newline
        let example = example_of(&tricky());
        let lines = missing_lines(example.as_bytes(), "example", &[]).unwrap();
        let text = with_missing_lines(old.as_bytes(), &lines, "test").unwrap();
        let env = Environment::default();
        let again = env.read_dotenv(&text, "test").unwrap().values;
        let mut expected = BTreeMap::from([
            ("AGENTS_IMAGE".to_string(), "v0.1.1".to_string()),
            ("KEEP".to_string(), "$HOME".to_string()),
        ]);
        expected.extend(tricky());
        assert_eq!(again, expected, "{}", String::from_utf8_lossy(&text));
        let text = String::from_utf8(text).unwrap();
        assert_eq!(
            text,
            format!(
                "{old}\n# Added by `disinto init --add-missing-keys` from .env.example:\n{example}"
            )
        );
    }

    #[test]
    fn bare_example_keys_are_never_appended_alone() {
        let example = b"A=1\nTOKEN\nHOST\nHOST=${HOST:-x}\n";
        let lines = missing_lines(example, "example", &[]).unwrap();
        assert_eq!(names(&lines), ["A", "HOST", "HOST"]);
        assert_eq!(lines[2].text, "HOST=${HOST:-x}");
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
            let example = example_of(&[("K".to_string(), value.clone())]);
            let lines = missing_lines(example.as_bytes(), "example", &[]).unwrap();
            let text = with_missing_lines(b"A=1", &lines, "test").unwrap();
            assert_eq!(env.read_dotenv(&text, "test").unwrap().values["K"], value);
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
        init(dir.path(), true, None).unwrap();
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
        let text = format!("{:#}", init(dir.path(), true, None).unwrap_err());
        assert!(text.contains("DISINTO_REGISTRY"), "{text}");
        let path = dir.path().join(DOTENV_FILE);
        assert_eq!(std::fs::read_to_string(path).unwrap(), env);
        assert!(!dir.path().join("docker-compose.yml").exists());
    }

    #[test]
    fn a_new_env_is_private() {
        let dir = factory("", "AGENTS_IMAGE=v0.1.1\nSECRET=\n");
        std::fs::remove_file(dir.path().join(DOTENV_FILE)).unwrap();
        init(dir.path(), false, None).unwrap();
        let meta = std::fs::metadata(dir.path().join(DOTENV_FILE)).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600);
    }

    #[test]
    fn a_dangling_projects_link_is_named_before_anything_is_written() {
        let dir = factory("", "AGENTS_IMAGE=v0.1.1\n");
        std::fs::remove_file(dir.path().join(DOTENV_FILE)).unwrap();
        let projects = dir.path().join(PROJECTS_DIR);
        std::os::unix::fs::symlink("nowhere", &projects).unwrap();
        let text = format!("{:#}", init(dir.path(), false, None).unwrap_err());
        assert!(
            text.contains(&format!("{} is not a directory", projects.display())),
            "{text}"
        );
        assert!(!dir.path().join(DOTENV_FILE).exists());
    }

    /// A process environment holding a secret and a host name.
    fn secret_env() -> Environment {
        Environment::from(BTreeMap::from([
            ("GITHUB_TOKEN".to_string(), "ghp_s3cretTOKEN".to_string()),
            ("HOST".to_string(), "forge.example".to_string()),
        ]))
    }

    /// An example whose lines refer to the environment.
    const TEMPLATE_EXAMPLE: &str = "AGENTS_IMAGE=v0.1.1\nGITHUB_TOKEN=${GITHUB_TOKEN}\n\
        export FORGE_URL=\"https://${HOST:-localhost}/git\" # where\nPOLL_INTERVAL=60\n";

    #[test]
    fn example_lines_are_appended_as_written_never_resolved() {
        let env = "AGENTS_IMAGE=v0.1.1\nPOLL_INTERVAL=30\n";
        let dir = factory(env, TEMPLATE_EXAMPLE);
        init_in(dir.path(), true, secret_env()).unwrap();
        let after = std::fs::read_to_string(dir.path().join(DOTENV_FILE)).unwrap();
        assert_eq!(
            after,
            format!(
                "{env}# Added by `disinto init --add-missing-keys` from .env.example:\n\
                 GITHUB_TOKEN=${{GITHUB_TOKEN}}\n\
                 export FORGE_URL=\"https://${{HOST:-localhost}}/git\" # where\n"
            )
        );
        // The secret lands in no file init writes.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(!text.contains("s3cret"), "{}: {text}", path.display());
            }
        }
        // A new .env is the example as written too.
        std::fs::remove_file(dir.path().join(DOTENV_FILE)).unwrap();
        init_in(dir.path(), false, secret_env()).unwrap();
        let created = std::fs::read_to_string(dir.path().join(DOTENV_FILE)).unwrap();
        assert_eq!(created, TEMPLATE_EXAMPLE);
    }

    /// Every entry of `dir` with its bytes (a directory as `None`).
    fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                (name, std::fs::read(&path).ok())
            })
            .collect()
    }

    #[test]
    fn a_path_init_cannot_write_fails_it_before_anything_is_written() {
        let env = "AGENTS_IMAGE=v0.1.1\n";
        for add_missing_keys in [true, false] {
            // docker-compose.yml is a directory: neither .env nor projects/ may change.
            let dir = factory(env, TEMPLATE_EXAMPLE);
            std::fs::create_dir(dir.path().join("docker-compose.yml")).unwrap();
            let before = snapshot(dir.path());
            let e = init_in(dir.path(), add_missing_keys, secret_env()).unwrap_err();
            assert_eq!(format!("{e:#}").lines().count(), 1);
            assert_eq!(snapshot(dir.path()), before);
            // No .env yet: none is created.
            std::fs::remove_file(dir.path().join(DOTENV_FILE)).unwrap();
            let before = snapshot(dir.path());
            assert!(init_in(dir.path(), add_missing_keys, secret_env()).is_err());
            assert_eq!(snapshot(dir.path()), before);
        }
        // .env is a directory (compose reads no settings from it): init cannot create it.
        let dir = factory(env, TEMPLATE_EXAMPLE);
        std::fs::remove_file(dir.path().join(DOTENV_FILE)).unwrap();
        std::fs::create_dir(dir.path().join(DOTENV_FILE)).unwrap();
        let before = snapshot(dir.path());
        assert!(init_in(dir.path(), false, secret_env()).is_err());
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn a_compose_file_that_cannot_be_replaced_changes_nothing() {
        // A compose file that cannot be replaced: /proc holds no temp file, even for root.
        // fsx::check_writable makes the temp file it would (and removes it), so this fails
        // before .env and projects/ are written; a failure only the write sees (a full disk)
        // is undone after.
        let env = "AGENTS_IMAGE=v0.1.1\n";
        for had_env in [true, false] {
            let dir = factory(env, TEMPLATE_EXAMPLE);
            if !had_env {
                std::fs::remove_file(dir.path().join(DOTENV_FILE)).unwrap();
            }
            std::os::unix::fs::symlink("/proc/version", dir.path().join("docker-compose.yml"))
                .unwrap();
            let before = snapshot(dir.path());
            let e = format!("{:#}", init_in(dir.path(), true, secret_env()).unwrap_err());
            assert_eq!(e.lines().count(), 1, "{e}");
            assert_eq!(snapshot(dir.path()), before, "{e}");
        }
    }
}
