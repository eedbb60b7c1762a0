//! End-to-end: rollouts that respect the work (issue 18's "Done when", for compose) on the real
//! engine. One change at a time: a second `up` refuses at once, or waits with `--lock-wait`; a
//! frozen factory refuses until `unlock`; an `up` lets the agent session in flight end, or
//! refuses after `--drain-timeout` (and the loop runs on), or cuts it with `--force`
//! (recorded); an image that fails after its health gate is reverted (`reverted-late`); and
//! `doctor` and `watch` judge the factory. Cheap: no release, no registry: the agents image
//! built from this checkout, and images made FROM it, tagged locally under a namespace of
//! this run.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// An agent session of ~8 s that then says which container ran it to its end.
const SHORT_SESSION: &str = "sleep 8; echo $HOSTNAME >> /home/agent/data/done";
/// An agent session that outlasts any drain timeout of this test.
const LONG_SESSION: &str = "sleep 600";
/// No agent session at all: the loop idles, and drains at once.
const NO_SESSION: &str = "";
/// The loop's record of every session's start and end.
const SESSIONS_LOG: &str = "/home/agent/disinto/state/sessions.log";
/// A drain request, while it exists.
const DRAIN_FILE: &str = "/home/agent/disinto/state/drain";
/// `disinto watch`'s last look, in the factory directory.
const WATCH_FILE: &str = "state/watch.json";

/// A factory with only a `.env`, run through `bin/disinto` as an operator runs it.
struct Factory {
    /// The disinto binary, found once: a panic in `drop` (a stale binary) would abort the
    /// run and leave everything behind.
    bin: PathBuf,
    dir: TempDir,
    project: String,
    /// Registry and namespace of its images: they are local tags, never pulled.
    ns: String,
    /// The tags this test made (its images, and the keep tags rollouts made of them).
    tags: Vec<String>,
}

impl Factory {
    /// A factory on `images` (version, Dockerfile lines after FROM the agents image), each
    /// built for this run alone (a label makes each its own image), so every keep tag a
    /// rollout makes of them is this test's to remove; agents runs the first, with
    /// `session`. Returns the factory and the images' ids.
    fn new(images: &[(&str, &str)], session: &str) -> (Factory, Vec<String>) {
        bench();
        let base = agents_image();
        let mut f = Factory {
            bin: disinto_bin(),
            dir: TempDir::new("work").unwrap(),
            project: unique("work"),
            ns: format!("127.0.0.1:9/{}", unique("work")),
            tags: vec![],
        };
        let mut ids = vec![];
        for (version, extra) in images {
            let tag = format!("{}/agents:{version}", f.ns);
            let label = format!("LABEL disinto.e2e-work=\"{} {version}\"\n", f.ns);
            build_from_stdin(&tag, &format!("FROM {base}\n{label}{extra}"));
            let id = inspect(&tag, "{{.Id}}");
            f.tags.push(tag);
            f.tags.push(keep_tag(&id));
            ids.push(id);
        }
        let env = format!(
            "AGENTS_IMAGE={}\nDISINTO_REGISTRY={}\nPOLL_INTERVAL=1\n",
            images[0].0, f.ns
        );
        std::fs::write(f.dir.path().join(".env"), env).unwrap();
        f.ok(&["init"]);
        ok(&mut f.up(images[0].0, session, &[]));
        assert_eq!(f.agents_image_id(), ids[0]);
        (f, ids)
    }

    fn disinto(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(root().join("bin/disinto"));
        // Images built here, never pushed: nothing to verify them by.
        cmd.args(unverified(args))
            .current_dir(self.dir.path())
            .env("DISINTO_BIN", &self.bin)
            .env("COMPOSE_PROJECT_NAME", &self.project)
            // Watching after the gate costs its span on every rollout: only the test of a late
            // failure asks for it.
            .env("DISINTO_WATCH", "0")
            .env_remove("DISINTO_ROOT")
            .env_remove("DISINTO_REGISTRY")
            .env_remove("AGENTS_IMAGE")
            .env_remove("AGENT_CMD");
        cmd
    }

    /// `disinto up agents` on `version`, the agents container running `session`.
    fn up(&self, version: &str, session: &str, flags: &[&str]) -> Command {
        let mut args = vec!["up", "agents", "--health-timeout", "60"];
        args.extend(flags);
        let mut cmd = self.disinto(&args);
        cmd.env("AGENTS_IMAGE", version).env("AGENT_CMD", session);
        cmd
    }

    /// Standard output of `disinto ARGS`, which must succeed.
    fn ok(&self, args: &[&str]) -> String {
        ok(&mut self.disinto(args))
    }

    /// A path in the factory directory.
    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The container running agents now, if one runs.
    fn agents(&self) -> Option<String> {
        agents_of(&self.project)
    }

    fn agents_running(&self) -> String {
        self.agents().expect("no agents container runs")
    }

    /// The image id agents runs now (empty when none runs).
    fn agents_image_id(&self) -> String {
        self.agents()
            .map(|c| inspect(&c, "{{.Image}}"))
            .unwrap_or_default()
    }

    /// Every record, as `disinto history --json` prints them.
    fn rows(&self) -> Vec<Value> {
        self.ok(&["history", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    /// A file in agents' volumes, as the running container reads it (empty when missing).
    fn read(&self, path: &str) -> String {
        let out =
            output(Command::new("docker").args(["exec", &self.agents_running(), "cat", path]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the work probe says a session runs in agents now.
    fn busy(&self) -> bool {
        let agents = self.agents_running();
        let out =
            output(Command::new("docker").args(["exec", &agents, "disinto-entrypoint", "busy"]));
        match out.status.code() {
            Some(0) => true,
            Some(1) => false,
            _ => panic!("the work probe failed: {out:?}"),
        }
    }

    /// The pid the lock file names as its holder, if a holder wrote itself there.
    fn lock_holder(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.path(disinto::lock::LOCK_FILE)).ok()?;
        serde_json::from_str::<Value>(text.trim()).ok()?["pid"].as_u64()
    }

    /// Starts `cmd` in the background and returns once it holds the factory's lock.
    fn spawn_holding_the_lock(&self, cmd: Command) -> Background {
        let mut started = self.spawn(cmd);
        wait_for("the lock taken", Duration::from_secs(10), || {
            assert!(started.running(), "it ended before it held the lock");
            self.lock_holder() == Some(started.pid())
        });
        started
    }

    /// Starts `cmd` in the background; it is killed if the test fails before it ends.
    fn spawn(&self, mut cmd: Command) -> Background {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Background(Some(child))
    }
}

impl Drop for Factory {
    fn drop(&mut self) {
        // Whatever state a failed test left: no freeze, no session to wait for.
        let _ = self.disinto(&["unlock"]).output();
        let _ = self
            .disinto(&["down", "--volumes", "--force", "--drain-timeout", "0"])
            .args(["--lock-wait", "30"])
            .output();
        for tag in &self.tags {
            let _ = Command::new("docker").args(["rmi", tag]).output();
        }
    }
}

/// A command running in the background: bin/disinto execs the program, so its pid is
/// disinto's.
struct Background(Option<Child>);

impl Background {
    fn pid(&self) -> u64 {
        self.0.as_ref().unwrap().id().into()
    }

    fn running(&mut self) -> bool {
        self.0.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    fn wait(mut self, limit: Duration) -> Output {
        let start = Instant::now();
        while self.running() {
            assert!(
                start.elapsed() < limit,
                "a command did not end in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn inspect(object: &str, format: &str) -> String {
    ok(Command::new("docker").args(["inspect", "--format", format, object]))
        .trim()
        .to_string()
}

/// The exit code of `out` and its standard error, for assertion messages.
fn ended(out: &Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `done` holds (panics after `limit`, naming `what`).
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The tag a rollout keeps an image under (`disinto-keep/agents:<12 hex digits>`).
fn keep_tag(image_id: &str) -> String {
    let hex: String = image_id
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect();
    format!("disinto-keep/agents:{hex}")
}

fn field<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key].as_str().unwrap_or("")
}

/// How many lines of `text` are `line`.
fn count(text: &str, line: &str) -> usize {
    text.lines().filter(|l| *l == line).count()
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn rollouts_take_turns_and_let_the_work_end() {
    let (f, ids) = Factory::new(&[("v0.1.0", ""), ("v0.2.0", "")], SHORT_SESSION);
    let (id1, id2) = (ids[0].as_str(), ids[1].as_str());

    // A freeze refuses `up` (--force included) and changes nothing; status shows it while
    // it lasts; unlock lifts it.
    f.ok(&["lock", "-m", "incident 7"]);
    assert_eq!(f.status()["freeze"]["command"], "incident 7");
    let (agents, rows) = (f.agents(), f.rows());
    let compose = std::fs::read(f.path(disinto::factory::COMPOSE_FILE)).unwrap();
    for flags in [&[][..], &["--force", "--drain-timeout", "0"]] {
        let (code, stderr) = ended(&output(&mut f.up("v0.2.0", SHORT_SESSION, flags)));
        assert_eq!(
            code,
            Some(1),
            "a frozen factory ran up {flags:?}:\n{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    assert_eq!(f.agents(), agents);
    assert_eq!(f.rows(), rows);
    assert_eq!(
        std::fs::read(f.path(disinto::factory::COMPOSE_FILE)).unwrap(),
        compose
    );
    f.ok(&["unlock"]);
    assert!(f.status()["freeze"].is_null());

    // An `up` while a session runs waits for it to end (the session writes its marker), then
    // the new version runs; a second `up` meanwhile refuses at once, and changes nothing.
    let old = f.agents_running();
    let hostname: String = old.chars().take(12).collect();
    let finished = count(&f.read("/home/agent/data/done"), &hostname);
    wait_for("a session runs", Duration::from_secs(30), || f.busy());
    let mut first = f.spawn_holding_the_lock(f.up("v0.2.0", SHORT_SESSION, &[]));
    let rows = f.rows();
    let start = Instant::now();
    let second = output(&mut f.up("v0.1.0", SHORT_SESSION, &[]));
    let (code, stderr) = ended(&second);
    assert_eq!(code, Some(1), "a second up ran:\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(5), "it waited");
    assert!(
        first.running(),
        "the first up ended before the second was refused"
    );
    assert_eq!(f.rows(), rows, "the refused up recorded something");
    let out = first.wait(Duration::from_secs(120));
    succeeded(&out, "the up that waited for the session");
    assert_eq!(f.agents_image_id(), id2);
    let done = f.read("/home/agent/data/done");
    assert!(
        count(&done, &hostname) > finished,
        "the session in flight did not end before {hostname} was replaced:\n{done}"
    );
    let rows = f.rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(field(&rows[1], "version"), "v0.2.0");
    assert_eq!(field(&rows[1], "outcome"), "deployed");
    assert!(rows[1]["interrupted_session"].is_null(), "{rows:?}");
    assert!(!f.path(disinto::model::history::IN_FLIGHT_FILE).exists());

    // With --lock-wait, a second `up` runs once the first (which waits for a session) has
    // ended.
    wait_for("a session runs", Duration::from_secs(30), || f.busy());
    let mut first = f.spawn_holding_the_lock(f.up("v0.1.0", NO_SESSION, &[]));
    let mut second = f.up("v0.2.0", LONG_SESSION, &[]);
    second.args(["--lock-wait", "120"]);
    let mut second = f.spawn(second);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        first.running(),
        "the first up ended before the second started"
    );
    assert!(second.running(), "the second up did not wait for the lock");
    succeeded(&first.wait(Duration::from_secs(120)), "the first up");
    succeeded(
        &second.wait(Duration::from_secs(120)),
        "the up that waited for the lock",
    );
    let rows = f.rows();
    let versions: Vec<&str> = rows.iter().map(|r| field(r, "version")).collect();
    assert_eq!(versions, ["v0.1.0", "v0.2.0", "v0.1.0", "v0.2.0"]);
    assert_eq!(f.agents_image_id(), id2);

    // A session longer than --drain-timeout: refused, the old version runs on, and the drain
    // is lifted (the loop starts a session again once this one ends).
    wait_for("a session runs", Duration::from_secs(30), || f.busy());
    let (agents, rows) = (f.agents_running(), f.rows());
    let out = output(&mut f.up("v0.1.0", LONG_SESSION, &["--drain-timeout", "2"]));
    let (code, stderr) = ended(&out);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(f.agents_running(), agents);
    assert_eq!(f.agents_image_id(), id2);
    assert_eq!(f.rows(), rows);
    assert!(!f.path(disinto::model::history::IN_FLIGHT_FILE).exists());
    let starts = || {
        f.read(SESSIONS_LOG)
            .lines()
            .filter(|l| l.contains(" start "))
            .count()
    };
    let started = starts();
    // The session ends (cut short by hand): the loop, no longer drained, starts the next.
    ok(Command::new("docker").args(["exec", &agents, "pkill", "-x", "sleep"]));
    wait_for("a new session starts", Duration::from_secs(30), || {
        starts() > started && f.busy()
    });
    assert_eq!(
        output(Command::new("docker").args(["exec", &agents, "test", "-e", DRAIN_FILE]))
            .status
            .code(),
        Some(1),
        "the drain request is still there"
    );
    // With --force, it goes ahead and the record names the session it cut.
    ok(&mut f.up("v0.1.0", NO_SESSION, &["--drain-timeout", "2", "--force"]));
    assert_eq!(f.agents_image_id(), id1);
    let rows = f.rows();
    let last = rows.last().unwrap();
    assert_eq!(field(last, "version"), "v0.1.0");
    assert_eq!(field(last, "outcome"), "deployed");
    assert!(
        // The probe shows the command's first word only: AGENT_CMD may carry a secret.
        field(last, "interrupted_session").contains("command=sleep …"),
        "{last}"
    );
    // Every row says who ran it.
    assert!(rows.iter().all(|r| !field(r, "by").is_empty()), "{rows:?}");

    // A keep tag gone (a prune, another factory's cleanup) with the image still here by its
    // own tag: a rollback to it needs no registry, and doctor finds nothing wrong.
    let _ = output(Command::new("docker").args(["rmi", &keep_tag(id2)]));
    f.ok(&["doctor"]);
}

/// Diverges from the image it is built FROM only in its health check, which passes while
/// the loop started less than 8 s ago: a gate passes, and the watch after it fails.
const FAILS_AFTER_THE_GATE: &str = "HEALTHCHECK --interval=2s --timeout=2s --retries=2 CMD \
    s=$(sed -n 's/^started=//p' /home/agent/disinto/state/heartbeat) \
    && [ -n \"$s\" ] && [ $(( $(date -u +%s) - s )) -lt 8 ]\n";

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn a_failure_after_the_gate_is_reverted_and_doctor_and_watch_judge() {
    let (f, ids) = Factory::new(
        &[("v0.1.0", ""), ("v0.3.0", FAILS_AFTER_THE_GATE)],
        NO_SESSION,
    );
    let (id1, id3) = (ids[0].as_str(), ids[1].as_str());

    // An image that turns unhealthy after a passing gate, watched: reverted late, even when
    // the keep tag of the image to go back to is removed meanwhile (`docker rmi`, a prune,
    // another factory's cleanup: the image is still here). Rolled out as an operator does:
    // the version set in .env, and a plain `up`.
    let env = std::fs::read_to_string(f.dir.path().join(".env")).unwrap();
    let env = env.replace("AGENTS_IMAGE=v0.1.0", "AGENTS_IMAGE=v0.3.0");
    std::fs::write(f.dir.path().join(".env"), env).unwrap();
    let start = Instant::now();
    let mut up = f.up("v0.3.0", NO_SESSION, &["--watch", "30"]);
    up.env_remove("AGENTS_IMAGE"); // .env says it
    let up = f.spawn(up);
    wait_for("agents runs v0.3.0", Duration::from_secs(60), || {
        f.agents_image_id() == id3
    });
    // (It may be gone already: the keep tags share one repository on the host.)
    let _ = output(Command::new("docker").args(["rmi", &keep_tag(id1)]));
    assert!(
        !output(Command::new("docker").args(["inspect", &keep_tag(id1)]))
            .status
            .success()
    );
    let out = up.wait(Duration::from_secs(120));
    let (code, stderr) = ended(&out);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(f.agents_image_id(), id1, "v0.1.0 is not back:\n{stderr}");
    let rows = f.rows();
    let last = rows.last().unwrap();
    assert_eq!(field(last, "version"), "v0.3.0");
    assert_eq!(field(last, "outcome"), "reverted-late", "{stderr}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
    assert!(!f.path(disinto::model::history::IN_FLIGHT_FILE).exists());

    // doctor and watch on the healthy (reverted) factory; then agents restarts (its main
    // process ends, and the restart policy starts it again), and watch says so.
    f.ok(&["doctor"]);
    f.ok(&["watch"]);
    let agents = f.agents_running();
    ok(Command::new("docker").args(["exec", &agents, "kill", "-TERM", "1"]));
    wait_for("agents restarts", Duration::from_secs(30), || {
        inspect(&agents, "{{.RestartCount}}") != "0"
    });
    let (code, stderr) = ended(&output(&mut f.disinto(&["watch"])));
    assert_eq!(code, Some(3), "{stderr}");
    let look: Value =
        serde_json::from_str(&std::fs::read_to_string(f.path(WATCH_FILE)).unwrap()).unwrap();
    assert_eq!(look["failing"], true, "{look}");
}

/// The archives (not manifests) in the factory's backups/, sorted.
fn archives(f: &Factory) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(f.path("backups"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tar.gz"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn a_backup_is_restored_whole_and_a_bad_one_changes_nothing() {
    let (f, _) = Factory::new(&[("v0.1.0", "")], NO_SESSION);
    let agents = f.agents_running();
    write_markers(&agents, "one");
    let printed = f.ok(&["backup"]);
    let taken = archives(&f);
    assert_eq!(taken.len(), 1, "{printed}");
    let archive = taken[0].clone();
    assert!(printed.contains(&archive), "{printed}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(f.path(&format!("backups/{archive}.json"))).unwrap())
            .unwrap();
    assert_eq!(manifest["version"], "v0.1.0");
    assert_eq!(
        manifest["volumes"],
        serde_json::json!(["agent-state", "agent-data"])
    );

    // The agents' work goes on after the backup: new markers, a new file.
    write_markers(&agents, "two");
    ok(Command::new("docker").args([
        "exec",
        "-u",
        "agent",
        &agents,
        "touch",
        "/home/agent/data/later",
    ]));

    // Refused with nothing stopped: another factory's backup, a corrupt archive, a name
    // that is not a backup.
    let mut other = f.disinto(&["restore", &archive]);
    other.env("COMPOSE_PROJECT_NAME", unique("other"));
    let out = output(&mut other);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a backup of factory"), "{err}");
    let path = f.path(&format!("backups/{archive}"));
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    std::fs::write(&path, &bad).unwrap();
    let out = output(&mut f.disinto(&["restore", &archive]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not match its checksum"),
        "{err}"
    );
    std::fs::write(&path, &good[..good.len() - 100]).unwrap();
    let out = output(&mut f.disinto(&["restore", &archive]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("corrupt or truncated"),
        "{err}"
    );
    let out = output(&mut f.disinto(&["restore", "nothing-here.tar.gz"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(
        f.agents_running(),
        agents,
        "a refused restore stopped agents"
    );
    assert_eq!(read_markers(&agents), ["two"; 4]);
    std::fs::write(&path, &good).unwrap();

    // The real one: the snapshot's volumes go back whole (the later file gone), the others
    // (agent-repos, the projects bind) are left as they are; agents runs healthy again.
    let out = output(&mut f.disinto(&["restore", &archive]));
    succeeded(&out, "restore");
    assert_eq!(
        f.agents_running(),
        agents,
        "restore stops and starts the same container"
    );
    wait_healthy(&agents, Duration::from_secs(60));
    let markers = read_markers(&agents);
    let by_path: Vec<(&str, &str)> = volume_paths()
        .into_iter()
        .zip(markers.iter().map(String::as_str))
        .collect();
    for (path, marker) in by_path {
        let want = match path {
            "/home/agent/data" | "/home/agent/disinto/state" => "one",
            _ => "two",
        };
        assert_eq!(marker, want, "{path}");
    }
    assert!(
        f.read("/home/agent/data/later").is_empty(),
        "the later file survived the restore"
    );
    assert!(
        f.read(DRAIN_FILE).is_empty(),
        "the restore left agents drained"
    );

    // Only the newest --keep stay.
    f.ok(&["backup", "--keep", "1"]);
    let kept = archives(&f);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_ne!(kept[0], archive);

    // A disk too small for the snapshot: refused before anything is drained or written.
    let small = Mounted::tmpfs("8m");
    std::fs::rename(f.path("backups"), f.path("backups.kept")).unwrap();
    std::os::unix::fs::symlink(small.dir.path(), f.path("backups")).unwrap();
    let out = output(&mut f.disinto(&["backup"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("MB free"), "{err}");
    assert_eq!(std::fs::read_dir(small.dir.path()).unwrap().count(), 0);
    assert!(
        f.read(DRAIN_FILE).is_empty(),
        "a refused backup left agents drained"
    );
}

/// A tmpfs of `size` mounted on a temp dir (the bench runs as root), unmounted on drop.
struct Mounted {
    dir: TempDir,
}

impl Mounted {
    fn tmpfs(size: &str) -> Mounted {
        let dir = TempDir::new("small-disk").unwrap();
        ok(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path()));
        Mounted { dir }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

/// A release's extra Dockerfile lines: its migrations, and in place of the disinto binary a
/// script that says `version` and otherwise runs the real binary at `real` (a host path: the
/// upgrade runs it on the host, as an operator's extracted binary).
fn release_lines(version: &str, migrations: &str, real: &std::path::Path) -> String {
    let script = format!(
        "#!/bin/sh\\nif [ \"$1\" = --version ]; then echo \"disinto {version} (revision e2e)\"; exit 0; fi\\nexec {} \"$@\"\\n",
        real.display()
    );
    format!(
        "RUN printf '{}' > /opt/disinto/migrations.yml && rm /usr/local/bin/disinto \
         && printf '{script}' > /usr/local/bin/disinto && chmod 755 /usr/local/bin/disinto\n",
        migrations.replace('\n', "\\n")
    )
}

/// Every file in `dir` with its bytes.
fn files(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn an_upgrade_migrates_replaces_the_binary_and_a_failed_one_puts_everything_back() {
    // The operator's extracted binary (no launcher, no checkout), and the real one the
    // releases' stand-in binaries run.
    let bin = TempDir::new("operator-bin").unwrap();
    let real = bin.path().join("disinto.real");
    let extracted = bin.path().join("disinto");
    std::fs::copy(disinto_bin(), &real).unwrap();
    std::fs::copy(disinto_bin(), &extracted).unwrap();
    let v2 = "migrations:\n  - version: v0.2.0\n    add: { FORGE_TIMEOUT: \"30\" }\n    rename: { OLD_NAME: NEW_NAME }\n";
    let v3 = "migrations:\n  - version: v0.3.0\n    remove: [NEW_NAME]\n";
    // v0.3.0 writes into agent-state and never turns healthy.
    let v3_fails = "HEALTHCHECK --interval=1s --timeout=2s --retries=1 --start-period=0s CMD \
                    touch /home/agent/disinto/state/v3-was-here && false\n";
    let (f, ids) = Factory::new(
        &[
            ("v0.1.0", ""),
            ("v0.2.0", &release_lines("v0.2.0", v2, &real)),
            (
                "v0.3.0",
                &format!("{}{v3_fails}", release_lines("v0.3.0", v3, &real)),
            ),
        ],
        NO_SESSION,
    );
    let operator = |args: &[&str]| {
        let mut cmd = Command::new(&extracted);
        cmd.args(unverified(args))
            .current_dir(f.dir.path())
            .env("COMPOSE_PROJECT_NAME", &f.project)
            .env("DISINTO_WATCH", "0")
            .env("AGENT_CMD", NO_SESSION)
            .env_remove("DISINTO_BIN")
            .env_remove("AGENTS_IMAGE")
            .env_remove("DISINTO_REGISTRY");
        cmd
    };
    let agents = f.agents_running();
    write_markers(&agents, "one");
    let env_path = f.path(".env");
    let mut env = std::fs::read_to_string(&env_path).unwrap();
    env.push_str("# the operator's own line\nOLD_NAME=kept # a comment\n");
    std::fs::write(&env_path, &env).unwrap();

    // Without a terminal, an upgrade needs --yes: nothing changed.
    let out = output(&mut operator(&["upgrade", "v0.2.0"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--yes"), "{err}");
    assert_eq!(std::fs::read_to_string(&env_path).unwrap(), env);

    let out = output(&mut operator(&[
        "upgrade",
        "v0.2.0",
        "--yes",
        "--health-timeout",
        "60",
    ]));
    let printed = succeeded(&out, "upgrade v0.2.0");
    for step in [
        "[1/6]",
        "[3/6] snapshot",
        "[4/6] migrate .env",
        "[6/6] roll out v0.2.0",
    ] {
        assert!(printed.contains(step), "{printed}");
    }
    assert_eq!(f.agents_image_id(), ids[1]);
    let upgraded = f.agents_running();
    assert_eq!(read_markers(&upgraded), ["one"; 4]);
    let after = std::fs::read_to_string(&env_path).unwrap();
    let want = env
        .replace("AGENTS_IMAGE=v0.1.0", "AGENTS_IMAGE=v0.2.0")
        .replace("OLD_NAME=kept # a comment", "NEW_NAME=kept # a comment")
        + "FORGE_TIMEOUT=30\n";
    assert_eq!(after, want);
    let replaced = std::fs::read_to_string(&extracted).unwrap();
    assert!(replaced.contains("disinto v0.2.0"), "{replaced}");
    assert_eq!(
        std::fs::read(bin.path().join("disinto.prev")).unwrap(),
        std::fs::read(&real).unwrap()
    );
    let row = f.rows().pop().unwrap();
    assert_eq!(
        (field(&row, "version"), field(&row, "outcome")),
        ("v0.2.0", "deployed")
    );
    assert_eq!(archives(&f).len(), 1);

    // v0.3.0 fails after writing into agent-state: images, .env, compose file, binaries and
    // data all go back.
    let bins_before = files(bin.path());
    let compose_before = std::fs::read(f.path("docker-compose.yml")).unwrap();
    let out = output(&mut operator(&[
        "upgrade",
        "v0.3.0",
        "--yes",
        "--health-timeout",
        "20",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("restoring the snapshot"), "{err}");
    assert_eq!(f.agents_image_id(), ids[1], "{err}");
    assert_eq!(std::fs::read_to_string(&env_path).unwrap(), after);
    assert_eq!(
        std::fs::read(f.path("docker-compose.yml")).unwrap(),
        compose_before
    );
    assert_eq!(files(bin.path()), bins_before);
    assert!(
        f.read("/home/agent/disinto/state/v3-was-here").is_empty(),
        "v0.3.0's write survived"
    );
    assert_eq!(read_markers(&f.agents_running()), ["one"; 4]);
    assert_eq!(archives(&f).len(), 2);
    let row = f.rows().pop().unwrap();
    assert_eq!(field(&row, "version"), "v0.3.0");
    assert_eq!(field(&row, "outcome"), "reverted", "{err}");
}
