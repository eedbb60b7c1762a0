//! `disinto` without touching Docker: init on a factory that has only a `.env`, and the
//! plan `up --dry-run` makes for it.

use std::process::Command;

use disinto::fsx::TempDir;

fn disinto(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_disinto"))
        .args(args)
        .current_dir(dir)
        .env_remove("DISINTO_ROOT")
        .env_remove("AGENTS_IMAGE")
        .env_remove("DISINTO_REGISTRY")
        .output()
        .unwrap()
}

#[test]
fn init_never_rewrites_env_and_a_pinned_up_starts_every_service() {
    let dir = TempDir::new("env-only").unwrap();
    let env = "AGENTS_IMAGE=v0.1.0\nDISINTO_REGISTRY=127.0.0.1:5000/disinto\n";
    std::fs::write(dir.path().join(".env"), env).unwrap();

    let out = disinto(dir.path(), &["init"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".env")).unwrap(),
        env
    );
    // It names the keys .env lacks (and appends none of them).
    assert!(stderr.contains("POLL_INTERVAL"), "{stderr}");
    assert!(dir.path().join("projects").is_dir());

    let out = disinto(dir.path(), &["up", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // A pinned factory needs no sources: every service starts (compose is given no list, so
    // it starts them all), every image of ours is pulled.
    let up = stdout.lines().find(|l| l.contains(" up --detach")).unwrap();
    assert!(up.ends_with("up --detach"), "{up}");
    for image in ["agents", "edge", "reproduce"] {
        assert!(
            stdout.contains(&format!(
                "docker pull --quiet 127.0.0.1:5000/disinto/{image}:v0.1.0"
            )),
            "{stdout}"
        );
    }

    // --add-missing-keys appends, and only appends.
    let out = disinto(dir.path(), &["init", "--add-missing-keys"]);
    assert!(out.status.success());
    let after = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    assert!(after.starts_with(env), "{after}");
    assert!(after.contains("\nPOLL_INTERVAL=60\n"), "{after}");
    assert_eq!(after.matches("AGENTS_IMAGE=").count(), 1, "{after}");
}

#[test]
fn a_bad_agents_image_in_env_is_one_line_and_writes_nothing() {
    let dir = TempDir::new("bad-env").unwrap();
    std::fs::write(dir.path().join(".env"), "AGENTS_IMAGE=v1.2\n").unwrap();
    let out = disinto(dir.path(), &["init"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("AGENTS_IMAGE=\"v1.2\""), "{stderr}");
    assert!(!dir.path().join("docker-compose.yml").exists());
    assert!(
        !dir.path().join("projects").exists(),
        "init created projects/ before failing"
    );

    // No .env yet, and a bad value in the environment: not even .env is written.
    let empty = TempDir::new("no-env").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_disinto"))
        .arg("init")
        .current_dir(empty.path())
        .env_remove("DISINTO_ROOT")
        .env("AGENTS_IMAGE", "ghcr.io/Disinto/agents:v1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read_dir(empty.path()).unwrap().count(),
        0,
        "init wrote something"
    );
}

/// A factory directory with `.env` `env` and the history `history` (none when `None`).
fn factory(env: &str, history: Option<&str>) -> TempDir {
    let dir = TempDir::new("state").unwrap();
    std::fs::write(dir.path().join(".env"), env).unwrap();
    if let Some(text) = history {
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::fs::write(dir.path().join(HISTORY_FILE), text).unwrap();
    }
    dir
}

use disinto::model::history::HISTORY_FILE;

const RECORD: &str = r#"{"time":"2026-11-25T08:00:00Z","version":"v0.1.0","image":"127.0.0.1:5000/disinto/agents:v0.1.0","image_id":"","outcome":"deployed"}"#;

#[test]
fn history_json_prints_data_on_stdout_and_words_on_stderr() {
    let dir = factory("", None);
    let out = disinto(dir.path(), &["history", "--json"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "prose on stdout");
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn a_torn_last_line_is_a_warning_and_every_whole_record_is_read() {
    // A writer killed mid-append: half a record, no newline.
    let dir = factory("", Some(&format!("{RECORD}\n{}", &RECORD[..40])));
    let out = disinto(dir.path(), &["history", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), [RECORD]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("warning: "), "{stderr}");
}

#[test]
fn a_fifo_as_the_history_is_one_line_not_a_hang() {
    let dir = factory("", None);
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let made = Command::new("mkfifo")
        .arg(dir.path().join(HISTORY_FILE))
        .status()
        .unwrap();
    assert!(made.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_disinto"))
        .args(["history"])
        .current_dir(dir.path())
        .env_remove("DISINTO_ROOT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("disinto history hangs on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn rollback_is_not_blocked_by_a_typo_in_the_line_it_rewrites() {
    // The operator mistyped the version; rollback is how they repair it.
    let env = "AGENTS_IMAGE=v0.1\nDISINTO_REGISTRY=127.0.0.1:5000/disinto\n";
    let dir = factory(env, Some(&format!("{RECORD}\n")));
    let out = disinto(dir.path(), &["rollback", "v0.1.0", "--dry-run"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("docker pull --quiet 127.0.0.1:5000/disinto/agents:v0.1.0"),
        "{stdout}"
    );
    // A dry run changes nothing, the typo included.
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".env")).unwrap(),
        env
    );
    // A typo in another setting is still refused: rollback does not rewrite that one.
    let dir = factory(
        "AGENTS_IMAGE=v0.1.0\nDISINTO_REGISTRY=not a registry\n",
        None,
    );
    let out = disinto(dir.path(), &["rollback", "v0.1.0", "--dry-run"]);
    assert!(!out.status.success());
}

#[test]
fn rollback_refuses_before_anything_when_env_cannot_be_written() {
    // .env is a link into a directory that is not there: it reads as no .env, and cannot be
    // written. A real run would run v0.1.0 and then fail to keep it; the plan says so first.
    let dir = factory("", Some(&format!("{RECORD}\n")));
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    std::os::unix::fs::symlink("gone/env", dir.path().join(".env")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_disinto"))
        .args(["rollback", "v0.1.0", "--dry-run"])
        .current_dir(dir.path())
        .env_remove("DISINTO_ROOT")
        .env_remove("AGENTS_IMAGE")
        .env("DISINTO_REGISTRY", "127.0.0.1:5000/disinto")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "it printed a plan"
    );
    assert!(!dir.path().join("gone").exists());
}

/// A factory with `.env` pinned and its own `.env.example` whose lines refer to the
/// environment.
fn templated_factory(prefix: &str) -> (TempDir, &'static str) {
    let dir = TempDir::new(prefix).unwrap();
    let env = "AGENTS_IMAGE=v0.1.0\n";
    std::fs::write(dir.path().join(".env"), env).unwrap();
    std::fs::write(
        dir.path().join(".env.example"),
        "AGENTS_IMAGE=\nGITHUB_TOKEN=${GITHUB_TOKEN}\nPOLL_INTERVAL=60\n",
    )
    .unwrap();
    (dir, env)
}

fn init_with_a_token(dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_disinto"))
        .args(["init", "--add-missing-keys"])
        .current_dir(dir)
        .env_remove("DISINTO_ROOT")
        .env_remove("AGENTS_IMAGE")
        .env_remove("DISINTO_REGISTRY")
        .env("GITHUB_TOKEN", "ghp_s3cretTOKEN")
        .output()
        .unwrap()
}

#[test]
fn add_missing_keys_appends_the_example_lines_never_the_environment_values() {
    let (dir, env) = templated_factory("template");
    let out = init_with_a_token(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    assert!(after.starts_with(env), "{after}");
    assert!(
        after.contains("\nGITHUB_TOKEN=${GITHUB_TOKEN}\n"),
        "{after}"
    );
    assert!(!after.contains("s3cret"), "{after}");
    let compose = std::fs::read_to_string(dir.path().join("docker-compose.yml")).unwrap();
    assert!(!compose.contains("s3cret"));
}

#[test]
fn init_changes_nothing_when_its_compose_file_cannot_be_written() {
    let (dir, env) = templated_factory("compose-dir");
    std::fs::create_dir(dir.path().join("docker-compose.yml")).unwrap();
    let out = init_with_a_token(dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".env")).unwrap(),
        env
    );
    assert!(!dir.path().join("projects").exists());
}
