//! The one process layer over the `docker` CLI: is the client there, does the daemon answer,
//! is an image here, run and explain a failure in one line, with a time limit when asked.

use std::process::{Command, Output, Stdio};

use anyhow::{bail, Result};

use super::poll::Look;

/// Fails with instructions when the `docker` client is not on PATH.
pub fn require_client() -> Result<()> {
    which::which("docker").map(|_| ()).map_err(|_| {
        anyhow::anyhow!(
            "docker not found on PATH: install Docker Engine (Debian: apt-get install docker.io)"
        )
    })
}

/// Whether a Docker daemon answers the client.
pub fn daemon_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails with what to do unless the client is installed and a daemon answers it.
pub fn require_daemon() -> Result<()> {
    require_client()?;
    if !daemon_answers() {
        bail!("the Docker daemon does not answer: start it (systemctl start docker) and retry");
    }
    Ok(())
}

/// The platform the daemon runs images of (`docker version`'s Server Os and Arch): the
/// entry of an image index it pulls.
pub fn engine_platform() -> Result<crate::model::platform::Platform> {
    let said = read(
        &["version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"],
        "ask the Docker daemon its platform",
    )?;
    let (os, arch) = said.trim().split_once('/').unwrap_or((said.trim(), ""));
    crate::model::platform::Platform::of_engine(os, arch)
        .map_err(|e| anyhow::anyhow!("the Docker daemon's platform: {e:#}"))
}

/// The platform (`os/arch[/variant]`) of a local image, as `docker image inspect` says it.
pub fn image_platform(image: &str) -> Result<crate::model::platform::Platform> {
    let said = read(
        &[
            "image",
            "inspect",
            "--format",
            "{{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}}",
            image,
        ],
        &format!("inspect image {image}"),
    )?;
    crate::model::platform::Platform::parse(said.trim())
        .map_err(|e| anyhow::anyhow!("the platform of image {image}: {e:#}"))
}

/// The local image id (`sha256:…`) of `reference`, if the image is in the local store.
pub fn image_id(reference: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let id = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !id.is_empty()).then_some(id)
}

/// Whether `reference` is in the local image store.
pub fn image_present(reference: &str) -> bool {
    image_id(reference).is_some()
}

/// Runs `docker ARGS...`: its standard output, or the last line it printed on failure.
pub fn run(args: &[&str]) -> std::result::Result<String, String> {
    require_client().map_err(|e| format!("{e:#}"))?;
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if !out.status.success() {
        return Err(last_line(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// [`run`], killed after `limit` (an error saying so) when it has not ended by then.
pub fn run_for(args: &[&str], limit: std::time::Duration) -> std::result::Result<String, String> {
    require_client().map_err(|e| format!("{e:#}"))?;
    let out = output_within(Command::new("docker").args(args), limit)?;
    if !out.status.success() {
        return Err(last_line(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` and collects its output, killing it when it has not ended within `limit`.
/// Its output is read while it runs: a child that fills a pipe (64 KiB) before it ends would
/// otherwise wait for a reader that waits for it.
pub fn output_within(
    cmd: &mut Command,
    limit: std::time::Duration,
) -> std::result::Result<Output, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    // A deferred interrupt does not cut this wait short: `limit` bounds it anyway, and
    // returning early would leave the child running, unwatched.
    let ended = super::poll::until_with(
        limit,
        std::time::Duration::from_millis(20),
        super::poll::OnInterrupt::Finish,
        |_| {
            Ok(match child.try_wait()? {
                Some(status) => Look::Done(status),
                None => Look::Wait(String::new()),
            })
        },
    );
    let status = match ended {
        Ok(Ok(status)) => status,
        // The readers are left to end with the pipes: a process the child started may
        // hold them open longer than this command should wait.
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot wait for {program}: {e:#}"));
        }
        Ok(Err(_)) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{program} did not end within {:.1}s",
                limit.as_secs_f64()
            ));
        }
    };
    let read = |reader: std::thread::JoinHandle<std::io::Result<Vec<u8>>>| {
        reader
            .join()
            .map_err(|_| format!("cannot read the output of {program}"))?
            .map_err(|e| format!("cannot read the output of {program}: {e}"))
    };
    Ok(Output {
        status,
        stdout: read(stdout)?,
        stderr: read(stderr)?,
    })
}

/// Reads `pipe` to its end on a thread of its own; what it read.
fn drain<R: std::io::Read + Send + 'static>(
    pipe: Option<R>,
) -> std::thread::JoinHandle<std::io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        let mut bytes = vec![];
        if let Some(mut pipe) = pipe {
            pipe.read_to_end(&mut bytes)?;
        }
        Ok(bytes)
    })
}

/// [`run`], with a one-line error saying what was being done.
pub fn read(args: &[&str], doing: &str) -> Result<String> {
    run(args).map_err(|why| anyhow::anyhow!("cannot {doing}: {why}"))
}

/// The last line a command printed (its error, for the tools we run), for one-line messages.
pub fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim()
        .lines()
        .last()
        .unwrap_or("no output")
        .to_string()
}

/// The bytes of the file at `path` inside `image`: `None` when the image has no such file.
/// Copied out of a created (never started) container: no output of a running one to lose.
pub fn file_from_image(image: &str, path: &str) -> Result<Option<Vec<u8>>> {
    require_client()?;
    let created = Command::new("docker")
        .args(["create", "--network", "none", image])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run docker: {e}"))?;
    if !created.status.success() {
        bail!(
            "cannot read {path} from {image}: {}",
            last_line(&created.stderr)
        );
    }
    let id = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let dir = crate::fsx::TempDir::new("from-image")?;
    let copied = Command::new("docker")
        .args(["cp", "--follow-link", &format!("{id}:{path}")])
        .arg(dir.path().join("file"))
        .stdin(Stdio::null())
        .output();
    // --volumes: the image's VOLUMEs got anonymous volumes at create; they go with it.
    let _ = Command::new("docker")
        .args(["rm", "--force", "--volumes", &id])
        .output();
    let copied = copied.map_err(|e| anyhow::anyhow!("cannot run docker: {e}"))?;
    if !copied.status.success() {
        let why = last_line(&copied.stderr);
        if why.contains("Could not find the file") || why.contains("No such") {
            return Ok(None);
        }
        bail!("cannot read {path} from {image}: {why}");
    }
    let bytes = std::fs::read(dir.path().join("file"))
        .map_err(|e| anyhow::anyhow!("cannot read {path} copied from {image}: {e}"))?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_hangs_is_cut_off() {
        let start = std::time::Instant::now();
        let e = output_within(
            Command::new("sleep").arg("30"),
            std::time::Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(e, "sleep did not end within 0.3s");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        let out = output_within(
            Command::new("echo").arg("quick"),
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "quick\n");
    }

    #[test]
    fn output_larger_than_a_pipe_is_read_while_the_command_runs() {
        // 1 MB on each stream: more than a pipe holds, so the child ends only if read.
        let out = output_within(
            Command::new("sh").args([
                "-c",
                "head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2; exit 3",
            ]),
            std::time::Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(out.stdout.len(), 1_000_000);
        assert_eq!(out.stderr.len(), 1_000_000);
        assert_eq!(out.status.code(), Some(3));
    }
}
