//! End-to-end: the recovery paths of `disinto up` and `disinto rollback` on the real engine.
//! SIGTERM while a rollout waits for health reverts it as a timeout does; `rollback` keeps
//! what runs when `.env` cannot be written, and says the line to set when it is lost midway;
//! a typo in AGENTS_IMAGE blinds neither `status` nor `rollback`; a healthy rollout the
//! history cannot record is a warning. Cheap: no release, no registry. The agents image built
//! from this checkout is tagged v0.1.0, and v0.2.0 is it with a health check that passes only
//! once the test says so (a gate file), so "waiting for health" lasts as long as the test
//! wants, and ends when it wants.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The gate of v0.2.0's health check: agents on v0.2.0 is healthy once this file exists.
const GATE: &str = "/tmp/healthy-gate";

/// A factory with only a `.env`, run through `bin/disinto` as an operator runs it.
struct Factory {
    dir: TempDir,
    project: String,
    /// Registry and namespace of its images: they are local tags, never pulled.
    ns: String,
    /// The keep tags rollouts made of images this test built, removed with it.
    keep: Vec<String>,
}

impl Factory {
    fn env(&self) -> PathBuf {
        self.dir.path().join(".env")
    }

    fn history_file(&self) -> PathBuf {
        self.dir.path().join(disinto::model::history::HISTORY_FILE)
    }

    fn disinto(&self, args: &[&str], agents_image: Option<&str>) -> Command {
        let mut cmd = operator(self.dir.path(), &self.project, agents_image);
        // Images built here, never pushed: nothing to verify them by.
        cmd.args(unverified(args));
        cmd
    }

    fn ok(&self, args: &[&str], agents_image: Option<&str>) -> String {
        succeeded(
            &output(&mut self.disinto(args, agents_image)),
            &format!("disinto {args:?}"),
        )
    }

    /// The container running agents now, if one runs.
    fn agents(&self) -> Option<String> {
        agents_of(&self.project)
    }

    /// The image id agents runs now (empty when none runs, or when the container went away
    /// between `ps` and `inspect`: a rollout may be replacing it while the test looks).
    fn agents_image_id(&self) -> String {
        agents_image_id_of(&self.project)
    }

    /// (version, outcome) of every record, as `disinto history --json` prints them.
    fn history(&self) -> Vec<(String, String)> {
        self.ok(&["history", "--json"], None)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                let field = |k: &str| v[k].as_str().unwrap_or("").to_string();
                (field("version"), field("outcome"))
            })
            .collect()
    }

    /// Starts `disinto ARGS`, and once agents runs `image` (the rollout waits for its
    /// health now) calls `meanwhile`; returns what the command printed and how long it ran
    /// after `meanwhile`.
    fn while_waiting(
        &self,
        args: &[&str],
        agents_image: Option<&str>,
        image: &str,
        meanwhile: impl FnOnce(u32),
    ) -> (Output, Duration) {
        let mut child = self
            .disinto(args, agents_image)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while self.agents_image_id() != image {
            if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "disinto {args:?} never ran agents on {image}:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // bin/disinto execs the program: the child is disinto itself.
        meanwhile(child.id());
        let after = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if after.elapsed() > Duration::from_secs(180) {
                let _ = child.kill();
                panic!("disinto {args:?} did not end");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        (child.wait_with_output().unwrap(), after.elapsed())
    }

    /// Opens v0.2.0's health gate in the running agents container.
    fn open_gate(&self) {
        let agents = self.agents().expect("no agents container");
        ok(Command::new("docker").args(["exec", &agents, "touch", GATE]));
    }
}

impl Drop for Factory {
    fn drop(&mut self) {
        let _ = self.disinto(&["down", "--volumes"], None).output();
        let tags = ["v0.1.0", "v0.2.0"].map(|v| format!("{}/agents:{v}", self.ns));
        for tag in tags.iter().chain(&self.keep) {
            let _ = Command::new("docker").args(["rmi", tag]).output();
        }
    }
}

fn image_id(reference: &str) -> String {
    ok(Command::new("docker").args(["inspect", "--format", "{{.Id}}", reference]))
        .trim()
        .to_string()
}

fn sigterm(pid: u32) {
    ok(Command::new("kill").args(["-TERM", &pid.to_string()]));
}

/// Standard error of `out`, and its exit code (None when a signal ended it).
fn ended(out: &Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn last(history: &[(String, String)]) -> (&str, &str) {
    let (version, outcome) = history.last().expect("an empty history");
    (version, outcome)
}

fn write_env(path: &Path, text: &str) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, text).unwrap();
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn interrupts_revert_and_recovery_paths_are_never_blocked() {
    bench();
    let base = agents_image();
    let mut f = Factory {
        dir: TempDir::new("interrupt").unwrap(),
        project: unique("int"),
        ns: format!("127.0.0.1:9/{}", unique("int")),
        keep: vec![],
    };
    let (v1, v2) = (
        format!("{}/agents:v0.1.0", f.ns),
        format!("{}/agents:v0.2.0", f.ns),
    );
    ok(Command::new("docker").args(["tag", base, &v1]));
    // Docker's own first check comes in an hour: until the gate opens, agents on v0.2.0 is
    // "starting", as a slow or hung release is (disinto's probe runs the same command).
    build_from_stdin(
        &v2,
        &format!("FROM {v1}\nHEALTHCHECK --interval=1h --start-period=1h CMD test -f {GATE}\n"),
    );
    let (id1, id2) = (image_id(&v1), image_id(&v2));
    let hex: String = id2.trim_start_matches("sha256:").chars().take(12).collect();
    f.keep.push(format!("disinto-keep/agents:{hex}"));
    let env = format!(
        "AGENTS_IMAGE=v0.1.0\nDISINTO_REGISTRY={}\nPOLL_INTERVAL=1\n# keep this line\n",
        f.ns
    );
    write_env(&f.env(), &env);
    f.ok(&["init"], None);
    f.ok(&["up", "agents"], None);
    assert_eq!(f.agents_image_id(), id1);

    // SIGTERM while `up` waits for v0.2.0 to turn healthy: reverted, as a timeout would be,
    // long before the timeout.
    let up = ["up", "agents", "--health-timeout", "300"];
    let (out, took) = f.while_waiting(&up, Some("v0.2.0"), &id2, sigterm);
    let (code, stderr) = ended(&out);
    assert_eq!(code, Some(1), "it did not end by itself, failed:\n{stderr}");
    assert!(took < Duration::from_secs(120), "took {took:?}:\n{stderr}");
    assert_eq!(f.agents_image_id(), id1, "v0.1.0 is not back:\n{stderr}");
    assert_eq!(last(&f.history()), ("v0.2.0", "reverted"));
    let status: serde_json::Value =
        serde_json::from_str(&f.ok(&["status", "--json"], None)).unwrap();
    assert_eq!(status["deployed"]["version"], "v0.1.0", "{status}");

    // The same for `rollback`, which then keeps .env as it was.
    let rollback = ["rollback", "v0.2.0", "--health-timeout", "300"];
    let (out, _) = f.while_waiting(&rollback, None, &id2, sigterm);
    let (code, stderr) = ended(&out);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(f.agents_image_id(), id1, "v0.1.0 is not back:\n{stderr}");
    assert_eq!(last(&f.history()), ("v0.2.0", "reverted"));
    assert_eq!(std::fs::read_to_string(f.env()).unwrap(), env);

    // .env cannot be written (a link into a directory that is gone): refused before agents
    // is touched, and nothing is recorded.
    let history = std::fs::read(f.history_file()).unwrap();
    let agents = f.agents();
    std::fs::remove_file(f.env()).unwrap();
    std::os::unix::fs::symlink("gone/env", f.env()).unwrap();
    let out = output(&mut f.disinto(&["rollback", "v0.1.0"], None));
    let (code, stderr) = ended(&out);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(f.agents(), agents, "agents was recreated");
    assert_eq!(std::fs::read(f.history_file()).unwrap(), history);

    // .env is lost while the rollback waits: agents runs the version, healthy, and the error
    // says the line to set by hand.
    let envdir = f.dir.path().join("envdir");
    std::fs::create_dir(&envdir).unwrap();
    std::fs::write(envdir.join("env"), &env).unwrap();
    std::fs::remove_file(f.env()).unwrap();
    std::os::unix::fs::symlink("envdir/env", f.env()).unwrap();
    let (out, _) = f.while_waiting(&rollback, None, &id2, |_| {
        std::fs::remove_dir_all(&envdir).unwrap();
        f.open_gate();
    });
    let (code, stderr) = ended(&out);
    assert_eq!(code, Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("AGENTS_IMAGE=v0.2.0"), "{stderr}");
    assert_eq!(f.agents_image_id(), id2);
    assert_eq!(last(&f.history()), ("v0.2.0", "rolled-back"));

    // A typo in AGENTS_IMAGE, the line rollback rewrites: status still sees, rollback repairs.
    let typo = env.replace("AGENTS_IMAGE=v0.1.0", "AGENTS_IMAGE=v0.1");
    write_env(&f.env(), &typo);
    let status = f.ok(&["status"], None);
    assert!(status.lines().any(|l| l.starts_with("agents ")), "{status}");
    f.ok(&["rollback", "v0.1.0", "--health-timeout", "120"], None);
    assert_eq!(std::fs::read_to_string(f.env()).unwrap(), env);
    assert_eq!(f.agents_image_id(), id1);
    assert_eq!(last(&f.history()), ("v0.1.0", "rolled-back"));

    // A healthy rollout whose record cannot be written (the history turned into a directory
    // while it waited) succeeds with a warning naming what runs.
    let history = std::fs::read(f.history_file()).unwrap();
    let (out, _) = f.while_waiting(&up, Some("v0.2.0"), &id2, |_| {
        std::fs::remove_file(f.history_file()).unwrap();
        std::fs::create_dir(f.history_file()).unwrap();
        f.open_gate();
    });
    std::fs::remove_dir(f.history_file()).unwrap();
    std::fs::write(f.history_file(), &history).unwrap();
    let (code, stderr) = ended(&out);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains(&v2)),
        "{stderr}"
    );
    assert_eq!(f.agents_image_id(), id2);
}
