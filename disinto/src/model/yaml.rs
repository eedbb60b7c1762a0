//! YAML text in which every string is a string to any reader: the writer of the stack file.
//! serde_yaml leaves `1_000`, `2024-11-25`, `yes` or `<<` plain, and Swarm's reader (Go's
//! yaml, YAML 1.1 habits) turns them into 1000, a timestamp, a boolean or a merge key.
//!
//! So every string value is double-quoted, and escaped where YAML would not keep a character
//! as it is (controls, DEL, C1 codes, YAML 1.1's line breaks U+0085/U+2028/U+2029, the byte
//! order mark, U+FFFE/U+FFFF). Numbers, booleans and nulls stay plain: they are what they say.
//! A key stays plain when it is a plain word no reader can take for anything else
//! (`agent-data`, `AGENT_CMD`), else it is quoted too. The layout is serde_yaml's (block
//! style, two spaces, a sequence's `-` under its key), so the file reads as before.

use anyhow::{bail, Result};
use serde::Serialize;
use serde_yaml::Value;

/// The longest key a YAML reader takes as an implicit key (YAML 1.2, 7.4: 1024 characters).
const MAX_KEY: usize = 1024;

/// The YAML text of `value` (a mapping or a sequence), every string quoted.
pub fn to_string<T: Serialize>(value: &T) -> Result<String> {
    let value = serde_yaml::to_value(value)?;
    let mut out = String::new();
    match &value {
        Value::Mapping(m) if !m.is_empty() => mapping(&mut out, m, 0, None)?,
        Value::Sequence(s) if !s.is_empty() => sequence(&mut out, s, 0, None)?,
        other => {
            out.push_str(&scalar(other)?);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Writes the entries of `m` at `indent`; `first` replaces the first entry's indentation
/// (`- ` when the mapping is an item of a sequence).
fn mapping(
    out: &mut String,
    m: &serde_yaml::Mapping,
    indent: usize,
    mut first: Option<String>,
) -> Result<()> {
    for (key, value) in m {
        match first.take() {
            Some(prefix) => out.push_str(&prefix),
            None => out.push_str(&" ".repeat(indent)),
        }
        out.push_str(&key_text(key)?);
        out.push(':');
        match value {
            Value::Mapping(inner) if !inner.is_empty() => {
                out.push('\n');
                mapping(out, inner, indent + 2, None)?;
            }
            // A sequence under a key starts at the key's column, as serde_yaml writes it.
            Value::Sequence(items) if !items.is_empty() => {
                out.push('\n');
                sequence(out, items, indent, None)?;
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other)?);
                out.push('\n');
            }
        }
    }
    Ok(())
}

/// Writes the items of `s` at `indent` (see [`mapping`] for `first`).
fn sequence(out: &mut String, s: &[Value], indent: usize, mut first: Option<String>) -> Result<()> {
    for item in s {
        let dash = match first.take() {
            Some(prefix) => format!("{prefix}- "),
            None => format!("{}- ", " ".repeat(indent)),
        };
        match item {
            Value::Mapping(inner) if !inner.is_empty() => {
                mapping(out, inner, indent + 2, Some(dash))?;
            }
            Value::Sequence(inner) if !inner.is_empty() => {
                sequence(out, inner, indent + 2, Some(dash))?;
            }
            other => {
                out.push_str(&dash);
                out.push_str(&scalar(other)?);
                out.push('\n');
            }
        }
    }
    Ok(())
}

/// A value that is not a non-empty collection, as one token.
fn scalar(value: &Value) -> Result<String> {
    Ok(match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quoted(s),
        Value::Mapping(m) if m.is_empty() => "{}".into(),
        Value::Sequence(s) if s.is_empty() => "[]".into(),
        Value::Mapping(_) | Value::Sequence(_) => bail!("a collection is not a scalar"),
        Value::Tagged(t) => bail!("a tagged value ({}) has no place in a compose file", t.tag),
    })
}

fn key_text(key: &Value) -> Result<String> {
    let text = match key {
        Value::String(s) if plain_key(s) => s.clone(),
        Value::String(s) => quoted(s),
        other => scalar(other)?,
    };
    if text.chars().count() > MAX_KEY {
        bail!(
            "a key of {} characters is longer than YAML allows",
            text.len()
        );
    }
    Ok(text)
}

/// Whether `key` reads as that string to every YAML reader when left plain: a word of
/// letters, digits, `_`, `-` and `.` that starts with a letter (so it is no number, date
/// or sexagesimal) and is none of YAML 1.1's booleans or nulls.
fn plain_key(key: &str) -> bool {
    const WORDS: [&str; 12] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf", "none",
    ];
    key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !WORDS.contains(&key.to_ascii_lowercase().as_str())
}

/// `text` as a double-quoted YAML scalar that every reader reads back as exactly `text`.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if escaped(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Characters a YAML reader would not keep as they are inside quotes: those outside YAML's
/// printable set, YAML 1.1's line breaks (folded even inside quotes by libyaml's heirs), and
/// the byte order mark (a reader may refuse it inside a document).
fn escaped(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x1F | 0x7F..=0x9F | 0x2028 | 0x2029 | 0xFEFF | 0xFFFE | 0xFFFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Strings every reader must keep as strings (YAML 1.1 numbers, dates, booleans, nulls,
    /// sexagesimals, a merge key, indicators, escapes, breaks).
    const HOSTILE: [&str; 30] = [
        "1_000",
        "2024-11-25",
        "2001-12-14t21:59:43.10-05:00",
        "yes",
        "No",
        "ON",
        "off",
        "y",
        "~",
        "null",
        "012",
        "0x1F",
        "0o17",
        "0b101",
        "+80",
        "1e3",
        ".5",
        "-.inf",
        ".NaN",
        "1:20",
        "190:20:30",
        "<<",
        "=",
        "-",
        "a: b",
        "#x",
        "it's \"q\" \\",
        "tab\tnl\ncr\r\u{0}\u{7f}\u{85}\u{9b}",
        "\u{2028}\u{2029}\u{feff}\u{fffe}é😀",
        " lead ",
    ];

    #[test]
    fn every_string_is_quoted_and_reads_back_as_written() {
        let map: BTreeMap<String, String> = HOSTILE
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("k{i:02}"), s.to_string()))
            .collect();
        let text = to_string(&map).unwrap();
        for line in text.lines() {
            let (_, value) = line.split_once(": ").unwrap();
            assert!(value.starts_with('"') && value.ends_with('"'), "{line}");
        }
        assert_eq!(text.lines().count(), HOSTILE.len(), "{text}");
        let back: BTreeMap<String, String> = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back, map);
    }

    #[test]
    fn hostile_keys_are_quoted_plain_words_are_not() {
        for key in HOSTILE {
            let map = BTreeMap::from([(key.to_string(), 1)]);
            let text = to_string(&map).unwrap();
            assert!(text.starts_with('"'), "{text}");
            let back: BTreeMap<String, u32> = serde_yaml::from_str(&text).unwrap();
            assert_eq!(back, map);
        }
        for key in ["agent-data", "AGENT_CMD", "node.labels", "x1"] {
            assert!(plain_key(key), "{key}");
        }
        let long = BTreeMap::from([("k".repeat(MAX_KEY + 1), 1)]);
        assert!(to_string(&long).is_err());
    }

    #[test]
    fn numbers_booleans_and_nulls_stay_what_they_are() {
        #[derive(Serialize)]
        struct S {
            num: u16,
            f: f64,
            b: bool,
            o: Option<u8>,
            e: BTreeMap<String, u8>,
            v: Vec<u8>,
        }
        let s = S {
            num: 80,
            f: 0.0,
            b: true,
            o: None,
            e: BTreeMap::new(),
            v: vec![],
        };
        assert_eq!(
            to_string(&s).unwrap(),
            "num: 80\nf: 0.0\nb: true\no: null\ne: {}\nv: []\n"
        );
    }

    #[test]
    fn the_layout_is_serde_yamls() {
        let value: Value = serde_yaml::from_str(
            "a:\n  b:\n  - c: 1\n    d:\n    - 2\n  - - 3\n    - 4\n  - {}\n  e: x\n",
        )
        .unwrap();
        assert_eq!(
            to_string(&value).unwrap(),
            "a:\n  b:\n  - c: 1\n    d:\n    - 2\n  - - 3\n    - 4\n  - {}\n  e: \"x\"\n"
        );
        let back: Value = serde_yaml::from_str(&to_string(&value).unwrap()).unwrap();
        assert_eq!(back, value);
    }
}
