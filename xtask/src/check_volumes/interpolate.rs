//! Compose's variable interpolation, for files read without `docker compose`: `$VAR`,
//! `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`, `${VAR+alt}`,
//! `${VAR:?error}`, `${VAR?error}` (nested in defaults too) and `$$` for a literal `$`.

/// `text` with its variables replaced by `lookup`'s values. An unset variable without a
/// default becomes empty, as compose makes it, unless `strict`: then it is an error, for
/// values (mount targets) where a blank would only hide what was meant.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    strict: bool,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = closing_brace(r).ok_or_else(|| {
                format!("{text:?}: a ${{ is never closed (write $$ for a literal $)")
            })?;
            out.push_str(&braced(&r[..end], text, lookup, strict)?);
            rest = &r[end + 1..];
        } else {
            // A `$` that starts no name is itself (compose 2.40 reads `a$ b` as is).
            let len = name_len(after);
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&plain(&after[..len], lookup, strict)?);
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Length of the variable name at the start of `s`: `[_A-Za-z][_A-Za-z0-9]*`.
fn name_len(s: &str) -> usize {
    let mut len = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        len = i + c.len_utf8();
    }
    len
}

/// The index of the `}` closing a `${`, counting nested `${...}` in defaults.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn plain(
    name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    strict: bool,
) -> Result<String, String> {
    match lookup(name) {
        Some(value) => Ok(value),
        None if strict => Err(format!(
            "${{{name}}} is not set and has no default: set it, or write ${{{name}:-value}}"
        )),
        None => Ok(String::new()),
    }
}

/// The inside of `${...}`: a name, then nothing or one of `:-`, `-`, `:+`, `+`, `:?`, `?`.
fn braced(
    inner: &str,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    strict: bool,
) -> Result<String, String> {
    let len = name_len(inner);
    let (name, op) = inner.split_at(len);
    if name.is_empty() {
        return Err(format!("{text:?}: ${{{inner}}} names no variable"));
    }
    let value = lookup(name);
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    // The word after the operator is only expanded when it is used, as compose does.
    let word = |w: &str| interpolate(w, lookup, strict);
    if op.is_empty() {
        return plain(name, lookup, strict);
    }
    if let Some(w) = op.strip_prefix(":-") {
        return if non_empty {
            Ok(value.unwrap_or_default())
        } else {
            word(w)
        };
    }
    if let Some(w) = op.strip_prefix(":+") {
        return if non_empty {
            word(w)
        } else {
            Ok(String::new())
        };
    }
    if let Some(w) = op.strip_prefix(":?") {
        return if non_empty {
            Ok(value.unwrap_or_default())
        } else {
            Err(format!("{name} is required ({w}): set it"))
        };
    }
    if let Some(w) = op.strip_prefix('-') {
        return if set {
            Ok(value.unwrap_or_default())
        } else {
            word(w)
        };
    }
    if let Some(w) = op.strip_prefix('+') {
        return if set { word(w) } else { Ok(String::new()) };
    }
    if let Some(w) = op.strip_prefix('?') {
        return if set {
            Ok(value.unwrap_or_default())
        } else {
            Err(format!("{name} is required ({w}): set it"))
        };
    }
    Err(format!(
        "{text:?}: ${{{inner}}} is not a form compose knows"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("v".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn lenient(text: &str) -> Result<String, String> {
        interpolate(text, &env, false)
    }

    #[test]
    fn the_forms_compose_knows() {
        for (text, want) in [
            ("plain", "plain"),
            ("$SET/${SET}", "v/v"),
            ("a$$b $${SET}", "a$b ${SET}"),
            ("${UNSET:-/d}", "/d"),
            ("${EMPTY:-/d}", "/d"),
            ("${EMPTY-/d}", ""),
            ("${UNSET-/d}", "/d"),
            ("${SET:-/d}", "v"),
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("${UNSET:-${SET}/x}", "v/x"),
            ("${UNSET:-${ALSO_UNSET:-/deep}}", "/deep"),
            ("${SET:?needed}", "v"),
            ("$UNSET", ""),
            ("x${UNSET}y", "xy"),
            ("a$ b x$5 a$", "a$ b x$5 a$"),
        ] {
            assert_eq!(lenient(text).as_deref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn strict_refuses_an_unset_variable_without_default() {
        assert_eq!(
            interpolate("agent-data:${NOPE}", &env, true),
            Err("${NOPE} is not set and has no default: set it, or write ${NOPE:-value}".into())
        );
        assert_eq!(interpolate("${NOPE:-/d}", &env, true).as_deref(), Ok("/d"));
        // The unused default is not looked at.
        assert_eq!(interpolate("${SET:-$NOPE}", &env, true).as_deref(), Ok("v"));
    }

    #[test]
    fn bad_templates_are_errors() {
        for (text, want) in [
            ("${UNSET:?say why}", "UNSET is required (say why): set it"),
            ("${EMPTY:?say why}", "EMPTY is required (say why): set it"),
            ("${UNSET?}", "UNSET is required (): set it"),
            (
                "a${B",
                "\"a${B\": a ${ is never closed (write $$ for a literal $)",
            ),
            ("${}", "\"${}\": ${} names no variable"),
            ("${A#x}", "\"${A#x}\": ${A#x} is not a form compose knows"),
        ] {
            assert_eq!(lenient(text), Err(want.to_string()), "{text}");
        }
    }
}
