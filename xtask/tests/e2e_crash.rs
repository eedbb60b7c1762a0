//! End-to-end: the kill matrix, on the real engine. A rollout (`disinto up agents`, v0.1.0 →
//! v0.2.0), a rollout whose image never turns healthy (v0.3.0, so it reverts), and a rollback
//! (`disinto rollback v0.2.0`, which rewrites `.env` last) are killed with SIGKILL at chosen
//! points. After each kill, `disinto doctor` answers in time with exit 0 or 1 and tells the
//! truth (a killed rollout is named while its marker is there; a factory that does not run
//! what `.env` says is drift; the lock is free), and one plain `disinto up agents` brings the
//! factory back: agents runs the version `.env` names, healthy and not drained; every history
//! line is a record, with no row lost or doubled (one `interrupted` row for each killed
//! attempt that had marked itself in flight and not written its row); the marker is gone;
//! the lock is free; `doctor` then finds nothing wrong.
//!
//! The kill: a `docker` first on the PATH of the disinto process passes each call to the real
//! docker (its absolute path, found before PATH changes); once the call the test named has
//! run (the real call at the kill point runs, to its end), it kills its caller, disinto, with
//! SIGKILL. No fault hook is compiled into the product.
//!
//! Which calls: a first uninterrupted run of each command lists its docker calls (18 to 27).
//! A kill after every one of them, `DISINTO_CRASH_EVERY_CALL=1`, is some 65 kills and takes
//! five to six minutes, more than a test run should spend. By default (16 kills, about 80 s)
//! the kill comes after the calls that end the points the issue names, each checked to be in
//! that first run: the pull and pin, the drain, keeping the old image, `compose up`, a look
//! of the health gate, the record (the keep-tag bookkeeping after the row); in a revert, its
//! `compose up`, its health wait and its last look before its row; in a rollback, the same
//! as a rollout, and its last docker call, after which it only clears its marker and
//! rewrites `.env` (the rewrite is atomic). A point is named by the call's arguments and its
//! rank among such calls, not by its number, since the gate's polls vary in number with
//! timing.
//!
//! Cheap: no release, no registry. The agents image built from this checkout, with a label of
//! this run (so its keep tag is this test's own), is tagged v0.1.0; v0.2.0 is it relabelled;
//! v0.3.0 is it with a health check that always fails.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use disinto::model::history::{self, Deployment, InFlight, Outcome, IN_FLIGHT_FILE};

/// The `docker` disinto finds first on its PATH. It logs each call, runs the real docker,
/// and, when the call is the `kill-rank`-th to match the glob `kill-pattern`, kills its
/// caller. A lock keeps the count right should two calls ever run at once.
const FAKE_DOCKER: &str = r#"#!/bin/sh
# docker for e2e_crash.rs: each call goes to the real docker; the one the test named is then
# followed by SIGKILL to its caller, the disinto process.
dir=@DIR@
exec 9>>"$dir/lock"
flock 9
printf '%s\n' "$*" >>"$dir/calls"
target=
if [ -f "$dir/kill-pattern" ]; then
  pattern=$(cat "$dir/kill-pattern")
  case "$*" in
    $pattern)
      n=$(( $(cat "$dir/matched" 2>/dev/null || echo 0) + 1 ))
      echo "$n" >"$dir/matched"
      [ "$n" = "$(cat "$dir/kill-rank")" ] && target=1 ;;
  esac
fi
flock -u 9
exec 9>&-
@REAL@ "$@"
status=$?
if [ -n "$target" ]; then
  caller=$(cat "/proc/$PPID/comm")
  if [ "$caller" = disinto ]; then
    printf '%s\n' "$*" >"$dir/killed"
    kill -KILL "$PPID"
  else
    printf '%s\n' "$caller" >"$dir/wrong-caller"
  fi
fi
exit "$status"
"#;

/// Where to kill: after the `rank`-th call (from 1) whose arguments match the shell glob
/// `pattern`.
#[derive(Debug, Clone)]
struct Point {
    what: String,
    pattern: String,
    rank: usize,
}

fn point(what: &str, pattern: &str, rank: usize) -> Point {
    Point {
        what: what.to_string(),
        pattern: pattern.to_string(),
        rank,
    }
}

impl Point {
    /// Whether `call` (a logged argument line) matches, as the fake's `case` would.
    fn matches(&self, call: &str) -> bool {
        glob_match(self.pattern.as_bytes(), call.as_bytes())
    }
}

/// A shell glob with `*` only (the patterns here use nothing else).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        Some((c, rest)) => text.first() == Some(c) && glob_match(rest, &text[1..]),
    }
}

/// A call as a pattern that matches it in any run: each word holding an id (12 hex digits
/// or more: a container, an image, a keep tag) becomes `*`.
fn generalize(call: &str) -> String {
    let id = |w: &str| {
        w.as_bytes()
            .split(|b| !b.is_ascii_hexdigit())
            .any(|run| run.len() >= 12)
    };
    call.split(' ')
        .map(|w| if id(w) { "*" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fake docker's directory: the script, its call log and its kill order.
struct Fake {
    dir: PathBuf,
}

impl Fake {
    fn new(dir: PathBuf) -> Fake {
        // Found before any PATH is changed: the fake must never call itself.
        let real = which::which("docker").expect("docker not found on PATH");
        std::fs::create_dir_all(&dir).unwrap();
        let script = FAKE_DOCKER
            .replace("@DIR@", &shell_quote(&dir))
            .replace("@REAL@", &shell_quote(&real));
        let path = dir.join("docker");
        std::fs::write(&path, script).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).unwrap();
        Fake { dir }
    }

    /// Kill at `point` on the next run (none: count only).
    fn arm(&self, point: Option<&Point>) {
        for f in [
            "calls",
            "matched",
            "killed",
            "wrong-caller",
            "kill-pattern",
            "kill-rank",
        ] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
        if let Some(p) = point {
            std::fs::write(self.dir.join("kill-pattern"), &p.pattern).unwrap();
            std::fs::write(self.dir.join("kill-rank"), p.rank.to_string()).unwrap();
        }
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The call after which disinto was killed, if it was.
    fn killed(&self) -> Option<String> {
        let caller = std::fs::read_to_string(self.dir.join("wrong-caller"));
        assert!(
            caller.is_err(),
            "the fake docker was called by {caller:?}, not by disinto"
        );
        std::fs::read_to_string(self.dir.join("killed"))
            .ok()
            .map(|s| s.trim_end().to_string())
    }
}

fn shell_quote(path: &Path) -> String {
    let text = path.to_str().expect("a UTF-8 path");
    assert!(!text.contains('\''), "{text}");
    format!("'{text}'")
}

/// A factory with only a `.env`, run through `bin/disinto` as an operator runs it.
struct Factory {
    dir: TempDir,
    project: String,
    ns: String,
    /// The `.env` every round starts from (AGENTS_IMAGE=v0.1.0).
    env: String,
    fake: Fake,
    /// Tags this test made, removed with it.
    tags: Vec<String>,
}

impl Factory {
    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `disinto ARGS`, with the fake docker first on its PATH when `killable`.
    fn disinto(&self, args: &[&str], agents_image: Option<&str>, killable: bool) -> Command {
        let mut cmd = operator(self.dir.path(), &self.project, agents_image);
        // Images built here, never pushed: nothing to verify them by.
        cmd.args(unverified(args));
        if killable {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", self.fake.dir.display()));
        }
        cmd
    }

    /// `disinto ARGS` without the fake, which must succeed in time.
    fn ok(&self, args: &[&str]) -> String {
        let out = within(
            &mut self.disinto(args, None, false),
            Duration::from_secs(180),
        );
        succeeded(&out, &format!("disinto {args:?}"))
    }

    fn agents(&self) -> Option<String> {
        agents_of(&self.project)
    }

    /// The image id agents runs now (empty when none runs).
    fn agents_image_id(&self) -> String {
        agents_image_id_of(&self.project)
    }

    /// The AGENTS_IMAGE `.env` says now.
    fn configured(&self) -> String {
        let env = std::fs::read_to_string(self.path(".env")).unwrap();
        env.lines()
            .find_map(|l| l.strip_prefix("AGENTS_IMAGE="))
            .expect("no AGENTS_IMAGE in .env")
            .to_string()
    }

    fn image(&self, version: &str) -> String {
        format!("{}/agents:{version}", self.ns)
    }

    /// Every history record, strictly: a line that is not one fails the test.
    fn rows(&self) -> Vec<Deployment> {
        let path = self.path(history::HISTORY_FILE);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        history::parse(&text, &path.display().to_string()).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Whether the loop in the agents container is asked to start no new session.
    fn drained(&self) -> bool {
        let agents = self.agents().expect("no agents container");
        let drain = "test \"$(cat /home/agent/disinto/state/drain 2>/dev/null)\" = \"$(hostname)\"";
        output(Command::new("docker").args(["exec", &agents, "sh", "-c", drain]))
            .status
            .success()
    }

    /// The round's starting point: `.env` as written at first, agents on v0.1.0, healthy.
    fn settle(&self) {
        if std::fs::read_to_string(self.path(".env")).unwrap() != self.env {
            std::fs::write(self.path(".env"), &self.env).unwrap();
        }
        self.ok(&["up", "agents", "--health-timeout", "60"]);
        assert_eq!(self.agents_image_id(), image_id(&self.image("v0.1.0")));
    }
}

impl Drop for Factory {
    fn drop(&mut self) {
        let _ = self.disinto(&["down", "--volumes"], None, false).output();
        for tag in &self.tags {
            let _ = Command::new("docker").args(["rmi", tag]).output();
        }
    }
}

fn image_id(reference: &str) -> String {
    ok(Command::new("docker").args(["inspect", "--format", "{{.Id}}", reference]))
        .trim()
        .to_string()
}

/// Runs `cmd` to its end, its output in files (so no pipe fills); a command still running
/// after `limit` is killed and fails the test: nothing here may hang.
fn within(cmd: &mut Command, limit: Duration) -> Output {
    let tmp = TempDir::new("crash-out").unwrap();
    let (out, err) = (tmp.path().join("out"), tmp.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not end within {limit:?}:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

/// A command that rolls out, and the points it is killed at.
struct Leg {
    name: &'static str,
    args: Vec<&'static str>,
    /// AGENTS_IMAGE in its environment (none: what `.env` says).
    agents_image: Option<&'static str>,
    /// The version it rolls out, as its marker and rows name it.
    version: &'static str,
    /// Its exit code when nothing kills it.
    code: i32,
    points: Vec<Point>,
}

/// The points of the issue a rollout passes, as `disinto up agents` and `rollback` call
/// docker (the counting run holds the test to them).
fn rollout_points() -> Vec<Point> {
    vec![
        point(
            "after the pull and pin",
            "image inspect --format {{json .RepoDigests}} *",
            1,
        ),
        point("after the drain", "exec * disinto-entrypoint drain", 1),
        point(
            "after keeping the old image",
            "tag * disinto-keep/agents:*",
            1,
        ),
        point("after compose up", "compose * up *", 1),
        point(
            "during the health gate",
            "inspect --format {{.State.Status}} *",
            1,
        ),
        point(
            "after the row is written (keeping recent images)",
            "image ls *",
            1,
        ),
    ]
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn a_rollout_or_rollback_killed_anywhere_is_described_by_doctor_and_mended_by_one_up() {
    bench();
    let started = Instant::now();
    let base = agents_image();
    let dir = TempDir::new("crash").unwrap();
    let fake = Fake::new(dir.path().join("fake"));
    let ns = format!("127.0.0.1:9/{}", unique("crash"));
    let env = format!("AGENTS_IMAGE=v0.1.0\nDISINTO_REGISTRY={ns}\nPOLL_INTERVAL=1\n");
    let mut f = Factory {
        dir,
        project: unique("crash"),
        ns,
        env,
        fake,
        tags: vec![],
    };
    let (v1, v2, v3) = (f.image("v0.1.0"), f.image("v0.2.0"), f.image("v0.3.0"));
    f.tags = vec![v1.clone(), v2.clone(), v3.clone()];
    // A label of this run makes v0.1.0 an image of its own, so its keep tag is this test's.
    build_from_stdin(
        &v1,
        &format!("FROM {base}\nLABEL org.disinto.test={}\n", f.project),
    );
    build_from_stdin(
        &v2,
        &format!("FROM {v1}\nLABEL org.disinto.version=v0.2.0\n"),
    );
    build_from_stdin(
        &v3,
        &format!("FROM {v1}\nHEALTHCHECK --interval=1s --start-period=1s --retries=1 CMD false\n"),
    );
    for v in [&v1, &v2, &v3] {
        let hex: String = image_id(v)
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        f.tags.push(format!("disinto-keep/agents:{hex}"));
    }
    std::fs::write(f.path(".env"), &f.env).unwrap();
    f.ok(&["init"]);

    let every_call = std::env::var_os("DISINTO_CRASH_EVERY_CALL").is_some_and(|v| v == "1");
    let mut rollback_points = rollout_points();
    rollback_points.push(point("after rollback's last docker call", "", 0));
    let legs = [
        Leg {
            name: "rollout",
            args: vec!["up", "agents", "--health-timeout", "30"],
            agents_image: Some("v0.2.0"),
            version: "v0.2.0",
            code: 0,
            points: rollout_points(),
        },
        Leg {
            name: "revert",
            args: vec!["up", "agents", "--health-timeout", "30"],
            agents_image: Some("v0.3.0"),
            version: "v0.3.0",
            code: 1,
            points: vec![
                point("after the revert's compose up", "compose * up *", 2),
                // The revert's wait starts by reading the image's health check (the gate's
                // did first): a kill there is during the revert's health wait. Not the health
                // command itself: with a 1 s start interval, Docker may call the kept image
                // healthy before disinto's own probe is due.
                point(
                    "during the revert's health wait",
                    "inspect --format {{json .Config.Healthcheck}} *",
                    2,
                ),
                point(
                    "after the revert's last look, before its row",
                    "inspect --format {{.Config.Image}}*",
                    1,
                ),
            ],
        },
        Leg {
            name: "rollback",
            args: vec!["rollback", "v0.2.0", "--health-timeout", "30"],
            agents_image: None,
            version: "v0.2.0",
            code: 0,
            points: rollback_points,
        },
    ];
    let mut kills = 0;
    for leg in &legs {
        f.settle();
        // The counting run: every docker call this command makes, uninterrupted.
        f.fake.arm(None);
        let out = within(
            &mut f.disinto(&leg.args, leg.agents_image, true),
            Duration::from_secs(180),
        );
        assert_eq!(
            out.status.code(),
            Some(leg.code),
            "{}: {}",
            leg.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let calls = f.fake.calls();
        let points: Vec<Point> = match every_call {
            true => (1..=calls.len())
                .map(|n| point(&format!("call {n} ({})", calls[n - 1]), "*", n))
                .collect(),
            false => leg
                .points
                .iter()
                .map(|p| match p.rank {
                    // The last call of the counting run, by its own arguments and rank.
                    0 => {
                        let last = generalize(calls.last().expect("no docker call"));
                        let last = point(&p.what, &last, 0);
                        let rank = calls.iter().filter(|c| last.matches(c)).count();
                        Point { rank, ..last }
                    }
                    _ => p.clone(),
                })
                .collect(),
        };
        for p in &points {
            let found = calls.iter().filter(|c| p.matches(c)).count();
            assert!(
                found >= p.rank,
                "{}: the point {:?} ({:?}, #{}) is not among its docker calls:\n{}",
                leg.name,
                p.what,
                p.pattern,
                p.rank,
                calls.join("\n")
            );
        }
        for p in &points {
            f.settle();
            if kill_and_mend(&f, leg, p, every_call) {
                kills += 1;
            }
        }
    }
    eprintln!(
        "{kills} kills, each described by doctor and mended by one `up`, in {:?}",
        started.elapsed()
    );
}

/// Kills `leg` at `p`, then holds doctor and one plain `up` to the truth and a whole factory.
/// Whether it was killed (with every call, the last ones may not come in a shorter run).
fn kill_and_mend(f: &Factory, leg: &Leg, p: &Point, every_call: bool) -> bool {
    let at = format!("{} killed {}", leg.name, p.what);
    let before = f.rows();
    f.fake.arm(Some(p));
    let out = within(
        &mut f.disinto(&leg.args, leg.agents_image, true),
        Duration::from_secs(180),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let killed = f.fake.killed();
    f.fake.arm(None);
    match &killed {
        Some(_) => assert_eq!(out.status.signal(), Some(9), "{at}: {stderr}"),
        // A shorter run than the counting one (fewer polls): it ended by itself.
        None if every_call => assert_eq!(out.status.code(), Some(leg.code), "{at}: {stderr}"),
        None => panic!(
            "{at}: never reached ({:?}, #{}):\n{stderr}",
            p.pattern, p.rank
        ),
    }
    let marker = InFlight::find(f.dir.path());
    let marked = marker.is_some();
    let drained = f.agents().is_some() && f.drained();
    let after_kill = f.rows();
    assert_eq!(after_kill[..before.len()], before[..], "{at}: rows changed");
    let written = &after_kill[before.len()..];
    assert!(written.len() <= 1, "{at}: {written:?}");
    if let (Some(m), [row]) = (&marker, written) {
        assert_eq!(row.attempt.as_ref(), Some(&m.attempt), "{at}");
    }

    // doctor: in time, 0 or 1 (never 2, a panic's 101 or a hang), and the truth.
    let out = within(
        &mut f.disinto(&["doctor", "--json"], None, false),
        Duration::from_secs(60),
    );
    let doctor = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "{at}: doctor exited {:?}:\n{doctor}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict = |name: &str| doctor_verdict(&doctor, name);
    assert_eq!(
        verdict("lock"),
        "ok",
        "{at}: the lock of a killed process:\n{doctor}"
    );
    assert_eq!(
        verdict("rollout") == "drift",
        marker.is_some(),
        "{at}: the marker is {}there:\n{doctor}",
        if marker.is_some() { "" } else { "not " }
    );
    assert_eq!(
        verdict("drain") == "drift",
        drained,
        "{at}: agents is {}drained:\n{doctor}",
        if drained { "" } else { "not " }
    );
    let want = image_id(&f.image(&f.configured()));
    if f.agents_image_id() != want {
        assert_eq!(
            code,
            Some(1),
            "{at}: agents does not run .env's version:\n{doctor}"
        );
    }

    // One plain `up` mends it.
    f.ok(&["up", "agents", "--health-timeout", "60"]);
    let version = f.configured();
    assert_eq!(f.agents_image_id(), image_id(&f.image(&version)), "{at}");
    wait_healthy(&f.agents().unwrap(), Duration::from_secs(30));
    assert!(!f.drained(), "{at}: agents is left drained");
    assert!(!f.path(IN_FLIGHT_FILE).exists(), "{at}: the marker is left");
    assert!(disinto::lock::holder(f.dir.path()).is_none(), "{at}");
    drop(
        disinto::lock::Lock::acquire(f.dir.path(), "e2e_crash", Duration::ZERO)
            .unwrap_or_else(|e| panic!("{at}: {e:#}")),
    );
    let rows = f.rows();
    assert_eq!(
        rows[..after_kill.len()],
        after_kill[..],
        "{at}: rows changed"
    );
    let new = &rows[after_kill.len()..];
    let unrecorded = marker.filter(|m| {
        !written
            .iter()
            .any(|r| r.attempt.as_ref() == Some(&m.attempt))
    });
    let mended = match (&unrecorded, new) {
        (Some(m), [interrupted, mended]) => {
            assert_eq!(interrupted.outcome, Outcome::Interrupted, "{at}: {new:?}");
            assert_eq!(interrupted.attempt.as_ref(), Some(&m.attempt), "{at}");
            assert_eq!(interrupted.version, leg.version, "{at}");
            mended
        }
        (None, [mended]) => mended,
        _ => panic!("{at}: the killed attempt {unrecorded:?} and the rows after it: {new:?}"),
    };
    assert_eq!(
        (mended.outcome, mended.version.as_str()),
        (Outcome::Deployed, version.as_str()),
        "{at}"
    );
    let mut attempts: Vec<&str> = rows.iter().filter_map(|r| r.attempt.as_deref()).collect();
    let all = attempts.len();
    attempts.sort_unstable();
    attempts.dedup();
    assert_eq!(
        attempts.len(),
        all,
        "{at}: an attempt recorded twice: {rows:?}"
    );

    // And doctor finds nothing wrong (the kept images aside: other tests on this engine
    // remove keep tags, and disk is the machine's).
    let out = within(
        &mut f.disinto(&["doctor", "--json"], None, false),
        Duration::from_secs(60),
    );
    let doctor = String::from_utf8_lossy(&out.stdout).into_owned();
    let checks: serde_json::Value = serde_json::from_str(&doctor).unwrap();
    for c in checks["checks"].as_array().unwrap() {
        if !["kept", "disk"].contains(&c["check"].as_str().unwrap_or("")) {
            assert!(
                ["ok", "info"].contains(&c["verdict"].as_str().unwrap_or("")),
                "{at}: after one `up`:\n{doctor}"
            );
        }
    }
    eprintln!(
        "{at}: {}; {}; {} new row(s): {:?}",
        match &killed {
            Some(call) => format!("after `docker {call}`"),
            None => "ran to its end".into(),
        },
        match (marked, &unrecorded, drained) {
            (true, Some(_), _) => "marked in flight, no row",
            (true, None, _) => "marked in flight, its row written",
            (false, _, true) => "not marked, agents left drained",
            (false, _, false) => "not marked",
        },
        new.len(),
        new.iter().map(|r| r.outcome).collect::<Vec<_>>()
    );
    killed.is_some()
}

/// The verdict of the check `name` in doctor's JSON ("" when there is none).
fn doctor_verdict(json: &str, name: &str) -> String {
    let value: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("doctor --json: {e}:\n{json}"));
    value["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["check"] == name))
        .and_then(|c| c["verdict"].as_str())
        .unwrap_or("")
        .to_string()
}
