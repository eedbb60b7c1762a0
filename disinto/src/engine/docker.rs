//! The one process layer over the `docker` CLI: is the client there, does the daemon answer,
//! is an image here, run and explain a failure in one line, and commands as shell lines.

use std::process::{Command, Output, Stdio};

use anyhow::{bail, Result};

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
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} did not end within {:.1}s",
                    limit.as_secs_f64()
                ));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait for {program}: {e}")),
        }
    }
    child
        .wait_with_output()
        .map_err(|e| format!("cannot read the output of {program}: {e}"))
}

/// [`run`], with a one-line error saying what was being done.
pub fn read(args: &[&str], doing: &str) -> Result<String> {
    run(args).map_err(|why| anyhow::anyhow!("cannot {doing}: {why}"))
}

/// A command as a line to paste into a POSIX shell, which runs exactly it: its environment
/// settings first, then every word, single-quoted unless it is plainly safe. (xshell's own
/// display double-quotes words with spaces and leaves `$`, quotes and backticks bare.)
pub fn shell_line(cmd: impl Into<Command>) -> String {
    let cmd: Command = cmd.into();
    let mut words: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| {
            let v = v?;
            Some(format!(
                "{}={}",
                k.to_string_lossy(),
                shell_word(&v.to_string_lossy())
            ))
        })
        .collect();
    words.push(shell_word(&cmd.get_program().to_string_lossy()));
    words.extend(cmd.get_args().map(|a| shell_word(&a.to_string_lossy())));
    words.join(" ")
}

/// One word for a POSIX shell: as it is when every character is plainly safe, else in single
/// quotes (a `'` inside written `'\''`).
pub fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
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

/// The host part of an image reference or registry namespace (`ghcr.io/disinto` → `ghcr.io`).
pub fn registry_host(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
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
    fn shell_lines_paste_as_they_run() {
        assert_eq!(shell_word("v0.2.0"), "v0.2.0");
        assert_eq!(shell_word("disinto v0.2.0"), "'disinto v0.2.0'");
        assert_eq!(shell_word("$HOME`x`\"y\""), "'$HOME`x`\"y\"'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
        let mut cmd = Command::new("git");
        cmd.args(["commit", "--message", "release: it's $v"])
            .env("DISINTO_REVISION", "abc");
        assert_eq!(
            shell_line(cmd),
            "DISINTO_REVISION=abc git commit --message 'release: it'\\''s $v'"
        );
        // What sh makes of the line is the command's own words.
        let mut cmd = Command::new("printf");
        cmd.args(["%s|", "a b", "$HOME", "it's", "`x`"]);
        let line = shell_line(cmd);
        let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "%s|a b|$HOME|it's|`x`|".replacen("%s|", "", 1)
        );
    }

    #[test]
    fn registry_host_of_references() {
        assert_eq!(registry_host("ghcr.io/disinto"), "ghcr.io");
        assert_eq!(
            registry_host("127.0.0.1:5000/disinto/agents:v1"),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_host("localhost/agents"), "localhost");
        assert_eq!(registry_host("disinto/agents:v1"), "docker.io");
        assert_eq!(registry_host("agents"), "docker.io");
    }
}
