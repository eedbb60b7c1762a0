//! `disinto schedule --window W`: runs `disinto upgrade --auto` on a timer. With systemd, a
//! service and a timer (every quarter of an hour; the command itself keeps to the window and
//! to the freeze) written to /etc/systemd/system and enabled; without it, the crontab line to
//! add. `--print` shows what would be installed, `--remove` takes it away. The unit files are
//! private (0600): a webhook URL often carries its secret.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::engine::notify::{self, Format};
use crate::engine::runner::shell_word;
use crate::engine::Runner;
use crate::factory::Factory;
use crate::fsx;
use crate::model::channel::Channel;
use crate::model::window::Window;

const UNIT_DIR: &str = "/etc/systemd/system";
/// How often the timer fires (minutes): the window is checked by the command each time.
const EVERY_MINUTES: u32 = 15;

pub(crate) struct Schedule {
    pub window: String,
    pub channel: Channel,
    pub notify: Option<(String, Format)>,
    pub print: bool,
    pub remove: bool,
}

/// The command the timer runs, word by word.
fn command_words(exe: &Path, root: &Path, s: &Schedule) -> Vec<String> {
    let mut words = vec![
        exe.display().to_string(),
        "--root".into(),
        root.display().to_string(),
        "upgrade".into(),
        "--auto".into(),
        "--window".into(),
        s.window.clone(),
        "--channel".into(),
        s.channel.name().into(),
    ];
    if let Some((url, format)) = &s.notify {
        words.extend(["--notify".into(), url.clone()]);
        if *format == Format::Json {
            words.extend(["--notify-format".into(), "json".into()]);
        }
    }
    words
}

/// As one shell line (for cron).
fn shell_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// As systemd's ExecStart reads it: each word double-quoted, `\` and `"` escaped, and `%`
/// and `$` doubled (systemd expands specifiers and variables there).
fn exec_start(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let w = w
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('%', "%%")
                .replace('$', "$$");
            format!("\"{w}\"")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The service and timer units for `project`, running `words`.
fn units(project: &str, root: &Path, words: &[String]) -> (String, String) {
    let service = format!(
        "# Written by `disinto schedule`; `disinto schedule --remove` takes it away.\n\
         [Unit]\n\
         Description=disinto: unattended upgrade of factory {project}\n\
         After=docker.service\n\
         Requires=docker.service\n\n\
         [Service]\n\
         Type=oneshot\n\
         WorkingDirectory={}\n\
         ExecStart={}\n",
        root.display(),
        exec_start(words)
    );
    let timer = format!(
        "# Written by `disinto schedule`; `disinto schedule --remove` takes it away.\n\
         [Unit]\n\
         Description=disinto: unattended upgrade of factory {project}, every {EVERY_MINUTES} minutes\n\n\
         [Timer]\n\
         OnCalendar=*:0/{EVERY_MINUTES}\n\
         RandomizedDelaySec=60\n\n\
         [Install]\n\
         WantedBy=timers.target\n"
    );
    (service, timer)
}

fn crontab_line(root: &Path, line: &str) -> String {
    format!(
        "*/{EVERY_MINUTES} * * * * {line} >> {} 2>&1",
        shell_word(&root.join("state/upgrade.log").display().to_string())
    )
}

pub(crate) fn schedule(sh: &Shell, root: &Path, s: Schedule) -> Result<()> {
    let factory = Factory::open(root)?;
    let root = factory
        .dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", factory.dir.display()))?;
    Window::parse(&s.window)?;
    if s.channel == Channel::Major {
        bail!("--channel major: an unattended upgrade never crosses a major version; use minor or patch");
    }
    if let Some((url, _)) = &s.notify {
        notify::check_url(url)?;
    }
    let project = factory.project_name()?;
    let name = format!("disinto-upgrade-{project}");
    let exe: PathBuf = match std::env::var_os("DISINTO_LAUNCHER") {
        Some(launcher) => launcher.into(),
        None => std::env::current_exe().context("cannot find this program's path")?,
    };
    let words = command_words(&exe, &root, &s);
    let line = shell_line(&words);
    let (service, timer) = units(&project, &root, &words);
    let systemd = Path::new("/run/systemd/system").is_dir();
    if s.print {
        println!("# {UNIT_DIR}/{name}.service\n{service}\n# {UNIT_DIR}/{name}.timer\n{timer}");
        println!(
            "# or, without systemd, in root's crontab:\n{}",
            crontab_line(&root, &line)
        );
        return Ok(());
    }
    if !systemd {
        if s.remove {
            println!(
                "no systemd here: remove the line naming {} from the crontab (crontab -e)",
                root.display()
            );
            return Ok(());
        }
        println!("no systemd here: add this line to the crontab (crontab -e) of a user that may run docker:");
        println!("{}", crontab_line(&root, &line));
        return Ok(());
    }
    let runner = Runner::new(sh, false);
    let (service_path, timer_path) = (
        Path::new(UNIT_DIR).join(format!("{name}.service")),
        Path::new(UNIT_DIR).join(format!("{name}.timer")),
    );
    let timer_unit = format!("{name}.timer");
    if s.remove {
        runner.exec(cmd!(sh, "systemctl disable --now {timer_unit}"))?;
        for path in [&timer_path, &service_path] {
            if let Err(e) = std::fs::remove_file(path) {
                eprintln!("warning: cannot remove {}: {e}", path.display());
            }
        }
        runner.exec(cmd!(sh, "systemctl daemon-reload"))?;
        println!("removed {timer_unit}");
        return Ok(());
    }
    fsx::write_atomic_private(&service_path, service.as_bytes())?;
    fsx::write_atomic_private(&timer_path, timer.as_bytes())?;
    runner.exec(cmd!(sh, "systemctl daemon-reload"))?;
    runner.exec(cmd!(sh, "systemctl enable --now {timer_unit}"))?;
    println!("{timer_unit}: every {EVERY_MINUTES} minutes, upgrading only inside {:?} (`systemctl list-timers {timer_unit}`)", s.window);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_runs_the_auto_upgrade_with_every_word_quoted() {
        let s = Schedule {
            window: "Sat 02:00-04:00".into(),
            channel: Channel::Patch,
            notify: Some(("https://ntfy.example/topic?x=1&y=2".into(), Format::Json)),
            print: false,
            remove: false,
        };
        let words = command_words(Path::new("/srv/f/disinto"), Path::new("/srv/f"), &s);
        assert_eq!(
            shell_line(&words),
            "/srv/f/disinto --root /srv/f upgrade --auto --window 'Sat 02:00-04:00' --channel patch --notify 'https://ntfy.example/topic?x=1&y=2' --notify-format json"
        );
        let (service, timer) = units("prod", Path::new("/srv/f"), &words);
        assert!(
            service.contains("ExecStart=\"/srv/f/disinto\" \"--root\" \"/srv/f\" \"upgrade\" \"--auto\" \"--window\" \"Sat 02:00-04:00\""),
            "{service}"
        );
        let odd = exec_start(&["a%b$c\"d".to_string()]);
        assert_eq!(odd, "\"a%%b$$c\\\"d\"");
        assert!(timer.contains("OnCalendar=*:0/15"), "{timer}");
        assert_eq!(
            crontab_line(Path::new("/srv/f"), "x"),
            "*/15 * * * * x >> /srv/f/state/upgrade.log 2>&1"
        );
    }
}
