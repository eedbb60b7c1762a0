//! `cargo xtask release` on bad input and in a dry run: no Docker involved, so these run in a
//! plain `cargo test`. Each bad input is a one-line error and changes nothing.

mod common;

use std::process::{Command, Output};

use common::*;

/// A signing key as a CI secret holds it, for runs that never reach cosign (a dry run, a
/// refusal): its body and the password must appear nowhere in what the release prints.
const FAKE_KEY_BODY: &str = "eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OH19fQ";
const FAKE_KEY: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OH19fQ\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n";
const FAKE_PASSWORD: &str = "pw-never-printed-8c1f";

fn state(c: &Checkout) -> (String, String, String) {
    let status = ok(git(&c.work()).args(["status", "--porcelain", "--ignored"]));
    (c.head(), Checkout::tags(&c.work()), status)
}

/// The one `error:` line of a run that failed after printing its progress.
fn the_error(out: &Output) -> String {
    assert!(!out.status.success(), "succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "not one error line:\n{stderr}");
    errors[0].to_string()
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(stderr.trim().lines().count(), 1, "not one line:\n{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

#[test]
fn malformed_versions_are_refused_and_change_nothing() {
    let c = Checkout::new("v0.1.0");
    let before = state(&c);
    let too_long = format!("v1.0.0-{}", "a".repeat(122));
    for version in [
        "1.2.3",
        "v1.2",
        "v1.2.3.4",
        "v01.2.3",
        "",
        "v1.2.3 ",
        " v1.2.3",
        "v 1.2.3",
        // Valid semver, but no Docker tag: refused before anything is tagged or pushed.
        "v0.1.0+build.7",
        &too_long,
    ] {
        let out = output(c.xtask().args(["release", version]));
        let e = one_line_error(&out);
        assert!(
            e.contains(&format!("version {version:?}")),
            "{version:?}: {e}"
        );
    }
    assert_eq!(state(&c), before);
}

#[test]
fn malformed_formulas_are_refused_and_change_nothing() {
    let c = Checkout::new("v0.1.0");
    let path = c.work().join("formulas/release.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    let cases = [
        (
            good.replace("id = \"push-mirrors\"", "id = \"push-everything\""),
            "has no implementation",
        ),
        (
            good.replace("id = \"push-mirrors\"", "id = \"tag-main\""),
            "appears twice",
        ),
        (
            good.replace(
                "[[steps]]\nid = \"tag-image\"",
                "[[steps\nid = \"tag-image\"",
            ),
            "release.toml:",
        ),
        (
            good.replace("id = \"push-mirrors\"", "id = 3"),
            "invalid type",
        ),
    ];
    for (text, want) in cases {
        assert_ne!(text, good);
        std::fs::write(&path, &text).unwrap();
        ok(git(&c.work()).args(["commit", "--quiet", "-am", "formula"]));
        let before = state(&c);
        let out = output(c.xtask().args(["release", "v0.1.0", "--allow-branch"]));
        let e = one_line_error(&out);
        assert!(e.contains(want), "{want}: {e}");
        assert_eq!(state(&c), before);
    }
}

#[test]
fn unknown_step_flags_are_refused() {
    let c = Checkout::new("v0.1.0");
    for args in [["--skip", "restart"], ["--only", "push"], ["--from", "x"]] {
        let out = output(c.xtask().args(["release", "v0.1.0"]).args(args));
        let e = one_line_error(&out);
        assert!(e.contains("no such step"), "{e}");
    }
}

#[test]
fn dry_run_prints_every_command_masks_the_token_and_needs_no_docker() {
    let c = Checkout::new("v0.2.0");
    let before = state(&c);
    // A PATH with git and nothing else: a dry run must not reach for docker.
    let bin = TempDir::new("path").unwrap();
    let git_path = which::which("git").unwrap();
    std::os::unix::fs::symlink(git_path, bin.path().join("git")).unwrap();
    let token = "ghp_dryrunsecret0123456789";
    let out = output(
        c.xtask()
            .args(["release", "v0.2.0", "--dry-run"])
            .env("PATH", bin.path())
            .env("GITHUB_TOKEN", token)
            .env("GITHUB_ACTOR", "someone")
            .env("COSIGN_PRIVATE_KEY", FAKE_KEY)
            .env("COSIGN_PASSWORD", FAKE_PASSWORD)
            .env("DISINTO_REGISTRY", "127.0.0.1:5000/disinto")
            .env("DISINTO_MIRRORS", "mirror"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let commands: Vec<&str> = stdout.lines().filter(|l| l.starts_with("$ ")).collect();
    let position = |needle: &str| {
        commands
            .iter()
            .position(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in:\n{stdout}"))
    };
    let order = [
        "--password-stdin",
        // The real lookup: loopback registries are plain HTTP, so --insecure (the printed
        // plan is the command value that runs).
        "docker manifest inspect --insecure -v 127.0.0.1:5000/disinto/agents:v0.2.0",
        // Preflight proves the key opens; its public half is built into the binary.
        "cosign public-key --key env://COSIGN_PRIVATE_KEY",
        "git tag --annotate v0.2.0",
        "git push origin refs/tags/v0.2.0",
        "git push mirror refs/tags/v0.2.0",
        "cargo build --quiet --release --locked -p disinto",
        "docker build --file docker/agents/Dockerfile --tag disinto-agents:v0.2.0",
        "docker build --file docker/edge/Dockerfile --tag disinto-edge:v0.2.0",
        "docker build --file docker/reproduce/Dockerfile --tag disinto-reproduce:v0.2.0",
        "docker tag disinto-agents:v0.2.0 127.0.0.1:5000/disinto/agents:v0.2.0",
        "docker tag disinto-agents:v0.2.0 127.0.0.1:5000/disinto/agents:latest",
        "docker push 127.0.0.1:5000/disinto/agents:v0.2.0",
        "docker push 127.0.0.1:5000/disinto/agents:latest",
        "docker push 127.0.0.1:5000/disinto/edge:v0.2.0",
        "docker push 127.0.0.1:5000/disinto/reproduce:latest",
        // Signed offline by digest, in the registry login, plain HTTP for loopback only.
        "cargo tree --quiet --locked -p disinto -e normal",
        "cosign sign --key env://COSIGN_PRIVATE_KEY --tlog-upload=false --yes --allow-http-registry 127.0.0.1:5000/disinto/agents@DIGEST",
        "--entrypoint dpkg-query 127.0.0.1:5000/disinto/agents@DIGEST",
        "--type spdxjson --predicate SBOM.json 127.0.0.1:5000/disinto/agents@DIGEST",
        "--type slsaprovenance1 --predicate PROVENANCE.json 127.0.0.1:5000/disinto/agents@DIGEST",
        "cosign sign --key env://COSIGN_PRIVATE_KEY --tlog-upload=false --yes --allow-http-registry 127.0.0.1:5000/disinto/reproduce@DIGEST",
        "--type slsaprovenance1 --predicate PROVENANCE.json 127.0.0.1:5000/disinto/reproduce@DIGEST",
        "up --detach --no-deps agents",
        "git commit",
    ];
    let positions: Vec<usize> = order.iter().map(|n| position(n)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order: {positions:?}\n{stdout}"
    );
    // Every image of the release, each on a package image named exactly (built here, or
    // the previous release's when its inputs are the same), the base pulled first.
    assert!(
        stdout.contains("$ docker pull --quiet debian:bookworm-slim"),
        "{stdout}"
    );
    for image in ["agents", "edge", "reproduce"] {
        let packages = format!("127.0.0.1:5000/disinto/{image}:packages-v0.2.0");
        let built = position(&format!(
            "docker build --file docker/{image}/Dockerfile --target packages --tag {packages} "
        ));
        let on_it = position(&format!(
            "docker build --file docker/{image}/Dockerfile --tag disinto-{image}:v0.2.0 --build-arg PACKAGES={packages} "
        ));
        assert!(built < on_it, "{stdout}");
        assert!(!stdout.contains("--cache-from"), "{stdout}");
        assert!(
            stdout.contains(&format!(
                "docker manifest inspect --insecure -v 127.0.0.1:5000/disinto/{image}:v0.2.0"
            )),
            "{stdout}"
        );
    }
    assert!(!stdout.contains(token) && !stderr.contains(token));
    for secret in [FAKE_PASSWORD, FAKE_KEY_BODY] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    assert_eq!(state(&c), before);
    assert!(
        !c.work().join("target").exists(),
        "a dry run wrote progress"
    );
}

/// An ops repository with one commit on main, as the approval flow watches.
fn ops_repo() -> TempDir {
    let ops = TempDir::new("ops").unwrap();
    ok(git(ops.path()).args(["init", "--quiet", "-b", "main"]));
    std::fs::write(ops.path().join("README"), "ops\n").unwrap();
    ok(git(ops.path()).args(["add", "-A"]));
    ok(git(ops.path()).args(["commit", "--quiet", "-m", "ops"]));
    ops
}

/// Installs the git hook `name` of the repository `repo`, running `script`; returns its path.
fn install_hook(repo: &std::path::Path, name: &str, script: &str) -> std::path::PathBuf {
    let hook = repo.join(".git/hooks").join(name);
    std::fs::write(&hook, script).unwrap();
    let mut perms = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&hook, perms).unwrap();
    hook
}

#[test]
fn release_request_commits_the_vault_action_on_its_own_branch() {
    let c = Checkout::new("v0.2.0");
    let ops = ops_repo();

    ok(c.xtask()
        .args(["release-request", "v0.2.0", "--ops-repo"])
        .arg(ops.path()));
    let branch = ok(git(ops.path()).args(["branch", "--show-current"]));
    assert_eq!(
        branch.trim(),
        "main",
        "the operator's branch was not restored"
    );
    assert!(
        !ops.path().join("vault").exists(),
        "the action leaked onto main"
    );
    let text =
        ok(git(ops.path()).args(["show", "release/v0.2.0:vault/actions/release-v0.2.0.toml"]));
    let action: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(action["id"].as_str(), Some("release-v0.2.0"));
    assert_eq!(action["formula"].as_str(), Some("release"));
    assert!(action["context"].as_str().unwrap().contains(&c.head()));
    assert_eq!(action["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(action["secrets"][0].as_str(), Some("GITHUB_TOKEN"));

    // Asked twice, or with bad input: one line, nothing changes.
    let before = ok(git(ops.path()).args(["for-each-ref"]));
    let e = one_line_error(&output(
        c.xtask()
            .args(["release-request", "v0.2.0", "--ops-repo"])
            .arg(ops.path()),
    ));
    assert!(e.contains("exists already"), "{e}");
    let e = one_line_error(&output(
        c.xtask()
            .args(["release-request", "0.3.0", "--ops-repo"])
            .arg(ops.path()),
    ));
    assert!(e.contains("must start with 'v'"), "{e}");
    std::fs::write(ops.path().join("README"), "dirty\n").unwrap();
    let e = one_line_error(&output(
        c.xtask()
            .args(["release-request", "v0.3.0", "--ops-repo"])
            .arg(ops.path()),
    ));
    assert!(e.contains("uncommitted changes"), "{e}");
    assert_eq!(ok(git(ops.path()).args(["for-each-ref"])), before);
}

#[test]
fn a_dry_run_that_would_fail_says_so_after_the_whole_plan() {
    let c = Checkout::new("v0.2.0");
    let before = state(&c);
    std::fs::write(c.work().join("untracked-change"), "x\n").unwrap();
    let out = output(
        c.xtask()
            .args(["release", "v0.2.0", "--dry-run"])
            .env("GITHUB_TOKEN", "t")
            .env("GITHUB_ACTOR", "someone"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a dry run of a failing release passed:\n{stdout}"
    );
    assert!(
        stdout.contains("# preflight would fail: the work tree has uncommitted changes"),
        "{stdout}"
    );
    // The whole plan is still printed.
    assert!(stdout.contains("commit-result"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("dry run: the release would fail"),
        "{stderr}"
    );
    std::fs::remove_file(c.work().join("untracked-change")).unwrap();
    assert_eq!(state(&c), before);
}

#[test]
fn a_closed_pipe_ends_the_dry_run_quietly() {
    let c = Checkout::new("v0.2.0");
    let xtask = env!("CARGO_BIN_EXE_xtask");
    let out = output(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "'{xtask}' -C '{}' release v0.2.0 --dry-run | head -1",
                c.work().display()
            ))
            .env("GITHUB_TOKEN", "t")
            .env("GITHUB_ACTOR", "someone"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[test]
fn a_failed_release_request_leaves_nothing_behind_and_can_be_retried() {
    let c = Checkout::new("v0.2.0");
    let ops = ops_repo();
    // A hook that refuses every commit: the request's commit fails.
    let hook = install_hook(
        ops.path(),
        "pre-commit",
        "#!/bin/sh\necho refused by policy >&2\nexit 1\n",
    );
    let refs = ok(git(ops.path()).args(["for-each-ref"]));

    let out = output(
        c.xtask()
            .args(["release-request", "v0.2.0", "--ops-repo"])
            .arg(ops.path()),
    );
    assert!(!out.status.success());
    assert_eq!(
        ok(git(ops.path()).args(["for-each-ref"])),
        refs,
        "a branch was left"
    );
    assert_eq!(
        ok(git(ops.path()).args(["status", "--porcelain"])),
        "",
        "files were left"
    );
    assert_eq!(
        ok(git(ops.path()).args(["branch", "--show-current"])).trim(),
        "main"
    );

    std::fs::remove_file(&hook).unwrap();
    ok(c.xtask()
        .args(["release-request", "v0.2.0", "--ops-repo"])
        .arg(ops.path()));
    ok(git(ops.path()).args(["rev-parse", "--verify", "release/v0.2.0"]));
}

/// `release VERSION --dry-run` with credentials and a registry set; PATH as the test has it.
fn dry_run(c: &Checkout, version: &str) -> Output {
    output(&mut dry_run_cmd(c, version))
}

fn dry_run_cmd(c: &Checkout, version: &str) -> Command {
    let mut cmd = c.xtask();
    cmd.args(["release", version, "--dry-run"])
        .env("GITHUB_TOKEN", "t")
        .env("GITHUB_ACTOR", "someone")
        .env("COSIGN_PRIVATE_KEY", FAKE_KEY)
        .env("COSIGN_PASSWORD", FAKE_PASSWORD)
        .env("DISINTO_REGISTRY", "127.0.0.1:5000/disinto")
        .env_remove("DISINTO_MIRRORS");
    cmd
}

#[test]
fn a_version_git_cannot_tag_is_refused_before_anything_is_tagged() {
    // Valid semver and a valid Docker tag, but `refs/tags/v1.0.0-x.lock` is no git ref name.
    let version = "v1.0.0-x.lock";
    let c = Checkout::new(version);
    let before = state(&c);
    let e = one_line_error(&dry_run(&c, version));
    assert!(e.contains(&format!("version {version:?}")), "{e}");
    let e = one_line_error(&output(
        c.xtask().args(["release", version, "--only", "tag-main"]),
    ));
    assert!(e.contains(&format!("version {version:?}")), "{e}");
    assert_eq!(state(&c), before);
    assert_eq!(Checkout::tags(&c.bare("origin")), "");
    // Nor is it requested: the request's branch would be named after it too.
    let ops = ops_repo();
    let refs = ok(git(ops.path()).args(["for-each-ref"]));
    let e = one_line_error(&output(
        c.xtask()
            .args(["release-request", version, "--ops-repo"])
            .arg(ops.path()),
    ));
    assert!(e.contains(&format!("version {version:?}")), "{e}");
    assert_eq!(ok(git(ops.path()).args(["for-each-ref"])), refs);
}

/// The `docker tag` and `docker push` lines of a dry run that name `latest`.
fn latest_commands(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("$ docker tag ") || l.starts_with("$ docker push "))
        .filter(|l| l.ends_with(":latest"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_backport_leaves_latest_on_the_highest_release() {
    let c = Checkout::new("v0.1.5");
    let work = c.work();
    // v0.2.0 is released: its tag on origin, and not in this clone (a fresh CI checkout).
    ok(git(&work).args(["tag", "v0.2.0"]));
    ok(git(&work).args(["push", "--quiet", "origin", "refs/tags/v0.2.0"]));
    ok(git(&work).args(["tag", "-d", "v0.2.0"]));
    let before = state(&c);
    let backport = dry_run(&c, "v0.1.5");
    let stdout = String::from_utf8_lossy(&backport.stdout);
    assert!(
        backport.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&backport.stderr)
    );
    assert_eq!(latest_commands(&backport), Vec::<String>::new(), "{stdout}");
    for image in ["agents", "edge", "reproduce"] {
        let pushed = format!("$ docker push 127.0.0.1:5000/disinto/{image}:v0.1.5");
        assert!(stdout.lines().any(|l| l == pushed), "{stdout}");
    }
    assert_eq!(state(&c), before);

    // Known from a local tag alone, or from a release record alone: the same.
    ok(git(&c.bare("origin")).args(["tag", "-d", "v0.2.0"]));
    ok(git(&work).args(["tag", "v0.2.0"]));
    assert_eq!(
        latest_commands(&dry_run(&c, "v0.1.5")),
        Vec::<String>::new()
    );
    ok(git(&work).args(["tag", "-d", "v0.2.0"]));
    std::fs::create_dir_all(work.join("release")).unwrap();
    std::fs::write(work.join("release/v0.2.0.json"), "{}\n").unwrap();
    ok(git(&work).args(["add", "release"]));
    ok(git(&work).args(["commit", "--quiet", "-m", "record v0.2.0"]));
    assert_eq!(
        latest_commands(&dry_run(&c, "v0.1.5")),
        Vec::<String>::new()
    );

    // The highest release moves latest, every image of it; a pre-release above does not count.
    c.bump("v0.3.0");
    ok(git(&work).args(["tag", "v0.4.0-rc.1"]));
    let out = dry_run(&c, "v0.3.0");
    assert!(out.status.success());
    assert_eq!(
        latest_commands(&out).len(),
        6,
        "{:?}",
        latest_commands(&out)
    );
}

#[test]
fn a_release_request_interrupted_after_its_commit_is_not_made() {
    let c = Checkout::new("v0.2.0");
    let ops = ops_repo();
    // SIGTERM to the release-request (git's parent) once its commit exists: the worst moment,
    // when all that is left is to report success.
    install_hook(
        ops.path(),
        "post-commit",
        "#!/bin/sh\nrequest=$(awk '{print $4}' /proc/$PPID/stat)\n\
         [ \"$(cat /proc/$request/comm)\" = xtask ] && kill -TERM \"$request\"\n",
    );
    let refs = ok(git(ops.path()).args(["for-each-ref"]));

    let out = output(
        c.xtask()
            .args(["release-request", "v0.2.0", "--ops-repo"])
            .arg(ops.path()),
    );
    // Deferred, not fatal: it ends by itself, with an error, having undone the request.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        ok(git(ops.path()).args(["for-each-ref"])),
        refs,
        "the cancelled request's branch was left"
    );
    assert_eq!(ok(git(ops.path()).args(["status", "--porcelain"])), "");
    assert_eq!(
        ok(git(ops.path()).args(["branch", "--show-current"])).trim(),
        "main"
    );
}

#[test]
fn without_the_signing_key_the_release_refuses_unless_unsigned() {
    let c = Checkout::new("v0.2.0");
    let before = state(&c);
    let release = |args: &[&str], key: Option<(&str, &str)>| {
        let mut cmd = c.xtask();
        cmd.arg("release")
            .args(args)
            .env("GITHUB_TOKEN", "t")
            .env("GITHUB_ACTOR", "someone")
            .env("DISINTO_REGISTRY", "127.0.0.1:1/disinto")
            .env_remove("COSIGN_PRIVATE_KEY")
            .env_remove("COSIGN_PASSWORD")
            .env_remove("DISINTO_MIRRORS");
        if let Some((k, p)) = key {
            cmd.env("COSIGN_PRIVATE_KEY", k).env("COSIGN_PASSWORD", p);
        }
        output(&mut cmd)
    };
    // A real run: preflight refuses in one line naming both variables and --unsigned.
    let out = release(&["v0.2.0", "--skip", "push-image"], None);
    let e = the_error(&out);
    assert!(e.starts_with("error: preflight: "), "{e}");
    assert!(
        e.contains("COSIGN_PRIVATE_KEY")
            && e.contains("COSIGN_PASSWORD")
            && e.contains("--unsigned"),
        "{e}"
    );
    assert_eq!(state(&c), before);
    // Half a key is no key.
    let out = release(
        &["v0.2.0", "--skip", "push-image"],
        Some(("", FAKE_PASSWORD)),
    );
    let e = the_error(&out);
    assert!(e.contains("COSIGN_PRIVATE_KEY"), "{e}");
    assert!(!e.contains(FAKE_PASSWORD), "{e}");
    assert_eq!(state(&c), before);

    // A key that does not open (a wrong password, not a key at all): refused, and neither
    // the key nor the password is repeated (cosign, or its absence, says why).
    let out = release(
        &["v0.2.0", "--skip", "push-image"],
        Some((FAKE_KEY, FAKE_PASSWORD)),
    );
    let e = the_error(&out);
    assert!(e.starts_with("error: preflight: "), "{e}");
    assert!(e.contains("--unsigned"), "{e}");
    assert!(
        !e.contains(FAKE_PASSWORD) && !e.contains(FAKE_KEY_BODY),
        "{e}"
    );
    assert_eq!(state(&c), before);

    // The dry run says it would fail, after the whole plan.
    let out = release(&["v0.2.0", "--dry-run"], None);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .contains("# preflight would fail: COSIGN_PRIVATE_KEY and COSIGN_PASSWORD are not set"),
        "{stdout}"
    );

    // --unsigned on purpose: no cosign anywhere in the plan, and the key stays out of the build.
    let out = release(&["v0.2.0", "--dry-run", "--unsigned"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("cosign"), "{stdout}");
    assert!(
        stdout.contains("$ DISINTO_RELEASE_PUBLIC_KEY='' DISINTO_RELEASE_VERSION=v0.2.0"),
        "{stdout}"
    );
    assert!(!stdout.contains("sign-image"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[7/10] sign-image: skipped"),
        "{stdout}"
    );

    assert_eq!(state(&c), before);
}

#[test]
fn a_release_of_two_platforms_plans_each_platform_then_an_index() {
    let c = Checkout::new("v0.2.0");
    let before = state(&c);
    let out = output(dry_run_cmd(&c, "v0.2.0").env("DISINTO_PLATFORMS", "linux/amd64,linux/arm64"));
    // Whether this machine can build arm64 or not, the whole plan is printed.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("# platforms: linux/amd64, linux/arm64"),
        "{stdout}"
    );
    for name in ["agents", "edge", "reproduce"] {
        for platform in ["linux-amd64", "linux-arm64"] {
            let arch = platform.trim_start_matches("linux-");
            let tagged = format!(
                "$ docker tag disinto-{name}:{platform}-v0.2.0 127.0.0.1:5000/disinto/{name}:{platform}-v0.2.0"
            );
            assert!(stdout.contains(&tagged), "{name} {platform}:\n{stdout}");
            let pushed = format!("docker push 127.0.0.1:5000/disinto/{name}:{platform}-latest");
            assert!(stdout.contains(&pushed), "{name} {platform}:\n{stdout}");
            assert!(
                stdout.lines().any(|l| l.starts_with("$ docker build")
                    && l.contains(&format!("--tag disinto-{name}:{platform}-v0.2.0"))
                    && l.contains(&format!("--platform linux/{arch}"))),
                "{name} {platform}:\n{stdout}"
            );
        }
        let index = format!(
            "# PUT 127.0.0.1:5000/disinto/{name}:v0.2.0: an OCI image index of linux/amd64, linux/arm64"
        );
        assert!(stdout.contains(&index), "{name}:\n{stdout}");
    }
    // The arm64 package stage builds on the arm64 base, under its own name.
    assert!(
        stdout.contains("--build-arg BASE_IMAGE=debian:bookworm-slim-linux-arm64"),
        "{stdout}"
    );
    assert_eq!(state(&c), before);
}

#[test]
fn a_platform_that_is_not_os_arch_is_refused_in_one_line() {
    let c = Checkout::new("v0.2.0");
    let before = state(&c);
    let out = output(
        c.xtask()
            .args(["release", "v0.2.0", "--dry-run"])
            .env("DISINTO_PLATFORMS", "linux/amd64 arm64"),
    );
    let e = one_line_error(&out);
    assert!(
        e.contains("DISINTO_PLATFORMS: platform \"arm64\" is not os/arch[/variant]"),
        "{e}"
    );
    assert_eq!(state(&c), before);
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn a_platform_this_machine_cannot_build_is_refused_before_anything_is_built() {
    bench();
    let c = Checkout::new("v7.7.7");
    let before = state(&c);
    let out = output(
        c.xtask()
            .args(["release", "v7.7.7", "--unsigned", "--skip", "push-image"])
            .args(["--skip", "restart-agents", "--skip", "publish-bundle"])
            .env("DISINTO_PLATFORMS", "linux/amd64,linux/s390x")
            .env_remove("DISINTO_MIRRORS"),
    );
    let e = the_error(&out);
    assert!(e.starts_with("error: preflight: "), "{e}");
    assert!(e.contains("linux/s390x"), "{e}");
    assert!(!e.contains("linux/amd64"), "{e}");
    // Nothing tagged, nothing built: no build tag of that version for either platform.
    assert_eq!(state(&c), before);
    for platform in ["linux-amd64", "linux-s390x"] {
        let tag = format!("disinto-agents:{platform}-v7.7.7");
        let found = output(Command::new("docker").args(["image", "inspect", &tag]));
        assert!(!found.status.success(), "{tag} was built");
    }
}
