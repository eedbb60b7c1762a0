//! The layout's rules (docs/layout.md), held by a test: `model/` starts no process and
//! touches no network; only `engine/` starts processes; commands never import each other;
//! the lower floors never reach up. A rule broken names the file and the line.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its path relative to `src/`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The lines of a file before its unit tests (tests may start what they like).
fn code(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .take_while(|l| !l.starts_with("#[cfg(test)]"))
        .enumerate()
        .map(|(n, l)| (n + 1, l.to_string()))
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .collect()
}

/// The lines of the files under `floor` (a folder or file of `src/`) that hold one of `words`.
fn offences(floor: &str, words: &[&str]) -> Vec<String> {
    let root = src().join(floor);
    let files = if root.is_dir() {
        sources(&root)
    } else {
        vec![root]
    };
    let mut found = vec![];
    for file in files {
        for (n, line) in code(&file) {
            if let Some(word) = words.iter().find(|w| line.contains(*w)) {
                let name = file.strip_prefix(src()).unwrap().display();
                found.push(format!("src/{name}:{n}: {word}"));
            }
        }
    }
    found
}

/// What starts a process: std's `Command`, and the calls that run an xshell `Cmd`.
const STARTS_A_PROCESS: [&str; 7] = [
    "Command::new(",
    "std::process::Command",
    ".read()",
    ".output()",
    ".spawn()",
    ".status()",
    ".run()",
];

#[test]
fn the_model_starts_no_process_and_touches_no_network() {
    let mut words = STARTS_A_PROCESS.to_vec();
    words.extend([
        "cmd!(",
        "xshell",
        "std::net",
        "crate::engine",
        "crate::ops",
        "crate::factory",
    ]);
    let found = offences("model", &words);
    assert!(
        found.is_empty(),
        "model/ must stay pure:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_engine_starts_processes() {
    let mut found = vec![];
    for floor in [
        "ops",
        "model",
        "factory.rs",
        "fsx.rs",
        "signals.rs",
        "cli.rs",
        "lib.rs",
    ] {
        found.extend(offences(floor, &STARTS_A_PROCESS));
    }
    assert!(
        found.is_empty(),
        "only engine/ starts processes (commands hand theirs to engine::Runner):\n{}",
        found.join("\n")
    );
    let mut found = vec![];
    for floor in ["engine", "factory.rs", "lock.rs", "fsx.rs", "signals.rs"] {
        found.extend(offences(floor, &["crate::ops"]));
    }
    assert!(
        found.is_empty(),
        "the floors below ops/ never reach up to it:\n{}",
        found.join("\n")
    );
}

/// The command modules of `ops/`: each one command, importing no other.
const COMMANDS: [&str; 19] = [
    "backup",
    "doctor",
    "down",
    "freeze",
    "history",
    "init",
    "restore",
    "rollback",
    "schedule",
    "status",
    "up",
    "update",
    "upgrade",
    "verify",
    "watch",
    "swarm/deploy",
    "swarm/rm",
    "swarm/rollback",
    "swarm/status",
];

#[test]
fn commands_never_import_each_other() {
    let mut found = vec![];
    for command in COMMANDS {
        let file = format!("ops/{command}.rs");
        assert!(
            src().join(&file).is_file(),
            "no src/{file}: update COMMANDS"
        );
        let others: Vec<String> = COMMANDS
            .iter()
            .filter(|c| **c != command)
            .flat_map(|other| {
                let module = other.replace('/', "::");
                let last = other.rsplit('/').next().unwrap().to_string();
                [
                    format!("ops::{module}"),
                    format!("super::{last}::"),
                    format!("super::{last}}}"),
                ]
            })
            .collect();
        let words: Vec<&str> = others.iter().map(String::as_str).collect();
        found.extend(offences(&file, &words));
    }
    assert!(
        found.is_empty(),
        "a command imports another; move what they share to a shared module of ops/:\n{}",
        found.join("\n")
    );
    // Every file of ops/ is a command or one of the shared modules docs/layout.md names.
    let shared = [
        "mod",
        "back",
        "drain",
        "images",
        "rollout",
        "snapshot",
        "table",
        "trust",
        "swarm/mod",
        "swarm/preflight",
    ];
    for file in sources(&src().join("ops")) {
        let name = file.strip_prefix(src().join("ops")).unwrap();
        let name = name.with_extension("").display().to_string();
        assert!(
            COMMANDS.contains(&name.as_str()) || shared.contains(&name.as_str()),
            "ops/{name}.rs is neither a command nor a shared module: name it in this test and docs/layout.md"
        );
    }
}

#[test]
fn commands_are_private_to_the_crate() {
    // The other crate and the tests use the model, the engine, the factory and the rollout;
    // a command's functions are the command line's alone.
    let mut found = vec![];
    for command in COMMANDS {
        found.extend(offences(
            &format!("ops/{command}.rs"),
            &["pub fn ", "pub struct "],
        ));
    }
    assert!(
        found.is_empty(),
        "commands are pub(crate):\n{}",
        found.join("\n")
    );
    let lib = std::fs::read_to_string(src().join("ops/mod.rs")).unwrap();
    let public: Vec<&str> = lib.lines().filter(|l| l.starts_with("pub mod ")).collect();
    assert_eq!(
        public,
        ["pub mod rollout;"],
        "ops/ shares the rollout alone"
    );
}
