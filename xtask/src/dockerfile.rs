//! Reads the `VOLUME` declarations of a Dockerfile, as the builder would see them.
//! Pure parsing: continuations, comments, the escape directive, JSON and plain forms, stages.

use anyhow::{bail, Result};

/// The `VOLUME` paths of the final stage (including those it inherits from earlier stages
/// by `FROM <stage>`), in declaration order, without duplicates.
pub fn volumes(text: &str) -> Result<Vec<String>> {
    let mut stages: Vec<(Option<String>, Vec<String>)> = Vec::new();
    for (line_no, instruction) in instructions(text) {
        let (keyword, args) = match instruction.split_once(char::is_whitespace) {
            Some((k, a)) => (k.to_ascii_uppercase(), a.trim()),
            None => (instruction.to_ascii_uppercase(), ""),
        };
        match keyword.as_str() {
            "FROM" => {
                let words: Vec<&str> = args
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let base = words.first().copied().unwrap_or_default();
                let name = match words.as_slice() {
                    [_, kw, name] if kw.eq_ignore_ascii_case("AS") => {
                        Some(name.to_ascii_lowercase())
                    }
                    _ => None,
                };
                let inherited = stages
                    .iter()
                    .rev()
                    .find(|(n, _)| n.as_deref() == Some(&base.to_ascii_lowercase()))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                stages.push((name, inherited));
            }
            "VOLUME" => {
                let Some((_, current)) = stages.last_mut() else {
                    bail!("line {line_no}: VOLUME before any FROM");
                };
                for path in volume_args(args).map_err(|e| anyhow::anyhow!("line {line_no}: {e}"))? {
                    if !current.contains(&path) {
                        current.push(path);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(stages.pop().map(|(_, v)| v).unwrap_or_default())
}

/// Logical instructions with their first line number: continuations joined, comments and
/// blank lines dropped (also inside a continued instruction, as the builder does).
fn instructions(text: &str) -> Vec<(usize, String)> {
    let escape = escape_char(text);
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        // Empty lines inside a continuation are skipped too (the builder only warns).
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (body, continued) = match line.strip_suffix(escape) {
            Some(body) => (body, true),
            None => (line, false),
        };
        let entry = current.get_or_insert_with(|| (i + 1, String::new()));
        if !entry.1.is_empty() && !body.is_empty() {
            entry.1.push(' ');
        }
        entry.1.push_str(body.trim());
        if !continued {
            if let Some(done) = current.take() {
                if !done.1.is_empty() {
                    out.push(done);
                }
            }
        }
    }
    out.extend(current.filter(|c| !c.1.is_empty()));
    out
}

/// The `# escape=` parser directive (only valid before the first instruction or comment).
fn escape_char(text: &str) -> char {
    for line in text.lines() {
        let Some(directive) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = directive.split_once('=') else {
            break;
        };
        if key.trim().eq_ignore_ascii_case("escape") && value.trim() == "`" {
            return '`';
        }
    }
    '\\'
}

fn volume_args(args: &str) -> std::result::Result<Vec<String>, String> {
    // The builder's rule: a valid JSON array of strings, else whitespace-separated words.
    let paths: Vec<String> = match serde_json::from_str::<Vec<String>>(args) {
        Ok(paths) => paths,
        Err(_) => args.split_whitespace().map(str::to_string).collect(),
    };
    if paths.is_empty() {
        return Err("VOLUME names no path".into());
    }
    for path in &paths {
        if path.contains('$') {
            return Err(format!(
                "VOLUME {path} uses a variable; write the path literally so it can be checked"
            ));
        }
        if !path.starts_with('/') {
            return Err(format!("VOLUME {path} is not an absolute path"));
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form() {
        let v = volumes("FROM x\nVOLUME [\"/a\", \"/b c\"]\n").unwrap();
        assert_eq!(v, ["/a", "/b c"]);
    }

    #[test]
    fn plain_form_with_several_paths() {
        let v = volumes("FROM x\nvolume /a /b\tVOLUME\nVOLUME /c\n").unwrap_err();
        assert!(format!("{v:#}").contains("not an absolute path"), "{v:#}");
        let v = volumes("FROM x\nvolume /a /b\nVOLUME /c\n").unwrap();
        assert_eq!(v, ["/a", "/b", "/c"]);
    }

    #[test]
    fn continuations_and_comments() {
        let text =
            "FROM x\n# VOLUME /commented\nVOLUME /a \\\n  # inside\n  /b \\\n\n  /c\nRUN echo\n";
        assert_eq!(volumes(text).unwrap(), ["/a", "/b", "/c"]);
        let text = "FROM x\nVOLUME [\"/a\", \\\n  \"/b\"]\n";
        assert_eq!(volumes(text).unwrap(), ["/a", "/b"]);
    }

    #[test]
    fn escape_directive() {
        let text = "# escape=`\nFROM x\nVOLUME /a `\n  /b\n";
        assert_eq!(volumes(text).unwrap(), ["/a", "/b"]);
    }

    #[test]
    fn only_the_final_stage_counts_with_what_it_inherits() {
        let text = "FROM x AS build\nVOLUME /build-only\nFROM build AS base\nVOLUME /kept\n\
                    FROM y\nVOLUME /other\nFROM base\nVOLUME /last\n";
        assert_eq!(volumes(text).unwrap(), ["/build-only", "/kept", "/last"]);
        assert_eq!(
            volumes("FROM x\nVOLUME /a\nFROM y\n").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn bad_volume_lines_name_the_line() {
        for (text, want) in [
            (
                "FROM x\nVOLUME $DATA\n",
                "line 2: VOLUME $DATA uses a variable",
            ),
            (
                "FROM x\nVOLUME [\"/a\"\n",
                "line 2: VOLUME [\"/a\" is not an absolute path",
            ),
            (
                "FROM x\nVOLUME [/a, /b]\n",
                "line 2: VOLUME [/a, is not an absolute path",
            ),
            ("FROM x\nVOLUME\n", "line 2: VOLUME names no path"),
            ("VOLUME /a\n", "line 1: VOLUME before any FROM"),
        ] {
            let e = format!("{:#}", volumes(text).unwrap_err());
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_agents_dockerfile_declares_the_contract() {
        let text = std::fs::read_to_string(crate::project_root().join("docker/agents/Dockerfile"))
            .unwrap();
        let want: Vec<&str> = disinto::compose::AGENT_MOUNTS
            .iter()
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(volumes(&text).unwrap(), want);
    }
}
