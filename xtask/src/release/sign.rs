//! sign-image: cosign signs each pushed digest with the release key and attaches its SBOM
//! and provenance as signed attestations, offline (key-based, no transparency log, the
//! `.sig`/`.att` tag scheme every registry serves). The key and its password stay in the
//! environment (`COSIGN_PRIVATE_KEY`, `COSIGN_PASSWORD`): cosign reads them itself through
//! `env://`, so no command line, log or file of ours ever holds them.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use disinto::engine::runner::shell_line;
use disinto::model::image_ref::AGENTS;
use disinto::model::time::now_rfc3339;
use xshell::Shell;

use super::config::release_var::{COSIGN_PASSWORD, COSIGN_PRIVATE_KEY};
use super::provenance::{self, ProvenanceInput, RanStep};
use super::registry::{is_loopback, login_lines, Session, LOGOUT_LINE};
use super::sbom::{self, Binary, SbomInput, DPKG_FORMAT};
use super::state::{Attestation, Signature};
use super::step::Step;
use super::Run;

/// Where cosign finds the private key: the environment variable, never a file.
const KEY_URI: &str = "env://COSIGN_PRIVATE_KEY";
/// Where the disinto binary lives in the agents image (the SBOM says so).
const BINARY_PATH: &str = "/usr/local/bin/disinto";

/// The public half of the release key, as cosign prints it, and its key id.
#[derive(Debug, Clone)]
pub(crate) struct ReleaseKey {
    pub pem: String,
    pub id: String,
}

/// `cosign public-key`: prints the public half of the key in the environment (which proves
/// the key and the password open it).
fn public_key_cmd() -> Command {
    let mut cmd = Command::new("cosign");
    cmd.args(["public-key", "--key", KEY_URI]);
    cmd
}

/// The line a dry run prints for the public key (also what build-image passes the build).
pub(crate) fn public_key_line() -> String {
    shell_line(public_key_cmd())
}

/// The registry flags of a cosign command on `reference`: plain HTTP for loopback only.
fn registry_flags(reference: &str) -> Vec<&'static str> {
    // The repository decides, whatever follows it (a dry run's placeholder digest).
    let repository = reference.split('@').next().unwrap_or(reference);
    match is_loopback(repository) {
        true => vec!["--allow-http-registry"],
        false => vec![],
    }
}

/// `cosign sign` of one digest, as run and as a dry run prints it.
pub(crate) fn sign_cmd(reference: &str) -> Command {
    let mut cmd = Command::new("cosign");
    cmd.args(["sign", "--key", KEY_URI, "--tlog-upload=false", "--yes"])
        .args(registry_flags(reference))
        .arg(reference);
    cmd
}

/// `cosign attest` of one predicate file on one digest, as run and as a dry run prints it.
/// `--replace`: a resumed release replaces its own attestation of that type, never stacks one.
pub(crate) fn attest_cmd(kind: &str, predicate: &str, reference: &str) -> Command {
    let mut cmd = Command::new("cosign");
    cmd.args([
        "attest",
        "--key",
        KEY_URI,
        "--tlog-upload=false",
        "--yes",
        "--replace",
    ])
    .args(registry_flags(reference))
    .args(["--type", kind, "--predicate", predicate])
    .arg(reference);
    cmd
}

/// The SBOM query of an image, as run and printed.
pub(crate) fn dpkg_cmd(image: &str) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args([
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "dpkg-query",
    ])
    .arg(image)
    .args(["-W", "-f", DPKG_FORMAT]);
    cmd
}

/// The crates of the disinto binary, as run and printed.
fn cargo_tree_cmd() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args([
        "tree", "--quiet", "--locked", "-p", "disinto", "-e", "normal", "--prefix", "none",
        "--format", "{p}",
    ]);
    cmd
}

/// An error message of cosign's with the secrets blotted out, should cosign ever echo them.
fn scrub(message: &str) -> String {
    let mut out = message.to_string();
    if let Ok(password) = std::env::var(COSIGN_PASSWORD) {
        if password.len() >= 4 {
            out = out.replace(&password, "***");
        }
    }
    if let Ok(key) = std::env::var(COSIGN_PRIVATE_KEY) {
        for line in key.lines().map(str::trim).filter(|l| l.len() >= 16) {
            out = out.replace(line, "***");
        }
    }
    out
}

/// The release key's public half, asked of cosign once per run: proves the key and the
/// password are right, gives build-image the key to build in and the record its id.
pub(crate) fn release_key<'c>(run: &'c mut Run<'_>) -> Result<&'c ReleaseKey> {
    if run.state.key.is_none() {
        run.plan.config.signing_key()?;
        which::which("cosign").map_err(|_| {
            anyhow::anyhow!("cosign not found on PATH: install cosign 2.x (Debian package cosign) to sign the release, or pass --unsigned")
        })?;
        let out = public_key_cmd()
            .stdin(Stdio::null())
            .output()
            .context("cannot run cosign")?;
        if !out.status.success() {
            bail!(
                "{COSIGN_PRIVATE_KEY} and {COSIGN_PASSWORD} do not open a cosign key ({}): set the key's PEM text and its password, or pass --unsigned",
                scrub(&disinto::engine::docker::last_line(&out.stderr))
            );
        }
        let pem = String::from_utf8_lossy(&out.stdout).into_owned();
        let keys = disinto::model::keys::parse_keys(&pem, "cosign public-key")?;
        let [key] = &keys[..] else {
            bail!(
                "cosign public-key printed {} public keys, not one",
                keys.len()
            );
        };
        run.state.key = Some(ReleaseKey {
            id: key.id.clone(),
            pem,
        });
    }
    run.state.key.as_ref().context("no release key")
}

/// The sign-image step: every image signed and attested, or a dry run's commands.
pub(super) fn sign_image(run: &mut Run<'_>) -> Result<()> {
    if run.opts.dry_run {
        return print_plan(run);
    }
    let key = release_key(run)?.clone();
    let progress = &run.state.progress;
    match &progress.built_key_id {
        Some(built) if *built != key.id => bail!(
            "the disinto binary of {} was built trusting key {built}, but COSIGN_PRIVATE_KEY is key {}: sign with the key it was built with, or start the release over (delete target/release-progress/{}.json)",
            run.plan.version, key.id, run.plan.version
        ),
        None if progress.done(Step::BuildImage) => bail!(
            "the disinto binary of {} was built without a release key (--unsigned), so it would not trust these signatures: start the release over with the key (delete target/release-progress/{}.json)",
            run.plan.version, run.plan.version
        ),
        _ => {}
    }
    let undigested = run.images_lacking(|p| p.digest.is_none());
    if !undigested.is_empty() {
        bail!(
            "push-image has not recorded a digest for {}: run `cargo xtask release {} --from push-image`",
            undigested.join(", "),
            run.plan.version
        );
    }
    let started = std::time::Instant::now();
    let crates = binary_crates(run)?;
    // Each platform's image is signed and attested; an image index (several platforms) is
    // signed too, so what `disinto up` pins is verified whole.
    let mut jobs = vec![];
    for index in 0..run.plan.images.len() {
        if run.plan.multi() {
            for platform in run.plan.platforms.clone() {
                jobs.push(job(run, index, Some(platform.to_string()), &crates)?);
            }
        }
        jobs.push(job(run, index, None, &crates)?);
    }
    run.session()?;
    let session = run.state.session.as_ref().context("no registry session")?;
    // The images are independent and each is a few round trips to the registry and one
    // container: signed side by side, a release waits for the slowest, not for the sum.
    let results: Vec<(Done, Result<()>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|job| {
                scope.spawn(|| {
                    let mut done = Done::default();
                    let result = sign_job(session, &key, job, &mut done);
                    (done, result)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    (
                        Done::default(),
                        Err(anyhow::anyhow!("a signing thread panicked")),
                    )
                })
            })
            .collect()
    });
    // Whatever was made is recorded, failed or not, so a re-run makes only what is missing.
    let mut first_error = None;
    for (job, (done, result)) in jobs.iter().zip(results) {
        let progress = run.state.progress.unit_mut(job.name, job.key.as_deref());
        if let Some(signature) = done.signature {
            progress.signature = Some(signature);
        }
        progress.attestations.extend(done.attestations);
        if let Err(e) = result {
            first_error.get_or_insert(e.context(format!("signing {}", job.reference)));
        }
    }
    // The session's Docker config (with the credential) is deleted now, not at exit.
    run.state.session = None;
    if let Some(e) = first_error {
        return Err(e);
    }
    eprintln!(
        "  signed and attested {} images in {:.1}s",
        jobs.len(),
        started.elapsed().as_secs_f64()
    );
    disinto::signals::check()
}

/// The crates of the disinto binary this checkout builds (for agents' SBOM).
fn binary_crates(run: &Run<'_>) -> Result<Vec<sbom::Crate>> {
    let root = run.plan.root();
    let out = cargo_tree_cmd()
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .context("cannot run cargo tree")?;
    if !out.status.success() {
        bail!(
            "cargo tree -p disinto failed: {}",
            disinto::engine::docker::last_line(&out.stderr)
        );
    }
    let lock_path = root.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("cannot read {}", lock_path.display()))?;
    sbom::crates(&String::from_utf8_lossy(&out.stdout), &lock)
}

/// What one image needs, fixed before the threads start: what is signed already, and the
/// documents' inputs (the SBOM's packages are read in the thread, from the image).
struct Job {
    name: &'static str,
    /// The platform of a release of several (none: the image, or its index).
    key: Option<String>,
    /// Whether it gets an SBOM and a provenance (an image index is signed alone: each of
    /// its platforms carries its own).
    attest: bool,
    /// `REPOSITORY@DIGEST`.
    reference: String,
    sig_tag: String,
    att_tag: String,
    /// The local image build-image made, when it is still here.
    local: Option<String>,
    signed: bool,
    attested: Vec<String>,
    sbom: SbomInput,
    provenance: ProvenanceInput,
}

/// What a thread made (recorded whether or not it finished).
#[derive(Default)]
struct Done {
    signature: Option<Signature>,
    attestations: Vec<Attestation>,
}

/// The job of the image at `index`, for one platform (`key`) or whole.
fn job(run: &Run<'_>, index: usize, key: Option<String>, crates: &[sbom::Crate]) -> Result<Job> {
    let image = &run.plan.images[index];
    let (name, repository) = (image.name(), image.repository.clone());
    let progress = run.state.progress.unit(name, key.as_deref());
    let digest = progress.digest.clone().context("no digest recorded")?;
    let hex = digest.trim_start_matches("sha256:").to_string();
    let key_id = run.state.key.as_ref().map(|k| k.id.clone());
    Ok(Job {
        name,
        attest: key.is_some() || !run.plan.multi(),
        key: key.clone(),
        reference: format!("{repository}@{digest}"),
        sig_tag: format!("{repository}:sha256-{hex}.sig"),
        att_tag: format!("{repository}:sha256-{hex}.att"),
        local: progress
            .image_id
            .clone()
            .filter(|id| disinto::engine::docker::image_present(id)),
        signed: progress
            .signature
            .as_ref()
            .is_some_and(|s| Some(&s.key_id) == key_id.as_ref()),
        attested: progress
            .attestations
            .iter()
            .map(|a| a.kind.clone())
            .collect(),
        sbom: SbomInput {
            name: name.to_string(),
            repository: repository.clone(),
            version: run.plan.version.clone(),
            digest: digest.clone(),
            created: now_rfc3339(),
            source_url: run.plan.config.source_url.clone(),
            debs: vec![],
            binary: (name == AGENTS.name).then(|| Binary {
                name: "disinto".into(),
                version: run.plan.version.clone(),
                path: BINARY_PATH.into(),
                crates: crates.to_vec(),
            }),
        },
        provenance: provenance_input(run, name, key.as_deref(), image.image.dockerfile)?,
    })
}

/// Signs and attests one image, skipping what is done; `done` gets what it makes.
fn sign_job(session: &Session, key: &ReleaseKey, job: &Job, done: &mut Done) -> Result<()> {
    // A shell of this thread's own: xshell's is not shared across threads.
    let sh = Shell::new()?;
    let reference = &job.reference;
    if !job.signed {
        eprintln!("$ {}", shell_line(sign_cmd(reference)));
        session
            .run(&format!("cosign sign {reference}"), || sign_cmd(reference))
            .map_err(|e| anyhow::anyhow!(scrub(&format!("{e:#}"))))?;
        let signed = session.inspect(&sh, &job.sig_tag)?.map(|r| r.digest);
        done.signature = Some(Signature {
            key_id: key.id.clone(),
            tag: job.sig_tag.clone(),
            digest: signed,
        });
    }
    if !job.attest {
        eprintln!("  signed {reference} (key {})", key.id);
        return Ok(());
    }
    if !job.attested.iter().any(|k| k == "spdxjson") {
        let mut input = job.sbom.clone();
        input.debs = sbom::parse_dpkg(&image_packages(session, job)?)
            .with_context(|| format!("the SBOM of {}", job.name))?;
        let attestation = attest(
            session,
            &sh,
            job,
            "spdxjson",
            "https://spdx.dev/Document",
            &sbom::spdx(&input),
        )?;
        done.attestations.push(Attestation {
            summary: Some(sbom::summary(&input)),
            ..attestation
        });
    }
    if !job.attested.iter().any(|k| k == provenance::TYPE) {
        let attestation = attest(
            session,
            &sh,
            job,
            provenance::TYPE,
            provenance::PREDICATE_TYPE,
            &provenance::predicate(&job.provenance),
        )?;
        done.attestations.push(Attestation {
            summary: Some(provenance::summary(&job.provenance)),
            ..attestation
        });
    }
    eprintln!("  signed {reference} (key {})", key.id);
    Ok(())
}

/// `dpkg-query` in the image: the local image build-image made when it is still here, else
/// the pushed digest, pulled in the session.
fn image_packages(session: &Session, job: &Job) -> Result<String> {
    let reference = job.reference.as_str();
    let image = match &job.local {
        Some(id) => id.as_str(),
        None => {
            session.run(&format!("docker pull {reference}"), || {
                let mut cmd = Command::new("docker");
                cmd.args(["pull", "--quiet", reference]);
                cmd
            })?;
            reference
        }
    };
    // `docker run` of a container that exits at once can lose its output (the attach
    // races the exit, under load): a Debian image always lists packages, so an empty
    // answer is asked again.
    for _ in 0..3 {
        let out = dpkg_cmd(image)
            .stdin(Stdio::null())
            .output()
            .context("cannot run docker")?;
        if !out.status.success() {
            bail!(
                "listing the Debian packages of {} failed: {}",
                job.name,
                disinto::engine::docker::last_line(&out.stderr)
            );
        }
        if !out.stdout.is_empty() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
    }
    Ok(String::new())
}

/// What the provenance of `name` states, from the progress so far.
fn provenance_input(
    run: &Run<'_>,
    name: &str,
    key: Option<&str>,
    dockerfile: &str,
) -> Result<ProvenanceInput> {
    let progress = &run.state.progress;
    let formula_path = run.plan.checkout.formula();
    let formula = std::fs::read(&formula_path)
        .with_context(|| format!("cannot read {}", formula_path.display()))?;
    // The steps before this one, as they went: this step is the one running.
    let steps = Step::ALL
        .iter()
        .take_while(|s| **s != Step::SignImage)
        .map(|s| {
            let record = progress.steps.get(s);
            RanStep {
                id: s.id().to_string(),
                status: record
                    .map(|r| {
                        serde_json::to_value(r.status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    })
                    .unwrap_or_else(|| "skipped".into()),
                started: record.and_then(|r| r.started.clone()),
                finished: record.and_then(|r| r.finished.clone()),
            }
        })
        .collect();
    let source_url = run.plan.config.source_url.clone();
    let invocation_id = std::env::var("CI_PIPELINE_URL")
        .ok()
        .filter(|v| !v.is_empty());
    Ok(ProvenanceInput {
        name: name.to_string(),
        version: run.plan.version.clone(),
        // The code that ran the build, at the commit that was built.
        builder_id: format!(
            "{}/tree/{}/xtask/src/release",
            source_url.trim_end_matches('/'),
            progress.git_sha
        ),
        source_url,
        git_sha: progress.git_sha.clone(),
        dockerfile: dockerfile.to_string(),
        formula_path: crate::FORMULA.to_string(),
        formula_sha256: sha256_hex(&formula),
        formula_steps: Step::ALL.iter().map(|s| s.id().to_string()).collect(),
        steps,
        base: progress.unit(name, key).base.map(|b| (b.name, b.digest)),
        refresh_packages: run.opts.refresh_packages,
        pull: !run.opts.no_pull,
        invocation_id,
        started: progress
            .steps
            .get(&Step::BuildImage)
            .and_then(|r| r.started.clone()),
        finished: now_rfc3339(),
    })
}

/// The lower-case hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `predicate` to a temporary file (removed on return), attests it, and says what
/// the registry now holds.
fn attest(
    session: &Session,
    sh: &Shell,
    job: &Job,
    kind: &str,
    predicate_type: &str,
    predicate: &serde_json::Value,
) -> Result<Attestation> {
    let text = serde_json::to_vec(predicate)?;
    let dir = disinto::fsx::TempDir::new("predicate")?;
    let file = dir.path().join(format!("{kind}.json"));
    std::fs::write(&file, &text).with_context(|| format!("cannot write {}", file.display()))?;
    let file = file.to_string_lossy().into_owned();
    let reference = &job.reference;
    eprintln!("$ {}", shell_line(attest_cmd(kind, &file, reference)));
    session
        .run(&format!("cosign attest --type {kind} {reference}"), || {
            attest_cmd(kind, &file, reference)
        })
        .map_err(|e| anyhow::anyhow!(scrub(&format!("{e:#}"))))?;
    let manifest = session.inspect_json(sh, &job.att_tag)?;
    Ok(Attestation {
        kind: kind.to_string(),
        predicate_type: predicate_type.to_string(),
        tag: job.att_tag.clone(),
        digest: manifest.and_then(|m| envelope_digest(&m, predicate_type)),
        predicate_sha256: sha256_hex(&text),
        summary: None,
    })
}

/// The digest of the newest envelope of `predicate_type` in a `.att` manifest
/// (`docker manifest inspect -v` output): its layer, annotated with the predicate type.
pub(crate) fn envelope_digest(manifest: &str, predicate_type: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(manifest).ok()?;
    let entry = match &value {
        serde_json::Value::Array(items) => items.first()?.clone(),
        other => other.clone(),
    };
    let manifest = ["OCIManifest", "SchemaV2Manifest"]
        .iter()
        .map(|k| &entry[*k])
        .find(|m| !m.is_null())?;
    manifest["layers"]
        .as_array()?
        .iter()
        .rev()
        .find(|l| l["annotations"]["predicateType"] == predicate_type)
        .and_then(|l| l["digest"].as_str())
        .map(str::to_string)
}

/// A dry run's sign-image: the login, every cosign command, the logout.
fn print_plan(run: &mut Run<'_>) -> Result<()> {
    let host = run.plan.registry_host();
    for line in login_lines(&host) {
        println!("$ {line}");
    }
    println!(
        "$ {}   # the disinto binary's crates, for agents' SBOM",
        shell_line(cargo_tree_cmd())
    );
    for image in &run.plan.images {
        let digest = run
            .state
            .progress
            .image(image.name())
            .digest
            .unwrap_or_else(|| "DIGEST".into());
        let reference = format!("{}@{digest}", image.repository);
        if digest == "DIGEST" {
            run.runner.note(&format!(
                "DIGEST: the digest push-image records for {}",
                image.version_ref
            ));
        }
        println!("$ {}", shell_line(sign_cmd(&reference)));
        println!(
            "$ {}   # the SBOM's Debian packages",
            shell_line(dpkg_cmd(&reference))
        );
        println!(
            "$ {}",
            shell_line(attest_cmd("spdxjson", "SBOM.json", &reference))
        );
        println!(
            "$ {}",
            shell_line(attest_cmd(provenance::TYPE, "PROVENANCE.json", &reference))
        );
    }
    println!("$ {LOGOUT_LINE}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_commands_hold_no_secret_and_plain_http_only_for_loopback() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let local = &format!("127.0.0.1:5000/disinto/agents@{digest}");
        assert_eq!(
            shell_line(sign_cmd(local)),
            format!("cosign sign --key env://COSIGN_PRIVATE_KEY --tlog-upload=false --yes --allow-http-registry {local}")
        );
        let remote = &format!("ghcr.io/disinto/agents@{digest}");
        assert_eq!(
            shell_line(attest_cmd("spdxjson", "/tmp/x.json", remote)),
            format!("cosign attest --key env://COSIGN_PRIVATE_KEY --tlog-upload=false --yes --replace --type spdxjson --predicate /tmp/x.json {remote}")
        );
        assert_eq!(
            public_key_line(),
            "cosign public-key --key env://COSIGN_PRIVATE_KEY"
        );
        for cmd in [
            sign_cmd(local),
            attest_cmd("x", "y", local),
            public_key_cmd(),
        ] {
            assert_eq!(
                cmd.get_envs().count(),
                0,
                "a cosign command carries no environment of its own"
            );
        }
    }

    #[test]
    fn the_envelope_digest_is_the_layer_of_its_predicate_type() {
        let manifest = r#"{"Descriptor":{"digest":"sha256:m"},"OCIManifest":{"layers":[
            {"digest":"sha256:old","annotations":{"predicateType":"https://spdx.dev/Document"}},
            {"digest":"sha256:prov","annotations":{"predicateType":"https://slsa.dev/provenance/v1"}},
            {"digest":"sha256:new","annotations":{"predicateType":"https://spdx.dev/Document"}}]}}"#;
        assert_eq!(
            envelope_digest(manifest, "https://spdx.dev/Document").as_deref(),
            Some("sha256:new")
        );
        assert_eq!(
            envelope_digest(manifest, provenance::PREDICATE_TYPE).as_deref(),
            Some("sha256:prov")
        );
        assert_eq!(envelope_digest(manifest, "other"), None);
        assert_eq!(envelope_digest("not json", "other"), None);
        assert_eq!(envelope_digest("{}", "other"), None);
    }
}
