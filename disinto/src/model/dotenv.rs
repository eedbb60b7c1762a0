//! `.env` exactly as Docker Compose reads it, so the values disinto validates are the values
//! compose runs with. Pure: text and a lookup in, values or a one-line error out.
//!
//! Mechanism: compose's rules (compose v2.40, whose reader is compose-go v2.9) written out here
//! and checked against `docker compose config` itself (`tests/dotenv_oracle.rs`: a table of
//! forms and random files). Reading is two steps, as in compose:
//!
//! 1. Statements ([`statements`]): a UTF-8 byte order mark is skipped; blank lines and lines
//!    starting with `#` are skipped; a statement is `[export ]KEY=value` or `KEY: value`, or a
//!    bare `KEY`, which takes its value from the process environment (and sets nothing when it is
//!    unset there). Keys are ASCII letters, digits, `_`, `.`, `-`, `[` and `]`. A value is
//!    - unquoted: up to the end of the line or the first ` #`, surrounding space trimmed;
//!    - in single quotes: literal, `\'` is a quote, across lines if need be;
//!    - in double quotes: `\"` is a quote, then the escapes `\n \r \t \a \b \f \v \\ \$ \"` and
//!      `\0` plus three octal digits, across lines if need be.
//! 2. Values ([`resolve`]), statement by statement: single-quoted values as written; unquoted
//!    and double-quoted ones interpolated: `$$` is `$`, `$VAR`, `${VAR}`, `${VAR:-default}`,
//!    `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?error}`, `${VAR?error}`, nested in
//!    the words, which are worked out even when unused (as compose does, so an error in one is an
//!    error). `VAR` is looked up in the process environment first, then among the keys defined
//!    earlier in the file. A later statement for a key replaces an earlier one.
//!
//! Whatever compose refuses is refused here too. Forms compose reads in surprising ways are
//! refused with one line rather than read differently: text after a closing quote (compose reads
//! it as another statement), spaces or non-ASCII letters in keys, `{` or `}` inside `${…}`,
//! `$` before the letters `ſ` or `K` (Go matches them as `s` and `k`), `export` alone, a line
//! that starts with `=`, and text that is not UTF-8.
//!
//! Limits are one-line errors, never a crash: a value that holds a NUL byte is refused, as
//! compose refuses it (its setenv fails); `${…}` nested deeper than [`MAX_NESTING`] is refused,
//! although compose reads it, because each level is recursion on the stack.

use std::collections::BTreeMap;
use std::ops::Range;

use anyhow::{anyhow, bail, Result};

/// A value as it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    /// `KEY` alone: the process environment's value, when it has one.
    Bare,
    /// Unquoted, with its comment cut and its space trimmed; interpolated.
    Plain(String),
    /// Between single quotes, `\'` made a quote: literal.
    Single(String),
    /// Between double quotes, `\"` made a quote: escapes, then interpolation.
    Double(String),
}

/// One statement of a `.env` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub key: String,
    /// The line the statement starts on (1 is the first).
    pub line: usize,
    pub raw: Raw,
    /// The bytes after the separator (after the key when bare) up to the end of the statement's
    /// last line, line ending excluded: what [`set`] replaces.
    pub rest: Range<usize>,
    /// Where the statement starts (its `export`, or its key): `start..rest.end` is the
    /// statement as written.
    pub start: usize,
}

/// The values of a `.env` file, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dotenv {
    pub values: BTreeMap<String, String>,
    /// Keys in the order they are first given a value (a map would sort them).
    pub order: Vec<String>,
}

/// Looks a variable up (the process environment, or that and the keys before): `Ok(None)` when
/// it is unset, an error when it cannot be used (a value that is not UTF-8).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Result<Option<String>>;

const BOM: char = '\u{feff}';

/// Reads `text` as compose does: its statements, resolved against `env`.
/// `origin` names the file in errors.
pub fn parse(text: &[u8], origin: &str, env: Lookup) -> Result<Dotenv> {
    resolve(&statements(text, origin)?, origin, env)
}

/// Resolves `statements` in order: interpolation sees the process environment first, then the
/// keys defined before.
pub fn resolve(statements: &[Statement], origin: &str, env: Lookup) -> Result<Dotenv> {
    let mut out = Dotenv::default();
    // The line of the statement that gave each key its value, for the NUL check below.
    let mut lines = BTreeMap::new();
    for s in statements {
        let fail = |e: anyhow::Error| anyhow!("{origin}:{}: {}: {e:#}", s.line, s.key);
        let value = {
            let values = &out.values;
            let lookup = |name: &str| -> Result<Option<String>> {
                Ok(env(name)?.or_else(|| values.get(name).cloned()))
            };
            match &s.raw {
                Raw::Bare => match env(&s.key).map_err(fail)? {
                    Some(v) => v,
                    // Unset in the environment: compose leaves the key as it was.
                    None => continue,
                },
                Raw::Single(v) => v.clone(),
                Raw::Plain(v) => interpolate(v, &lookup).map_err(fail)?,
                Raw::Double(v) => interpolate(&unescape(v), &lookup).map_err(fail)?,
            }
        };
        if !out.values.contains_key(&s.key) {
            out.order.push(s.key.clone());
        }
        lines.insert(s.key.as_str(), s.line);
        out.values.insert(s.key.clone(), value);
    }
    // Compose hands every value of the file to setenv, which refuses a NUL byte, so it fails
    // on the whole file ("setenv: invalid argument", naming nothing). Only a key's last value
    // counts, as in compose: a NUL that a later statement replaces is no error.
    for key in &out.order {
        if out.values[key].contains('\0') {
            let line = lines.get(key.as_str()).copied().unwrap_or(0);
            bail!(
                "{origin}:{line}: {key}: the value holds a NUL byte, so compose refuses the file \
                 too (setenv: invalid argument)"
            );
        }
    }
    Ok(out)
}

/// The statements of `text`, as written. `origin` names the file in errors.
pub fn statements(text: &[u8], origin: &str) -> Result<Vec<Statement>> {
    let text = std::str::from_utf8(text).map_err(|e| {
        let line = 1 + text[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        anyhow!(
            "{origin}:{line}: not UTF-8 text: compose would use the bytes as they are, so \
             disinto refuses it; save it as UTF-8"
        )
    })?;
    let mut reader = Reader {
        text,
        pos: if text.starts_with(BOM) {
            BOM.len_utf8()
        } else {
            0
        },
        line: 1,
        origin,
    };
    let mut out = Vec::new();
    while let Some(statement) = reader.statement()? {
        out.push(statement);
    }
    Ok(out)
}

/// `text` with `key`'s value set to `value`: the last statement for `key` (the one compose reads)
/// changed from its separator to the end of its line, every other byte kept; appended when
/// there is none. The value is quoted as [`quote`] does, so it reads back as itself.
pub fn set(text: &str, key: &str, value: &str, origin: &str) -> Result<String> {
    if value.contains('\0') {
        bail!("{origin}: cannot set {key} to a value that holds a NUL byte: compose refuses it");
    }
    let all = statements(text.as_bytes(), origin)?;
    let quoted = quote(value);
    let out = match all.iter().rfind(|s| s.key == key) {
        Some(s) => {
            let separator = if s.raw == Raw::Bare { "=" } else { "" };
            format!(
                "{}{separator}{quoted}{}",
                &text[..s.rest.start],
                &text[s.rest.end..]
            )
        }
        None => {
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("{key}={quoted}\n"));
            out
        }
    };
    // What is written is what was meant: the same statements, `key`'s last one now `value`.
    let again = statements(out.as_bytes(), origin)?;
    let keys = |s: &[Statement]| s.iter().map(|s| s.key.clone()).collect::<Vec<_>>();
    let last = again.iter().rfind(|s| s.key == key).map(|s| &s.raw);
    let reads_back = match last {
        Some(Raw::Plain(v) | Raw::Single(v)) => !v.contains('$') && v == value,
        Some(Raw::Double(v)) => interpolate(&unescape(v), &|_| Ok(None)).is_ok_and(|v| v == value),
        _ => false,
    };
    let same_keys = {
        let mut before = keys(&all);
        if !before.iter().any(|k| k == key) {
            before.push(key.to_string());
        }
        before == keys(&again)
    };
    if !reads_back || !same_keys {
        bail!("{origin}: cannot set {key}={value:?} in place: set it by hand");
    }
    Ok(out)
}

/// `value` as the right-hand side of a `.env` line that compose reads back as exactly `value`:
/// bare when plain, else in single quotes, else in double quotes with escapes.
pub fn quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:@,+=".contains(c);
    if value.chars().all(plain) {
        return value.to_string();
    }
    // Single quotes are literal (`$` too), but hold no `'`; a backslash before the closing quote
    // would escape it, and `\r` or a newline would be kept but split the line for a reader.
    if !value.contains(['\'', '\\', '\n', '\r']) {
        return format!("'{value}'");
    }
    let mut quoted = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            // `\$`: compose reads it (like `$$`) as a `$` that is not interpolated.
            '$' => quoted.push_str("\\$"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Compose's space around keys and values: Go's `unicode.IsSpace` less the newline.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

/// A character of a key, as compose allows it (ASCII only: compose reads keys byte by byte, so
/// a non-ASCII letter can be cut in two).
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')
}

struct Reader<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    origin: &'a str,
}

impl Reader<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            if c == '\n' {
                self.line += 1;
            }
            self.pos += c.len_utf8();
        }
    }

    fn skip_while(&mut self, keep: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
    }

    /// The end of the current line, its `\r\n` or `\n` excluded, and not before `floor`.
    fn line_end(&self, floor: usize) -> usize {
        let end = self.text[self.pos..]
            .find('\n')
            .map_or(self.text.len(), |i| self.pos + i);
        if end > floor && self.text[..end].ends_with('\r') {
            end - 1
        } else {
            end
        }
    }

    fn error(&self, line: usize, key: &str, what: &str) -> anyhow::Error {
        let subject = if key.is_empty() {
            String::new()
        } else {
            format!("{key}: ")
        };
        anyhow!("{}:{line}: {subject}{what}", self.origin)
    }

    /// A form compose refuses too.
    fn invalid(&self, line: usize, key: &str, what: &str) -> anyhow::Error {
        let file = self.origin.rsplit('/').next().unwrap_or(self.origin);
        self.error(
            line,
            key,
            &format!("{what}, so {file} is not a valid .env file (docker compose refuses it too)"),
        )
    }

    /// A form compose reads in a surprising way: refused rather than read differently.
    fn unsupported(&self, line: usize, key: &str, what: &str) -> anyhow::Error {
        self.error(
            line,
            key,
            &format!(
                "{what}: docker compose reads this in a surprising way, so disinto refuses it"
            ),
        )
    }

    fn statement(&mut self) -> Result<Option<Statement>> {
        loop {
            self.skip_while(char::is_whitespace);
            match self.peek() {
                None => return Ok(None),
                Some('#') => self.skip_while(|c| c != '\n'),
                Some(_) => break,
            }
        }
        let line = self.line;
        let begin = self.pos;
        let rest = &self.text[self.pos..];
        // Go's `\s` after `export`: `export\vKEY` is a key with a space in it.
        if rest.starts_with("export") && rest[6..].starts_with(['\t', '\n', '\u{c}', '\r', ' ']) {
            self.pos += "export".len();
            self.skip_while(is_space);
            if matches!(self.peek(), None | Some('\n')) {
                return Err(self.unsupported(line, "", "`export` without a name"));
            }
        }
        let start = self.pos;
        self.skip_while(is_key_char);
        let key = self.text[start..self.pos].to_string();
        let key_end = self.pos;
        self.skip_while(|c| matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' '));
        match self.peek() {
            Some('=' | ':') if !key.is_empty() => self.bump(),
            Some('=' | ':') => {
                let what = "a line that starts with '=' or ':' has no name";
                return Err(self.unsupported(line, "", what));
            }
            None if !key.is_empty() => {
                let what = "a bare name on the last line, with no line break after it: docker compose 2.26 refuses that (2.40 reads it), so disinto does too; end the file with a newline";
                return Err(self.error(line, &key, what));
            }
            Some('\n') if !key.is_empty() => {
                let rest = key_end..self.line_end(key_end);
                let raw = Raw::Bare;
                return Ok(Some(Statement {
                    key,
                    line,
                    raw,
                    rest,
                    start: begin,
                }));
            }
            // `A B=1`: compose refuses a space in a name, but takes a tab as part of it.
            Some(c) if !key.is_empty() && self.pos > key_end && is_key_char(c) => {
                let what = "a name cannot contain spaces";
                return Err(match self.text[key_end..self.pos].contains(' ') {
                    true => self.invalid(line, &key, what),
                    false => self.unsupported(line, &key, what),
                });
            }
            Some(c) if !c.is_ascii() && c.is_alphanumeric() => {
                let what = format!(
                    "{c:?} in a name: names are ASCII letters, digits, '_', '.', '-', '[' and ']'"
                );
                return Err(self.unsupported(line, &key, &what));
            }
            c => {
                let text = &self.text[start..self.line_end(start)];
                let c = c.map_or_else(|| "end of line".to_string(), |c| format!("{c:?}"));
                let what = format!("unexpected character {c} in the name of {text:?}");
                return Err(self.invalid(line, &key, &what));
            }
        }
        let separator_end = self.pos;
        self.skip_while(is_space);
        let raw = match self.peek() {
            Some(quote @ ('\'' | '"')) => self.quoted(quote, line, &key)?,
            _ => {
                let end = self.text[self.pos..]
                    .find('\n')
                    .map_or(self.text.len(), |i| self.pos + i);
                let value = &self.text[self.pos..end];
                // Only a space before `#` starts a comment (a tab does not).
                let value = value.split(" #").next().unwrap_or(value);
                self.pos = end;
                Raw::Plain(value.trim_end().to_string())
            }
        };
        Ok(Some(Statement {
            key,
            line,
            raw,
            rest: separator_end..self.line_end(separator_end),
            start: begin,
        }))
    }

    /// A quoted value, the reader on its opening quote; then the rest of its last line, which may
    /// hold only space and a comment.
    fn quoted(&mut self, quote: char, line: usize, key: &str) -> Result<Raw> {
        self.bump();
        let mut value = String::new();
        let mut escaped = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.invalid(
                    line,
                    key,
                    &format!("the {quote} that opens the value is never closed"),
                ));
            };
            self.bump();
            match c {
                // `\"` (or `\'`) is the quote; any other escape stays for `unescape`.
                c if escaped => {
                    if c != quote {
                        value.push('\\');
                    }
                    value.push(c);
                    escaped = false;
                }
                '\\' => escaped = true,
                c if c == quote => break,
                c => value.push(c),
            }
        }
        self.skip_while(|c| c.is_whitespace() && c != '\n');
        match self.peek() {
            None | Some('\n') => {}
            Some('#') => self.skip_while(|c| c != '\n'),
            Some(_) => {
                return Err(self.unsupported(
                    self.line,
                    key,
                    &format!(
                        "text after the closing {quote} (compose reads it as another statement)"
                    ),
                ))
            }
        }
        Ok(match quote {
            '\'' => Raw::Single(value),
            _ => Raw::Double(value),
        })
    }
}

/// Compose's escapes in a double-quoted value: `\n \r \t \a \b \f \v \\ \"`, `\$` kept as `$$`
/// (a `$` that interpolation leaves), `\0` and three octal digits; any other backslash stays.
/// As in compose, an escape that fails (`\c`, `\012`) stays, its `\0` written `\`.
pub fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let simple = match chars.peek() {
            Some('a') => Some("\u{7}"),
            Some('b') => Some("\u{8}"),
            Some('c') => Some("\\c"),
            Some('f') => Some("\u{c}"),
            Some('n') => Some("\n"),
            Some('r') => Some("\r"),
            Some('t') => Some("\t"),
            Some('v') => Some("\u{b}"),
            Some('$') => Some("$$"),
            Some('"') => Some("\""),
            Some('\\') => Some("\\"),
            _ => None,
        };
        if let Some(s) = simple {
            out.push_str(s);
            chars.next();
            continue;
        }
        if chars.peek() != Some(&'0') {
            out.push('\\');
            continue;
        }
        chars.next();
        let mut digits = String::new();
        while digits.len() < 3 && chars.peek().is_some_and(char::is_ascii_digit) {
            digits.extend(chars.next());
        }
        let octal = (digits.len() == 3)
            .then(|| u32::from_str_radix(&digits, 8).ok())
            .flatten()
            .filter(|&v| v <= 0xff)
            .and_then(char::from_u32);
        match octal {
            Some(c) => out.push(c),
            None => {
                out.push('\\');
                out.push_str(&digits);
            }
        }
    }
    out
}

/// Compose's interpolation of `template`; `lookup` gives a variable's value (`None`: unset).
pub fn interpolate(template: &str, lookup: Lookup) -> Result<String> {
    let mut t = Template {
        text: template,
        pos: 0,
        strict: false,
        depth: 0,
    };
    t.sequence(false, lookup)
}

/// [`interpolate`], except that a variable that is unset and has no default where it is used
/// is an error rather than empty: for values (mount targets) where a blank would only hide
/// what was meant. A default that is not used is not held to it.
pub fn interpolate_strict(template: &str, lookup: Lookup) -> Result<String> {
    let mut t = Template {
        text: template,
        pos: 0,
        strict: true,
        depth: 0,
    };
    t.sequence(false, lookup)
}

struct Template<'a> {
    text: &'a str,
    pos: usize,
    /// An unset variable without a default is an error (see [`interpolate_strict`]).
    strict: bool,
    /// How many `${` are open here: bounded by [`MAX_NESTING`].
    depth: usize,
}

/// How deep `${…}` may nest in a word. Each level is a few frames of recursion, so without a
/// bound a long enough `${Y:-${Y:-…}}` overflows the stack and aborts the process. Compose
/// (Go, whose stacks grow) reads any depth; no settings file needs more than two or three.
pub const MAX_NESTING: usize = 32;

/// Letters Go's case-insensitive `[a-z]` also matches (long s, Kelvin sign): compose takes them
/// into a variable's name.
fn folds_into_ascii(c: char) -> bool {
    matches!(c, '\u{17f}' | '\u{212a}')
}

impl Template<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    /// Text up to the end, or (`nested`) up to and including the `}` that closes a `${`.
    fn sequence(&mut self, nested: bool, lookup: Lookup) -> Result<String> {
        let mut out = String::new();
        loop {
            match self.peek() {
                None if nested => bail!("a ${{ is never closed in {:?} (compose refuses it too)", self.text),
                None => return Ok(out),
                Some('$') => {
                    self.bump();
                    out.push_str(&self.dollar(lookup)?);
                }
                Some('}') if nested => {
                    self.bump();
                    return Ok(out);
                }
                Some('{') if nested => bail!(
                    "a {{ inside ${{…}} in {:?}: compose counts it as a brace, so disinto refuses it",
                    self.text
                ),
                Some('\n') if nested => {
                    bail!("a ${{…}} spans lines in {:?} (compose refuses it too)", self.text)
                }
                Some(c) => {
                    out.push(c);
                    self.bump();
                }
            }
        }
    }

    /// A variable's value where it is used without a default.
    fn value(&self, name: &str, lookup: Lookup) -> Result<String> {
        match lookup(name)? {
            Some(v) => Ok(v),
            None if self.strict => bail!(
                "${{{name}}} is not set and has no default: set it, or write ${{{name}:-value}}"
            ),
            None => Ok(String::new()),
        }
    }

    fn name(&mut self) -> Result<String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
        {
            self.bump();
        }
        if self.peek().is_some_and(folds_into_ascii) {
            bail!(self.folding());
        }
        Ok(self.text[start..self.pos].to_string())
    }

    fn folding(&self) -> String {
        format!(
            "{:?}: compose reads 'ſ' and 'K' after $ as 's' and 'k' of a name, so disinto refuses it",
            self.text
        )
    }

    /// After a `$`.
    fn dollar(&mut self, lookup: Lookup) -> Result<String> {
        match self.peek() {
            Some('$') => {
                self.bump();
                Ok("$".into())
            }
            Some('{') => {
                self.bump();
                self.braced(lookup)
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let name = self.name()?;
                self.value(&name, lookup)
            }
            Some(c) if folds_into_ascii(c) => bail!(self.folding()),
            // A `$` before anything else is itself.
            _ => Ok("$".into()),
        }
    }

    /// After a `${`: one level deeper, refused past [`MAX_NESTING`].
    fn braced(&mut self, lookup: Lookup) -> Result<String> {
        if self.depth == MAX_NESTING {
            bail!(
                "${{…}} nested more than {MAX_NESTING} deep: docker compose reads it, but \
                 disinto refuses it (it would exhaust the stack)"
            );
        }
        self.depth += 1;
        let value = self.braced_word(lookup);
        self.depth -= 1;
        value
    }

    /// The rest of a `${…}`, after its `${`.
    fn braced_word(&mut self, lookup: Lookup) -> Result<String> {
        let invalid = |t: &Self| {
            anyhow!(
                "invalid interpolation in {:?}: compose refuses it too (write $$ for a literal $)",
                t.text
            )
        };
        if !self
            .peek()
            .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        {
            if self.peek().is_some_and(folds_into_ascii) {
                bail!(self.folding());
            }
            return Err(invalid(self));
        }
        let name = self.name()?;
        let colon = self.peek() == Some(':');
        if colon {
            self.bump();
        }
        let op = match self.peek() {
            Some('}') if !colon => {
                self.bump();
                return self.value(&name, lookup);
            }
            Some(op @ ('-' | '+' | '?')) => op,
            _ => return Err(invalid(self)),
        };
        self.bump();
        // Compose works the word out before it knows whether it is used (its errors count
        // either way); strictness applies only to a word that is used, so it is worked out
        // leniently first and again, strictly, once it is known to be used.
        let start = self.pos;
        let strict = std::mem::replace(&mut self.strict, false);
        let lenient_word = self.sequence(true, lookup);
        self.strict = strict;
        let mut word = lenient_word?;
        let value = lookup(&name)?;
        let set = |v: &Option<String>| v.as_ref().is_some_and(|v| !colon || !v.is_empty());
        let used = match op {
            '-' => !set(&value),
            '+' => set(&value),
            _ => false,
        };
        if strict && used {
            self.pos = start;
            word = self.sequence(true, lookup)?;
        }
        Ok(match op {
            '-' if set(&value) => value.unwrap_or_default(),
            '-' => word,
            '+' if set(&value) => word,
            '+' => value.unwrap_or_default(),
            _ if set(&value) => value.unwrap_or_default(),
            _ if word.is_empty() => bail!("required variable {name} is missing a value"),
            _ => bail!("required variable {name} is missing a value: {word}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Result<Option<String>> {
        Ok(None)
    }

    /// The values of `text` with `env` as the process environment.
    fn read_with(text: &str, env: &[(&str, &str)]) -> Result<BTreeMap<String, String>> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| Ok(env.get(k).cloned());
        parse(text.as_bytes(), "f/.env", &lookup).map(|d| d.values)
    }

    fn read(text: &str) -> BTreeMap<String, String> {
        match read_with(text, &[]) {
            Ok(map) => map,
            Err(e) => panic!("{text:?}: {e:#}"),
        }
    }

    fn error(text: &str) -> String {
        let e = format!(
            "{:#}",
            parse(text.as_bytes(), "f/.env", &no_env).unwrap_err()
        );
        assert!(!e.contains('\n'), "one line: {e}");
        e
    }

    fn one(text: &str, key: &str) -> String {
        read(text)
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("{text:?}: no {key}"))
    }

    #[test]
    fn statements_keys_separators_and_export() {
        let map = read("\u{feff}A=1\nexport B = 2\nexport\tC:3\nD : 4\nE:  f:g\n  # c\n\t#d\n");
        let want = [("A", "1"), ("B", "2"), ("C", "3"), ("D", "4"), ("E", "f:g")];
        assert_eq!(
            map,
            want.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        );
        assert_eq!(one("exportA=1", "exportA"), "1");
        assert_eq!(one("export=1", "export"), "1");
        assert_eq!(one("-A.b[0]=1", "-A.b[0]"), "1");
        assert_eq!(one("9=1", "9"), "1");
        assert_eq!(one("A:=b", "A"), "=b");
        assert_eq!(one("A=b=c", "A"), "b=c");
        assert_eq!(one("A=1\nA=2", "A"), "2");
        assert_eq!(one("A=b\r\nB=c\r\n", "A"), "b");
        assert!(read("").is_empty());
        assert!(read("# only\n\n").is_empty());
    }

    #[test]
    fn unquoted_values_cut_comments_and_trim() {
        assert_eq!(one("A=a # b # c", "A"), "a");
        assert_eq!(one("A=a#b", "A"), "a#b");
        assert_eq!(one("A=a\t# b", "A"), "a\t# b");
        // The space after `=` goes first, so this `#` starts the value.
        assert_eq!(one("A= # b", "A"), "# b");
        assert_eq!(one("A=\u{a0}x\u{2003}", "A"), "x");
        assert_eq!(one("A=  x y  ", "A"), "x y");
        assert_eq!(one("A=x 'y'", "A"), "x 'y'");
        assert_eq!(one("A=\\$X", "A"), "\\");
        assert_eq!(one("A=ab\rB=2", "A"), "ab\rB=2");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(one("A='$B \\n # x'", "A"), "$B \\n # x");
        assert_eq!(one("A='a\\'b'", "A"), "a'b");
        assert_eq!(one("A='a\\\\'", "A"), "a\\\\");
        assert_eq!(one("A='multi\nline'", "A"), "multi\nline");
        assert_eq!(one("A=\"x #c\"\t#c", "A"), "x #c");
        assert_eq!(one("A=\"x\"#c\nB=1", "A"), "x");
        assert_eq!(one("A= 'x'", "A"), "x");
        let escapes = r#"A="a\tb\nc\rd\x\$e\"f\\g\0101h\a\b\f\v\c""#;
        assert_eq!(
            one(escapes, "A"),
            "a\tb\nc\rd\\x$e\"f\\gAh\u{7}\u{8}\u{c}\u{b}\\c"
        );
        let octal = r#"A="\0377|\012|\0|\00|\0089|\01234|\0400""#;
        assert_eq!(one(octal, "A"), "ÿ|\\12|\\|\\0|\\089|S4|\\400");
        // Escapes come first, then interpolation: `\0044` is a `$` that interpolates.
        let map = read_with(r#"A="\0044X|\$X|$\$X|\\$X""#, &[("X", "1")]).unwrap();
        assert_eq!(map["A"], "1|$X|$1|\\1");
        assert_eq!(one("A=\"a\\\nb\"", "A"), "a\\\nb");
    }

    #[test]
    fn interpolation_follows_compose() {
        let env = [("SET", "v"), ("EMPTY", "")];
        let value = |t: &str| read_with(&format!("A={t}"), &env).map(|m| m["A"].clone());
        for (template, want) in [
            ("$SET|${SET}|$$SET|$UNSET|x$", "v|v|$SET||x$"),
            ("${UNSET:-d}|${EMPTY:-d}|${SET:-d}", "d|d|v"),
            ("${UNSET-d}|${EMPTY-d}|${SET-d}", "d||v"),
            ("${UNSET:+a}|${EMPTY:+a}|${SET:+a}", "||a"),
            ("${UNSET+a}|${EMPTY+a}|${SET+a}", "|a|a"),
            ("${EMPTY?}|${SET:?}|${SET?x}", "|v|v"),
            ("${UNSET:-${NONE:-deep}}z", "deepz"),
            ("${UNSET-${SET}z}w", "vzw"),
            ("${UNSET:-a}b}|{${SET}}", "ab}|{v}"),
            ("${UNSET:-$}|${UNSET:-$1}|$1 $", "$|$1|$1 $"),
            ("${SET-a-b}|${UNSET-a:-b}", "v|a:-b"),
        ] {
            assert_eq!(value(template).unwrap(), want, "{template}");
        }
        // The process environment first, then the keys defined before.
        let map = read_with("A=1\nB=${A}x\nC=${D}\nD=late\nX=${X}2", &[("X", "p")]).unwrap();
        assert_eq!((map["B"].as_str(), map["C"].as_str()), ("1x", ""));
        assert_eq!(map["X"], "p2");
        let map = read_with("A=f\nB=${A}x", &[("A", "p")]).unwrap();
        assert_eq!(map["B"], "px");
    }

    #[test]
    fn bare_keys_come_from_the_environment() {
        let env = [("A", "proc")];
        assert_eq!(read_with("A\n", &env).unwrap()["A"], "proc");
        assert_eq!(read_with("export A  \n", &env).unwrap()["A"], "proc");
        assert!(read_with("A\n", &[]).unwrap().is_empty());
        // Unset in the environment: the key keeps the value it had.
        assert_eq!(read_with("A=1\nA\n", &[]).unwrap()["A"], "1");
        // On the last line without a line break, compose 2.26 fails: refused, saying why.
        let e = format!("{:#}", read_with("A=1\nA", &env).unwrap_err());
        assert!(e.contains("A: a bare name on the last line"), "{e}");
    }

    #[test]
    fn errors_are_one_line_with_file_line_and_variable() {
        for (text, want) in [
            ("A=1\nB='x", "f/.env:2: B: the ' that opens the value is never closed, so .env is not a valid .env file"),
            ("A=\"x\\\"", "f/.env:1: A: the \" that opens"),
            ("\n\nAB C=1", "f/.env:3: AB: a name cannot contain spaces, so .env is not"),
            ("A\tB=1", "f/.env:1: A: a name cannot contain spaces: docker compose reads"),
            ("A$=1", "f/.env:1: A: unexpected character '$'"),
            ("\"A\"=1", "f/.env:1: unexpected character '\"'"),
            ("Ä=1", "f/.env:1: 'Ä' in a name"),
            ("=b", "f/.env:1: a line that starts with '=' or ':' has no name"),
            ("export\nA=1", "f/.env:1: `export` without a name"),
            ("A='x' B=2", "f/.env:1: A: text after the closing '"),
            ("A=\"x\"y", "f/.env:1: A: text after the closing \""),
            ("\u{feff}\u{feff}A=1", "f/.env:1: unexpected character '\\u{feff}'"),
            ("A=1\nB=${X:?boom}", "f/.env:2: B: required variable X is missing a value: boom"),
            ("B=${X?}", "f/.env:1: B: required variable X is missing a value"),
            ("B=${X:-${Y:?inner}}", "f/.env:1: B: required variable Y is missing a value: inner"),
            ("B=${X:x}", "f/.env:1: B: invalid interpolation in \"${X:x}\""),
            ("B=${}", "f/.env:1: B: invalid interpolation"),
            ("B=${1}", "f/.env:1: B: invalid interpolation"),
            ("B=${X", "f/.env:1: B: invalid interpolation"),
            ("B=${X:-a #b}", "f/.env:1: B: a ${ is never closed"),
            ("B=\"${X:-a\nb}\"", "f/.env:1: B: a ${…} spans lines"),
            ("B=${X:-{a}}", "f/.env:1: B: a { inside ${…}"),
            ("B=$\u{17f}", "f/.env:1: B: \"$ſ\": compose reads 'ſ' and 'K'"),
            ("B=${A\u{212a}}", "f/.env:1: B: \"${A\u{212a}}\": compose reads"),
        ] {
            let e = error(text);
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
        let bytes = b"A=1\nB=\xff\n";
        let e = format!("{:#}", parse(bytes, "f/.env", &no_env).unwrap_err());
        assert!(e.starts_with("f/.env:2: not UTF-8 text"), "{e}");
    }

    #[test]
    fn an_unusable_environment_value_names_the_variable() {
        let env = |k: &str| match k {
            "PIN" => bail!("PIN is set in the process environment, but not to UTF-8 text"),
            _ => Ok(None),
        };
        let e = format!(
            "{:#}",
            parse(b"X=1\nAGENTS_IMAGE=${PIN:-v1}", "f", &env).unwrap_err()
        );
        assert_eq!(
            e,
            "f:2: AGENTS_IMAGE: PIN is set in the process environment, but not to UTF-8 text"
        );
        let e = format!("{:#}", parse(b"PIN\n", "f", &env).unwrap_err());
        assert!(e.starts_with("f:1: PIN: PIN is set"), "{e}");
    }

    #[test]
    fn keys_keep_the_order_they_are_defined_in() {
        let d = parse(b"B=1\nA=2\nB=3\nC\n", "f", &no_env).unwrap();
        assert_eq!(d.order, ["B", "A"]);
    }

    #[test]
    fn set_changes_the_last_statement_and_keeps_every_other_byte() {
        let set = |t: &str, v: &str| set(t, "K", v, "f").unwrap();
        assert_eq!(set("K: old # c\r\nX=1\n", "v1"), "K:v1\r\nX=1\n");
        assert_eq!(
            set("\u{feff}K=a\nK='multi\nline' # c\nX=1", "v1"),
            "\u{feff}K=a\nK=v1\nX=1"
        );
        assert_eq!(set("X=1\nK  \n", "v1"), "X=1\nK=v1\n");
        assert_eq!(set("X=1", "a b"), "X=1\nK='a b'\n");
        assert_eq!(set("K=\"x\"\n", "it's $HOME"), "K=\"it's \\$HOME\"\n");
        assert!(super::set("K='x", "K", "v", "f").is_err());
    }

    #[test]
    fn a_nul_byte_in_a_value_is_refused_as_compose_refuses_it() {
        for (text, want) in [
            ("A=a\0b\n", "f/.env:1: A: the value holds a NUL byte"),
            ("X=1\nA='a\0b'\n", "f/.env:2: A: the value holds a NUL byte"),
            ("A=\"a\0b\"\n", "f/.env:1: A: the value holds a NUL byte"),
            // An octal escape makes one too.
            ("A=\"x\\0000\"\n", "f/.env:1: A: the value holds a NUL byte"),
            // Interpolated into another key: that key's value holds it.
            (
                "A='\0'\nB=${A}\nA=1\n",
                "f/.env:2: B: the value holds a NUL byte",
            ),
        ] {
            let e = error(text);
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
        // Compose reads these: a NUL in a comment, or in a value a later statement replaces.
        assert_eq!(one("# a\0b\nA=1 #c\0d\n", "A"), "1");
        assert_eq!(one("A=a\0b\nA=1\n", "A"), "1");
        assert_eq!(one("A='x' #c\0\n", "A"), "x");
        assert!(set("K=1\n", "K", "a\0b", "f").is_err());
    }

    /// `${Y:-${Y:-…x}}`, `depth` deep.
    fn nested(depth: usize) -> String {
        format!("{}x{}", "${Y:-".repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn deep_nesting_is_a_one_line_error_not_a_crash() {
        assert_eq!(one(&format!("A={}", nested(MAX_NESTING)), "A"), "x");
        let strict = interpolate_strict(&nested(MAX_NESTING), &no_env);
        assert_eq!(strict.unwrap(), "x");
        // Past the bound, and far past it (this overflowed the stack and aborted the
        // process): one line naming file, line and variable, in every mode.
        for depth in [MAX_NESTING + 1, 100_000] {
            let e = error(&format!("X=1\nA={}\n", nested(depth)));
            assert!(e.starts_with("f/.env:2: A: ${…} nested more than"), "{e}");
            assert!(e.len() < 200, "{e}");
            let e = format!(
                "{:#}",
                interpolate_strict(&nested(depth), &no_env).unwrap_err()
            );
            assert!(e.starts_with("${…} nested more than"), "{e}");
        }
        // Depth counts open braces only: many in a row are fine.
        let wide = "${Y:-a}".repeat(10_000);
        assert_eq!(one(&format!("A={wide}"), "A"), "a".repeat(10_000));
    }

    /// A small deterministic generator (xorshift): random cases without a dependency.
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn new(seed: u64) -> Rng {
            Rng(seed.max(1))
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    #[test]
    fn quoted_values_read_back_as_themselves() {
        let alphabet = [
            "a", "Z", "0", " ", "  ", "\t", "#", " #", "$", "$$", "${", "}", "{", "'", "\"", "\\",
            "\\n", "\n", "\r", "=", ":", "é", "\u{a0}", "\u{2003}", "$HOME", "${X:-y}", "\\0101",
        ];
        let mut rng = Rng::new(0x5eed);
        for _ in 0..512 {
            let value: String = (0..rng.below(8)).map(|_| *rng.pick(&alphabet)).collect();
            let text = format!("K={}\n", quote(&value));
            // Every other name is set: a value that interpolated would show it.
            let env = |k: &str| Ok((k != "K").then(|| "from the environment".to_string()));
            let got = parse(text.as_bytes(), "f", &env);
            assert_eq!(got.unwrap().values["K"], value, "{text:?}");
        }
    }

    #[test]
    fn any_input_is_values_or_one_line_error() {
        let alphabet = [
            "A", "b", "_", "=", ":", " ", "\t", "\n", "\r\n", "#", "'", "\"", "\\", "$", "{", "}",
            "-", "+", "?", "export ", "é", "\u{feff}",
        ];
        let mut rng = Rng::new(42);
        for _ in 0..2000 {
            let text: String = (0..rng.below(24)).map(|_| *rng.pick(&alphabet)).collect();
            if let Err(e) = parse(text.as_bytes(), "f", &no_env) {
                let e = format!("{e:#}");
                assert!(e.starts_with("f:") && !e.contains('\n'), "{text:?}: {e}");
            }
        }
    }
}
