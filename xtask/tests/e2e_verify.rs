//! End-to-end: the signature gate of `disinto up` and `rollback`, against a real htpasswd
//! registry and real cosign signatures (`cosign sign --key`, no transparency log). A signed
//! release runs; an unsigned one, one signed by another key, one wearing a signature copied
//! from another digest, and registries that answer 401, 404, 500 or nothing are each refused
//! with the factory untouched (the same agents container) and nothing pulled; a rollback to
//! a digest verified before works with the registry stopped; `--insecure-skip-verify` runs
//! anything and the history says so; `disinto verify` reports the key. A release of several
//! platforms (an image index) runs when the index and this host's entry are signed, and is
//! refused in one line when that entry is unsigned or missing; `verify` lists each platform.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use xtask::testbed::{Registry, SigningKey};

struct Operator {
    factory: PathBuf,
    project: String,
    docker_config: PathBuf,
    /// The factory's directory, removed after `down` (fields drop after `Drop::drop`).
    _dir: TempDir,
}

impl Operator {
    /// A factory of `ns`'s releases, initialized on `version`, reading the registry with the
    /// login in `docker_config`.
    fn init(ns: &str, prefix: &str, docker_config: &Path, version: &str) -> Operator {
        let dir = TempDir::new(prefix).unwrap();
        std::fs::write(
            dir.path().join(".env"),
            format!("DISINTO_REGISTRY={ns}\nPOLL_INTERVAL=1\n"),
        )
        .unwrap();
        let op = Operator {
            factory: dir.path().to_path_buf(),
            project: unique(prefix),
            docker_config: docker_config.to_path_buf(),
            _dir: dir,
        };
        succeeded(&op.disinto(&["init"], &[("AGENTS_IMAGE", version)]), "init");
        op
    }

    fn disinto(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = operator(&self.factory, &self.project, None);
        cmd.args(args).env("DOCKER_CONFIG", &self.docker_config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        output(&mut cmd)
    }

    fn up(&self, version: &str, extra: &[&str]) -> Output {
        let mut args = vec!["up", "agents"];
        args.extend(extra);
        self.disinto(&args, &[("AGENTS_IMAGE", version)])
    }

    /// The last row of `disinto history --json`.
    fn last_row(&self) -> serde_json::Value {
        let out = succeeded(&self.disinto(&["history", "--json"], &[]), "history");
        let line = out.lines().rfind(|l| l.starts_with('{')).unwrap();
        serde_json::from_str(line).unwrap()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.factory.join("docker-compose.yml").exists() {
            let _ = self.disinto(&["down", "--volumes"], &[]);
        }
    }
}

/// Removes this test's images of `repo` from the engine when the test ends, however it ends.
struct Images {
    repo: String,
}

impl Drop for Images {
    fn drop(&mut self) {
        let listed =
            output(Command::new("docker").args(["image", "ls", "--format", "{{.ID}}", &self.repo]));
        for id in String::from_utf8_lossy(&listed.stdout).lines() {
            let _ = Command::new("docker").args(["rmi", "--force", id]).output();
        }
    }
}

/// Tags `image` as `tag`, pushes it (client config `config`) and returns its registry digest;
/// the local tag is then removed, so only a pull brings it back.
fn push(config: &Path, image: &str, tag: &str) -> String {
    ok(Command::new("docker").args(["tag", image, tag]));
    ok(docker(config).args(["push", "--quiet", tag]));
    let digests = ok(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        tag,
    ]));
    let digests: Vec<String> = serde_json::from_str(digests.trim()).unwrap();
    let repo = tag.rsplit_once(':').unwrap().0;
    let digest = digests
        .iter()
        .find_map(|d| d.strip_prefix(&format!("{repo}@")))
        .unwrap_or_else(|| panic!("no digest of {tag} in {digests:?}"))
        .to_string();
    ok(Command::new("docker").args(["rmi", "--no-prune", tag]));
    digest
}

/// Builds this checkout's agents image with the label `org.disinto.e2e-verify=LABEL` (an
/// image of its own), pushes it as `tag` and returns its registry digest.
fn push_labelled(config: &Path, label: &str, tag: &str) -> String {
    let base = agents_image();
    let local = format!("{}-{label}", base.replace(':', "-verify:"));
    build_from_stdin(
        &local,
        &format!("FROM {base}\nLABEL org.disinto.e2e-verify=\"{label}\"\n"),
    );
    let digest = push(config, &local, tag);
    let _ = Command::new("docker")
        .args(["rmi", "--no-prune", &local])
        .output();
    digest
}

/// The key id disinto gives `key`.
fn key_id(key: &SigningKey) -> String {
    disinto::model::keys::parse_keys(&key.public_pem, "key").unwrap()[0]
        .id
        .clone()
}

/// `cosign sign --key` of `repo@digest`, as a release signs.
fn sign(config: &Path, key: &SigningKey, repo: &str, digest: &str) {
    ok(&mut key.cosign_sign(&format!("{repo}@{digest}"), config));
}

/// `curl` on the registry's API with its user's credentials, which it reads from stdin.
fn curl(registry: &Registry, args: &[&str]) -> Vec<u8> {
    let mut child = Command::new("curl")
        .args(["--silent", "--fail", "--config", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let config = format!("user = \"{}:{}\"\n", registry.user, registry.password);
    stdin.write_all(config.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "curl {args:?} failed");
    out.stdout
}

/// Puts the signature manifest of `from` under the signature tag of `to`: a signature
/// copied from another digest (its blobs are in the repository already).
fn copy_signature(registry: &Registry, ns: &str, from: &str, to: &str) {
    let base = format!(
        "http://{}/v2/{}/agents/manifests",
        registry.addr,
        ns.split_once('/').unwrap().1
    );
    let accept = "Accept: application/vnd.oci.image.manifest.v1+json";
    let manifest = curl(
        registry,
        &[
            "-H",
            accept,
            &format!("{base}/{}.sig", from.replace(':', "-")),
        ],
    );
    let file = TempDir::new("sig-manifest").unwrap();
    let path = file.path().join("manifest.json");
    std::fs::write(&path, &manifest).unwrap();
    curl(
        registry,
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.manifest.v1+json",
            "--data-binary",
            &format!("@{}", path.display()),
            &format!("{base}/{}.sig", to.replace(':', "-")),
        ],
    );
}

/// A loopback "registry" that answers every request with `status`, or never answers (`None`).
fn fake_registry(status: Option<u16>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = vec![];
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            match status {
                Some(code) => {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {code} Oops\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
                    );
                }
                // Hangs: the connection stays open, unanswered.
                None => held.push(stream),
            }
        }
    });
    addr
}

fn refused(op: &Operator, out: &Output, running: &str, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{what} was not refused:\n{stderr}");
    assert_eq!(
        agents_of(&op.project).as_deref(),
        Some(running),
        "{what}: the factory was touched:\n{stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{what}: not one line:\n{stderr}");
    stderr
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn only_images_signed_by_a_trusted_key_for_their_digest_run() {
    bench();
    let mut registry = Registry::start().unwrap();
    let ns = registry.namespace();
    let repo = format!("{ns}/agents");
    let _images = Images { repo: repo.clone() };
    let config = TempDir::new("verify-config").unwrap();
    registry.login(config.path()).unwrap();
    let key = signing_key();
    let stranger = SigningKey::generate().unwrap();

    // Five versions, five digests: each a label on this checkout's agents image.
    let base = agents_image();
    let mut digests = std::collections::BTreeMap::new();
    for v in ["v0.1.0", "v0.2.0", "v0.3.0", "v0.4.0", "v0.5.0"] {
        digests.insert(v, push_labelled(config.path(), v, &format!("{repo}:{v}")));
    }
    sign(config.path(), key, &repo, &digests["v0.1.0"]);
    sign(config.path(), key, &repo, &digests["v0.5.0"]);
    // v0.2.0 unsigned; v0.3.0 signed by a key nobody trusts; v0.4.0 wears v0.1.0's signature.
    sign(config.path(), &stranger, &repo, &digests["v0.3.0"]);
    copy_signature(&registry, &ns, &digests["v0.1.0"], &digests["v0.4.0"]);

    let op = Operator::init(&ns, "verify", config.path(), "v0.1.0");
    let dir = &op.factory;

    // Signed by the trusted key: verified, pulled by that digest, run, recorded.
    let key_id = key_id(key);
    let out = succeeded(&op.up("v0.1.0", &[]), "up v0.1.0");
    assert!(out.contains(&key_id), "{out}");
    let first = agents_of(&op.project).expect("agents runs");
    let row = op.last_row();
    assert_eq!(row["verified_by"], key_id.as_str(), "{row}");
    assert!(
        row["image"].as_str().unwrap().ends_with(&digests["v0.1.0"]),
        "{row}"
    );
    let remembered = std::fs::read_to_string(dir.join("state/verified.json")).unwrap();
    assert!(
        remembered.contains(&format!("{repo}@{}", digests["v0.1.0"])),
        "{remembered}"
    );
    let status = succeeded(&op.disinto(&["status"], &[]), "status");
    assert!(status.contains(&key_id), "{status}");

    // Refused, each with the factory untouched and nothing pulled.
    let not_pulled = |v: &str| {
        let gone = !output(Command::new("docker").args([
            "image",
            "inspect",
            &format!("{repo}@{}", digests[v]),
        ]))
        .status
        .success();
        assert!(gone, "{v} was pulled");
    };
    for (v, why) in [
        ("v0.2.0", "unsigned"),
        ("v0.3.0", "unknown key"),
        ("v0.4.0", "another image"),
    ] {
        let stderr = refused(&op, &op.up(v, &[]), &first, v);
        assert!(
            stderr.contains(why) && stderr.contains(&repo),
            "{v}: {stderr}"
        );
        not_pulled(v);
    }
    // No such version (404), no credentials (401), a registry failing (500) or hanging.
    refused(&op, &op.up("v9.9.9", &[]), &first, "a missing version");
    let anonymous = TempDir::new("no-login").unwrap();
    let out = op.disinto(
        &["up", "agents"],
        &[
            ("AGENTS_IMAGE", "v0.5.0"),
            ("DOCKER_CONFIG", anonymous.path().to_str().unwrap()),
        ],
    );
    let stderr = refused(&op, &out, &first, "no login");
    assert!(stderr.contains("401"), "{stderr}");
    not_pulled("v0.5.0");
    for status in [Some(500), None] {
        let fake = fake_registry(status);
        let start = std::time::Instant::now();
        let out = op.disinto(
            &["up", "agents"],
            &[
                ("AGENTS_IMAGE", "v0.1.0"),
                ("DISINTO_REGISTRY", &format!("{fake}/disinto")),
                ("DISINTO_REGISTRY_TIMEOUT", "2"),
            ],
        );
        refused(
            &op,
            &out,
            &first,
            &format!("a registry answering {status:?}"),
        );
        assert!(start.elapsed().as_secs() < 30, "not time-limited");
    }
    // A key file that is not a public key: refused before anything.
    let bad_keys = TempDir::new("bad-keys").unwrap();
    let bad = bad_keys.path().join("keys.pem");
    std::fs::write(&bad, &key.private_pem).unwrap();
    let out = op.disinto(
        &["up", "agents"],
        &[
            ("AGENTS_IMAGE", "v0.5.0"),
            ("DISINTO_TRUSTED_KEYS", bad.to_str().unwrap()),
        ],
    );
    refused(&op, &out, &first, "a private key as trusted keys");

    // Another signed release, read with the credentials of a Docker credential helper (as
    // `credsStore` names it; it answers from its environment), then back to v0.1.0 with the
    // registry gone: its digest was verified before, and its image is here.
    let helper = TempDir::new("cred-helper").unwrap();
    std::fs::create_dir_all(helper.path().join("bin")).unwrap();
    std::fs::create_dir_all(helper.path().join("config")).unwrap();
    let script = helper.path().join("bin/docker-credential-e2everify");
    std::fs::write(
        &script,
        "#!/bin/sh\nread -r host\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"%s\",\"Secret\":\"%s\"}' \"$host\" \"$E2E_REGISTRY_USER\" \"$E2E_REGISTRY_SECRET\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        helper.path().join("config/config.json"),
        r#"{"credsStore":"e2everify"}"#,
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        helper.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let helper_config = helper.path().join("config");
    let out = op.disinto(
        &["up", "agents"],
        &[
            ("AGENTS_IMAGE", "v0.5.0"),
            ("DOCKER_CONFIG", helper_config.to_str().unwrap()),
            ("PATH", &path),
            ("E2E_REGISTRY_USER", &registry.user),
            ("E2E_REGISTRY_SECRET", &registry.password),
        ],
    );
    succeeded(&out, "up v0.5.0 with a credential helper");
    let second = agents_of(&op.project).unwrap();
    assert_ne!(second, first);
    registry.stop();
    let out = op.disinto(&["rollback", "v0.1.0"], &[]);
    succeeded(&out, "rollback v0.1.0 with the registry stopped");
    assert_eq!(op.last_row()["verified_by"], key_id.as_str());
    assert!(
        op.last_row()["image"]
            .as_str()
            .unwrap()
            .ends_with(&digests["v0.1.0"]),
        "{}",
        op.last_row()
    );
    // Forgotten, the same rollback needs the registry: it is refused (the memory is what
    // made it work).
    std::fs::remove_file(dir.join("state/verified.json")).unwrap();
    let now = agents_of(&op.project).unwrap();
    refused(
        &op,
        &op.disinto(&["rollback", "v0.5.0"], &[]),
        &now,
        "rollback, nothing remembered, registry down",
    );
    registry.resume().unwrap();

    // --insecure-skip-verify runs the unsigned release, loudly, and the history says so.
    let out = succeeded(
        &op.up("v0.2.0", &["--insecure-skip-verify"]),
        "up --insecure-skip-verify",
    );
    assert!(out.contains("WARNING"), "{out}");
    let row = op.last_row();
    assert_eq!(row["skip_verify"], true, "{row}");
    assert!(row.get("verified_by").is_none(), "{row}");
    let history = succeeded(&op.disinto(&["history"], &[]), "history");
    assert!(history.contains("NOT VERIFIED"), "{history}");

    // `disinto verify`: the signed image's key, and what `cosign attest` attached (DSSE
    // envelopes as cosign writes them); the unsigned one fails.
    let predicates = TempDir::new("predicates").unwrap();
    let slsa = predicates.path().join("slsa.json");
    std::fs::write(
        &slsa,
        r#"{"buildDefinition":{"buildType":"https://disinto.dev/release/v1","externalParameters":{},"resolvedDependencies":[{"uri":"git+file:///src","digest":{"gitCommit":"0123456789abcdef0123456789abcdef01234567"}}]},"runDetails":{"builder":{"id":"https://disinto.dev/e2e"},"metadata":{"finishedOn":"2026-12-01T10:00:00Z"}}}"#,
    )
    .unwrap();
    let spdx = predicates.path().join("spdx.json");
    std::fs::write(
        &spdx,
        r#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"agents","dataLicense":"CC0-1.0","documentNamespace":"https://disinto.dev/e2e","creationInfo":{"created":"2026-12-01T10:00:00Z","creators":["Tool: e2e"]},"packages":[{"SPDXID":"SPDXRef-a","name":"bash","versionInfo":"5.2","downloadLocation":"NOASSERTION"},{"SPDXID":"SPDXRef-b","name":"anyhow","versionInfo":"1.0.0","downloadLocation":"NOASSERTION"}]}"#,
    )
    .unwrap();
    for (kind, file) in [("slsaprovenance1", &slsa), ("spdxjson", &spdx)] {
        let mut attest = Command::new("cosign");
        attest
            .args(["attest", "--yes", "--key", "env://COSIGN_PRIVATE_KEY"])
            .args([
                "--tlog-upload=false",
                "--allow-http-registry",
                "--type",
                kind,
            ])
            .arg("--predicate")
            .arg(file)
            .arg(format!("{repo}@{}", digests["v0.1.0"]))
            .env("DOCKER_CONFIG", config.path())
            .stdin(Stdio::null());
        ok(key.sign_env(&mut attest));
    }
    let out = op.disinto(
        &["verify", &format!("{repo}:v0.1.0"), "--json", "--sbom"],
        &[],
    );
    let text = succeeded(&out, "verify v0.1.0");
    let report: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(report[0]["verified"], true, "{text}");
    assert_eq!(report[0]["key"], key_id.as_str(), "{text}");
    assert_eq!(report[0]["digest"], digests["v0.1.0"].as_str(), "{text}");
    assert_eq!(
        report[0]["provenance"]["commit"], "0123456789abcdef0123456789abcdef01234567",
        "{text}"
    );
    assert_eq!(
        report[0]["provenance"]["builder"], "https://disinto.dev/e2e",
        "{text}"
    );
    assert_eq!(report[0]["sbom"]["packages"], 2, "{text}");
    assert_eq!(report[0]["sbom"]["list"][0]["name"], "bash", "{text}");
    let out = op.disinto(&["verify", &format!("{repo}:v0.3.0")], &[]);
    assert!(
        !out.status.success(),
        "verify passed a stranger's signature"
    );

    // `update --check`: the registry's tags, newer than what runs, within the channel.
    let check = |running: &str, extra: &[&str]| {
        let mut args = vec!["update", "--check"];
        args.extend(extra);
        op.disinto(&args, &[("AGENTS_IMAGE", running)])
    };
    let out = check("v0.1.0", &[]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(10), "{said}");
    assert!(said.contains("v0.2.0, v0.3.0, v0.4.0, v0.5.0"), "{said}");
    assert!(said.contains("disinto upgrade v0.5.0"), "{said}");
    let out = check("v0.1.0", &["--channel", "patch", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["newer"], serde_json::json!([]), "{report}");
    assert_eq!(report["tag_moved"], false, "{report}");
    // v0.5.0 ran here: up to date, and the registry still names the digest deployed...
    let out = check("v0.5.0", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...until the tag is moved to another image: an alarm of its own, whatever is newer.
    let moved = format!("{}-moved", base.replace(':', "-verify:"));
    build_from_stdin(
        &moved,
        &format!("FROM {base}\nLABEL org.disinto.e2e-verify=\"moved\"\n"),
    );
    push(config.path(), &moved, &format!("{repo}:v0.5.0"));
    let out = check("v0.5.0", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{err}");
    assert!(
        err.contains("ALARM") && err.contains(&digests["v0.5.0"]),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// A manifest of `repo` by digest, through disinto's own registry client: its bytes.
fn manifest_bytes(
    client: &disinto::engine::registry::Registry,
    path: &str,
    digest: &str,
) -> Vec<u8> {
    client
        .manifest(
            path,
            digest,
            disinto::model::signature::IMAGE_MANIFEST_TYPES,
        )
        .unwrap()
        .unwrap_or_else(|| panic!("{path}@{digest} is not in the registry"))
        .0
}

/// Pushes, under `tag`, the OCI image index of `entries` (platform, digest of a manifest
/// pushed before): its digest. Rendered by the model the release uses, pushed by disinto's
/// registry client, as the release pushes it.
fn push_index(
    client: &disinto::engine::registry::Registry,
    path: &str,
    tag: &str,
    entries: &[(&str, &str)],
) -> String {
    use disinto::model::index::{self, Entry};
    use disinto::model::platform::Platform;
    let entries: Vec<Entry> = entries
        .iter()
        .map(|(platform, digest)| {
            let bytes = manifest_bytes(client, path, digest);
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            Entry {
                platform: Platform::parse(platform).unwrap(),
                digest: digest.to_string(),
                media_type: json["mediaType"].as_str().unwrap().to_string(),
                size: bytes.len() as u64,
            }
        })
        .collect();
    let bytes = index::render(&entries).unwrap();
    client
        .push_manifest(path, tag, index::OCI_INDEX, &bytes)
        .unwrap()
}

#[test]
#[ignore = "needs the real Docker bench: run `cargo xtask test`"]
fn an_image_index_runs_when_it_and_this_hosts_platform_are_signed() {
    bench();
    let mut registry = Registry::start().unwrap();
    let ns = registry.namespace();
    let repo = format!("{ns}/agents");
    let path = repo.strip_prefix(&format!("{}/", registry.addr)).unwrap();
    let _images = Images { repo: repo.clone() };
    let config = TempDir::new("index-config").unwrap();
    registry.login(config.path()).unwrap();
    let key = signing_key();
    let client = disinto::engine::registry::Registry::new(&registry.addr)
        .unwrap()
        .with_credentials(disinto::model::docker_config::Credentials::Basic {
            user: registry.user.clone(),
            password: registry.password.clone(),
        });
    // The bench builds amd64 only: the "arm64" entries are amd64 images listed as arm64,
    // which is all the registry and the gate look at (the engine here never pulls them).
    let [a, b, c] = [
        ("index-a", "linux-amd64-v1.0.0"),
        ("index-b", "linux-arm64-v1.0.0"),
        ("index-c", "linux-amd64-v1.1.0"),
    ]
    .map(|(label, tag)| push_labelled(config.path(), label, &format!("{repo}:{tag}")));
    let (a, b, c) = (&a, &b, &c);
    // v1.0.0: both platforms signed. v1.1.0: this host's (amd64) entry unsigned. v1.2.0: no
    // amd64 entry at all. Every index is signed.
    let v1 = push_index(
        &client,
        path,
        "v1.0.0",
        &[("linux/amd64", a), ("linux/arm64", b)],
    );
    let v11 = push_index(
        &client,
        path,
        "v1.1.0",
        &[("linux/amd64", c), ("linux/arm64", b)],
    );
    let v12 = push_index(&client, path, "v1.2.0", &[("linux/arm64", a)]);
    for digest in [a, b, &v1, &v11, &v12] {
        sign(config.path(), key, &repo, digest);
    }

    let op = Operator::init(&ns, "vindex", config.path(), "v1.0.0");
    let dir = &op.factory;
    let key_id = key_id(key);

    // (a) Signed index, signed platforms: the index digest is pinned, the engine ran its own
    // platform's image, and the proof is remembered for this platform.
    succeeded(&op.up("v1.0.0", &[]), "up v1.0.0 (an index)");
    let running = agents_of(&op.project).expect("agents runs");
    let row = op.last_row();
    assert_eq!(row["verified_by"], key_id.as_str(), "{row}");
    assert!(
        row["image"].as_str().unwrap().ends_with(v1.as_str()),
        "{row}"
    );
    let label = ok(Command::new("docker").args([
        "inspect",
        "--format",
        "{{index .Config.Labels \"org.disinto.e2e-verify\"}}",
        &running,
    ]));
    assert_eq!(label.trim(), "index-a", "not the amd64 entry's image");
    let remembered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state/verified.json")).unwrap())
            .unwrap();
    let proof = &remembered["digests"][format!("{repo}@{v1}")];
    assert_eq!(proof["platform"], "linux/amd64", "{remembered}");

    // (d) status: the platform that runs.
    let out = op.disinto(&["status", "--json"], &[]);
    succeeded(&out, "status --json");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["platform"], "linux/amd64", "{status}");
    let text = succeeded(&op.disinto(&["status"], &[]), "status");
    assert!(text.contains("platform: linux/amd64"), "{text}");

    // verify: the index's signature and a line per platform, each with its digest.
    let out = op.disinto(&["verify", &format!("{repo}:v1.0.0"), "--json"], &[]);
    let text = succeeded(&out, "verify v1.0.0");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report[0]["verified"], true, "{text}");
    assert_eq!(report[0]["digest"], v1.as_str(), "{text}");
    assert_eq!(report[0]["key"], key_id.as_str(), "{text}");
    let platforms = report[0]["platforms"].as_array().unwrap();
    let listed: Vec<(&str, &str, bool)> = platforms
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap(),
                p["digest"].as_str().unwrap(),
                p["verified"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("linux/amd64", a.as_str(), true),
            ("linux/arm64", b.as_str(), true)
        ],
        "{text}"
    );
    let text = succeeded(
        &op.disinto(&["verify", &format!("{repo}:v1.0.0")], &[]),
        "verify v1.0.0",
    );
    for (platform, digest) in [("linux/amd64", a), ("linux/arm64", b)] {
        assert!(
            text.lines().any(|l| l.contains(platform)
                && l.contains(digest.as_str())
                && l.contains("verified")),
            "{text}"
        );
    }

    // (b) The index signed, this host's entry not: refused in one line, nothing pulled.
    let stderr = refused(
        &op,
        &op.up("v1.1.0", &[]),
        &running,
        "an unsigned amd64 entry",
    );
    assert!(
        stderr.contains("unsigned") && stderr.contains(c.as_str()),
        "{stderr}"
    );
    let pulled = output(Command::new("docker").args(["image", "inspect", &format!("{repo}@{c}")]));
    assert!(!pulled.status.success(), "the unsigned entry was pulled");
    // verify says which platform fails, and fails.
    let out = op.disinto(&["verify", &format!("{repo}:v1.1.0"), "--json"], &[]);
    assert!(!out.status.success(), "verify passed an unsigned platform");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report[0]["platforms"][0]["verified"], false, "{report}");
    assert_eq!(report[0]["platforms"][1]["verified"], true, "{report}");

    // (c) No entry for this host's platform: refused in one line, naming what there is.
    let stderr = refused(&op, &op.up("v1.2.0", &[]), &running, "no amd64 entry");
    assert!(
        stderr.contains("has no linux/amd64 image (it has linux/arm64)"),
        "{stderr}"
    );

    // With the registry down, the remembered index still passes on this platform...
    registry.stop();
    succeeded(&op.up("v1.0.0", &[]), "up v1.0.0 again, registry down");
    // ...and a proof made for another platform does not: it would need the registry.
    let file = dir.join("state/verified.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("\"linux/amd64\"", "\"linux/arm64\"")).unwrap();
    let now = agents_of(&op.project).unwrap();
    refused(
        &op,
        &op.up("v1.0.0", &[]),
        &now,
        "an index remembered for another platform, registry down",
    );
    registry.resume().unwrap();
}
