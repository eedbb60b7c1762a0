//! The eight release steps, one function each, in formula order.
//! Each is safe to run again after a failure: it checks what is already there first.

use anyhow::{bail, Context, Result};
use xshell::cmd;

use super::registry::{Credentials, Session};
use super::{Ctx, Progress};
use crate::compose::ComposeInput;
use crate::docker::registry_host;
use crate::factory::Factory;
use crate::image_ref::AgentsImage;
use crate::{bench, fsx};

/// Dispatches a formula step id to its implementation.
pub(super) fn run(
    id: &str,
    ctx: &mut Ctx<'_>,
    progress: &mut Progress,
    started: &str,
) -> Result<()> {
    match id {
        "preflight" => preflight(ctx),
        "tag-main" => tag_main(ctx),
        "push-mirrors" => push_mirrors(ctx),
        "build-image" => build_image(ctx),
        "tag-image" => tag_image(ctx),
        "push-image" => push_image(ctx),
        "restart-agents" => restart_agents(ctx),
        "commit-result" => commit_result(ctx, progress, started),
        other => bail!("step {other:?} has no implementation"),
    }
}

fn preflight(ctx: &mut Ctx<'_>) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    let mut check = |result: Result<()>| {
        if let Err(e) = result {
            problems.push(format!("{e:#}"));
        }
    };
    check(version_file_agrees(ctx));
    check(work_tree_clean(ctx));
    check(on_primary_branch(ctx));
    check(tag_state(ctx));
    if ctx.record_path().exists() {
        check(Err(anyhow::anyhow!(
            "{} exists: {} was released already; pick a new version",
            ctx.record_path().display(),
            ctx.version
        )));
    }
    if ctx.opts.dry_run {
        println!("$ docker version");
    } else if !bench::docker_answers() {
        check(crate::docker::require_client().and(Err(anyhow::anyhow!(
            "the Docker daemon does not answer: start it (systemctl start docker) and retry"
        ))));
    }
    if ctx.will_run("push-image") {
        check(registry_ready(ctx));
    }
    if problems.is_empty() {
        return Ok(());
    }
    if ctx.opts.dry_run {
        for p in &problems {
            println!("# preflight would fail: {p}");
        }
        return Ok(());
    }
    bail!("preflight: {}", problems.join("; "))
}

fn version_file_agrees(ctx: &Ctx<'_>) -> Result<()> {
    let path = ctx.root.join("VERSION");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: it holds the version without 'v'",
            path.display()
        )
    })?;
    let want = ctx.version.trim_start_matches('v');
    if text.trim() != want {
        bail!(
            "VERSION says {} but the release is {}: commit VERSION = {want} first",
            text.trim(),
            ctx.version
        );
    }
    Ok(())
}

fn work_tree_clean(ctx: &Ctx<'_>) -> Result<()> {
    let status = ctx.git(&["status", "--porcelain"])?;
    if !status.trim().is_empty() {
        bail!("the work tree has uncommitted changes: commit or stash them first");
    }
    Ok(())
}

fn primary_branch(ctx: &Ctx<'_>) -> String {
    if let Ok(head) = ctx.git(&["symbolic-ref", "--short", "refs/remotes/origin/HEAD"]) {
        if let Some(branch) = head.trim().strip_prefix("origin/") {
            return branch.to_string();
        }
    }
    let has = |b: &str| {
        ctx.git(&[
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

fn current_branch(ctx: &Ctx<'_>) -> Option<String> {
    ctx.git(&["symbolic-ref", "--short", "-q", "HEAD"])
        .ok()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
}

fn on_primary_branch(ctx: &Ctx<'_>) -> Result<()> {
    if ctx.opts.allow_branch {
        return Ok(());
    }
    let primary = primary_branch(ctx);
    match current_branch(ctx) {
        Some(b) if b == primary => Ok(()),
        Some(b) => bail!("HEAD is on branch {b}, not the primary branch {primary}: switch to {primary} or pass --allow-branch"),
        None => bail!("HEAD is detached, not on the primary branch {primary}: switch to {primary} or pass --allow-branch"),
    }
}

fn tag_ref(ctx: &Ctx<'_>) -> String {
    format!("refs/tags/{}", ctx.version)
}

fn tag_state(ctx: &Ctx<'_>) -> Result<()> {
    let local = ctx.git(&["tag", "--list", &ctx.version])?;
    if ctx.will_run("tag-main") {
        if !local.trim().is_empty() {
            bail!("tag {} already exists locally: that version was released or started before; pick a new version", ctx.version);
        }
        let remote = ctx
            .git(&["ls-remote", "--tags", "origin", &tag_ref(ctx)])
            .map_err(|_| {
                anyhow::anyhow!(
                    "cannot reach origin to check the tag: `git ls-remote origin` must work"
                )
            })?;
        if !remote.trim().is_empty() {
            bail!("tag {} already exists on origin: that version was released before; pick a new version", ctx.version);
        }
        return Ok(());
    }
    // tag-main is skipped (a CI job started by the tag): the tag must be HEAD's.
    let tagged = ctx
        .git(&["rev-parse", &format!("{}^{{commit}}", tag_ref(ctx))])
        .map_err(|_| {
            anyhow::anyhow!(
                "tag-main is skipped but tag {} does not exist: create it or let tag-main run",
                ctx.version
            )
        })?;
    if tagged.trim() != ctx.git_sha {
        bail!(
            "tag {} points at {}, not HEAD {}: check out the tag",
            ctx.version,
            tagged.trim(),
            ctx.git_sha
        );
    }
    Ok(())
}

/// Logs in (token on stdin) and makes sure the registry does not hold this version yet.
fn registry_ready(ctx: &mut Ctx<'_>) -> Result<()> {
    let host = registry_host(&ctx.image).to_string();
    if ctx.opts.dry_run {
        Credentials::from_env(&host)?;
        print_login(&host);
        println!("$ docker manifest inspect -v {}", ctx.version_ref());
        println!("$ rm -rf \"$DOCKER_CONFIG\"");
        return Ok(());
    }
    let (sh, version_ref) = (ctx.sh, ctx.version_ref());
    let session = session(ctx)?;
    let found = session.inspect(sh, &version_ref);
    // Log out now: the build between here and push-image can take minutes, and an
    // interrupted run must not leave a login on disk for that long.
    ctx.session = None;
    let found = found?;
    ctx.version_absent = found.is_none();
    if let Some(remote) = found {
        bail!(
            "the registry already holds {version_ref} ({}): versions are immutable, release a new one",
            remote.digest
        );
    }
    Ok(())
}

/// In a dry run, prints the login as the real run does it (token masked).
fn print_login(host: &str) {
    println!("$ export DOCKER_CONFIG=$(mktemp -d)   # throwaway, removed afterwards");
    println!("$ printf '%s' \"$GITHUB_TOKEN\" | docker login {host} --username \"$GITHUB_ACTOR\" --password-stdin   # token: ***");
}

fn session<'c>(ctx: &'c mut Ctx<'_>) -> Result<&'c Session> {
    if ctx.session.is_none() {
        let host = registry_host(&ctx.image).to_string();
        let credentials = Credentials::from_env(&host)?;
        ctx.session = Some(Session::login(&host, &credentials)?);
    }
    ctx.session.as_ref().context("no registry session")
}

fn tag_main(ctx: &mut Ctx<'_>) -> Result<()> {
    let sh = ctx.sh;
    let version = ctx.version.clone();
    let existing = ctx.git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{}^{{commit}}", tag_ref(ctx)),
    ]);
    match existing {
        Ok(sha) if sha.trim() == ctx.git_sha => eprintln!("  tag {version} already points at HEAD"),
        Ok(sha) => bail!("tag {version} exists and points at {}, not HEAD: delete it (git tag -d {version}) if it is a leftover", sha.trim()),
        Err(_) => {
            let message = format!("disinto {version}");
            ctx.exec(cmd!(sh, "git tag --annotate {version} --message {message} HEAD"))?;
        }
    }
    let refspec = tag_ref(ctx);
    ctx.exec(cmd!(sh, "git push origin {refspec}"))
        .with_context(|| format!("pushing tag {version} to origin failed: check the remote and your access, then run the release again"))
}

fn push_mirrors(ctx: &mut Ctx<'_>) -> Result<()> {
    let mirrors = std::env::var("DISINTO_MIRRORS").unwrap_or_default();
    let mirrors: Vec<&str> = mirrors
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|m| !m.is_empty())
        .collect();
    if mirrors.is_empty() {
        eprintln!("  no mirrors (DISINTO_MIRRORS is empty)");
        return Ok(());
    }
    let remotes = ctx.git(&["remote"])?;
    let refspec = tag_ref(ctx);
    let sh = ctx.sh;
    for mirror in mirrors {
        if !remotes.lines().any(|r| r.trim() == mirror) {
            eprintln!("warning: mirror {mirror} is not a git remote here (git remote add {mirror} URL); skipped");
            continue;
        }
        if let Err(e) = ctx.exec(cmd!(sh, "git push {mirror} {refspec}")) {
            eprintln!("warning: pushing {refspec} to mirror {mirror} failed ({e:#}); catch it up later with: git push {mirror} {refspec}");
        }
    }
    Ok(())
}

fn build_image(ctx: &mut Ctx<'_>) -> Result<()> {
    let sh = ctx.sh;
    let tag = ctx.local_tag.clone();
    let version = format!("VERSION={}", ctx.version);
    let revision = format!("REVISION={}", ctx.git_sha);
    let created = format!(
        "CREATED={}",
        ctx.git(&["show", "-s", "--format=%cI", "HEAD"])?.trim()
    );
    let source = format!(
        "SOURCE={}",
        std::env::var("DISINTO_SOURCE_URL")
            .unwrap_or_else(|_| "https://github.com/disinto/disinto".into())
    );
    let pull = (!ctx.opts.no_pull).then_some("--pull");
    let no_cache = (!ctx.opts.cache).then_some("--no-cache");
    ctx.exec(cmd!(
        sh,
        "docker build --file docker/agents/Dockerfile --tag {tag} --build-arg {version} --build-arg {revision} --build-arg {created} --build-arg {source} {pull...} {no_cache...} ."
    ))
    .context("docker build failed (see its output above)")?;
    if !ctx.opts.dry_run {
        ctx.image_id = Some(ctx.local_image_id(&tag)?);
    }
    Ok(())
}

fn tag_image(ctx: &mut Ctx<'_>) -> Result<()> {
    let sh = ctx.sh;
    // Tag the image build-image made, by id: the local tag name is shared by every checkout
    // on this machine, and another release of the same version may have moved it since.
    let local = match (&ctx.image_id, ctx.opts.dry_run) {
        (Some(id), false) => ctx.local_image_id(id)?,
        (None, false) => bail!(
            "build-image has not recorded an image: run `cargo xtask release {} --only build-image` first",
            ctx.version
        ),
        (_, true) => ctx.local_tag.clone(),
    };
    let mut targets = vec![ctx.version_ref()];
    match ctx.latest_ref() {
        Some(latest) => targets.push(latest),
        None => eprintln!(
            "  {} is a pre-release: latest is left where it is",
            ctx.version
        ),
    }
    for target in targets {
        ctx.exec(cmd!(sh, "docker tag {local} {target}"))?;
    }
    Ok(())
}

/// Pushes the version tag (and latest), unless the registry holds the same image already.
pub(super) fn push_image(ctx: &mut Ctx<'_>) -> Result<()> {
    let host = registry_host(&ctx.image).to_string();
    let version_ref = ctx.version_ref();
    let mut refs = vec![version_ref.clone()];
    refs.extend(ctx.latest_ref());
    if ctx.opts.dry_run {
        if let Err(e) = Credentials::from_env(&host) {
            println!("# push-image would fail: {e:#}");
        }
        print_login(&host);
        if !ctx.will_run("preflight") {
            println!("$ docker manifest inspect -v {version_ref}");
        }
        for r in &refs {
            println!("$ docker push {r}");
        }
        println!("$ rm -rf \"$DOCKER_CONFIG\"");
        return Ok(());
    }
    let image_id = ctx.local_image_id(&version_ref)?;
    let sh = ctx.sh;
    // Preflight (in this same run) already found the version absent: no second lookup.
    let known_absent = ctx.version_absent;
    let session = session(ctx)?;
    let mut digest = None;
    if !known_absent {
        match session.inspect(sh, &version_ref)? {
            Some(remote) if remote.config == image_id => {
                eprintln!("  {version_ref}: the registry already holds this image ({})", remote.digest);
                digest = Some(remote.digest);
            }
            Some(remote) => bail!(
                "the registry holds a different image under {version_ref} ({}): versions are immutable, release a new one",
                remote.digest
            ),
            None => {}
        }
    }
    let digest = match digest {
        Some(d) => d,
        None => {
            eprintln!("$ docker push {version_ref}");
            session.push(sh, &version_ref)?
        }
    };
    // latest moves with every release; pushing what the registry has already is cheap.
    if let Some(latest) = refs.get(1) {
        eprintln!("$ docker push {latest}");
        session.push(sh, latest)?;
    }
    eprintln!("  pushed {version_ref}@{digest}");
    ctx.digest = Some(digest);
    // The session's Docker config (with the credential) is deleted now, not at exit.
    ctx.session = None;
    Ok(())
}

fn restart_agents(ctx: &mut Ctx<'_>) -> Result<()> {
    let dir = ctx.opts.factory.clone().unwrap_or_else(|| ctx.root.clone());
    let factory = Factory::open(&dir)?;
    let agents = AgentsImage::Release(ctx.version.clone());
    if let Some(pinned) = factory
        .settings
        .get("AGENTS_IMAGE")
        .filter(|v| !v.is_empty())
    {
        if std::env::var_os("AGENTS_IMAGE").is_none() && pinned != ctx.version {
            eprintln!(
                "warning: {} pins AGENTS_IMAGE={pinned}; set it to {} there, or the next `disinto up` goes back to {pinned}",
                dir.join(".env").display(),
                ctx.version
            );
        }
    }
    let input = ComposeInput {
        agents,
        ..ComposeInput::from_settings(&factory.settings)?
    };
    if ctx.opts.dry_run {
        println!(
            "$ AGENTS_IMAGE={} cargo xtask gen-compose --output {}",
            ctx.version,
            factory.compose_file().display()
        );
        println!(
            "$ {}",
            factory.compose(ctx.sh, &["up", "--detach", "--no-deps", "agents"])
        );
        println!(
            "# wait until agents is healthy (at most {}s)",
            ctx.opts.health_timeout
        );
        return Ok(());
    }
    factory.write_compose(&input)?;
    ctx.exec(factory.compose(ctx.sh, &["up", "--detach", "--no-deps", "agents"]))?;
    let container = factory.container(ctx.sh, "agents")?;
    factory.wait_healthy(
        ctx.sh,
        &container,
        std::time::Duration::from_secs(ctx.opts.health_timeout),
    )?;
    eprintln!("  agents is healthy on {}", ctx.version_ref());
    Ok(())
}

fn commit_result(ctx: &mut Ctx<'_>, progress: &mut Progress, started: &str) -> Result<()> {
    let order: Vec<String> = crate::formula::IMPLEMENTED
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut progress = progress.clone();
    progress.steps.insert(
        "commit-result".into(),
        super::StepRecord {
            status: "done".into(),
            started: Some(started.to_string()),
            finished: Some(crate::time::now_rfc3339()),
        },
    );
    let record = ctx.record(&progress, &order);
    let path = ctx.record_path();
    let relative = format!("release/{}.json", ctx.version);
    if ctx.opts.dry_run {
        println!("# write {relative}: version, git sha, image, digest, per-step status and times");
        println!("$ git add {relative}");
        println!("$ git commit --message 'release: record {}'", ctx.version);
        println!("$ git push origin HEAD:<branch>");
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(&record)?;
    fsx::write_atomic(&path, format!("{text}\n").as_bytes())?;
    let Some(branch) = current_branch(ctx) else {
        eprintln!("  HEAD is detached (a CI job): {relative} written, not committed");
        return Ok(());
    };
    let sh = ctx.sh;
    let message = format!("release: record {}", ctx.version);
    ctx.exec(cmd!(sh, "git add -- {relative}"))?;
    ctx.exec(cmd!(
        sh,
        "git commit --quiet --message {message} -- {relative}"
    ))
    .context("committing the release record failed (is git's user.name/user.email set?)")?;
    let refspec = format!("HEAD:refs/heads/{branch}");
    // The release is complete once the record is committed: a failed push is the
    // operator's to retry, not a reason to leave the release half-done.
    if let Err(e) = ctx.exec(cmd!(sh, "git push origin {refspec}")) {
        eprintln!("warning: the release is recorded, but pushing {relative} to origin failed ({e:#}): push it with `git push origin {branch}`");
    }
    Ok(())
}
