//! End-to-end: `cargo xtask release` on a real engine, a local htpasswd registry and local
//! bare git remotes. Two releases and a backport, a registry outage mid-release, re-release
//! refusal, signatures and attestations `cosign verify` accepts, an unsigned release on
//! purpose, and the token and the signing key nowhere to be found afterwards.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use xtask::testbed::Registry;

struct Bench {
    checkout: Checkout,
    registry: Registry,
    factory: TempDir,
    client_config: TempDir,
    /// The releases' TMPDIR: whatever they leave there (a login, a predicate) is found.
    tmp: TempDir,
    /// Release without the signing key in the environment.
    keyless: bool,
    project: String,
    transcript: String,
}

impl Bench {
    fn new() -> Bench {
        bench();
        let registry = Registry::start().unwrap();
        let factory = TempDir::new("factory").unwrap();
        std::fs::create_dir_all(factory.path().join("projects")).unwrap();
        Bench {
            checkout: Checkout::new("v0.1.0"),
            registry,
            factory,
            client_config: TempDir::new("client-config").unwrap(),
            tmp: TempDir::new("release-tmp").unwrap(),
            keyless: false,
            project: unique("rel"),
            transcript: String::new(),
        }
    }

    fn release(&mut self, args: &[&str]) -> Output {
        let mut cmd = self.checkout.xtask();
        cmd.arg("release")
            .args(args)
            .args(["--no-pull", "--cache", "--factory"])
            .arg(self.factory.path())
            .env("DISINTO_MIRRORS", "mirror, not-a-remote")
            .env("DISINTO_PUSH_ATTEMPTS", "2")
            // restart-agents' watch after the health gate is e2e_work's subject.
            .env("DISINTO_WATCH", "0")
            .env("COMPOSE_PROJECT_NAME", &self.project)
            .env("DOCKER_CONFIG", self.client_config.path())
            .env("TMPDIR", self.tmp.path())
            // restart-agents runs what this release signed.
            .env("DISINTO_TRUSTED_KEYS", signing_key().public_key_file())
            .env_remove("AGENTS_IMAGE");
        match self.keyless {
            true => cmd
                .env_remove("COSIGN_PRIVATE_KEY")
                .env_remove("COSIGN_PASSWORD"),
            false => signing_key().sign_env(&mut cmd),
        };
        let out = output(self.registry.release_env(&mut cmd));
        self.transcript
            .push_str(&String::from_utf8_lossy(&out.stdout));
        self.transcript
            .push_str(&String::from_utf8_lossy(&out.stderr));
        out
    }

    fn release_ok(&mut self, args: &[&str]) -> String {
        let out = self.release(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "release {args:?} failed:\n{text}");
        text
    }

    /// What the registry holds under `tag`, looked up with a login of the test's own.
    fn remote(&self, tag: &str) -> Option<xtask::release::registry::Remote> {
        self.inspect(&format!("{}/agents:{tag}", self.registry.namespace()))
    }

    /// A login of the test's own (a throwaway client config, deleted on drop).
    fn session(&self) -> xtask::release::registry::Session {
        let creds = xtask::release::registry::Credentials {
            user: self.registry.user.clone(),
            token: self.registry.password.clone(),
        };
        xtask::release::registry::Session::login(&self.registry.addr, &creds, 4).unwrap()
    }

    /// What the registry holds under `reference`.
    fn inspect(&self, reference: &str) -> Option<xtask::release::registry::Remote> {
        let sh = xshell::Shell::new().unwrap();
        self.session().inspect(&sh, reference).unwrap()
    }

    /// `cosign ARGS...` as an auditor runs it, with the public key and a login of its own.
    fn cosign(&self, args: &[&str]) -> Output {
        let session = self.session();
        output(
            Command::new("cosign")
                .args(args)
                .env("DOCKER_CONFIG", session.config_dir())
                .env_remove("COSIGN_PRIVATE_KEY")
                .env_remove("COSIGN_PASSWORD"),
        )
    }

    fn image_id(reference: &str) -> String {
        ok(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", reference]))
            .trim()
            .to_string()
    }

    fn record(&self, version: &str) -> serde_json::Value {
        let path = self.checkout.work().join(format!("release/{version}.json"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        xtask::testbed::compose_down(
            &self.project,
            &self.factory.path().join("docker-compose.yml"),
        );
        let ns = self.registry.namespace();
        for tag in ["v0.1.0", "v0.1.1", "v0.2.0", "latest"] {
            let _ = Command::new("docker")
                .args(["rmi", &format!("{ns}/agents:{tag}")])
                .output();
        }
    }
}

/// Standard base64 decoding (cosign prints attestations as base64 payloads).
fn unbase64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let values: Vec<u32> = text
        .bytes()
        .filter(|b| *b != b'=')
        .map(|b| ALPHABET.iter().position(|a| *a == b).expect("base64") as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in values.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, v)| n | (v << (18 - 6 * i)));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// The id of the test's signing key, as the record and disinto print key ids.
fn test_key_id() -> String {
    disinto::model::keys::parse_keys(&signing_key().public_pem, "test key").unwrap()[0]
        .id
        .clone()
}

/// Every image of `version` is signed by the test key and carries an SBOM and a provenance
/// that `cosign verify-attestation` accepts; the record says where; another key fails;
/// the agents image's disinto binary holds the public key.
fn assert_signed_and_attested(b: &Bench, version: &str) {
    let ns = b.registry.namespace();
    let record = b.record(version);
    let key_id = test_key_id();
    assert_eq!(record["signed"], true, "{record:#}");
    assert_eq!(record["key_id"].as_str(), Some(key_id.as_str()));
    let sign_step = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "sign-image")
        .unwrap();
    assert_eq!(sign_step["status"], "done");
    let public = signing_key().public_key_file();
    let public = public.to_str().unwrap();
    let other = xtask::testbed::SigningKey::generate().unwrap();
    let other_public = other.public_key_file();
    for name in ["agents", "edge", "reproduce"] {
        let image = &record["images"][name];
        let digest = image["digest"].as_str().unwrap();
        let reference = format!("{ns}/{name}@{digest}");
        assert_eq!(image["signed"], true, "{name}");
        assert_eq!(image["signature"]["key_id"].as_str(), Some(key_id.as_str()));
        let hex = digest.trim_start_matches("sha256:");
        let sig_tag = format!("{ns}/{name}:sha256-{hex}.sig");
        assert_eq!(image["signature"]["tag"].as_str(), Some(sig_tag.as_str()));
        let sig = b.inspect(&sig_tag).expect("the .sig tag in the registry");
        assert_eq!(
            image["signature"]["digest"].as_str(),
            Some(sig.digest.as_str())
        );
        assert_eq!(sig.layers.len(), 1, "{name}: one signature");

        let verify = ["--insecure-ignore-tlog=true", "--allow-http-registry"];
        let out = b.cosign(&[&["verify", "--key", public][..], &verify, &[&reference]].concat());
        succeeded(&out, &format!("cosign verify {reference}"));
        let wrong = b.cosign(
            &[
                &["verify", "--key", other_public.to_str().unwrap()][..],
                &verify,
                &[&reference],
            ]
            .concat(),
        );
        assert!(!wrong.status.success(), "{name} verified with another key");

        let attestations = image["attestations"].as_array().unwrap();
        assert_eq!(attestations.len(), 2, "{name}: {attestations:?}");
        let att_tag = format!("{ns}/{name}:sha256-{hex}.att");
        let att = b.inspect(&att_tag).expect("the .att tag in the registry");
        assert_eq!(att.layers.len(), 2, "{name}: two attestations, once each");
        for (kind, predicate_type) in [
            ("spdxjson", "https://spdx.dev/Document"),
            ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
        ] {
            let listed = attestations
                .iter()
                .find(|a| a["type"] == kind)
                .unwrap_or_else(|| panic!("{name}: no {kind} in {attestations:?}"));
            assert_eq!(listed["predicate_type"], predicate_type);
            assert_eq!(listed["tag"].as_str(), Some(att_tag.as_str()));
            let envelope = listed["digest"].as_str().unwrap();
            assert!(
                att.layers.iter().any(|(d, _)| d == envelope),
                "{name} {kind}"
            );
            let out = b.cosign(
                &[
                    &["verify-attestation", "--key", public, "--type", kind][..],
                    &verify,
                    &[&reference],
                ]
                .concat(),
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            succeeded(
                &out,
                &format!("cosign verify-attestation --type {kind} {reference}"),
            );
            let envelope: serde_json::Value =
                serde_json::from_str(text.lines().next().unwrap()).unwrap();
            let statement: serde_json::Value =
                serde_json::from_slice(&unbase64(envelope["payload"].as_str().unwrap())).unwrap();
            assert_eq!(statement["predicateType"], predicate_type);
            assert_eq!(statement["subject"][0]["digest"]["sha256"], hex);
            let predicate = &statement["predicate"];
            if kind == "spdxjson" {
                assert_eq!(predicate["spdxVersion"], "SPDX-2.3");
                let names: Vec<&str> = predicate["packages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                assert!(names.contains(&"libc6"), "{name}: {names:?}");
                // The disinto binary's crates, in agents only.
                assert_eq!(
                    names.contains(&"serde_json"),
                    name == "agents",
                    "{name}: {names:?}"
                );
                if name == "edge" {
                    assert!(names.contains(&"caddy"), "{names:?}");
                }
            } else {
                let def = &predicate["buildDefinition"];
                assert_eq!(
                    def["externalParameters"]["source"]["digest"]["gitCommit"].as_str(),
                    record["git_sha"].as_str()
                );
                assert_eq!(
                    def["externalParameters"]["formula"]["path"],
                    "formulas/release.toml"
                );
                assert_eq!(
                    def["resolvedDependencies"][1]["uri"],
                    "pkg:docker/debian:bookworm-slim"
                );
                let base = def["resolvedDependencies"][1]["digest"]["sha256"]
                    .as_str()
                    .unwrap();
                assert_eq!(base.len(), 64, "{def:#}");
                let steps = def["internalParameters"]["steps"].as_array().unwrap();
                assert!(steps
                    .iter()
                    .any(|s| s["id"] == "build-image" && s["status"] == "done"));
                assert!(predicate["runDetails"]["builder"]["id"].is_string());
            }
        }
    }
    // The binary the release ships trusts the key that signed it.
    let bin = b.tmp.path().join("disinto-from-image");
    extract_disinto(
        b.client_config.path(),
        &format!("{ns}/agents:{version}"),
        &bin,
    );
    let bytes = std::fs::read(&bin).unwrap();
    std::fs::remove_file(&bin).unwrap();
    let pem = signing_key().public_pem.trim();
    assert!(
        bytes.windows(pem.len()).any(|w| w == pem.as_bytes()),
        "the released disinto binary does not hold the release's public key"
    );
}

/// Fails if `token` appears in any file under `dir`.
fn assert_not_in_files(dir: &Path, token: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            assert_not_in_files(&path, token);
        } else if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(token), "the token is in {}", path.display());
        }
    }
}

/// Standard base64, as Docker stores `user:token` in a config file's `auths`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn assert_token_nowhere(b: &Bench) {
    let token = b.registry.password.as_str();
    let stored = base64(format!("{}:{token}", b.registry.user).as_bytes());
    assert!(!b.transcript.contains(token), "the token is in the output");
    // The signing key's password and every line of its (encrypted) body.
    let key = signing_key();
    let mut secrets = vec![token, stored.as_str(), key.password.as_str()];
    secrets.extend(
        key.private_pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16),
    );
    for secret in &secrets[2..] {
        assert!(
            !b.transcript.contains(secret),
            "the signing key or its password is in the output"
        );
    }
    // Nothing of a release's is left in its TMPDIR: no login, no predicate file.
    let left: Vec<String> = std::fs::read_dir(b.tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("disinto-"))
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    for secret in secrets {
        assert_not_in_files(b.tmp.path(), secret);
        assert_not_in_files(&b.checkout.work().join("release"), secret);
        assert_not_in_files(&b.checkout.work().join("target"), secret);
        assert_not_in_files(b.client_config.path(), secret);
        if let Some(home) = std::env::var_os("HOME") {
            assert_not_in_files(&Path::new(&home).join(".docker"), secret);
        }
        // A session's throwaway Docker config holding this login must be gone.
        for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("disinto-docker-config-")
            {
                assert_not_in_files(&entry.path(), secret);
            }
        }
    }
}

#[test]
fn the_scan_would_see_a_docker_login() {
    // The scan looks for what Docker writes, so a leftover login cannot slip past it.
    assert_eq!(base64(b"disinto-ci:secret"), "ZGlzaW50by1jaTpzZWNyZXQ=");
    assert_eq!(base64(b"ab"), "YWI=");
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn two_releases_upgrade_the_factory_and_a_third_is_refused() {
    let mut b = Bench::new();
    let out = b.release_ok(&["v0.1.0"]);
    assert!(
        out.contains("mirror not-a-remote is not a git remote"),
        "{out}"
    );

    b.checkout.bump("v0.2.0");
    b.release_ok(&["v0.2.0"]);

    // The registry: both versions and latest, latest being v0.2.0.
    let v1 = b.remote("v0.1.0").expect("v0.1.0 in the registry");
    let v2 = b.remote("v0.2.0").expect("v0.2.0 in the registry");
    let latest = b.remote("latest").expect("latest in the registry");
    assert_ne!(v1.digest, v2.digest);
    assert_eq!(latest.digest, v2.digest);
    let v2_ref = format!("{}/agents:v0.2.0", b.registry.namespace());
    assert_eq!(v2.config, Bench::image_id(&v2_ref));

    // The record holds what the registry reports, and every step in order.
    let record = b.record("v0.2.0");
    assert_eq!(record["digest"].as_str(), Some(v2.digest.as_str()));
    assert_eq!(record["image"].as_str(), Some(v2_ref.as_str()));
    let steps: Vec<(&str, &str)> = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(steps.len(), 9);
    assert!(
        steps.iter().all(|(_, status)| *status == "done"),
        "{steps:?}"
    );
    assert!(record["steps"][0]["started"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    // The release bundle: signed like the images, and a new factory starts from it.
    let ns = b.registry.namespace();
    let public = signing_key().public_key_file();
    let out = b.cosign(&[
        "verify",
        "--key",
        public.to_str().unwrap(),
        "--insecure-ignore-tlog=true",
        "--allow-http-registry",
        &format!("{ns}/factory:v0.2.0"),
    ]);
    succeeded(&out, "cosign verify of the bundle");
    {
        let session = b.session();
        let fresh = TempDir::new("bundle-factory").unwrap();
        let init = |version: &str| {
            output(
                operator(fresh.path(), &unique("bundle"), None)
                    .args(["init", "--release", version])
                    .env("DISINTO_REGISTRY", &ns)
                    .env("DOCKER_CONFIG", session.config_dir()),
            )
        };
        let said = succeeded(&init("v0.2.0"), "init --release v0.2.0");
        assert!(said.contains("verified (signed by"), "{said}");
        let env = std::fs::read_to_string(fresh.path().join(".env")).unwrap();
        assert!(env.contains("AGENTS_IMAGE=v0.2.0\n"), "{env}");
        assert!(env.contains(&format!("DISINTO_REGISTRY={ns}\n")), "{env}");
        let example = std::fs::read_to_string(b.checkout.work().join(".env.example")).unwrap();
        let first_key = example
            .lines()
            .find(|l| l.contains('=') && !l.starts_with('#'))
            .unwrap();
        let first_key = first_key.split('=').next().unwrap();
        assert!(env.contains(&format!("{first_key}=")), "{env}");
        let out = init("v9.9.9");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("does not exist"),
            "{err}"
        );
    }

    // Tags on origin and the mirror; the record committed and pushed to origin.
    for remote in ["origin", "mirror"] {
        let tags = Checkout::tags(&b.checkout.bare(remote));
        assert!(
            tags.contains("refs/tags/v0.1.0") && tags.contains("refs/tags/v0.2.0"),
            "{remote}: {tags}"
        );
    }
    let origin_main = ok(git(&b.checkout.bare("origin")).args(["rev-parse", "main"]));
    assert_eq!(origin_main.trim(), b.checkout.head());
    let log = ok(git(&b.checkout.work()).args(["log", "-1", "--format=%s"]));
    assert_eq!(log.trim(), "release: record v0.2.0");

    // The factory runs v0.2.0.
    let id = ok(Command::new("docker")
        .args(["compose", "-p", &b.project, "-f"])
        .arg(b.factory.path().join("docker-compose.yml"))
        .args(["ps", "-q", "agents"]))
    .trim()
    .to_string();
    let running = ok(Command::new("docker").args([
        "inspect",
        "--format",
        "{{.Config.Image}} {{.Image}}",
        &id,
    ]));
    // Pinned by the digest the registry holds (a tag moved later changes nothing).
    assert_eq!(
        running.trim(),
        format!("{v2_ref}@{} {}", v2.digest, v2.config)
    );
    wait_healthy(&id, Duration::from_secs(60));

    assert_signed_and_attested(&b, "v0.2.0");

    // Re-releasing refuses before anything changes.
    let head = b.checkout.head();
    let tags = Checkout::tags(&b.checkout.work());
    let out = b.release(&["v0.2.0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("v0.2.0 is already released"), "{stderr}");
    assert_eq!(b.checkout.head(), head);
    assert_eq!(Checkout::tags(&b.checkout.work()), tags);

    // A fresh clone (no progress file) is refused by preflight, naming the tag.
    let progress = b.checkout.work().join("target/release-progress");
    std::fs::remove_dir_all(&progress).unwrap();
    let out = b.release(&["v0.1.0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].starts_with("error: preflight: "), "{stderr}");
    assert!(errors[0].contains("tag v0.1.0 already exists"), "{stderr}");
    assert!(
        !progress.exists(),
        "a failed preflight left progress behind"
    );
    assert_eq!(b.checkout.head(), head);

    // A backport after v0.2.0: pushed under its version, and latest stays on v0.2.0.
    b.checkout.bump("v0.1.1");
    b.release_ok(&["v0.1.1", "--skip", "restart-agents"]);
    let backport = b.remote("v0.1.1").expect("v0.1.1 in the registry");
    assert_ne!(backport.digest, v2.digest);
    let latest = b.remote("latest").expect("latest in the registry");
    assert_eq!(latest.digest, v2.digest, "a backport moved latest");
    assert_eq!(b.record("v0.1.1")["latest"], false);
    assert_eq!(b.record("v0.2.0")["latest"], true);

    assert_token_nowhere(&b);
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn a_registry_outage_during_push_resumes_without_retagging_or_rebuilding() {
    let mut b = Bench::new();
    b.release_ok(&[
        "v0.1.0",
        "--skip",
        "push-image",
        "--skip",
        "sign-image",
        "--skip",
        "restart-agents",
        "--skip",
        "commit-result",
        "--skip",
        "publish-bundle",
    ]);
    let tag_before = Checkout::tags(&b.checkout.work());
    let tagged = format!("{}/agents:v0.1.0", b.registry.namespace());
    let image_before = Bench::image_id(&tagged);

    b.registry.stop();
    let out = b.release(&["v0.1.0", "--skip", "restart-agents"]);
    assert!(
        !out.status.success(),
        "release succeeded with the registry down"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr.lines().last().unwrap();
    assert!(
        error.starts_with("error: step push-image failed"),
        "{stderr}"
    );
    assert!(
        error.contains("run `cargo xtask release v0.1.0` again to resume"),
        "{error}"
    );
    assert!(error.contains("connection refused"), "{error}");
    assert!(!b.checkout.work().join("release/v0.1.0.json").exists());

    b.registry.resume().unwrap();
    let out = b.release_ok(&["v0.1.0", "--skip", "restart-agents"]);
    for step in ["tag-main", "build-image", "tag-image"] {
        assert!(
            out.contains(&format!("{step}: done earlier")),
            "{step} ran again:\n{out}"
        );
    }
    assert_eq!(Checkout::tags(&b.checkout.work()), tag_before, "re-tagged");
    assert_eq!(Bench::image_id(&tagged), image_before, "rebuilt");
    assert_eq!(b.remote("v0.1.0").unwrap().config, image_before);
    let remote = b.remote("v0.1.0").expect("pushed after the outage");
    let record = b.record("v0.1.0");
    assert_eq!(record["digest"].as_str(), Some(remote.digest.as_str()));
    assert_eq!(record["steps"][7]["id"].as_str(), Some("restart-agents"));
    assert_eq!(record["steps"][7]["status"].as_str(), Some("skipped"));

    assert_token_nowhere(&b);
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn push_alone_treats_the_same_image_as_pushed_and_a_different_one_as_an_error() {
    let mut b = Bench::new();
    b.release_ok(&["v0.1.0", "--skip", "restart-agents"]);
    let ns = b.registry.namespace();
    let push = |b: &Bench| {
        let mut cmd = b.checkout.xtask();
        cmd.args(["push", "v0.1.0"]);
        output(b.registry.release_env(&mut cmd))
    };
    let again = push(&b);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds this image"));

    // Another image under the same version tag: tags are immutable.
    let ctx = TempDir::new("other").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nLABEL other={}\n",
            xtask::testbed::BASE_IMAGE,
            unique("x")
        ),
    )
    .unwrap();
    ok(Command::new("docker")
        .args(["build", "-q", "-t", &format!("{ns}/agents:v0.1.0")])
        .arg(ctx.path()));
    let clash = push(&b);
    assert!(!clash.status.success());
    let stderr = String::from_utf8_lossy(&clash.stderr);
    assert!(stderr.contains("holds a different image under"), "{stderr}");
    b.transcript.push_str(&stderr);
    assert_token_nowhere(&b);
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn a_signal_during_a_registry_session_removes_the_login() {
    bench();
    // A registry address nobody answers on: the login is retried (connection refused is
    // transient) for as long as we like, with its throwaway client config on disk.
    let ns = "127.0.0.1:1/disinto";
    let version = "v9.9.9";
    for name in ["agents", "edge", "reproduce"] {
        ok(Command::new("docker").args([
            "tag",
            xtask::testbed::BASE_IMAGE,
            &format!("{ns}/{name}:{version}"),
        ]));
    }
    let tmp = TempDir::new("signal-tmp").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["push", version])
        .current_dir(root())
        .env("TMPDIR", tmp.path())
        .env("DISINTO_REGISTRY", ns)
        // The images tagged above are of one platform.
        .env("DISINTO_PLATFORMS", "linux/amd64")
        .env("DISINTO_PUSH_ATTEMPTS", "30")
        .env("GITHUB_TOKEN", "signal-test-token")
        .env("GITHUB_ACTOR", "someone")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let session_on_disk = || std::fs::read_dir(tmp.path()).unwrap().count() > 0;
    let start = std::time::Instant::now();
    while !session_on_disk() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        session_on_disk(),
        "the push never opened a registry session"
    );
    std::thread::sleep(Duration::from_millis(1500));
    ok(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let signalled = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "the push did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind after SIGTERM: {left:?}");
    for name in ["agents", "edge", "reproduce"] {
        let _ = Command::new("docker")
            .args(["rmi", &format!("{ns}/{name}:{version}")])
            .output();
    }
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn without_the_key_nothing_is_pushed_and_unsigned_is_said_on_purpose() {
    let mut b = Bench::new();
    b.keyless = true;
    let tags = Checkout::tags(&b.checkout.work());
    let out = b.release(&["v0.1.0", "--skip", "restart-agents"]);
    assert!(!out.status.success(), "released without the key");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].starts_with("error: preflight: "), "{stderr}");
    for word in ["COSIGN_PRIVATE_KEY", "COSIGN_PASSWORD", "--unsigned"] {
        assert!(errors[0].contains(word), "{stderr}");
    }
    assert!(b.remote("v0.1.0").is_none(), "pushed without the key");
    assert_eq!(
        Checkout::tags(&b.checkout.work()),
        tags,
        "tagged without the key"
    );
    assert!(!b.checkout.work().join("target/release-progress").exists());

    // On purpose: released, and the record says unsigned.
    b.release_ok(&["v0.1.0", "--skip", "restart-agents", "--unsigned"]);
    let record = b.record("v0.1.0");
    assert_eq!(record["signed"], false);
    assert!(record.get("key_id").is_none(), "{record:#}");
    let ns = b.registry.namespace();
    for name in ["agents", "edge", "reproduce"] {
        let image = &record["images"][name];
        assert_eq!(image["signed"], false);
        assert!(image.get("signature").is_none() && image.get("attestations").is_none());
        let reference = format!("{ns}/{name}@{}", image["digest"].as_str().unwrap());
        let public = signing_key().public_key_file();
        let out = b.cosign(&[
            "verify",
            "--key",
            public.to_str().unwrap(),
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            &reference,
        ]);
        assert!(!out.status.success(), "{name}: an unsigned image verified");
    }
    let steps = record["steps"].as_array().unwrap();
    assert!(steps
        .iter()
        .any(|s| s["id"] == "sign-image" && s["status"] == "skipped"));
    // No key built into the binary of an unsigned release.
    let bin = b.tmp.path().join("disinto-from-image");
    extract_disinto(b.client_config.path(), &format!("{ns}/agents:v0.1.0"), &bin);
    let bytes = std::fs::read(&bin).unwrap();
    std::fs::remove_file(&bin).unwrap();
    let body = signing_key().public_pem.lines().nth(1).unwrap().to_string();
    assert!(!bytes.windows(body.len()).any(|w| w == body.as_bytes()));
    assert_token_nowhere(&b);
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn signing_resumes_where_it_stopped_and_signs_nothing_twice() {
    let mut b = Bench::new();
    let out = b.release_ok(&[
        "v0.1.0",
        "--skip",
        "restart-agents",
        "--skip",
        "commit-result",
        "--skip",
        "publish-bundle",
    ]);
    assert_eq!(out.matches("$ cosign sign ").count(), 3, "{out}");
    // What signing adds to every release of the suite (and of the benchmark), for the log.
    if let Some(line) = out.lines().find(|l| l.contains("signed and attested")) {
        eprintln!("sign-image: {}", line.trim());
    }
    assert_eq!(out.matches("$ cosign attest ").count(), 6, "{out}");
    // As if sign-image had stopped after signing edge and before its attestations.
    let path = b
        .checkout
        .work()
        .join("target/release-progress/v0.1.0.json");
    let mut progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    progress["steps"]["sign-image"]["status"] = "failed".into();
    progress["images"]["edge"]
        .as_object_mut()
        .unwrap()
        .remove("attestations");
    std::fs::write(&path, serde_json::to_string(&progress).unwrap()).unwrap();

    // (The bundle, signed too, is publish-bundle's: left out to count the images' signatures.)
    let out = b.release_ok(&[
        "v0.1.0",
        "--skip",
        "restart-agents",
        "--skip",
        "publish-bundle",
    ]);
    assert!(out.contains("push-image: done earlier"), "{out}");
    assert_eq!(
        out.matches("$ cosign sign ").count(),
        0,
        "signed twice:\n{out}"
    );
    assert_eq!(out.matches("$ cosign attest ").count(), 2, "{out}");
    assert!(out.contains("/edge@sha256:"), "{out}");
    assert_signed_and_attested(&b, "v0.1.0");
    assert_token_nowhere(&b);
}
