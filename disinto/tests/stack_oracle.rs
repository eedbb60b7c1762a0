//! The stack file and the names disinto gives, against what the docker CLI itself reads:
//! `docker stack config` (Swarm's reader, client-side: no swarm needed) and `docker compose
//! config` are the oracles for the values in the stack file, the `--compose-file` argument,
//! edge's port and the compose project's name; the real engine for the swarm guard and the
//! volumes `down --volumes` names.
//! Needs Docker, so ignored by a plain `cargo test`; `cargo xtask test` runs it, and it fails,
//! never passes, when docker does not answer.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use disinto::fsx::TempDir;
use disinto::model::compose::ComposeInput;
use disinto::model::config::{Environment, FactoryConfig, Settings};
use disinto::model::stack::{self, StackInput};

/// Variables the docker CLI needs to find itself and its plugins; nothing else of this
/// process's environment reaches it.
const PASSED: [&str; 5] = [
    "PATH",
    "HOME",
    "DOCKER_CONFIG",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
];

fn passed_env() -> BTreeMap<String, String> {
    PASSED
        .iter()
        .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
        .collect()
}

/// `docker ARGS` in `dir` with only `env` besides what the CLI needs.
fn docker(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    isolated("docker", dir, args, env)
}

/// `disinto ARGS` in `dir`, with only `env` of disinto's variables set.
fn disinto(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    isolated(env!("CARGO_BIN_EXE_disinto"), dir, args, env)
}

/// `program ARGS` in `dir`, its environment only what the docker CLI needs and `env`.
fn isolated(program: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(passed_env())
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{program} did not answer: cannot run it: {e}"))
}

fn stdout_of(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A name no one else on the bench uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{}-{nanos}", std::process::id())
}

/// The stack file of a pinned factory in `dir` whose settings are `vars`.
fn stack_text(dir: &Path, vars: &[(&str, &str)]) -> String {
    let process: BTreeMap<String, String> = [("AGENTS_IMAGE", "v0.1.1")]
        .iter()
        .chain(vars)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let settings = Settings::from_maps(process, BTreeMap::new());
    let config = FactoryConfig::from_settings(&settings).unwrap();
    let input = StackInput::new(ComposeInput::from(&config), dir, &settings).unwrap();
    stack::generate(&input).unwrap()
}

/// Values a YAML 1.1 reader would take for something else when left plain, and values that
/// need escapes or carry compose's `$`.
const VALUES: [&str; 32] = [
    "1_000",
    "2024-11-25",
    "2001-12-14t21:59:43.10-05:00",
    "yes",
    "Off",
    "y",
    "012",
    "0x1F",
    "0o17",
    "1e3",
    ".5",
    "-.inf",
    "1:20",
    "190:20:30",
    "<<",
    "~",
    "null",
    "0",
    "$HOME",
    "a$$b ${X}",
    "it's \"q\" \\",
    "tab\there",
    "line\nbreak",
    "é😀",
    "\u{85}nel \u{2028}ls",
    " lead",
    "#x",
    "&a *a !t %x @x `x",
    "-",
    "? x",
    "[x]",
    "{x: y}",
];

/// The variables of the stack that carry any text, and where each lands.
const CARRIERS: [(&str, &str); 4] = [
    ("AGENT_CMD", "agents"),
    ("POLL_INTERVAL", "agents"),
    ("WOODPECKER_HOST", "woodpecker"),
    ("WOODPECKER_AGENT_SECRET", "woodpecker"),
];

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn swarm_and_compose_read_every_value_of_the_stack_file_as_written() {
    let dir = TempDir::new("stack-oracle").unwrap();
    let file = dir.path().join("docker-stack.yml");
    for chunk in VALUES.chunks(CARRIERS.len()) {
        let vars: Vec<(&str, &str)> = CARRIERS
            .iter()
            .map(|c| c.0)
            .zip(chunk.iter().copied())
            .collect();
        std::fs::write(&file, stack_text(dir.path(), &vars)).unwrap();
        let path = file.to_str().unwrap();

        // Swarm's reader: `docker stack config` prints the file as `docker stack deploy`
        // would deploy it (interpolation done: `$$` is `$` again).
        let out = docker(
            dir.path(),
            &["stack", "config", "--compose-file", path],
            &[],
        );
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&stdout_of(&out, "docker stack config")).unwrap();
        // compose, in JSON (where a literal `$` is written `$$`).
        let project = unique("h19b-values-");
        let out = docker(
            dir.path(),
            &[
                "compose",
                "--project-name",
                &project,
                "--file",
                path,
                "config",
                "--format",
                "json",
            ],
            &[],
        );
        let json: serde_json::Value =
            serde_json::from_str(&stdout_of(&out, "docker compose config")).unwrap();

        for ((name, service), value) in CARRIERS.iter().zip(chunk) {
            let swarm = &yaml["services"][service]["environment"][name];
            assert_eq!(
                swarm.as_str(),
                Some(*value),
                "Swarm reads {name}={value:?} as {swarm:?}"
            );
            let compose = json["services"][service]["environment"][name]
                .as_str()
                .map(|v| v.replace("$$", "$"));
            assert_eq!(
                compose.as_deref(),
                Some(*value),
                "compose reads {name}={value:?}"
            );
        }
    }
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn docker_opens_the_one_stack_file_whatever_the_factory_path_holds() {
    let top = TempDir::new("stack-oracle").unwrap();
    for name in ["a,b", "a\"b", "\"q\"", "x, \"y\",z", "new\nline"] {
        let dir = top.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("docker-stack.yml");
        std::fs::write(&file, stack_text(&dir, &[])).unwrap();
        let arg = stack::compose_file_arg(&file).unwrap();
        let out = docker(
            top.path(),
            &["stack", "config", "--compose-file", &arg],
            &[],
        );
        let text = stdout_of(&out, &format!("docker stack config --compose-file {arg:?}"));
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        // Our file, read whole: the bind under the factory directory proves which one.
        let source = &yaml["services"]["agents"]["volumes"][2]["source"];
        let want = dir.join("projects");
        assert_eq!(source.as_str(), want.to_str(), "{name:?}: {text}");
    }
}

/// What compose makes of `ports: ["SPEC"]`: the port entries it publishes, or its refusal.
fn compose_ports(dir: &Path, spec: &str) -> Result<Vec<serde_json::Value>, String> {
    let file = dir.join("compose.yml");
    std::fs::write(
        &file,
        "services:\n  edge:\n    image: busybox\n    ports:\n      - \"${P}\"\n",
    )
    .unwrap();
    let out = docker(
        dir,
        &[
            "compose",
            "--project-name",
            "h19b-ports",
            "--file",
            file.to_str().unwrap(),
            "config",
            "--format",
            "json",
        ],
        &[("P", spec)],
    );
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Ok(json["services"]["edge"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn ports_are_read_as_compose_reads_them() {
    let dir = TempDir::new("stack-oracle").unwrap();
    let specs = [
        "80",
        "080:80",
        "+80:80",
        "-80:80",
        "8_0:80",
        " 80:80",
        "80 :80",
        "65535:80",
        "65536:80",
        "0:80",
        "00:80",
        "8080-8081:80",
        "8081-8080:80",
        "8000-8001:80-81",
        "8000-8001:80-82",
        "8000-8001-8002:80",
        "127.0.0.1:8080:80",
        "[::1]:8080:80",
        "::1:8080:80",
        "1.2.3:8080:80",
        "8080:80/udp",
        "8080:80/UDP",
        "8080:80/sctp",
        "8080:80/http",
        "8080:80/",
        "8080:80/tcp/x",
        "８０:80",
        "0x50:80",
        "1e2:80",
        "a:80",
        ":80",
        "80:",
        "",
        "8080:8080:80",
        "[::1]x:8080:80",
        "[[::1]]:8080:80",
        "fe80::1%eth0:8080:80",
        "[fe80::1%eth0]:8080:80",
    ];
    let mut differ = vec![];
    for spec in specs {
        let ours = stack::port_spec(spec);
        let theirs = compose_ports(dir.path(), spec);
        match (&ours, &theirs) {
            (Ok(ours), Ok(entries)) => {
                // Ranges expand into one entry a port; compare the first.
                let first = &entries[0];
                let published = first["published"].as_str().unwrap_or("");
                let same = first["target"].as_u64() == Some(u64::from(ours.target.0))
                    && first["protocol"].as_str() == Some(ours.protocol.as_str())
                    && first["host_ip"].as_str() == ours.ip.as_deref()
                    && match ours.published {
                        None => published.is_empty(),
                        Some((start, end)) if start == end => published == start.to_string(),
                        Some((start, end)) => {
                            published == start.to_string() || published == format!("{start}-{end}")
                        }
                    };
                if !same {
                    differ.push(format!("{spec:?}: ours {ours:?}, compose {first}"));
                }
            }
            (Err(_), Err(_)) => {}
            _ => differ.push(format!("{spec:?}: ours {ours:?}, compose {theirs:?}")),
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// One way of naming a factory's compose project: where it sits, its `.env`, the process
/// environment, and the `name:` line of its compose file.
struct Naming {
    dir: &'static str,
    dotenv: &'static str,
    env: Option<&'static str>,
    name: Option<&'static str>,
}

const fn naming(
    dir: &'static str,
    dotenv: &'static str,
    env: Option<&'static str>,
    name: Option<&'static str>,
) -> Naming {
    Naming {
        dir,
        dotenv,
        env,
        name,
    }
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn the_project_is_named_as_compose_names_it() {
    let cases = [
        naming("Fact.Dir", "", None, Some("disinto")),
        naming(
            "Fact.Dir",
            "COMPOSE_PROJECT_NAME=prod\n",
            None,
            Some("disinto"),
        ),
        naming("Fact.Dir", "COMPOSE_PROJECT_NAME=\n", None, Some("disinto")),
        naming(
            "Fact.Dir",
            "COMPOSE_PROJECT_NAME=Prod\n",
            None,
            Some("disinto"),
        ),
        naming(
            "Fact.Dir",
            "COMPOSE_PROJECT_NAME=a.b\n",
            None,
            Some("disinto"),
        ),
        naming(
            "Fact.Dir",
            "COMPOSE_PROJECT_NAME=_ab\n",
            None,
            Some("disinto"),
        ),
        naming(
            "Fact.Dir",
            "COMPOSE_PROJECT_NAME=${X:-from-x}\n",
            None,
            None,
        ),
        naming(
            "Fact.Dir",
            "COMPOSE_PROJECT_NAME=prod\n",
            Some("from-env"),
            Some("disinto"),
        ),
        naming(
            "Fact.Dir",
            "COMPOSE_PROJECT_NAME=prod\n",
            Some(""),
            Some("disinto"),
        ),
        naming("Fact.Dir", "", Some("Bad"), Some("disinto")),
        naming("Fact.Dir", "", None, None),
        naming("Fact.Dir", "N=Named\n", None, Some("${N:-x}")),
        naming("Fact.Dir", "", None, Some("_Ab.C-1")),
        naming("Fact.Dir", "", None, Some("\"\"")),
        naming("Fact.Dir", "", None, Some("'x y'")),
        naming("Fact.Dir", "", None, Some("É")),
        naming("_-x", "", None, None),
        naming("___", "", None, None),
        naming("___", "COMPOSE_PROJECT_NAME=ok\n", None, None),
    ];
    let top = TempDir::new("stack-oracle").unwrap();
    let mut differ = vec![];
    for (i, case) in cases.iter().enumerate() {
        let dir = top.path().join(i.to_string()).join(case.dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".env"), case.dotenv).unwrap();
        let name_line = case
            .name
            .map(|n| format!("name: {n}\n"))
            .unwrap_or_default();
        std::fs::write(
            dir.join("docker-compose.yml"),
            format!("{name_line}services:\n  s:\n    image: busybox\n"),
        )
        .unwrap();
        let env: Vec<(&str, &str)> = case
            .env
            .map(|v| ("COMPOSE_PROJECT_NAME", v))
            .into_iter()
            .collect();
        // As disinto runs compose: --file and --project-directory, no --project-name.
        let out = docker(
            &dir,
            &[
                "compose",
                "--file",
                "docker-compose.yml",
                "--project-directory",
                ".",
                "config",
                "--format",
                "json",
            ],
            &env,
        );
        let theirs = match out.status.success() {
            true => {
                let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                Ok(json["name"].as_str().unwrap().to_string())
            }
            false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        };
        let process = Environment::from(
            passed_env()
                .into_iter()
                .chain(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .collect::<BTreeMap<_, _>>(),
        );
        let ours = process
            .read_dotenv(case.dotenv.as_bytes(), ".env")
            .map(|d| Settings::new(process.clone(), d.values))
            .and_then(|settings| disinto::factory::project_name_in(&dir, &settings))
            .map_err(|e| format!("{e:#}"));
        if let Err(e) = &ours {
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        if ours.is_ok() != theirs.is_ok() || (ours.is_ok() && ours != theirs) {
            differ.push(format!(
                "{:?} .env {:?} env {:?} name {:?}: ours {ours:?}, compose {theirs:?}",
                case.dir, case.dotenv, case.env, case.name
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// A running container that compose would count as project `project`'s, removed on drop.
struct Labelled(String);

impl Labelled {
    fn run(project: &str) -> Labelled {
        let name = unique("h19b-guard-");
        let label = format!("com.docker.compose.project={project}");
        let out = docker(
            Path::new("/"),
            &[
                "run",
                "--detach",
                "--rm",
                "--name",
                &name,
                "--label",
                &label,
                "--entrypoint",
                "sleep",
                "debian:bookworm-slim",
                "300",
            ],
            &[],
        );
        stdout_of(&out, "docker run");
        Labelled(name)
    }
}

impl Drop for Labelled {
    fn drop(&mut self) {
        let _ = docker(Path::new("/"), &["rm", "--force", &self.0], &[]);
    }
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn swarm_deploy_refuses_while_the_factorys_own_compose_project_runs() {
    // An unreachable registry: were the guard to let it by, deploy stops at the first pull.
    let pinned = "AGENTS_IMAGE=v0.1.1\nDISINTO_REGISTRY=127.0.0.1:9/disinto\n";
    // Named by .env's COMPOSE_PROJECT_NAME, or by the compose file's name:.
    for by_env in [true, false] {
        let project = unique("h19b-prod-");
        let _running = Labelled::run(&project);
        let dir = TempDir::new("stack-oracle").unwrap();
        let env = match by_env {
            true => format!("{pinned}COMPOSE_PROJECT_NAME={project}\n"),
            false => {
                let compose = format!("name: {project}\nservices:\n  s:\n    image: busybox\n");
                std::fs::write(dir.path().join("docker-compose.yml"), compose).unwrap();
                pinned.to_string()
            }
        };
        std::fs::write(dir.path().join(".env"), env).unwrap();
        for stack in [None, Some(unique("h19b-other-"))] {
            let mut args = vec!["swarm"];
            if let Some(stack) = &stack {
                args.extend(["--stack", stack]);
            }
            args.extend(["deploy", "--timeout", "5"]);
            let out = disinto(dir.path(), &args, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let case = format!("by_env {by_env}, stack {stack:?}: {stderr}");
            assert!(!out.status.success(), "{case}");
            assert_eq!(stderr.lines().count(), 1, "{case}");
            // The refusal is the guard's: it names the running project.
            assert!(stderr.contains(&project), "{case}");
            assert!(!dir.path().join("docker-stack.yml").exists());
        }
    }
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn down_volumes_names_the_volumes_docker_has() {
    let project = unique("h19b-down-");
    let dir = TempDir::new("stack-oracle").unwrap();
    let env = format!("AGENTS_IMAGE=v0.1.1\nCOMPOSE_PROJECT_NAME={project}\n");
    std::fs::write(dir.path().join(".env"), env).unwrap();
    let text = disinto::model::compose::generate(&ComposeInput {
        agents: disinto::model::image_ref::AgentsImage::Release("v0.1.1".into()),
        agent_cli: None,
        pinned: Default::default(),
    })
    .unwrap();
    std::fs::write(dir.path().join("docker-compose.yml"), text).unwrap();
    let out = disinto(dir.path(), &["down", "--volumes", "--dry-run"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Every named volume, reproduce's (an on-demand profile) too, by its name in Docker.
    for volume in stack::volume_names(&project) {
        assert!(stderr.contains(&volume), "{volume}: {stderr}");
    }
}
