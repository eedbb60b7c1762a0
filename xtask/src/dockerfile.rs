//! Reads the `VOLUME` paths a Dockerfile gives an image, parsing it the way current BuildKit
//! does: parser directives, continuations, comments, heredocs, JSON and plain forms, stages,
//! global `ARG`s in `FROM`, a build target; and which image the target stage is built on,
//! whose VOLUMEs it inherits (for the caller to find: they are not in the file). Pure; what
//! it cannot know for certain is an error.
//!
//! Heredocs (`RUN <<EOF`) are BuildKit's syntax (Docker 23+, `docker buildx`); Debian's Docker
//! 20.10 builders reject them outright, so reading them as BuildKit does is never wrong there.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};

mod lines;
mod words;

use lines::{instructions, is_token_space, json_array, split_command, Instruction};
use words::{expand, raw_words, Var};

/// The instructions the builder knows; any other word is an error there, and so here: it
/// means the file is broken, or this parser has lost track (a heredoc it failed to see).
const KNOWN: [&str; 18] = [
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];
/// Global ARGs BuildKit fills in from the build platform: their value is not in the file.
const PLATFORM_ARGS: [&str; 8] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
];

/// The `VOLUME` paths of the last stage with default build arguments (including those it
/// inherits from earlier stages by `FROM <stage>`), in declaration order, without duplicates.
pub fn volumes(text: &str) -> Result<Vec<String>> {
    volumes_for(text, None, &BTreeMap::new())
}

/// The `VOLUME` paths the file declares for the image a build makes: of stage `target` (the
/// last stage when `None`) and its ancestors, with `args` as the build arguments
/// (`--build-arg`). What the base image declares is not in the file: see [`image_for`].
pub fn volumes_for(
    text: &str,
    target: Option<&str>,
    args: &BTreeMap<String, String>,
) -> Result<Vec<String>> {
    image_for(text, target, args).map(|image| image.volumes)
}

/// What a Dockerfile says of the image a build of it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image its stages start `FROM` (as expanded), whose VOLUMEs the image inherits
    /// though the file does not name them; `None` for `scratch`.
    pub base: Option<String>,
    /// The paths the file declares for the target stage and its ancestors, in order.
    pub volumes: Vec<String>,
}

/// [`volumes_for`], with the base image the target stage is built on.
pub fn image_for(
    text: &str,
    target: Option<&str>,
    args: &BTreeMap<String, String>,
) -> Result<Image> {
    let (instructions, escape) = instructions(text)?;
    let stages = stages(&instructions, escape, args)?;
    let stage = match target {
        None => stages.last().context("no FROM: this is not a Dockerfile")?,
        Some(target) => {
            let wanted = target.to_ascii_lowercase();
            stages
                .iter()
                .find(|s| s.name.as_deref() == Some(wanted.as_str()))
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        stages.iter().filter_map(|s| s.name.as_deref()).collect();
                    anyhow!(
                        "build target {target} is not a stage of this Dockerfile: name one of [{}]",
                        names.join(", ")
                    )
                })?
        }
    };
    Ok(Image {
        base: stage.base.clone(),
        volumes: stage.volumes.clone().map_err(|e| anyhow!(e))?,
    })
}

/// The text that decides the stages before the last one (a release's package stage): every
/// line above the last `FROM` but blank lines and comments, so a comment edit changes
/// nothing. They must not read the build context (`COPY`, `ADD`, `RUN --mount`): the files
/// they would bring in are not in this text, and a release would reuse layers they changed.
pub fn package_stages(text: &str) -> Result<String> {
    let (instructions, _) = instructions(text)?;
    let last = instructions
        .iter()
        .rev()
        .find(|i| i.keyword == "from")
        .map(|i| i.line)
        .context("no FROM: this is not a Dockerfile")?;
    if let Some(i) = instructions.iter().find(|i| {
        i.line < last
            && (matches!(i.keyword.as_str(), "copy" | "add")
                || i.flags.iter().any(|f| f.starts_with("--mount")))
    }) {
        bail!(
            "line {}: {} reads the build context in a stage before the last: the package stage must depend on the base image and its own lines alone",
            i.line,
            i.keyword.to_ascii_uppercase()
        );
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Ok(text
        .split('\n')
        .take(last - 1)
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect())
}

/// The base image no file declares VOLUMEs for: BuildKit's empty image.
const SCRATCH: &str = "scratch";

/// A stage: its name, the paths it declares or inherits, and the image its chain of stages
/// starts from. An error is kept, not raised, until someone asks for this stage: a stage the
/// build does not use cannot break the check.
#[derive(Debug, Clone)]
struct Stage {
    name: Option<String>,
    volumes: std::result::Result<Vec<String>, String>,
    base: Option<String>,
}

fn stages(
    instructions: &[Instruction],
    escape: char,
    args: &BTreeMap<String, String>,
) -> Result<Vec<Stage>> {
    // All stage names up front, to tell a later stage's name from an image name.
    let mut names: Vec<(usize, String)> = Vec::new();
    for i in instructions.iter().filter(|i| i.keyword == "from") {
        if let [_, kw, name] = from_words(&i.args).as_slice() {
            if kw.eq_ignore_ascii_case("as") {
                names.push((i.line, name.to_ascii_lowercase()));
            }
        }
    }
    let mut global: BTreeMap<String, Var> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for i in instructions {
        let line = i.line;
        match i.keyword.as_str() {
            "from" => {
                let (base, name) = match from_words(&i.args).as_slice() {
                    [base] => (base.to_string(), None),
                    [base, kw, name] if kw.eq_ignore_ascii_case("as") => {
                        (base.to_string(), Some(name.to_ascii_lowercase()))
                    }
                    _ => bail!(
                        "line {line}: FROM {}: expected an image, then optionally AS and a stage name",
                        i.args
                    ),
                };
                if let Some(name) = &name {
                    if !valid_stage_name(name) {
                        bail!("line {line}: {name} is not a valid stage name (a letter, then letters, digits, '-', '_' or '.')");
                    }
                    if stages.iter().any(|s| s.name.as_ref() == Some(name)) {
                        bail!("line {line}: stage name {name} is used twice: name each stage once");
                    }
                }
                let lookup = |var: &str| global_var(&global, args, var);
                let (volumes, from) = match expand(&base, escape, &lookup, true) {
                    Err(e) => (Err(format!("line {line}: FROM {base}: {e}")), None),
                    Ok(image) if image.is_empty() => (Err(format!(
                        "line {line}: FROM {base} expands to nothing: give its ARG a default before the first FROM, or pass it as a build arg"
                    )), None),
                    Ok(image) => {
                        let key = image.to_ascii_lowercase();
                        match stages.iter().find(|s| s.name.as_deref() == Some(key.as_str())) {
                            Some(parent) => (parent.volumes.clone(), parent.base.clone()),
                            None if names.iter().any(|(at, n)| *n == key && *at >= line) => bail!(
                                "line {line}: FROM {base} names the stage {key}, defined further down: builders disagree on what that means, so move that stage above"
                            ),
                            // An image: its own VOLUMEs are for the caller to find.
                            None => (Ok(Vec::new()), (image != SCRATCH).then_some(image)),
                        }
                    }
                };
                stages.push(Stage {
                    name,
                    volumes,
                    base: from,
                });
            }
            "arg" if stages.is_empty() => {
                for word in raw_words(&i.args, escape).0 {
                    let (key, default) = match word.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v)),
                        None => (word.clone(), None),
                    };
                    let value = if let Some(unknown) = platform_arg(&key, args) {
                        unknown
                    } else if let Some(given) = args.get(&key) {
                        Var::Value(given.clone())
                    } else if let Some(default) = default {
                        let lookup = |var: &str| global_var(&global, args, var);
                        match expand(default, escape, &lookup, false) {
                            Ok(value) => Var::Value(value),
                            Err(e) => Var::Unknown(format!("ARG {key} (line {line}): {e}")),
                        }
                    } else {
                        Var::Unset
                    };
                    global.insert(key, value);
                }
            }
            "volume" => {
                let Some(stage) = stages.last_mut() else {
                    bail!("line {line}: VOLUME before any FROM");
                };
                let paths = if i.flags.is_empty() {
                    volume_paths(&i.args, escape).map_err(|e| format!("line {line}: {e}"))
                } else {
                    Err(format!("line {line}: VOLUME takes no flags"))
                };
                match (&mut stage.volumes, paths) {
                    (Ok(current), Ok(paths)) => {
                        for path in paths {
                            if !current.contains(&path) {
                                current.push(path);
                            }
                        }
                    }
                    (Ok(_), Err(e)) => stage.volumes = Err(e),
                    (Err(_), _) => {} // the first error of a stage is the one to fix
                }
            }
            keyword if KNOWN.contains(&keyword) => {
                if stages.is_empty() && keyword != "arg" {
                    bail!("line {line}: {} before any FROM", keyword.to_uppercase());
                }
                if keyword == "onbuild" && split_command(&i.args).0 == "volume" {
                    // Its VOLUME lands in whichever image builds FROM this one, stages of
                    // this file included, and builders differ on those: refuse, don't guess.
                    bail!("line {line}: ONBUILD VOLUME cannot be checked: declare the VOLUME in the stage that needs it");
                }
            }
            keyword => bail!(
                "line {line}: unknown instruction {}: the builder would refuse this file too",
                keyword.to_uppercase()
            ),
        }
    }
    Ok(stages)
}

fn from_words(args: &str) -> Vec<&str> {
    args.split(is_token_space)
        .filter(|w| !w.is_empty())
        .collect()
}

/// BuildKit's rule for stage names: `^[a-z][a-z0-9-_.]*$` (after lowercasing).
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn platform_arg(name: &str, args: &BTreeMap<String, String>) -> Option<Var> {
    (PLATFORM_ARGS.contains(&name) && !args.contains_key(name)).then(|| {
        Var::Unknown(format!(
            "{name} is set by the builder from the build platform, so its value is not in the file; pass it as a build arg"
        ))
    })
}

/// A variable as `FROM` sees it: a global ARG (build arguments only count for declared ARGs).
fn global_var(global: &BTreeMap<String, Var>, args: &BTreeMap<String, String>, name: &str) -> Var {
    platform_arg(name, args)
        .or_else(|| global.get(name).cloned())
        .unwrap_or(Var::Unset)
}

fn volume_paths(args: &str, escape: char) -> std::result::Result<Vec<String>, String> {
    // The builder's rule: a JSON array of strings, else whitespace-separated words; then
    // each is trimmed and goes through the shell-word rules (quotes, escapes, variables).
    let words = match json_array(args)? {
        Some(words) => words,
        None => args
            .split(is_token_space)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect(),
    };
    if words.is_empty() {
        return Err("VOLUME names no path".into());
    }
    let mut paths = Vec::new();
    for word in &words {
        let word = word.trim();
        if word.is_empty() {
            return Err("VOLUME has an empty path".into());
        }
        if word.contains('$') {
            return Err(format!(
                "VOLUME {word} uses a variable; write the path literally so it can be checked"
            ));
        }
        let path = expand(word, escape, &|_| Var::Unset, true)
            .map_err(|e| format!("VOLUME {word}: {e}"))?;
        if !path.starts_with('/') {
            return Err(format!("VOLUME {word} is not an absolute path"));
        }
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

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
    fn continued_lines_join_without_a_separator() {
        // The builder glues the next line on as it is: no blank added, its own blanks kept.
        assert_eq!(volumes("FROM x\nVOLUME /a\\\n/b\n").unwrap(), ["/a/b"]);
        assert_eq!(volumes("FROM x\nVOLUME /a\\\n /b\n").unwrap(), ["/a", "/b"]);
        // An escaped escape at the end is text, not a continuation.
        let e = volumes("FROM x\nVOLUME /a\\\\\nVOLUME /b\n").unwrap();
        assert_eq!(e, ["/a\\", "/b"]);
    }

    #[test]
    fn escape_directive() {
        let text = "# escape=`\nFROM x\nVOLUME /a `\n  /b\n";
        assert_eq!(volumes(text).unwrap(), ["/a", "/b"]);
        // Only before everything else: after a comment it is a comment, and ` is text.
        let text = "# hello\n# escape=`\nFROM x\nVOLUME /a `\n";
        let e = format!("{:#}", volumes(text).unwrap_err());
        assert_eq!(e, "line 4: VOLUME ` is not an absolute path");
        let e = format!("{:#}", volumes("# escape=x\nFROM x\n").unwrap_err());
        assert_eq!(e, "line 1: escape=x must be ` or \\");
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
    fn heredoc_bodies_are_not_instructions() {
        // The body would otherwise start a stage (losing /data) or declare a volume.
        let text =
            "FROM debian\nVOLUME /data\nRUN <<EOF\nfrom pathlib import Path\nVOLUME /nope\nEOF\n";
        assert_eq!(volumes(text).unwrap(), ["/data"]);
        for opener in [
            "RUN <<EOF",
            "RUN <<-EOF",
            "RUN <<\"EOF\"",
            "RUN <<'EOF'",
            "RUN 3<<EOF cat",
            "RUN python3 <<EOF > /out",
            "run --mount=type=cache,target=/c <<EOF",
            "COPY <<EOF /etc/x",
            "ADD <<EOF /etc/x",
            "ONBUILD RUN <<EOF",
            "RUN <<E\"O\"F",
            "RUN <<EOF \\\n  && echo",
        ] {
            let text = format!("FROM x\n{opener}\nFROM y\nVOLUME /nope\nEOF\nVOLUME /a\n");
            assert_eq!(volumes(&text).unwrap(), ["/a"], "{opener}");
        }
        // <<- drops leading tabs on the closing line, and only tabs.
        let text = "FROM x\nRUN <<-EOF\n\tFROM y\n\t\tEOF\nVOLUME /a\n";
        assert_eq!(volumes(text).unwrap(), ["/a"]);
        let text = "FROM x\nRUN <<EOF\n\tEOF\nEOF\nVOLUME /a\n";
        assert_eq!(volumes(text).unwrap(), ["/a"]);
        let text = "FROM x\nRUN <<EOF\nEOF \nEOF\nVOLUME /a\n";
        assert_eq!(volumes(text).unwrap(), ["/a"]);
    }

    #[test]
    fn several_heredocs_on_one_line_end_in_order() {
        let text = "FROM x\nVOLUME /data\nRUN <<ONE cat - /dev/fd/3 3<<'TWO'\nVOLUME /nope\nONE\nFROM y\nTWO\n";
        assert_eq!(volumes(text).unwrap(), ["/data"]);
        let text = "FROM x\nVOLUME /data\nCOPY <<A /a <<B /b\nA\nFROM y\nB\n";
        assert_eq!(volumes(text).unwrap(), ["/data"]);
    }

    #[test]
    fn what_is_not_a_heredoc_stays_instructions() {
        // JSON form, a blank after <<, a quoted <<, another instruction, a prefix before <<.
        for line in [
            "RUN [\"sh\", \"-c\", \"cat <<EOF\"]",
            "RUN cat << EOF",
            "RUN echo \"<<EOF\"",
            "ENV X=<<EOF",
            "RUN cat<<EOF",
        ] {
            let text = format!("FROM x\n{line}\nVOLUME /a\n");
            assert_eq!(volumes(&text).unwrap(), ["/a"], "{line}");
        }
    }

    #[test]
    fn an_unterminated_heredoc_is_an_error() {
        let e = volumes("FROM x\nRUN <<EOF\nVOLUME /a\n").unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "line 2: heredoc <<EOF never ends: close it with a line holding just EOF"
        );
    }

    #[test]
    fn lines_the_builder_refuses_are_refused() {
        for (text, want) in [
            ("FROM x\nfrom pathlib import Path\n", "line 2: FROM pathlib import Path: expected an image, then optionally AS and a stage name"),
            ("FROM x\nEOF\n", "line 2: unknown instruction EOF: the builder would refuse this file too"),
            ("RUN true\nFROM x\n", "line 1: RUN before any FROM"),
            ("FROM x AS a\nFROM y AS A\n", "line 2: stage name a is used twice: name each stage once"),
            ("FROM x AS 1a\n", "line 1: 1a is not a valid stage name (a letter, then letters, digits, '-', '_' or '.')"),
            ("FROM later\nFROM x AS later\n", "line 1: FROM later names the stage later, defined further down: builders disagree on what that means, so move that stage above"),
            ("FROM x\nONBUILD VOLUME /a\n", "line 2: ONBUILD VOLUME cannot be checked: declare the VOLUME in the stage that needs it"),
            ("FROM x\nVOLUME --x /a\n", "line 2: VOLUME takes no flags"),
            ("FROM x\nVOLUME [\"/a\", 1]\n", "line 2: a JSON array here must hold strings only"),
            ("FROM x\nVOLUME \"/a\n", "line 2: VOLUME \"/a: a double quote is never closed"),
            ("# only a comment\n", "no FROM: this is not a Dockerfile"),
        ] {
            let e = format!("{:#}", volumes(text).unwrap_err());
            assert_eq!(e, want, "{text:?}");
        }
    }

    #[test]
    fn words_go_through_the_shell_rules() {
        let text = "FROM --platform linux/amd64 x AS a\nVOLUME \"/q\" '/s' /e\\f\nVOLUME [\"\\\"/j\\\"\"]\n";
        assert_eq!(volumes(text).unwrap(), ["/q", "/s", "/ef", "/j"]);
    }

    #[test]
    fn the_target_stage_and_its_ancestors_count() {
        let text = "FROM x AS early\nVOLUME /early\nFROM early AS middle\nVOLUME /middle\n\
                    FROM y AS late\nVOLUME /late\n";
        let none = BTreeMap::new();
        assert_eq!(volumes_for(text, Some("early"), &none).unwrap(), ["/early"]);
        assert_eq!(
            volumes_for(text, Some("MIDDLE"), &none).unwrap(),
            ["/early", "/middle"]
        );
        assert_eq!(volumes_for(text, None, &none).unwrap(), ["/late"]);
        let e = volumes_for(text, Some("nope"), &none).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "build target nope is not a stage of this Dockerfile: name one of [early, middle, late]"
        );
        // A broken stage the build does not use does not matter; the used one does.
        let text = "FROM x AS good\nVOLUME /a\nFROM x AS bad\nVOLUME $X\n";
        assert_eq!(volumes_for(text, Some("good"), &none).unwrap(), ["/a"]);
        assert!(volumes_for(text, None, &none).is_err());
    }

    #[test]
    fn from_an_arg_follows_its_default_and_build_args() {
        let text = "ARG BASE=early\nARG OTHER=${BASE}\nFROM x AS early\nVOLUME /early\n\
                    FROM x AS other\nVOLUME /other\nFROM ${BASE}\nVOLUME /last\n";
        assert_eq!(volumes(text).unwrap(), ["/early", "/last"]);
        let to_other = args(&[("BASE", "other")]);
        assert_eq!(
            volumes_for(text, None, &to_other).unwrap(),
            ["/other", "/last"]
        );
        // A global ARG's default may use an earlier one; build args only reach declared ARGs.
        let text = "ARG A=ear\nARG B=${A}ly\nFROM x AS early\nVOLUME /early\nFROM $B\n";
        assert_eq!(volumes(text).unwrap(), ["/early"]);
        let text = "FROM x AS early\nVOLUME /early\nFROM ${UNDECLARED:-early}\n";
        assert_eq!(
            volumes_for(text, None, &args(&[("UNDECLARED", "x")])).unwrap(),
            ["/early"]
        );
        // An image, not a stage.
        let text = "ARG BASE_IMAGE=debian:bookworm-slim\nFROM ${BASE_IMAGE}\nVOLUME /a\n";
        assert_eq!(volumes(text).unwrap(), ["/a"]);
    }

    #[test]
    fn from_an_arg_without_a_value_is_refused() {
        for (text, want) in [
            ("ARG BASE\nFROM ${BASE}\n", "line 2: FROM ${BASE}: BASE has no value: give it one with ARG BASE=... before the first FROM, or pass it as a build arg"),
            ("FROM $NOWHERE\n", "line 1: FROM $NOWHERE: NOWHERE has no value: give it one with ARG NOWHERE=... before the first FROM, or pass it as a build arg"),
            ("FROM x AS a\nARG IN_STAGE=a\nFROM ${IN_STAGE}\n", "line 3: FROM ${IN_STAGE}: IN_STAGE has no value: give it one with ARG IN_STAGE=... before the first FROM, or pass it as a build arg"),
            ("ARG TARGETARCH\nFROM x AS amd64\nFROM ${TARGETARCH}\n", "line 3: FROM ${TARGETARCH}: TARGETARCH is set by the builder from the build platform, so its value is not in the file; pass it as a build arg"),
            ("ARG B=x\nFROM ${B%x}\n", "line 2: FROM ${B%x}: ${B...} uses a form the check does not follow: use ${B}, ${B:-default} or ${B:+word}"),
            ("ARG B=\nFROM ${B}\n", "line 2: FROM ${B} expands to nothing: give its ARG a default before the first FROM, or pass it as a build arg"),
        ] {
            let e = format!("{:#}", volumes(text).unwrap_err());
            assert_eq!(e, want, "{text:?}");
        }
        let text = "ARG TARGETARCH\nFROM x AS amd64\nVOLUME /a\nFROM ${TARGETARCH}\n";
        assert_eq!(
            volumes_for(text, None, &args(&[("TARGETARCH", "amd64")])).unwrap(),
            ["/a"]
        );
    }

    #[test]
    fn the_base_image_is_the_one_the_target_stage_starts_from() {
        let none = BTreeMap::new();
        let text = "ARG BASE=ghcr.io/disinto/agents:v0.1.0\nFROM ${BASE} AS agents\nVOLUME /a\n\
                    FROM debian:bookworm-slim AS other\nFROM agents AS child\nVOLUME /c\n\
                    FROM scratch AS empty\n";
        let image = |target| image_for(text, Some(target), &none).unwrap();
        assert_eq!(
            image("child"),
            Image {
                base: Some("ghcr.io/disinto/agents:v0.1.0".into()),
                volumes: vec!["/a".into(), "/c".into()],
            }
        );
        assert_eq!(image("other").base.as_deref(), Some("debian:bookworm-slim"));
        assert_eq!(image("empty").base, None);
        let moved = args(&[("BASE", "disinto-agents:dev")]);
        let image = image_for(text, Some("child"), &moved).unwrap();
        assert_eq!(image.base.as_deref(), Some("disinto-agents:dev"));
    }

    #[test]
    fn the_agents_dockerfile_declares_the_contract() {
        let text = std::fs::read_to_string(crate::project_root().join("docker/agents/Dockerfile"))
            .unwrap();
        let want: Vec<&str> = disinto::model::compose::AGENT_MOUNTS
            .iter()
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(volumes(&text).unwrap(), want);
    }

    #[test]
    fn package_stages_are_the_lines_above_the_last_from_less_comments() {
        let file = "# syntax note\nARG B=x\nFROM ${B} AS packages\n\n# why\nRUN a \\\n b\nFROM packages\nCOPY . /\n";
        assert_eq!(
            package_stages(file).unwrap(),
            "ARG B=x\nFROM ${B} AS packages\nRUN a \\\n b\n"
        );
        let commented = file.replace("# why", "# another reason");
        assert_eq!(
            package_stages(&commented).unwrap(),
            package_stages(file).unwrap()
        );
        let changed = file.replace("RUN a", "RUN c");
        assert_ne!(
            package_stages(&changed).unwrap(),
            package_stages(file).unwrap()
        );
        // One stage: no package stage, nothing to reuse.
        assert_eq!(package_stages("FROM x\nRUN a\n").unwrap(), "");
        for reads in [
            "COPY a /a",
            "ADD a /a",
            "RUN --mount=type=bind,target=/s make",
        ] {
            let e = package_stages(&format!("FROM x AS p\n{reads}\nFROM p\n")).unwrap_err();
            assert!(e.to_string().starts_with("line 2: "), "{e}");
        }
        // Our own Dockerfiles qualify.
        for image in disinto::model::image_ref::OUR_IMAGES {
            let text =
                std::fs::read_to_string(crate::project_root().join(image.dockerfile)).unwrap();
            assert!(
                package_stages(&text).unwrap().contains("apt-get install"),
                "{}",
                image.dockerfile
            );
        }
    }
}
