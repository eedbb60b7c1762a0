//! The release steps, one function each, in formula order (sign-image lives in `sign.rs`).
//! Each is safe to run again after a failure: it checks what is already there first.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use disinto::engine::runner::shell_line;
use disinto::factory::Factory;
use disinto::model::image_ref::AgentsImage;
use disinto::ops::rollout::Rollout;
use xshell::cmd;

use super::packages;
use super::registry::{inspect_cmd, login_lines, push_cmd, Session, LOGOUT_LINE};
use super::state::{write_json, Record};
use super::step::Step;
use super::{Run, Unit};
use disinto::model::platform::Platform;

/// Runs one step: the match is exhaustive, so a step without an implementation does not build.
pub(super) fn run(step: Step, run: &mut Run<'_>) -> Result<()> {
    match step {
        Step::Preflight => preflight(run),
        Step::TagMain => tag_main(run),
        Step::PushMirrors => push_mirrors(run),
        Step::BuildImage => build_image(run),
        Step::TagImage => tag_image(run),
        Step::PushImage => push_image(run),
        Step::SignImage => super::sign::sign_image(run),
        Step::RestartAgents => restart_agents(run),
        Step::CommitResult => commit_result(run),
        Step::PublishBundle => super::bundle::publish_bundle(run),
    }
}

fn preflight(run: &mut Run<'_>) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    let mut check = |result: Result<()>| {
        if let Err(e) = result {
            problems.push(format!("{e:#}"));
        }
    };
    check(version_file_agrees(run));
    check(work_tree_clean(run));
    check(on_primary_branch(run));
    check(tag_state(run));
    if run.plan.record_path().exists() {
        check(Err(anyhow::anyhow!(
            "{} exists: {} was released already; pick a new version",
            run.plan.record_path().display(),
            run.plan.version
        )));
    }
    if run.opts.dry_run {
        println!("$ docker version");
    } else if !disinto::engine::docker::daemon_answers() {
        check(
            disinto::engine::docker::require_client().and(Err(anyhow::anyhow!(
                "the Docker daemon does not answer: start it (systemctl start docker) and retry"
            ))),
        );
    }
    if run.plan.will_run(Step::BuildImage) {
        check(platforms_ready(run));
    }
    if run.plan.will_run(Step::PushImage) {
        check(registry_ready(run));
    }
    if needs_key(run) {
        check(key_ready(run));
    }
    if problems.is_empty() {
        return Ok(());
    }
    if run.opts.dry_run {
        for p in &problems {
            println!("# preflight would fail: {p}");
        }
        // The plan is printed to the end, and the dry run then fails as the release would.
        run.state.would_fail.extend(problems);
        return Ok(());
    }
    bail!("preflight: {}", problems.join("; "))
}

fn version_file_agrees(run: &Run<'_>) -> Result<()> {
    let path = run.plan.root().join("VERSION");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: it holds the version without 'v'",
            path.display()
        )
    })?;
    let want = run.plan.version.trim_start_matches('v');
    if text.trim() != want {
        bail!(
            "VERSION says {} but the release is {}: commit VERSION = {want} first",
            text.trim(),
            run.plan.version
        );
    }
    Ok(())
}

fn work_tree_clean(run: &Run<'_>) -> Result<()> {
    let status = run.git(&["status", "--porcelain"])?;
    if !status.trim().is_empty() {
        bail!("the work tree has uncommitted changes: commit or stash them first");
    }
    Ok(())
}

fn primary_branch(run: &Run<'_>) -> String {
    if let Ok(head) = run.git(&["symbolic-ref", "--short", "refs/remotes/origin/HEAD"]) {
        if let Some(branch) = head.trim().strip_prefix("origin/") {
            return branch.to_string();
        }
    }
    let has = |b: &str| {
        run.git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{b}"),
        ])
        .is_ok()
    };
    if !has("main") && has("master") {
        "master".into()
    } else {
        "main".into()
    }
}

fn current_branch(run: &Run<'_>) -> Option<String> {
    run.git(&["symbolic-ref", "--short", "-q", "HEAD"])
        .ok()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
}

fn on_primary_branch(run: &Run<'_>) -> Result<()> {
    if run.opts.allow_branch {
        return Ok(());
    }
    let primary = primary_branch(run);
    match current_branch(run) {
        Some(b) if b == primary => Ok(()),
        Some(b) => bail!("HEAD is on branch {b}, not the primary branch {primary}: switch to {primary} or pass --allow-branch"),
        None => bail!("HEAD is detached, not on the primary branch {primary}: switch to {primary} or pass --allow-branch"),
    }
}

fn tag_ref(run: &Run<'_>) -> String {
    format!("refs/tags/{}", run.plan.version)
}

fn tag_state(run: &Run<'_>) -> Result<()> {
    let local = run.git(&["tag", "--list", &run.plan.version])?;
    if run.plan.will_run(Step::TagMain) {
        if !local.trim().is_empty() {
            bail!("tag {} already exists locally: that version was released or started before; pick a new version", run.plan.version);
        }
        let remote = run
            .git(&["ls-remote", "--tags", "origin", &tag_ref(run)])
            .map_err(|_| {
                anyhow::anyhow!(
                    "cannot reach origin to check the tag: `git ls-remote origin` must work"
                )
            })?;
        if !remote.trim().is_empty() {
            bail!("tag {} already exists on origin: that version was released before; pick a new version", run.plan.version);
        }
        return Ok(());
    }
    // tag-main is skipped (a CI job started by the tag): the tag must be HEAD's.
    let tagged = run
        .git(&["rev-parse", &format!("{}^{{commit}}", tag_ref(run))])
        .map_err(|_| {
            anyhow::anyhow!(
                "tag-main is skipped but tag {} does not exist: create it or let tag-main run",
                run.plan.version
            )
        })?;
    if tagged.trim() != run.state.progress.git_sha {
        bail!(
            "tag {} points at {}, not HEAD {}: check out the tag",
            run.plan.version,
            tagged.trim(),
            run.state.progress.git_sha
        );
    }
    Ok(())
}

/// Every platform can be built here: its toolchain, its emulation and its base image (for
/// another platform than the engine's), said before anything is built.
fn platforms_ready(run: &Run<'_>) -> Result<()> {
    let platforms: Vec<String> = run.plan.platforms.iter().map(|p| p.to_string()).collect();
    if run.opts.dry_run {
        println!("# platforms: {}", platforms.join(", "));
        return Ok(());
    }
    let engine = disinto::engine::docker::engine_platform()?;
    // The base images the package stages start from (the same one, as the Dockerfiles are).
    let mut bases = std::collections::BTreeSet::new();
    for image in &run.plan.images {
        bases.insert(package_stage(run.plan.root(), image.image.dockerfile)?.1);
    }
    let mut problems: Vec<String> = vec![];
    for platform in &run.plan.platforms {
        // With pulls, build-image pulls the platform's base; else it must be here already.
        let ready = match run.opts.no_pull {
            true => bases
                .iter()
                .try_for_each(|base| crate::cross::check(platform, &engine, base)),
            false => crate::cross::toolchain(platform, &engine)
                .and_then(|_| crate::cross::emulation_ready(platform, &engine)),
        };
        if let Err(e) = ready {
            problems.push(format!("{e:#}"));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// Logs in (token on stdin) and makes sure the registry holds no image of this version yet
/// (nor, for several platforms, any platform's).
fn registry_ready(run: &mut Run<'_>) -> Result<()> {
    let host = run.plan.registry_host().to_string();
    let mut refs: Vec<String> = run
        .plan
        .images
        .iter()
        .map(|i| i.version_ref.clone())
        .collect();
    if run.plan.multi() {
        refs.extend(
            run.plan
                .units()
                .iter()
                .map(|u| run.plan.images[u.image].unit_ref(u)),
        );
    }
    if run.opts.dry_run {
        run.plan.config.credentials()?;
        print_login(&host);
        for r in &refs {
            println!("$ {}", shell_line(inspect_cmd(run.sh(), r)));
        }
        println!("$ {LOGOUT_LINE}");
        return Ok(());
    }
    let sh = run.sh();
    let session = run.session()?;
    let found: Result<Vec<_>> = refs
        .iter()
        .map(|r| session.inspect(sh, r).map(|f| (r, f)))
        .collect();
    // Log out now: the build between here and push-image can take minutes, and an
    // interrupted run must not leave a login on disk for that long.
    run.state.session = None;
    for (reference, remote) in found? {
        if let Some(remote) = remote {
            bail!(
                "the registry already holds {reference} ({}): versions are immutable, release a new one",
                remote.digest
            );
        }
    }
    run.state.version_absent = true;
    Ok(())
}

/// Whether this run needs the release key: it builds the binary that trusts it, or signs.
fn needs_key(run: &Run<'_>) -> bool {
    !run.opts.unsigned
        && (run.plan.will_run(Step::BuildImage) || run.plan.will_run(Step::SignImage))
}

/// The key and its password are in the environment and open the key (cosign public-key);
/// a dry run only checks they are set, and prints the command.
fn key_ready(run: &mut Run<'_>) -> Result<()> {
    if run.opts.dry_run {
        println!("$ {}", super::sign::public_key_line());
        return run.plan.config.signing_key();
    }
    let key = super::sign::release_key(run)?;
    eprintln!("  release key {}", key.id);
    Ok(())
}

/// In a dry run, prints the login as the real run does it (token masked).
fn print_login(host: &str) {
    for line in login_lines(host) {
        println!("$ {line}");
    }
}

fn tag_main(run: &mut Run<'_>) -> Result<()> {
    let sh = run.sh();
    let version = run.plan.version.clone();
    let existing = run.git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{}^{{commit}}", tag_ref(run)),
    ]);
    match existing {
        Ok(sha) if sha.trim() == run.state.progress.git_sha => eprintln!("  tag {version} already points at HEAD"),
        Ok(sha) => bail!("tag {version} exists and points at {}, not HEAD: delete it (git tag -d {version}) if it is a leftover", sha.trim()),
        Err(_) => {
            let message = format!("disinto {version}");
            run.runner.exec(cmd!(sh, "git tag --annotate {version} --message {message} HEAD"))?;
        }
    }
    let refspec = tag_ref(run);
    run.runner.exec(cmd!(sh, "git push origin {refspec}"))
        .with_context(|| format!("pushing tag {version} to origin failed: check the remote and your access, then run the release again"))
}

fn push_mirrors(run: &mut Run<'_>) -> Result<()> {
    let mirrors = run.plan.config.mirrors.clone();
    if mirrors.is_empty() {
        eprintln!("  no mirrors (DISINTO_MIRRORS is empty)");
        return Ok(());
    }
    let remotes = run.git(&["remote"])?;
    let refspec = tag_ref(run);
    let sh = run.sh();
    for mirror in mirrors {
        if !remotes.lines().any(|r| r.trim() == mirror.as_str()) {
            eprintln!("warning: mirror {mirror} is not a git remote here (git remote add {mirror} URL); skipped");
            continue;
        }
        if let Err(e) = run.runner.exec(cmd!(sh, "git push {mirror} {refspec}")) {
            eprintln!("warning: pushing {refspec} to mirror {mirror} failed ({e:#}); catch it up later with: git push {mirror} {refspec}");
        }
    }
    Ok(())
}

/// Where the release's disinto binary goes inside the agents build context; the Dockerfile
/// copies it to /opt/disinto/dist/ (and /usr/local/bin/disinto links to it).
const DIST_BINARY: &str = "docker/agents/dist/disinto";

/// Builds every image for every platform: for each platform, first the operator's binary
/// from this commit (it ships inside agents), then each Dockerfile's package stage (or the
/// previous release's package image, reused), then its last stage on top of it.
fn build_image(run: &mut Run<'_>) -> Result<()> {
    let revision = run.state.progress.git_sha.clone();
    let engine = engine_platform(run)?;
    let args = BuildArgs {
        version: format!("VERSION={}", run.plan.version),
        revision: format!("REVISION={revision}"),
        created: format!(
            "CREATED={}",
            run.git(&["show", "-s", "--format=%cI", "HEAD"])?.trim()
        ),
        source: format!("SOURCE={}", run.plan.config.source_url),
    };
    let mut pulled = std::collections::BTreeSet::new();
    for platform in run.plan.platforms.clone() {
        let started = std::time::Instant::now();
        build_disinto(run, &revision, &platform, &engine)?;
        for unit in run
            .plan
            .units()
            .into_iter()
            .filter(|u| u.platform == platform)
        {
            build_unit(run, &unit, &engine, &args, &mut pulled)?;
        }
        if run.plan.multi() && !run.opts.dry_run {
            let elapsed = started.elapsed();
            eprintln!("  {platform}: built in {:.1}s", elapsed.as_secs_f64());
            run.state
                .progress
                .build_ms
                .insert(platform.to_string(), elapsed.as_millis() as u64);
        }
    }
    Ok(())
}

/// The platform the engine runs (a dry run without an engine assumes linux/amd64).
fn engine_platform(run: &Run<'_>) -> Result<Platform> {
    match disinto::engine::docker::engine_platform() {
        Err(_) if run.opts.dry_run => Platform::parse("linux/amd64"),
        other => other,
    }
}

/// The build arguments every image of the release gets.
struct BuildArgs {
    version: String,
    revision: String,
    created: String,
    source: String,
}

/// `--platform P` when the build is for a platform other than the engine's, or the release
/// has several; nothing for a one-platform release on its own engine (as before platforms).
fn platform_flag(unit: &Unit, engine: &Platform) -> Vec<String> {
    match unit.multi || unit.platform != *engine {
        true => vec!["--platform".into(), unit.platform.to_string()],
        false => vec![],
    }
}

/// Builds one image for one platform on its package image, and records it.
fn build_unit(
    run: &mut Run<'_>,
    unit: &Unit,
    engine: &Platform,
    args: &BuildArgs,
    pulled: &mut std::collections::BTreeSet<String>,
) -> Result<()> {
    let sh = run.sh();
    let image = &run.plan.images[unit.image];
    let (name, tag, dockerfile, repository) = (
        image.name(),
        image.local_tag_of(unit),
        image.image.dockerfile,
        image.repository.clone(),
    );
    let packages = package_image(run, unit, engine, dockerfile, &repository, pulled)?;
    let from = format!("{}={}", packages::ARG, packages.reference);
    let labels: Vec<String> = match &packages.inputs {
        Some(inputs) => inputs.labels(&packages.image_id, &packages.tag),
        // A dry run knows neither the inputs nor the package image yet.
        None => packages::Inputs {
            base: "<base image id>".into(),
            hash: "<inputs>".into(),
        }
        .labels("<package image id>", &packages.tag),
    }
    .into_iter()
    .flat_map(|l| ["--label".to_string(), l])
    .collect();
    let platform = platform_flag(unit, engine);
    let BuildArgs {
        version,
        revision,
        created,
        source,
    } = args;
    // The image id as this build made it: the local tag is shared by every checkout on the
    // engine, and another one's build of the same version may move it before we read it.
    let iid = disinto::fsx::TempDir::new("iidfile")?;
    let iidfile: Vec<String> = match run.opts.dry_run {
        true => vec![],
        false => vec![
            "--iidfile".into(),
            iid.path().join("id").to_string_lossy().into_owned(),
        ],
    };
    // No --pull and no --no-cache here: the package image is named exactly, and the
    // steps above it are the factory's own files, which the cache keys by content.
    run.runner
        .exec(cmd!(
            sh,
            "docker build --file {dockerfile} --tag {tag} {platform...} {iidfile...} --build-arg {from} --build-arg {version} --build-arg {revision} --build-arg {created} --build-arg {source} {labels...} ."
        ))
        .with_context(|| format!("docker build of {name} for {} failed (see its output above)", unit.platform))?;
    if run.opts.dry_run {
        return Ok(());
    }
    let id = std::fs::read_to_string(iid.path().join("id"))
        .ok()
        .map(|id| id.trim().to_string())
        .filter(|id| id.starts_with("sha256:"))
        .with_context(|| format!("docker build of {name} wrote no image id (--iidfile)"))?;
    check_platform(&id, &unit.platform, name)?;
    // By construction the image starts with the package image's layers; a build that
    // did not would make the record lie, so it is an error.
    let (ours, theirs) = (layers(&id), layers(&packages.image_id));
    if theirs.is_empty() || !ours.starts_with(&theirs) {
        bail!(
            "the {name} image is not built on its package image {} (its layers are not the first of the image's): report this",
            packages.reference
        );
    }
    let note = match &packages.reused_from {
        Some(from) => packages::reused_note(from, &packages.reference, theirs.len(), ours.len()),
        None => packages.note.clone(),
    };
    match unit.multi {
        true => eprintln!("  {name} {}: {note}", unit.platform),
        false => eprintln!("  {name}: {note}"),
    }
    let base = base_image(&packages.base);
    let progress = run.state.progress.unit_mut(name, unit.key().as_deref());
    progress.image_id = Some(id);
    progress.packages = Some(note);
    progress.base = base;
    // A rebuilt image has a new digest: what was signed before is not it.
    progress.signature = None;
    progress.attestations.clear();
    progress.packages_image = Some(packages.reference);
    Ok(())
}

/// Refuses an image that is not of `platform` (an engine that ignored `--platform`, or a
/// base image of another platform under the platform's name).
fn check_platform(id: &str, platform: &Platform, name: &str) -> Result<()> {
    let has = disinto::engine::docker::image_platform(id)?;
    if !platform.matches(&has.os, &has.arch, has.variant.as_deref()) {
        bail!("the {name} image built for {platform} is {has}: check that its base image is of {platform}");
    }
    Ok(())
}

/// The package image an image of the release is built on.
struct PackageImage {
    /// `REPOSITORY:packages-vX.Y.Z` (the release that built it; `packages-linux-arm64-vX.Y.Z`
    /// in a release of several platforms), local now, pushed with the release.
    reference: String,
    tag: String,
    image_id: String,
    inputs: Option<packages::Inputs>,
    /// The release it was reused from, or none when built now.
    reused_from: Option<String>,
    /// Why it was built, for the record.
    note: String,
    /// The base image as the Dockerfile names it, and the local image it is for this
    /// platform (the same name on the engine's own platform).
    base: (String, String),
}

/// A Dockerfile's text and the base image its `packages` stage starts from.
fn package_stage(root: &std::path::Path, dockerfile: &str) -> Result<(String, String)> {
    let path = root.join(dockerfile);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let base = crate::dockerfile::image_for(&text, Some(packages::STAGE), &Default::default())
        .with_context(|| format!("{dockerfile}: no `{}` stage to build", packages::STAGE))?
        .base
        .with_context(|| {
            format!(
                "{dockerfile}: the `{}` stage starts from no image",
                packages::STAGE
            )
        })?;
    Ok((text, base))
}

/// The previous release's package image when its inputs (base image id, package stage
/// lines) are this one's, else the package stage built now, reproducibly, for the unit's
/// platform.
fn package_image(
    run: &Run<'_>,
    unit: &Unit,
    engine: &Platform,
    dockerfile: &str,
    repository: &str,
    pulled: &mut std::collections::BTreeSet<String>,
) -> Result<PackageImage> {
    let sh = run.sh();
    let name = run.plan.images[unit.image].name();
    let (text, base) = package_stage(run.plan.root(), dockerfile)?;
    // The base of another platform than the engine's has a name of its own here: the
    // engine's image store keeps one image per name.
    let local_base = match unit.platform == *engine {
        true => base.clone(),
        false => crate::cross::base_for(&base, &unit.platform)?,
    };
    let platform = platform_flag(unit, engine);
    let base_arg: Vec<String> = match local_base == base {
        true => vec![],
        false => vec!["--build-arg".into(), format!("BASE_IMAGE={local_base}")],
    };
    // The base is pulled here, not by the build (--pull): its id is one of the inputs.
    if !run.opts.no_pull && pulled.insert(local_base.clone()) {
        let platform_pull = platform.clone();
        let pulled = match local_base == base {
            true => run.runner.exec(cmd!(sh, "docker pull --quiet {base}")),
            // Pulled for its platform, then named for it, then the engine's own pulled back
            // under the plain name.
            false => run
                .runner
                .exec(cmd!(sh, "docker pull --quiet {platform_pull...} {base}"))
                .and_then(|_| run.runner.exec(cmd!(sh, "docker tag {base} {local_base}")))
                .and_then(|_| run.runner.exec(cmd!(sh, "docker pull --quiet {base}"))),
        };
        pulled.with_context(|| {
            format!("cannot pull the base image {base} for {} (--no-pull builds on the local one, {local_base})", unit.platform)
        })?;
    }
    let own_tag = match unit.multi {
        false => format!("packages-{}", run.plan.version),
        true => format!("packages-{}", unit.tag(&run.plan.version)),
    };
    let own_ref = format!("{repository}:{own_tag}");
    if run.opts.dry_run {
        run.runner.note(&format!(
            "{name}: build on the previous release's package image when its base image and package steps are these; else:"
        ));
        let epoch = "SOURCE_DATE_EPOCH=<the base image's creation time>";
        run.runner.exec(cmd!(
            sh,
            "docker build --file {dockerfile} --target packages --tag {own_ref} {platform...} {base_arg...} --build-arg {epoch} ."
        ))?;
        return Ok(PackageImage {
            reference: own_ref,
            tag: own_tag,
            image_id: String::new(),
            inputs: None,
            reused_from: None,
            note: String::new(),
            base: (base, local_base),
        });
    }
    let base_id = run.local_image_id(&local_base).with_context(|| {
        format!(
            "the base image of {} for {} is missing",
            name, unit.platform
        )
    })?;
    let inputs = packages::Inputs::of(&text, &base_id)
        .with_context(|| format!("{dockerfile}: the package stage"))?;
    let previous = match run.opts.refresh_packages {
        true => None,
        false => previous_release(run, repository, unit, engine)
            .map(|p| packages::Previous::from_labels(&labels(&p))),
    };
    let why = match packages::decide(&inputs, previous.as_ref(), run.opts.refresh_packages) {
        packages::Decision::Reuse { image, tag, from } => {
            let reference = format!("{repository}:{tag}");
            if have_image(run, &image, &reference)? {
                return Ok(PackageImage {
                    reference,
                    tag,
                    image_id: image,
                    inputs: Some(inputs),
                    reused_from: Some(from),
                    note: String::new(),
                    base: (base, local_base),
                });
            }
            (
                false,
                format!("rebuilt: {from}'s package image {reference} is neither here nor pullable"),
            )
        }
        packages::Decision::Build { no_cache, why } => (no_cache, why),
    };
    let (no_cache, note) = why;
    let no_cache = no_cache.then_some("--no-cache");
    let created = disinto::engine::docker::read(
        &["image", "inspect", "--format", "{{.Created}}", &base_id],
        "reading the base image's creation time",
    )?;
    let epoch = format!(
        "SOURCE_DATE_EPOCH={}",
        packages::source_date_epoch(&created)
    );
    run.runner
        .exec(cmd!(
            sh,
            "docker build --file {dockerfile} --target packages --tag {own_ref} {platform...} {base_arg...} --build-arg {epoch} {no_cache...} ."
        ))
        .with_context(|| format!("docker build of {name}'s package stage for {} failed (see its output above)", unit.platform))?;
    Ok(PackageImage {
        image_id: run.local_image_id(&own_ref)?,
        reference: own_ref,
        tag: own_tag,
        inputs: Some(inputs),
        reused_from: None,
        note,
        base: (base, local_base),
    })
}

/// Makes `reference` name the image `id`: tagged when the image is here, else pulled and
/// checked to be that image. False when it cannot be had.
fn have_image(run: &Run<'_>, id: &str, reference: &str) -> Result<bool> {
    let sh = run.sh();
    if disinto::engine::docker::image_present(id) {
        if disinto::engine::docker::image_id(reference).as_deref() != Some(id) {
            run.runner.exec(cmd!(sh, "docker tag {id} {reference}"))?;
        }
        return Ok(true);
    }
    if run.opts.no_pull || !pull(run, reference) {
        return Ok(false);
    }
    Ok(disinto::engine::docker::image_id(reference).as_deref() == Some(id))
}

/// `docker pull reference` from the release's registry: logged in (a session of its own,
/// gone when the pull is) when the token is set, as a private registry needs, else
/// anonymously. False when it cannot be had.
fn pull(run: &Run<'_>, reference: &str) -> bool {
    let sh = run.sh();
    let session = match run.plan.config.credentials() {
        Ok(credentials) => {
            let host = run.plan.registry_host();
            Session::login(&host, credentials, run.plan.config.push_attempts).ok()
        }
        Err(_) => None,
    };
    let mut pull = cmd!(sh, "docker pull --quiet {reference}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr();
    if let Some(session) = &session {
        pull = pull.env("DOCKER_CONFIG", session.config_dir());
    }
    pull.run().is_ok()
}

/// `cargo build --release -p disinto` stamped with this commit, copied into the agents build
/// context, and checked to say this version and revision. A target directory can be shared
/// (CARGO_TARGET_DIR, the tests' scratch target): the build, the copy and the check hold a
/// lock on it, so another checkout's release never builds its binary in between.
fn build_disinto(
    run: &mut Run<'_>,
    revision: &str,
    platform: &Platform,
    engine: &Platform,
) -> Result<()> {
    // The public half of the release key, built in so the binary trusts its own release.
    let key = match (run.opts.unsigned, run.opts.dry_run) {
        (true, _) => None,
        (false, true) => {
            let line = super::sign::public_key_line();
            run.runner.note(&format!("DISINTO_RELEASE_PUBLIC_KEY=\"$({line})\": the release key's public half, built into the binary"));
            None
        }
        (false, false) => Some(super::sign::release_key(run)?.clone()),
    };
    let sh = run.sh();
    let target = crate::target_dir(run.plan.root());
    // Said in preflight too: a platform this machine cannot build for stops the release
    // before anything is built.
    let toolchain = match crate::cross::toolchain(platform, engine) {
        Ok(toolchain) => toolchain,
        Err(e) if run.opts.dry_run => {
            println!("# build-image would fail: {e:#}");
            run.state.would_fail.push(format!("build-image: {e:#}"));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let built = toolchain.binary(&target);
    let dist = run.plan.root().join(DIST_BINARY);
    let want = format!("disinto {} (revision {revision})", run.plan.version);
    let _building = match run.opts.dry_run {
        true => None,
        // The directory this toolchain builds in (`target/cross` for another platform).
        false => Some(build_lock(&toolchain.cargo_target_dir(&target))?),
    };
    let mut build = toolchain
        .build_command(sh, &target)
        .env("DISINTO_REVISION", revision)
        .env("DISINTO_RELEASE_VERSION", &run.plan.version);
    // Always set when it runs (empty when unsigned), so no key of the caller's gets in; a
    // dry run that would sign has no key to print (the note above says where it comes from).
    if !run.opts.dry_run || run.opts.unsigned {
        build = build.env(
            "DISINTO_RELEASE_PUBLIC_KEY",
            key.as_ref().map_or("", |k| k.pem.as_str()),
        );
    }
    run.runner
        .exec(build)
        .context("building the disinto binary failed")?;
    if run.opts.dry_run {
        run.runner
            .note(&format!("copy {} to {DIST_BINARY}", built.display()));
        return Ok(());
    }
    if let Some(dir) = dist.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::copy(&built, &dist)
        .with_context(|| format!("cannot copy {} to {}", built.display(), dist.display()))?;
    let says = cmd!(sh, "{dist} --version")
        .quiet()
        .read()
        .unwrap_or_default();
    if says.trim() != want {
        bail!(
            "the disinto binary built for the release says {:?}, not {want:?}: check `cargo build --release -p disinto`",
            says.trim()
        );
    }
    run.state.progress.built_key_id = key.map(|k| k.id);
    Ok(())
}

/// An exclusive lock on `target` for one release's binary build (waited for, not refused:
/// another release's build takes seconds). The kernel drops it with the process.
pub fn build_lock(target: &std::path::Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    let path = target.join(".disinto-release-build.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

/// The base image the package stage built on, as the engine has it now (just after the
/// build): named as the Dockerfile names it, with its registry digest when it came from a
/// registry, else its image id. None when unknown.
fn base_image((name, local): &(String, String)) -> Option<super::state::BaseImage> {
    let out = disinto::engine::docker::run(&[
        "image",
        "inspect",
        "--format",
        // Not `join`: an image without registry digests has them as a list `join` refuses.
        "{{.Id}} {{range .RepoDigests}}{{.}} {{end}}",
        local,
    ])
    .ok()?;
    let mut words = out.split_whitespace();
    let id = words.next()?.to_string();
    // A registry digest of the base's own repository (it may have been pushed elsewhere too,
    // under other digests); else the image id, which names the same bytes locally.
    let repository = disinto::model::image_ref::ImageRef::parse(name)
        .map(|r| r.repository().to_string())
        .unwrap_or_default();
    let digest = words
        .filter_map(|d| d.split_once('@'))
        .find(|(repo, _)| *repo == repository)
        .map(|(_, digest)| digest.to_string())
        .unwrap_or(id);
    Some(super::state::BaseImage {
        name: name.clone(),
        digest,
    })
}

/// The previous release of `repository` for the unit's platform, as a local image whose
/// labels name its package image: the registry's latest (pulled, unless --no-pull: another
/// machine may have released since this one did), else the local one; none for a first
/// release. A release of several platforms finds each platform's under
/// `linux-arm64-latest`; on the engine's platform, a one-platform release before it counts.
fn previous_release(
    run: &Run<'_>,
    repository: &str,
    unit: &Unit,
    engine: &Platform,
) -> Option<String> {
    let mut candidates = vec![];
    if unit.multi {
        candidates.push(format!("{repository}:{}", unit.tag("latest")));
    }
    if !unit.multi || unit.platform == *engine {
        candidates.push(format!("{repository}:latest"));
    }
    candidates.into_iter().find(|latest| {
        ((!run.opts.no_pull && pull(run, latest)) || disinto::engine::docker::image_present(latest))
            && check_platform(latest, &unit.platform, "previous").is_ok()
    })
}

/// The layer digests of a local image, bottom first.
fn layers(image: &str) -> Vec<String> {
    inspect_json(image, "{{json .RootFS.Layers}}")
}

/// The labels of a local image.
fn labels(image: &str) -> std::collections::BTreeMap<String, String> {
    inspect_json(image, "{{json .Config.Labels}}")
}

fn inspect_json<T: serde::de::DeserializeOwned + Default>(image: &str, format: &str) -> T {
    disinto::engine::docker::run(&["image", "inspect", "--format", format, image])
        .ok()
        .and_then(|json| serde_json::from_str::<Option<T>>(json.trim()).ok())
        .flatten()
        .unwrap_or_default()
}

fn tag_image(run: &mut Run<'_>) -> Result<()> {
    let sh = run.sh();
    // Only the highest release moves latest: a backport or a pre-release tags its version alone.
    match run.opts.dry_run {
        true => run.runner.note(&run.plan.latest.to_string()),
        false => eprintln!("  {}", run.plan.latest),
    }
    for unit in run.plan.units() {
        let image = &run.plan.images[unit.image];
        let progress = run.state.progress.unit(image.name(), unit.key().as_deref());
        // Tag the image build-image made, by id: the local tag name is shared by every
        // checkout on this machine, and another release of the same version may have moved it.
        let local = match (progress.image_id, run.opts.dry_run) {
            (Some(id), false) => run.local_image_id(&id)?,
            (None, false) => bail!(
                "build-image has not recorded the {} image for {}: run `cargo xtask release {} --only build-image` first",
                image.name(),
                unit.platform,
                run.plan.version
            ),
            (_, true) => image.local_tag_of(&unit),
        };
        for target in image.unit_refs(&unit) {
            run.runner.exec(cmd!(sh, "docker tag {local} {target}"))?;
        }
    }
    Ok(())
}

/// Pushes every image's version tag (and latest), unless the registry holds the same image
/// already, and records each digest. A release of several platforms pushes each platform's
/// image under its own tag, then one image index of them under the version (and latest).
pub(super) fn push_image(run: &mut Run<'_>) -> Result<()> {
    let host = run.plan.registry_host().to_string();
    if run.opts.dry_run {
        if let Err(e) = run.plan.config.credentials() {
            println!("# push-image would fail: {e:#}");
            run.state.would_fail.push(format!("push-image: {e:#}"));
        }
        print_login(&host);
        for unit in run.plan.units() {
            let image = &run.plan.images[unit.image];
            if !run.plan.will_run(Step::Preflight) {
                println!(
                    "$ {}",
                    shell_line(inspect_cmd(run.sh(), &image.unit_ref(&unit)))
                );
            }
            for r in image.unit_refs(&unit) {
                println!("$ {}", shell_line(push_cmd(run.sh(), &r)));
            }
            println!(
                "# and the package image build-image built {} on, unless the registry has it",
                image.name()
            );
        }
        if run.plan.multi() {
            for image in &run.plan.images {
                let platforms: Vec<String> =
                    run.plan.platforms.iter().map(|p| p.to_string()).collect();
                for r in image.refs() {
                    println!(
                        "# PUT {r}: an OCI image index of {} (their digests, as pushed)",
                        platforms.join(", ")
                    );
                }
            }
        }
        println!("$ {LOGOUT_LINE}");
        return Ok(());
    }
    let units = run.plan.units();
    let ids = units
        .iter()
        .map(|u| run.local_image_id(&run.plan.images[u.image].unit_ref(u)))
        .collect::<Result<Vec<_>>>()?;
    let sh = run.sh();
    // Preflight (in this same run) already found the version absent: no second lookup.
    let known_absent = run.state.version_absent;
    // Per unit: image name, platform key, its reference, every tag, its package image.
    type Push = (
        &'static str,
        Option<String>,
        String,
        Vec<String>,
        Option<String>,
    );
    let pushes: Vec<Push> = units
        .iter()
        .map(|u| {
            let image = &run.plan.images[u.image];
            let key = u.key();
            let packages = run
                .state
                .progress
                .unit(image.name(), key.as_deref())
                .packages_image;
            (
                image.name(),
                key,
                image.unit_ref(u),
                image.unit_refs(u),
                packages,
            )
        })
        .collect();
    let session = run.session()?;
    let mut digests = vec![];
    for ((name, key, unit_ref, refs, packages), image_id) in pushes.into_iter().zip(&ids) {
        let mut digest = None;
        if !known_absent {
            match session.inspect(sh, &unit_ref)? {
                Some(remote) if remote.config == *image_id => {
                    eprintln!("  {unit_ref}: the registry already holds this image ({})", remote.digest);
                    digest = Some(remote.digest);
                }
                Some(remote) => bail!(
                    "the registry holds a different image under {unit_ref} ({}): versions are immutable, release a new one",
                    remote.digest
                ),
                None => {}
            }
        }
        let digest = match digest {
            Some(d) => d,
            None => {
                eprintln!("$ docker push {unit_ref}");
                session.push(sh, &unit_ref)?
            }
        };
        // latest, when this release moves it; pushing what the registry has already is cheap.
        for latest in refs.iter().skip(1) {
            eprintln!("$ docker push {latest}");
            session.push(sh, latest)?;
        }
        eprintln!("  pushed {unit_ref}@{digest}");
        let package_digest = match &packages {
            Some(packages) => Some(push_package_image(sh, session, packages)?),
            None => None,
        };
        digests.push((name, key, digest, package_digest));
    }
    for (name, key, digest, package_digest) in digests {
        let progress = run.state.progress.unit_mut(name, key.as_deref());
        progress.digest = Some(digest);
        progress.packages_digest = package_digest;
    }
    // The session's Docker config (with the credential) is deleted now, not at exit.
    run.state.session = None;
    if run.plan.multi() {
        super::index::push_indexes(run)?;
    }
    Ok(())
}

/// Publishes the package image an image is built on (its blobs are the image's, so this is
/// a manifest), where the next release finds it; returns its digest. Its tag names the
/// release that built it and never moves: a registry holding another image there is an error.
fn push_package_image(sh: &xshell::Shell, session: &Session, reference: &str) -> Result<String> {
    let local = disinto::engine::docker::image_id(reference).with_context(|| {
        format!(
            "the package image {reference} is not in the local image store: run build-image again"
        )
    })?;
    match session.inspect(sh, reference)? {
        Some(remote) if remote.config == local => Ok(remote.digest),
        Some(remote) => bail!(
            "the registry holds a different package image under {reference} ({}): package tags never move; remove it there or release a new version",
            remote.digest
        ),
        None => {
            eprintln!("$ docker push {reference}");
            session.push(sh, reference)
        }
    }
}

/// The product's rollout (`disinto up agents`) on the new version: pulled before anything
/// is touched, and agents must turn healthy.
fn restart_agents(run: &mut Run<'_>) -> Result<()> {
    let dir = match &run.opts.factory {
        Some(dir) => dir.clone(),
        None => run.plan.root().to_path_buf(),
    };
    let mut factory = Factory::open(&dir)?;
    // The factory's lock, as `disinto up` takes it: one change at a time.
    let _lock = match run.opts.dry_run {
        true => None,
        false => Some(disinto::lock::Lock::acquire(
            &factory.dir,
            "release restart-agents",
            Duration::ZERO,
        )?),
    };
    factory.config.agents = AgentsImage::Release(run.plan.version.clone());
    // The factory runs what this release pushed, from where it pushed it.
    if factory.config.registry != run.plan.config.registry {
        eprintln!(
            "warning: {} says DISINTO_REGISTRY={}, but this release pushed to {}: restarting agents from {}",
            factory.dir.display(),
            factory.config.registry,
            run.plan.config.registry,
            run.plan.config.registry
        );
        factory.config.registry = run.plan.config.registry.clone();
    }
    // The gate trusts the key this release signed with (the factory may not know it yet); an
    // unsigned release has nothing to verify, and the rollout says so loudly and records it.
    let extra_keys = match (run.opts.unsigned, run.opts.dry_run) {
        (false, false) => {
            let pem = super::sign::release_key(run)?.pem.clone();
            disinto::model::keys::parse_keys(&pem, "the release key")?
        }
        _ => vec![],
    };
    // The gate reads the registry (and docker pulls) with the release's own login: this
    // release pushed there, and the factory's operator may have no login of their own.
    let login = match run.opts.dry_run {
        true => None,
        false => Some(DockerConfig::point_at(run.session()?.config_dir())),
    };
    let result = Rollout {
        watch: Duration::from_secs(run.opts.watch),
        skip_verify: run.opts.unsigned,
        extra_keys,
        ..Rollout::new(
            vec!["agents".into()],
            run.opts.dry_run,
            Duration::from_secs(run.opts.health_timeout),
        )
    }
    .run(run.sh(), &factory);
    drop(login);
    result
}

/// `DOCKER_CONFIG` of this process pointed at a directory, and put back when dropped.
struct DockerConfig(Option<std::ffi::OsString>);

impl DockerConfig {
    fn point_at(dir: &std::path::Path) -> DockerConfig {
        let before = std::env::var_os("DOCKER_CONFIG");
        std::env::set_var("DOCKER_CONFIG", dir);
        DockerConfig(before)
    }
}

impl Drop for DockerConfig {
    fn drop(&mut self) {
        match self.0.take() {
            Some(v) => std::env::set_var("DOCKER_CONFIG", v),
            None => std::env::remove_var("DOCKER_CONFIG"),
        }
    }
}

fn commit_result(run: &mut Run<'_>) -> Result<()> {
    let relative = run.plan.record_relative();
    // A record without a digest would claim a release that no registry holds, and the
    // version would then be refused forever.
    let undigested = run.images_lacking(|p| p.lacks(|u| u.digest.is_none()));
    if !undigested.is_empty() && !run.opts.dry_run {
        bail!(
            "push-image has not recorded a digest for {} of {}: run `cargo xtask release {}` (or --from push-image) first; {relative} is not written",
            undigested.join(", "),
            run.plan.version,
            run.plan.version
        );
    }
    // Without --unsigned, a record never says unsigned by accident.
    let unsigned = run.images_lacking(|p| p.lacks(|u| u.signature.is_none()));
    if !unsigned.is_empty() && !run.opts.unsigned && !run.opts.dry_run {
        bail!(
            "sign-image has not signed {} of {}: run `cargo xtask release {} --from sign-image` (or pass --unsigned to record an unsigned release on purpose); {relative} is not written",
            unsigned.join(", "),
            run.plan.version,
            run.plan.version
        );
    }
    let mut progress = run.state.progress.clone();
    if let Some(this) = progress.steps.get_mut(&Step::CommitResult) {
        this.status = super::step::Status::Done;
        this.finished = Some(disinto::model::time::now_rfc3339());
    }
    let record = Record::of(&progress, &run.plan.references(), run.plan.latest.moves());
    if run.opts.dry_run {
        run.runner.note(&format!(
            "write {relative}: version, git sha, image, digest, signature and attestations (or unsigned), whether latest moved, per-step status and times"
        ));
    } else {
        write_json(&run.plan.record_path(), &record)?;
    }
    let Some(branch) = current_branch(run) else {
        eprintln!("  HEAD is detached (a CI job): {relative} written, not committed");
        return Ok(());
    };
    let sh = run.sh();
    let message = format!("release: record {}", run.plan.version);
    run.runner.exec(cmd!(sh, "git add -- {relative}"))?;
    run.runner
        .exec(cmd!(
            sh,
            "git commit --quiet --message {message} -- {relative}"
        ))
        .context("committing the release record failed (is git's user.name/user.email set?)")?;
    let refspec = format!("HEAD:refs/heads/{branch}");
    // The release is complete once the record is committed: a failed push is the
    // operator's to retry, not a reason to leave the release half-done.
    if let Err(e) = run.runner.exec(cmd!(sh, "git push origin {refspec}")) {
        eprintln!("warning: the release is recorded, but pushing {relative} to origin failed ({e:#}): push it with `git push origin {branch}`");
    }
    Ok(())
}
