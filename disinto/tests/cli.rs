//! The `disinto` binary as an operator first meets it: its name, its version and revision,
//! and one-line errors before any Docker is needed.

use std::process::Command;

fn disinto(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_disinto"))
        .args(args)
        .env_remove("DISINTO_ROOT")
        .output()
        .unwrap()
}

#[test]
fn help_names_the_program_disinto() {
    let out = disinto(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: disinto "), "{help}");
    for command in ["init", "up", "down", "status", "swarm"] {
        assert!(help.contains(&format!("  {command} ")), "{command}: {help}");
    }
}

#[test]
fn version_says_the_release_and_the_revision() {
    let out = disinto(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let version =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../VERSION")).unwrap();
    assert!(
        text.starts_with(&format!("disinto v{} (revision ", version.trim())),
        "{text}"
    );
    let revision = text
        .trim()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap();
    assert!(
        revision == "unknown"
            || (revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
}

#[test]
fn a_missing_factory_directory_is_one_line() {
    let out = disinto(&["--root", "/nonexistent/factory", "status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/factory"), "{err}");
}

/// `disinto up --dry-run` on a factory holding only `.env` `text`, with `env` set.
fn dry_run(text: &str, env: &[(&str, &std::ffi::OsStr)]) -> std::process::Output {
    let dir = disinto::fsx::TempDir::new("cli").unwrap();
    std::fs::write(dir.path().join(".env"), text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_disinto"));
    cmd.args(["up", "--dry-run"])
        .current_dir(dir.path())
        .env_remove("DISINTO_ROOT")
        .env_remove("AGENTS_IMAGE")
        .env_remove("DISINTO_REGISTRY")
        .env_remove("PIN")
        .env_remove("REG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn up_pulls_what_compose_reads_from_an_interpolated_env() {
    let text = "AGENTS_IMAGE=${PIN:-v0.1.1}\nDISINTO_REGISTRY=${REG:-127.0.0.1:5000/disinto}\n";
    let out = dry_run(text, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("$ docker pull --quiet 127.0.0.1:5000/disinto/agents:v0.1.1\n"),
        "{stdout}"
    );
}

#[test]
fn an_env_override_that_is_not_utf8_is_one_line_naming_it() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"v0.1.\xff");
    for (text, var) in [
        ("AGENTS_IMAGE=v0.1.1\n", "AGENTS_IMAGE"),
        ("AGENTS_IMAGE=${PIN:-v0.1.1}\n", "PIN"),
    ] {
        let out = dry_run(text, &[(var, bad)]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!(
                "{var} is set in the process environment, but not to UTF-8 text"
            )),
            "{err}"
        );
    }
}

#[test]
fn a_required_variable_compose_would_refuse_is_one_line() {
    let out = dry_run("\nAGENTS_IMAGE=${PIN:?pin a release}\n", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(
            "/.env:2: AGENTS_IMAGE: required variable PIN is missing a value: pin a release"
        ),
        "{err}"
    );
}

#[test]
fn a_root_that_is_a_file_is_named_as_such() {
    let file = std::env::temp_dir().join(format!("disinto-root-file-{}", std::process::id()));
    std::fs::write(&file, "not a directory\n").unwrap();
    for command in ["init", "status", "up"] {
        let out = disinto(&["--root", file.to_str().unwrap(), command]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{command}: {err}");
        assert!(err.contains("is not a directory"), "{command}: {err}");
    }
    std::fs::remove_file(&file).unwrap();
}

/// `disinto swarm ARGS` on a factory holding only `.env` `text`: its output and the directory.
fn swarm(text: &str, args: &[&str]) -> (std::process::Output, disinto::fsx::TempDir) {
    let dir = disinto::fsx::TempDir::new("cli").unwrap();
    std::fs::write(dir.path().join(".env"), text).unwrap();
    (swarm_in(dir.path(), args), dir)
}

/// `disinto swarm ARGS` on the factory in `dir`, none of its variables set in the environment.
fn swarm_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_disinto"));
    cmd.arg("swarm").args(args).current_dir(dir);
    for var in disinto::model::stack::VARIABLES.iter().chain(&[
        "DISINTO_ROOT",
        "AGENTS_IMAGE",
        "DISINTO_STACK",
        "COMPOSE_PROJECT_NAME",
    ]) {
        cmd.env_remove(var);
    }
    cmd.output().unwrap()
}

#[test]
fn swarm_deploy_dry_run_prints_the_commands_and_writes_nothing() {
    let text = "AGENTS_IMAGE=v0.2.0\nDISINTO_REGISTRY=127.0.0.1:5000/disinto\n";
    let (out, dir) = swarm(text, &["--stack", "f1", "deploy", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("$ docker pull --quiet 127.0.0.1:5000/disinto/edge:v0.2.0\n"),
        "{stdout}"
    );
    let file = dir.path().canonicalize().unwrap().join("docker-stack.yml");
    assert!(
        stdout.contains(&format!(
            "$ docker stack deploy --compose-file {} --with-registry-auth --resolve-image never --prune f1\n",
            file.display()
        )),
        "{stdout}"
    );
    assert!(!file.exists());
}

#[test]
fn swarm_deploy_refusals_are_one_line() {
    for (text, want) in [
        ("AGENTS_IMAGE=\n", "error: AGENTS_IMAGE is not set: a swarm runs released images only"),
        (
            "AGENTS_IMAGE=v0.2.0\nEDGE_HTTP_PORT=127.0.0.1:8080\n",
            "error: service edge: port \"${EDGE_HTTP_PORT:-80}:80\" is \"127.0.0.1:8080:80\": a swarm publishes",
        ),
    ] {
        let (out, dir) = swarm(text, &["deploy", "--dry-run"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(want), "{stderr}");
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
        assert!(!dir.path().join("docker-stack.yml").exists());
    }
}

#[test]
fn swarm_deploy_refuses_a_stack_file_that_is_not_its_own_and_touches_nothing() {
    let text = "AGENTS_IMAGE=v0.2.0\nDISINTO_REGISTRY=127.0.0.1:5000/disinto\n";
    let dir = disinto::fsx::TempDir::new("cli").unwrap();
    std::fs::write(dir.path().join(".env"), text).unwrap();
    let target = dir.path().join("someone-elses");
    std::fs::write(&target, "x\n").unwrap();
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o7777
    };
    let before = mode(&target);
    std::os::unix::fs::symlink(&target, dir.path().join("docker-stack.yml")).unwrap();
    let out = swarm_in(dir.path(), &["--stack", "f1", "deploy", "--dry-run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(mode(&target), before);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "x\n");
}

#[test]
fn swarm_deploy_gives_docker_a_factory_path_with_commas_and_quotes_as_one_file() {
    let text = "AGENTS_IMAGE=v0.2.0\nDISINTO_REGISTRY=127.0.0.1:5000/disinto\n";
    let top = disinto::fsx::TempDir::new("cli").unwrap();
    let dir = top.path().join("a,b\"c");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join(".env"), text).unwrap();
    let out = swarm_in(&dir, &["--stack", "f1", "deploy", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The docker CLI reads --compose-file as CSV: the path is one quoted field, and the line
    // printed is a shell word for exactly that field.
    let file = dir.canonicalize().unwrap().join("docker-stack.yml");
    let field = format!("\"{}\"", file.display().to_string().replace('"', "\"\""));
    let word = format!("'{}'", field.replace('\'', "'\\''"));
    assert!(
        stdout.contains(&format!("$ docker stack deploy --compose-file {word} ")),
        "{stdout}"
    );
}

#[test]
fn swarm_stack_defaults_to_the_compose_project_as_compose_names_it() {
    let deploys = |out: &std::process::Output, stack: &str| {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find(|l| l.starts_with("$ docker stack deploy "))
            .unwrap_or_default()
            .to_string();
        assert!(line.ends_with(&format!(" --prune {stack}")), "{stdout}");
    };
    let pinned = "AGENTS_IMAGE=v0.2.0\nDISINTO_REGISTRY=127.0.0.1:5000/disinto\n";
    let (out, _dir) = swarm(pinned, &["deploy", "--dry-run"]);
    deploys(&out, "disinto");
    let text = format!("{pinned}COMPOSE_PROJECT_NAME=prod\n");
    let (out, dir) = swarm(&text, &["deploy", "--dry-run"]);
    deploys(&out, "prod");
    // --stack still wins; the process environment wins over .env, as for compose.
    deploys(
        &swarm_in(dir.path(), &["--stack", "f1", "deploy", "--dry-run"]),
        "f1",
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_disinto"));
    cmd.args(["swarm", "deploy", "--dry-run"])
        .current_dir(dir.path())
        .env("COMPOSE_PROJECT_NAME", "from-env")
        .env_remove("DISINTO_STACK")
        .env_remove("DISINTO_ROOT");
    deploys(&cmd.output().unwrap(), "from-env");
    // A name compose refuses is refused in one line, before anything is written.
    let text = format!("{pinned}COMPOSE_PROJECT_NAME=Prod\n");
    let (out, dir) = swarm(&text, &["deploy", "--dry-run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(!dir.path().join("docker-stack.yml").exists());
}

/// `disinto ARGS` in a fresh factory holding only `.env` `text`, with `env` set.
fn in_factory(text: &str, args: &[&str], env: &[(&str, &std::path::Path)]) -> std::process::Output {
    let dir = disinto::fsx::TempDir::new("cli").unwrap();
    std::fs::write(dir.path().join(".env"), text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_disinto"));
    cmd.args(args)
        .current_dir(dir.path())
        .env_remove("DISINTO_ROOT")
        .env_remove("AGENTS_IMAGE")
        .env_remove("DISINTO_REGISTRY")
        .env_remove("DISINTO_TRUSTED_KEYS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    // Whatever happened, nothing but .env is in the factory.
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "{args:?} wrote into the factory");
    out
}

const RELEASE: &str = "AGENTS_IMAGE=v0.1.1\nDISINTO_REGISTRY=127.0.0.1:5000/disinto\n";

#[test]
fn a_dry_run_says_what_it_verifies_before_it_pulls() {
    let out = in_factory(RELEASE, &["up", "--dry-run"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let note = stdout
        .find("# verify the cosign signature of 127.0.0.1:5000/disinto/agents:v0.1.1")
        .unwrap_or_else(|| panic!("{stdout}"));
    let pull = stdout
        .find("$ docker pull --quiet 127.0.0.1:5000/disinto/agents:v0.1.1")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(note < pull, "{stdout}");
    // Skipped: no verification in the plan.
    let out = in_factory(RELEASE, &["up", "--dry-run", "--insecure-skip-verify"], &[]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("# verify"));
}

#[test]
fn a_trusted_keys_file_that_is_no_public_key_is_one_line_naming_it() {
    let dir = disinto::fsx::TempDir::new("keys").unwrap();
    let cases = [
        ("private.pem", "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nabc\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"),
        ("garbage.pem", "hello\n"),
        ("empty.pem", ""),
    ];
    for (name, text) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        for args in [&["up", "--dry-run"][..], &["verify", "v0.1.1"][..]] {
            let out = in_factory(RELEASE, args, &[("DISINTO_TRUSTED_KEYS", &file)]);
            assert!(!out.status.success(), "{name}: {args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains(name), "{err}");
        }
    }
    // Named in .env, as every setting may be.
    let garbage = dir.path().join("garbage.pem");
    let text = format!("{RELEASE}DISINTO_TRUSTED_KEYS={}\n", garbage.display());
    let out = in_factory(&text, &["up", "--dry-run"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("garbage.pem"));
    let missing = dir.path().join("missing.pem");
    let out = in_factory(
        RELEASE,
        &["up", "--dry-run"],
        &[("DISINTO_TRUSTED_KEYS", &missing)],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pem"));
}

#[test]
fn verify_without_a_key_or_a_target_is_one_line() {
    // A contributor's build has no release key built in, and none is named.
    if !disinto::RELEASE_PUBLIC_KEY.is_empty() {
        return;
    }
    for (text, args) in [
        (RELEASE, &["verify"][..]),
        ("", &["verify"][..]),
        (RELEASE, &["verify", "not a reference!"][..]),
    ] {
        let out = in_factory(text, args, &[]);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
