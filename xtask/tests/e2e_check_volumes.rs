//! check-volumes against the real engine, the oracle of what it claims. Generated Dockerfiles
//! are built by `docker build` and `docker compose build` and their images' VOLUMEs compared
//! with `xtask::dockerfile`; compose files reaching images every way compose allows are created
//! for real and the anonymous volumes Docker makes compared with what the check reports.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::*;
use xtask::check_volumes::{check_file_with, Resolver};
use xtask::dockerfile;

/// A small deterministic generator (xorshift64*): the same cases on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const PATHS: [&str; 5] = ["/data", "/v/a", "/v/b", "/srv/x", "/home/agent/data"];
const BASE: &str = "debian:bookworm-slim";

/// A generated Dockerfile, what a build of it must declare, and how to build it.
#[derive(Debug, Clone)]
struct Case {
    /// What the parser reads: may hold heredocs.
    text: String,
    /// What Docker builds: each heredoc `RUN` replaced by `RUN true`. The bench's builders
    /// (Debian's Docker 20.10, classic and BuildKit) predate heredocs and refuse them; current
    /// BuildKit reads a heredoc `RUN` as one instruction, which the twin is too.
    twin: String,
    target: Option<String>,
    args: BTreeMap<String, String>,
    /// The VOLUMEs, as the generator built them (sorted).
    want: BTreeSet<String>,
    /// The constructs it uses, to pick the few cases the builders judge.
    features: BTreeSet<&'static str>,
}

/// One `VOLUME` instruction in one of the forms the builder reads, and the paths it declares.
fn volume(rng: &mut Rng, e: char, features: &mut BTreeSet<&'static str>) -> (String, Vec<String>) {
    let kw = rng.pick(&["VOLUME", "volume", "Volume"]);
    if kw != "VOLUME" {
        features.insert("keyword in another case");
    }
    let a = rng.pick(&PATHS).to_string();
    let b = rng.pick(&PATHS).to_string();
    match rng.below(6) {
        0 => {
            features.insert("JSON form");
            (format!("{kw} [\"{a}\", \"{b}\"]\n"), vec![a, b])
        }
        1 => {
            features.insert("plain form");
            (format!("{kw} {a}\n"), vec![a])
        }
        2 => {
            features.insert("plain form, two paths");
            (format!("{kw} {a}  {b}\n"), vec![a, b])
        }
        3 => {
            // Continued; the next line keeps its blanks, and comment and empty lines vanish.
            features.insert("continued");
            let mut text = format!("{kw} {a} {e}\n");
            if rng.chance(50) {
                features.insert("comment inside a continuation");
                text.push_str("  # a comment inside\n");
            }
            if rng.chance(30) {
                features.insert("empty line inside a continuation");
                text.push('\n');
            }
            text.push_str(&format!("  {b}\n"));
            (text, vec![a, b])
        }
        4 => {
            // Continued with no blank: the builder glues the two lines into one path.
            features.insert("continued without a blank");
            let tail = rng.pick(&["a", "b"]);
            (format!("{kw} /v{e}\n/{tail}\n"), vec![format!("/v/{tail}")])
        }
        _ => {
            features.insert("JSON form, continued");
            (format!("{kw} [\"{a}\", {e}\n   \"{b}\"]\n"), vec![a, b])
        }
    }
}

/// A heredoc `RUN` whose body looks like instructions.
fn heredoc(rng: &mut Rng, features: &mut BTreeSet<&'static str>) -> String {
    let body = rng.pick(&[
        "from pathlib import Path",
        "FROM scratch",
        "VOLUME /nope",
        "echo hi",
    ]);
    match rng.below(3) {
        0 => {
            features.insert("heredoc");
            format!("RUN <<EOF\n{body}\nEOF\n")
        }
        1 => {
            features.insert("heredoc <<-");
            format!("RUN <<-EOT\n\t{body}\n\tEOT\n")
        }
        _ => {
            features.insert("two quoted heredocs");
            format!("RUN <<'A' cat /dev/stdin 3<<\"B\"\n{body}\nA\nVOLUME /nope2\nB\n")
        }
    }
}

fn case(rng: &mut Rng) -> Case {
    let mut features = BTreeSet::new();
    let e = if rng.chance(20) { '`' } else { '\\' };
    let mut head = String::new();
    if e == '`' {
        features.insert("escape directive");
        head.push_str("# escape=`\n");
    }
    if rng.chance(30) {
        head.push_str("# a comment before everything\n");
    }
    let count = 1 + rng.below(3);
    let names: Vec<Option<String>> = (0..count)
        .map(|i| rng.chance(80).then(|| format!("s{i}")))
        .collect();
    let mut args = BTreeMap::new();
    let mut globals = String::new();
    let mut text = String::new();
    let mut twin = String::new();
    let mut volumes: Vec<Vec<String>> = Vec::new();
    for i in 0..count {
        let earlier: Vec<usize> = (0..i).filter(|j| names[*j].is_some()).collect();
        // The base: the image, an earlier stage, or an earlier stage through a global ARG.
        let (from, parent) = if earlier.is_empty() || rng.chance(30) {
            (BASE.to_string(), None)
        } else {
            let j = rng.pick(&earlier);
            let stage = names[j].clone().unwrap_or_default();
            match rng.below(4) {
                0 => {
                    features.insert("FROM a stage");
                    (stage, Some(j))
                }
                1 => {
                    features.insert("FROM an ARG naming a stage");
                    globals.push_str(&format!("ARG B{i}={stage}\n"));
                    let from = if rng.chance(50) {
                        format!("${{B{i}}}")
                    } else {
                        format!("$B{i}")
                    };
                    (from, Some(j))
                }
                2 => {
                    // The default names the image; the build arg a stage.
                    features.insert("a build arg naming a stage");
                    globals.push_str(&format!("ARG B{i}={BASE}\n"));
                    args.insert(format!("B{i}"), stage);
                    (format!("${{B{i}}}"), Some(j))
                }
                _ => {
                    features.insert("FROM ${ARG:-stage}");
                    globals.push_str(&format!("ARG B{i}\n"));
                    (format!("${{B{i}:-{stage}}}"), Some(j))
                }
            }
        };
        let from_kw = rng.pick(&["FROM", "from"]);
        let line = match &names[i] {
            Some(name) => format!("{from_kw} {from} {} {name}\n", rng.pick(&["AS", "as"])),
            None => format!("{from_kw} {from}\n"),
        };
        text.push_str(&line);
        twin.push_str(&line);
        let mut declared = parent.map(|p| volumes[p].clone()).unwrap_or_default();
        if !declared.is_empty() {
            features.insert("VOLUMEs inherited from a stage");
        }
        for _ in 0..1 + rng.below(4) {
            match rng.below(5) {
                0 | 1 => {
                    let (line, paths) = volume(rng, e, &mut features);
                    text.push_str(&line);
                    twin.push_str(&line);
                    for path in paths {
                        if !declared.contains(&path) {
                            declared.push(path);
                        }
                    }
                }
                2 => {
                    text.push_str(&heredoc(rng, &mut features));
                    twin.push_str("RUN true\n");
                }
                3 => {
                    let line = rng.pick(&["ENV X=1\n", "LABEL a=b\n", "WORKDIR /w\n"]);
                    text.push_str(line);
                    twin.push_str(line);
                }
                _ => {
                    text.push_str("# VOLUME /commented\n");
                    twin.push_str("# VOLUME /commented\n");
                }
            }
        }
        volumes.push(declared);
    }
    let named: Vec<usize> = (0..count).filter(|i| names[*i].is_some()).collect();
    let target = (!named.is_empty() && rng.chance(50)).then(|| rng.pick(&named));
    if target.is_some_and(|t| t + 1 < count) {
        features.insert("a target before the last stage");
    }
    let want = volumes[target.unwrap_or(count - 1)]
        .iter()
        .cloned()
        .collect();
    Case {
        text: format!("{head}{globals}{text}"),
        twin: format!("{head}{globals}{twin}"),
        target: target.and_then(|t| names[t].clone()),
        args,
        want,
        features,
    }
}

fn cases(count: usize) -> Vec<Case> {
    let mut rng = Rng(0x5eed_c0de_0013_0004);
    (0..count).map(|_| case(&mut rng)).collect()
}

fn parsed(text: &str, case: &Case) -> BTreeSet<String> {
    dockerfile::volumes_for(text, case.target.as_deref(), &case.args)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", case.text))
        .into_iter()
        .collect()
}

#[test]
fn generated_dockerfiles_read_as_they_were_made() {
    // Many cases against the generator's own account; the Docker test below checks that
    // account against the builders on twelve of them, chosen to use every construct.
    for case in cases(500) {
        assert_eq!(parsed(&case.text, &case), case.want, "{case:#?}");
        assert_eq!(parsed(&case.twin, &case), case.want, "{case:#?}");
    }
}

/// How many generated cases the builders judge: each is a real build, so few and small.
const BUILT_CASES: usize = 12;

/// Every construct the generator makes: the built cases must use each at least once.
const FEATURES: [&str; 21] = [
    "JSON form",
    "JSON form, continued",
    "FROM ${ARG:-stage}",
    "FROM a stage",
    "FROM an ARG naming a stage",
    "VOLUMEs inherited from a stage",
    "a build arg naming a stage",
    "a target before the last stage",
    "comment inside a continuation",
    "continued",
    "continued without a blank",
    "empty line inside a continuation",
    "escape directive",
    "heredoc",
    "heredoc <<-",
    "keyword in another case",
    "plain form",
    "plain form, two paths",
    "two quoted heredocs",
    "a case declaring nothing",
    "a case declaring several paths",
];

/// The cases the builders judge: in generation order, each one that uses a construct none
/// before it did, then others that declare something, up to `BUILT_CASES`.
fn built_cases() -> Vec<Case> {
    let mut all = cases(500);
    for case in &mut all {
        match case.want.len() {
            0 => case.features.insert("a case declaring nothing"),
            1 => false,
            _ => case.features.insert("a case declaring several paths"),
        };
    }
    let mut covered: BTreeSet<&str> = BTreeSet::new();
    let mut chosen: Vec<Case> = Vec::new();
    for case in &all {
        if chosen.len() < BUILT_CASES && !case.features.is_subset(&covered) {
            covered.extend(case.features.iter().copied());
            chosen.push(case.clone());
        }
    }
    for case in &all {
        if chosen.len() < BUILT_CASES
            && !case.want.is_empty()
            && !chosen.iter().any(|c| c.text == case.text)
        {
            chosen.push(case.clone());
        }
    }
    let missing: Vec<&str> = FEATURES
        .iter()
        .copied()
        .filter(|f| !covered.contains(f))
        .collect();
    assert!(missing.is_empty(), "the built cases miss {missing:?}");
    chosen
}

/// The VOLUMEs of a local image.
fn image_volumes(image: &str) -> BTreeSet<String> {
    let json = ok(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{json .Config.Volumes}}",
        image,
    ]));
    let volumes: Option<BTreeMap<String, serde_json::Value>> =
        serde_json::from_str(json.trim()).unwrap();
    volumes.unwrap_or_default().into_keys().collect()
}

/// Removes the images on drop.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = Command::new("docker")
                .args(["rmi", "-f"])
                .args(&self.0)
                .output();
        }
    }
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn generated_dockerfiles_declare_what_docker_builds() {
    let _sh = bench();
    let dir = TempDir::new("cv-built").unwrap();
    let prefix = unique("cv-built-");
    let mut images = Images(Vec::new());
    let cases = built_cases();
    assert_eq!(cases.len(), BUILT_CASES);
    let mut services = String::from("services:\n");
    for (i, case) in cases.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.Dockerfile")), &case.twin).unwrap();
        // The classic builder, as `docker build` runs it on this bench.
        let tag = format!("{prefix}:classic-{i}");
        let mut build = Command::new("docker");
        build
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", &tag, "-f"])
            .arg(dir.path().join(format!("{i}.Dockerfile")));
        if let Some(target) = &case.target {
            build.args(["--target", target]);
        }
        for (k, v) in &case.args {
            build.args(["--build-arg", &format!("{k}={v}")]);
        }
        ok(build.arg(dir.path()));
        images.0.push(tag.clone());
        assert_eq!(
            image_volumes(&tag),
            case.want,
            "classic builder:\n{}",
            case.twin
        );
        // BuildKit, as `docker compose build` runs it (the dev-mode path).
        let mut service = format!(
            "  c{i}:\n    image: {prefix}:buildkit-{i}\n    build:\n      context: .\n      dockerfile: {i}.Dockerfile\n"
        );
        if let Some(target) = &case.target {
            service.push_str(&format!("      target: {target}\n"));
        }
        if !case.args.is_empty() {
            service.push_str("      args:\n");
            for (k, v) in &case.args {
                service.push_str(&format!("        {k}: {v}\n"));
            }
        }
        services.push_str(&service);
        images.0.push(format!("{prefix}:buildkit-{i}"));
        // And the parser, on the file with its heredocs.
        assert_eq!(parsed(&case.text, case), case.want, "{case:#?}");
    }
    let file = dir.path().join("compose.yml");
    std::fs::write(&file, services).unwrap();
    ok(Command::new("docker")
        .args(["compose", "-p", &prefix, "-f"])
        .arg(&file)
        .arg("build")
        .current_dir(dir.path()));
    for (i, case) in cases.iter().enumerate() {
        let image = format!("{prefix}:buildkit-{i}");
        assert_eq!(image_volumes(&image), case.want, "BuildKit:\n{}", case.twin);
    }
}

/// The paths of the agents image, as `AGENT_MOUNTS` (and a unit test) keep them.
fn agent_paths() -> Vec<&'static str> {
    disinto::model::compose::AGENT_MOUNTS
        .iter()
        .map(|(_, t)| *t)
        .collect()
}

/// A compose project of fixture files, taken down (volumes and images) on drop.
struct Fixture {
    name: String,
    dir: TempDir,
    /// Removed on drop, after the project.
    _images: Images,
}

impl Fixture {
    /// A directory with `files` (`{tag}` replaced) and a tiny image standing in for the
    /// agents image, tagged `disinto-agents:{tag}`: it declares the agents image's VOLUMEs.
    fn new(files: &[(&str, &str)]) -> Fixture {
        let name = unique("cv");
        let dir = TempDir::new("cv-fixture").unwrap();
        let tag = format!("disinto-agents:{name}");
        let volumes = serde_json::to_string(&agent_paths()).unwrap();
        std::fs::write(
            dir.path().join("Agents.Dockerfile"),
            format!("FROM {BASE}\nVOLUME {volumes}\n"),
        )
        .unwrap();
        ok(Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", &tag, "-f", "Agents.Dockerfile", "."])
            .current_dir(dir.path()));
        for (path, text) in files {
            std::fs::write(dir.path().join(path), text.replace("{tag}", &name)).unwrap();
        }
        // Images the files name (`cv-built-{tag}`) are removed too; `down --rmi local` keeps them.
        Fixture {
            _images: Images(vec![tag, format!("cv-built-{name}:1")]),
            name,
            dir,
        }
    }

    fn file(&self) -> std::path::PathBuf {
        self.dir.path().join("compose.yml")
    }

    fn compose(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.args(["compose", "-p", &self.name, "-f"])
            .arg(self.file())
            .args(["--profile", "*"])
            .current_dir(self.dir.path());
        cmd
    }

    /// Creates every container for real and lists the anonymous volumes Docker gave them.
    fn anonymous_volumes(&self) -> BTreeSet<(String, String)> {
        ok(self.compose().args(["create", "--pull", "never"]));
        let label = format!("label=com.docker.compose.project={}", self.name);
        let ids = ok(Command::new("docker").args(["ps", "-aq", "--filter", &label]));
        let mut found = BTreeSet::new();
        for id in ids.split_whitespace() {
            let service = ok(Command::new("docker").args([
                "inspect",
                "--format",
                "{{index .Config.Labels \"com.docker.compose.service\"}}",
                id,
            ]));
            let mounts =
                ok(Command::new("docker").args(["inspect", "--format", "{{json .Mounts}}", id]));
            let mounts: Vec<serde_json::Value> = serde_json::from_str(&mounts).unwrap();
            for m in mounts {
                let name = m["Name"].as_str().unwrap_or_default();
                let anonymous = m["Type"] == "volume"
                    && name.len() == 64
                    && name.chars().all(|c| c.is_ascii_hexdigit());
                if anonymous {
                    let destination = m["Destination"].as_str().unwrap_or_default();
                    found.insert((service.trim().to_string(), destination.to_string()));
                }
            }
        }
        found
    }

    /// `cargo xtask check-volumes` on the file (docker compose answers here, so it resolves).
    fn check(&self) -> (bool, String) {
        let out = output(
            xtask()
                .args(["check-volumes", "--compose"])
                .arg(self.file()),
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self
            .compose()
            .args(["down", "-v", "--rmi", "local", "-t", "0"])
            .output();
    }
}

/// `(service, path)` of each `service S: VOLUME P (...)` line.
fn reported(stderr: &str) -> BTreeSet<(String, String)> {
    stderr
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("service ")?;
            let (service, rest) = rest.split_once(": VOLUME ")?;
            let path = rest.split(" (declared in ").next()?;
            Some((service.to_string(), path.to_string()))
        })
        .collect()
}

const DOCKERFILE: &str = "ARG BASE=early\nFROM debian:bookworm-slim AS early\nVOLUME /early\n\
                          FROM debian:bookworm-slim AS other\nVOLUME /other\nFROM ${BASE}\nVOLUME /last\n";

/// Every way of reaching an image that resolves without `docker compose` too.
const SELF_CONTAINED: &str = r#"x-agent: &agent
  image: disinto-agents:{tag}
  volumes:
    - agent-data:/home/agent/data
x-deeper: &deeper
  <<: *agent
  restart: "no"
services:
  merged:
    <<: *agent
  deep:
    <<: *deeper
  normalized:
    image: docker.io/library/disinto-agents:{tag}
  full:
    image: disinto-agents:{tag}
    profiles: [runner]
    volumes:
      - agent-data:${CV_UNSET_TARGET_1:-/home/agent/data}
      - ${CV_UNSET_SOURCE:-agent-repos}:/home/agent/repos:rw
      - ./projects:/home/agent/disinto/projects
      - type: volume
        source: agent-state
        target: ${CV_FROM_DOTENV}
  inherits:
    image: disinto-agents:{tag}
    volumes_from: [full]
  shadowed:
    image: disinto-agents:{tag}
    volumes_from: ["full:ro"]
    volumes: [/home/agent/data]
  early:
    build: {context: ., target: early}
    volumes: [vol:/last]
  inline:
    build:
      context: .
      dockerfile_inline: |
        FROM debian:bookworm-slim
        VOLUME /inline /kept
    volumes: [vol:/kept]
  builder:
    image: cv-built-{tag}:1
    build:
      context: .
      args: {BASE: other}
    volumes: [vol:/last]
  user:
    image: cv-built-{tag}:1
  child:
    build:
      context: .
      dockerfile_inline: |
        FROM disinto-agents:{tag}
        VOLUME /child
    volumes: [agent-data:/home/agent/data, vol:/child]
  foreign:
    build:
      context: .
      dockerfile_inline: |
        FROM cv-base-{tag}:1 AS base
        FROM base
        VOLUME /own
    volumes: [vol:/own]
volumes: {agent-data: , agent-repos: , agent-state: , vol: }
"#;

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn the_check_reports_exactly_the_anonymous_volumes_docker_makes() {
    let _sh = bench();
    // Removed after the project (declared first, dropped last), whose images are built on it.
    let mut foreign = Images(Vec::new());
    let fixture = Fixture::new(&[
        ("compose.yml", SELF_CONTAINED),
        ("Dockerfile", DOCKERFILE),
        (".env", "CV_FROM_DOTENV=/home/agent/disinto/state\n"),
    ]);
    // A base image of no one we know, in the local image store only: inspected there.
    foreign.0.push(format!("cv-base-{}:1", fixture.name));
    build_from_stdin(&foreign.0[0], &format!("FROM {BASE}\nVOLUME /foreign\n"));
    let (passed, stderr) = fixture.check();
    assert!(!passed, "{stderr}");
    assert!(
        stderr.contains("resolved by docker compose config"),
        "{stderr}"
    );
    let by_compose = reported(&stderr);
    let by_us = check_file_with(&fixture.file(), None, &root(), Resolver::Builtin)
        .unwrap()
        .unmounted
        .into_iter()
        .map(|p| (p.service, p.path))
        .collect::<BTreeSet<_>>();
    let truth = fixture.anonymous_volumes();
    // What the cases are there for, so an oracle that found nothing cannot pass.
    for (service, path) in [
        ("merged", "/home/agent/repos"),
        ("deep", "/home/agent/disinto/state"),
        ("normalized", "/home/agent/data"),
        ("shadowed", "/home/agent/data"),
        ("early", "/early"),
        ("inline", "/inline"),
        ("builder", "/other"),
        ("user", "/last"),
        // Inherited from the image each is built FROM: ours (its Dockerfile), and a stranger.
        ("child", "/home/agent/repos"),
        ("foreign", "/foreign"),
    ] {
        assert!(
            truth.contains(&(service.into(), path.into())),
            "{service} {path}: {truth:?}"
        );
    }
    assert!(
        !truth.iter().any(|(s, _)| s == "inherits" || s == "full"),
        "{truth:?}"
    );
    assert_eq!(by_compose, truth, "{stderr}");
    assert_eq!(by_us, truth);
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn extends_and_include_are_checked_through_compose() {
    let _sh = bench();
    let fixture = Fixture::new(&[
        (
            "compose.yml",
            "include:\n  - inc.yml\nservices:\n  extended:\n    extends: {file: other.yml, service: base}\n    volumes: [agent-repos:/home/agent/repos]\n\
             \x20 sibling:\n    extends: extended\n    volumes: [./projects:/home/agent/disinto/projects]\n\
             volumes: {agent-data: , agent-repos: }\n",
        ),
        (
            "other.yml",
            "services:\n  base:\n    image: disinto-agents:{tag}\n    volumes: [agent-data:/home/agent/data]\n",
        ),
        (
            "inc.yml",
            "services:\n  included:\n    image: docker.io/library/disinto-agents:{tag}\n    volumes: [agent-state:/home/agent/disinto/state]\nvolumes: {agent-state: }\n",
        ),
    ]);
    let (passed, stderr) = fixture.check();
    assert!(!passed, "{stderr}");
    let truth = fixture.anonymous_volumes();
    for service in ["extended", "sibling", "included"] {
        assert!(
            truth.iter().any(|(s, _)| s == service),
            "{service}: {truth:?}"
        );
    }
    assert_eq!(reported(&stderr), truth, "{stderr}");
    // Without compose, the check refuses rather than guess.
    let e = check_file_with(&fixture.file(), None, &root(), Resolver::Builtin).unwrap_err();
    assert!(format!("{e:#}").ends_with("uses include, which only `docker compose` resolves: install the compose v2 plugin (docker compose version) and rerun"), "{e:#}");
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn bad_files_are_one_line_errors() {
    let _sh = bench();
    let dir = TempDir::new("cv-refused").unwrap();
    let unset = unique("CV_UNSET_").to_uppercase();
    // (file, the error, whether `docker compose config` accepts the file)
    for (text, want, compose_accepts) in [
        (
            String::new(),
            "is empty: a compose file needs a services: mapping".to_string(),
            false,
        ),
        (
            "services:\n  s:\n    image: x\n  s:\n    image: y\n".into(),
            "duplicate entry with key \"s\"".into(),
            false,
        ),
        (
            format!("services:\n  s:\n    image: ghcr.io/disinto/agents:v1\n    volumes: [\"agent-data:${{{unset}}}\"]\nvolumes: {{agent-data: }}\n"),
            format!("docker compose config refused it: invalid spec: agent-data:: empty section between colons (unset: {unset})"),
            false,
        ),
        // Compose makes this blank target "." and says nothing more: the check must refuse.
        (
            format!("services:\n  s:\n    image: ghcr.io/disinto/agents:v1\n    volumes:\n      - {{type: bind, source: /tmp, target: \"${{{unset}}}\"}}\n"),
            format!("service s: mount target \".\" is not an absolute path (unset: {unset}): write the container path, or give its variable a default like ${{VAR:-/path}}"),
            true,
        ),
    ] {
        let file = dir.path().join("compose.yml");
        std::fs::write(&file, &text).unwrap();
        let out = output(xtask().args(["check-volumes", "--compose"]).arg(&file));
        assert!(!out.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(&want), "{text}\n{stderr}");
        let compose = output(
            Command::new("docker")
                .args(["compose", "-f"])
                .arg(&file)
                .args(["config", "-q"]),
        );
        assert_eq!(compose.status.success(), compose_accepts, "{text}");
    }
}

#[test]
fn a_base_image_it_cannot_see_is_a_warning_naming_it() {
    // Not in the local image store (nor is Docker needed): its VOLUMEs cannot be known
    // without a pull, so the check passes on what it sees and names the base it could not.
    let dir = TempDir::new("cv-unknown-base").unwrap();
    let base = format!("{}:1", unique("cv-absent-"));
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base}\nVOLUME /own\n"),
    )
    .unwrap();
    let file = dir.path().join("compose.yml");
    std::fs::write(
        &file,
        "services:\n  s:\n    build: .\n    volumes: [vol:/own]\nvolumes: {vol: }\n",
    )
    .unwrap();
    let out = output(xtask().args(["check-volumes", "--compose"]).arg(&file));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains(&base), "{stderr}");
}
