//! A Dockerfile cut into logical instructions as BuildKit's parser does it: parser
//! directives, continuations, comments, `--flags`, and heredoc bodies skipped.

use anyhow::{anyhow, bail, Result};

use super::words::{raw_words, unquoted_words};

/// Instructions whose line may open heredocs (BuildKit's `heredocDirectives`).
const HEREDOC_INSTRUCTIONS: [&str; 3] = ["add", "copy", "run"];
/// Parser directives; a `# key=value` line with any other key ends the directive block.
const DIRECTIVES: [&str; 3] = ["escape", "syntax", "check"];

/// One logical instruction: continuations joined, its heredoc bodies skipped.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Instruction {
    /// Where it starts (1-based).
    pub line: usize,
    /// Lowercase, as the builder compares it.
    pub keyword: String,
    pub flags: Vec<String>,
    pub args: String,
}

/// Logical instructions and the escape character: directives read, continuations joined
/// (without a separator, as the builder does), comments and blank lines dropped, heredoc
/// bodies skipped.
pub(super) fn instructions(text: &str) -> Result<(Vec<Instruction>, char)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.trim_end_matches(['\r', '\n']))
        .collect();
    let mut directives = Directives::default();
    let mut out = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        let start = next + 1;
        let first = lines[next].trim_start();
        next += 1;
        directives.see(first, start)?;
        if first.starts_with('#') {
            continue;
        }
        let escape = directives.escape;
        let mut line = String::new();
        let mut more = match continued(first, escape) {
            Some(body) => {
                line.push_str(body);
                true
            }
            None => {
                line.push_str(first);
                false
            }
        };
        if !more && line.is_empty() {
            continue;
        }
        while more && next < lines.len() {
            let raw = lines[next];
            next += 1;
            // Continuation lines keep their leading blanks; comment and blank lines vanish.
            let trimmed = raw.trim_start();
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            match continued(raw, escape) {
                Some(body) => line.push_str(body),
                None => {
                    line.push_str(raw);
                    more = false;
                }
            }
        }
        let (keyword, flags, args) = split_command(&line);
        let instruction = Instruction {
            line: start,
            keyword,
            flags,
            args,
        };
        if may_hold_heredocs(&instruction).map_err(|e| anyhow!("line {start}: {e}"))? {
            for doc in heredocs(&line).map_err(|e| anyhow!("line {start}: {e}"))? {
                loop {
                    let Some(raw) = lines.get(next) else {
                        bail!(
                            "line {start}: heredoc <<{0} never ends: close it with a line holding just {0}",
                            doc.name
                        );
                    };
                    next += 1;
                    let candidate = if doc.chomp {
                        raw.trim_start_matches('\t')
                    } else {
                        raw
                    };
                    if candidate == doc.name {
                        break;
                    }
                }
            }
        }
        out.push(instruction);
    }
    Ok((out, directives.escape))
}

/// The parser directives seen so far (only valid before any instruction, comment or blank).
#[derive(Debug)]
struct Directives {
    escape: char,
    done: bool,
    seen: Vec<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            done: false,
            seen: Vec::new(),
        }
    }
}

impl Directives {
    fn see(&mut self, line: &str, line_no: usize) -> Result<()> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if !DIRECTIVES.contains(&key.as_str()) {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&key) {
            bail!("line {line_no}: only one {key} parser directive can be used");
        }
        if key == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => bail!("line {line_no}: escape={value} must be ` or \\"),
            };
        }
        self.seen.push(key);
        Ok(())
    }
}

/// `# key=value`, as BuildKit's `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let key = &rest[..end];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[end..].trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((key, value))
}

/// The line without its continuation mark, or `None` when it does not continue. An escaped
/// escape character (`\\` at the end) is text, not a continuation.
fn continued(line: &str, escape: char) -> Option<&str> {
    let body = line.trim_end_matches([' ', '\t']);
    let before = body.strip_suffix(escape)?;
    if before.ends_with(escape) {
        return None;
    }
    Some(before)
}

/// Keyword (lowercase), `--flags` and arguments of a logical line, as BuildKit's
/// `splitCommand` cuts them.
pub(super) fn split_command(line: &str) -> (String, Vec<String>, String) {
    let line = line.trim();
    let (keyword, rest) = match line.find(is_token_space) {
        Some(i) => (&line[..i], line[i..].trim_start_matches(is_token_space)),
        None => (line, ""),
    };
    let (flags, args) = builder_flags(rest);
    (keyword.to_ascii_lowercase(), flags, args.trim().to_string())
}

/// The leading `--flag[=value]` words of an instruction and the rest. A port of BuildKit's
/// `extractBuilderFlags`, quirks included: a flag without `=` takes the next word as its
/// value, but only until some flag has had one.
fn builder_flags(line: &str) -> (Vec<String>, &str) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let bytes = line.as_bytes();
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    let mut words: Vec<String> = Vec::new();
    let mut word: Vec<u8> = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut parsing_value = false;
    let mut needs_value = true;
    let mut pos = 0;
    while pos <= bytes.len() {
        let current = bytes.get(pos).copied();
        if phase == Phase::Spaces {
            let Some(c) = current else { break };
            if is_space(c) {
                pos += 1;
                continue;
            }
            let starts_flag = c == b'-' && bytes.get(pos + 1) == Some(&b'-');
            if !parsing_value && !starts_flag {
                return (words, &line[pos..]);
            }
            phase = Phase::Word;
        }
        let Some(mut c) = current else {
            if word != b"--" && (blank_ok || !word.is_empty()) {
                words.push(String::from_utf8_lossy(&word).into_owned());
            }
            break;
        };
        if phase == Phase::Word {
            if is_space(c) {
                phase = Phase::Spaces;
                let text = String::from_utf8_lossy(&word).into_owned();
                if parsing_value {
                    if let Some(last) = words.last_mut() {
                        last.push('=');
                        last.push_str(&text);
                    }
                    parsing_value = false;
                    needs_value = true;
                } else {
                    if text == "--" {
                        return (words, &line[pos..]);
                    }
                    if blank_ok || !text.is_empty() {
                        parsing_value = needs_value;
                        words.push(text);
                    }
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if c == b'=' && needs_value {
                needs_value = false;
            }
            if c == b'\'' || c == b'"' {
                quote = c;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if c == b'\\' {
                if pos + 1 == bytes.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = bytes[pos];
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if c == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if c == b'\\' {
            if pos + 1 == bytes.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = bytes[pos];
        }
        word.push(c);
        pos += 1;
    }
    (words, "")
}

/// Whether the builder looks for heredocs after this instruction: `RUN`, `COPY` and `ADD`
/// (also behind `ONBUILD`), unless written in the JSON form.
fn may_hold_heredocs(instruction: &Instruction) -> std::result::Result<bool, String> {
    let (keyword, args) = if instruction.keyword == "onbuild" {
        let (keyword, _, args) = split_command(&instruction.args);
        (keyword, args)
    } else {
        (instruction.keyword.clone(), instruction.args.clone())
    };
    Ok(HEREDOC_INSTRUCTIONS.contains(&keyword.as_str()) && json_array(&args)?.is_none())
}

#[derive(Debug, Clone, PartialEq)]
struct Heredoc {
    name: String,
    /// `<<-`: leading tabs do not count on the closing line.
    chomp: bool,
}

/// The heredocs a line opens, in order: each word `[n]<<[-]WORD` (quotes allowed in WORD).
fn heredocs(line: &str) -> std::result::Result<Vec<Heredoc>, String> {
    let (words, complete) = raw_words(line, '\\');
    if !complete {
        return Ok(Vec::new()); // BuildKit drops a line it cannot split, and so its heredocs
    }
    let mut docs = Vec::new();
    for word in words {
        let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
        let Some(rest) = rest.strip_prefix("<<") else {
            continue;
        };
        let (chomp, rest) = match rest.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        if rest.is_empty() || rest.contains('<') {
            continue;
        }
        if let [name] = unquoted_words(rest)?.as_slice() {
            docs.push(Heredoc {
                name: name.clone(),
                chomp,
            });
        }
    }
    Ok(docs)
}

/// Parses `args` as the builder's JSON form: `None` when it is not one (the plain form
/// applies), an error for an array holding anything but strings. Like Go's decoder, text
/// after the array is ignored.
pub(super) fn json_array(args: &str) -> std::result::Result<Option<Vec<String>>, String> {
    let rest = args.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
    let Some(Ok(serde_json::Value::Array(items))) = values.next() else {
        return Ok(None);
    };
    items
        .into_iter()
        .map(|item| match item {
            serde_json::Value::String(s) => Ok(s),
            _ => Err("a JSON array here must hold strings only".to_string()),
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Some)
}

/// The builder's `[\t\v\f\r ]` (its `tokenWhitespace`).
pub(super) fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}
