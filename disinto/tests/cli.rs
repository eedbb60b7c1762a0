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
    for command in ["init", "up", "down", "status"] {
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
