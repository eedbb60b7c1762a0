//! The one way both programs run a command that changes something: run it, or in a dry run
//! print it as a line a POSIX shell runs as it is. Commands that only read (inspect, ps) run
//! either way, through [`super::docker`]; what a dry run prints is what a real run executes.

use std::process::Command;

use anyhow::Result;
use xshell::{Cmd, Shell};

/// Prints (dry run) or executes (real run) each command value it is handed.
pub struct Runner<'a> {
    pub sh: &'a Shell,
    pub dry_run: bool,
}

impl<'a> Runner<'a> {
    pub fn new(sh: &'a Shell, dry_run: bool) -> Runner<'a> {
        Runner { sh, dry_run }
    }

    /// Runs a command that changes something, or only prints it in a dry run. A deferred
    /// interrupt that arrived while it ran stops the caller here (see [`crate::signals`]).
    pub fn exec(&self, cmd: Cmd<'_>) -> Result<()> {
        if self.dry_run {
            println!("$ {}", shell_line(cmd));
            return Ok(());
        }
        let result = cmd.run();
        crate::signals::check()?;
        result?;
        Ok(())
    }

    /// [`Runner::exec`] for a command that repairs what a failed or interrupted command left
    /// (a revert): it runs even when a deferred interrupt has arrived, and is not stopped by
    /// one. A second signal still ends the process (see [`crate::signals`]).
    pub fn exec_to_recover(&self, cmd: Cmd<'_>) -> Result<()> {
        if self.dry_run {
            println!("$ {}", shell_line(cmd));
            return Ok(());
        }
        cmd.run()?;
        Ok(())
    }

    /// [`Runner::exec`] for a command whose own output is noise (a pull's progress): it is
    /// shown as `$ line`, its output kept, and a failure is the last line it printed.
    pub fn exec_captured(&self, cmd: Cmd<'_>) -> Result<()> {
        if self.dry_run {
            println!("$ {}", shell_line(cmd));
            return Ok(());
        }
        let mut command: Command = cmd.into();
        eprintln!("$ {}", command_line(&command));
        let out = command.stdin(std::process::Stdio::null()).output();
        crate::signals::check()?;
        let out = out?;
        if !out.status.success() {
            anyhow::bail!("{}", super::docker::last_line(&out.stderr));
        }
        Ok(())
    }

    /// A line of the plan that is not a command (a file it would write, what it would wait
    /// for), printed in a dry run only.
    pub fn note(&self, text: &str) {
        if self.dry_run {
            println!("# {text}");
        }
    }
}

/// A command as a line to paste into a POSIX shell, which runs exactly it: its environment
/// settings first, then every word, single-quoted unless it is plainly safe. (xshell's own
/// display double-quotes words with spaces and leaves `$`, quotes and backticks bare.)
pub fn shell_line(cmd: impl Into<Command>) -> String {
    command_line(&cmd.into())
}

fn command_line(cmd: &Command) -> String {
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

/// What `PROGRAM --version` prints (empty when it cannot run): a binary checked before it
/// replaces another.
pub fn program_version(program: &std::path::Path) -> String {
    std::process::Command::new(program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|$HOME|it's|`x`|");
    }

    #[test]
    fn a_dry_run_changes_nothing() {
        let dir = crate::fsx::TempDir::new("runner").unwrap();
        let marker = dir.path().join("made");
        let sh = Shell::new().unwrap();
        Runner::new(&sh, true)
            .exec(xshell::cmd!(sh, "touch {marker}"))
            .unwrap();
        assert!(!marker.exists());
        Runner::new(&sh, false)
            .exec(xshell::cmd!(sh, "touch {marker}"))
            .unwrap();
        assert!(marker.exists());
    }
}
