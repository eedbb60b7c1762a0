//! Compose's variable interpolation, for files read without `docker compose`: the one
//! implementation, `disinto::model::dotenv` (which reads `.env` the same way), adapted to the
//! resolver's lookups and one-line errors.

/// `text` with its variables replaced by `lookup`'s values. An unset variable without a
/// default becomes empty, as compose makes it, unless `strict`: then it is an error, for
/// values (mount targets) where a blank would only hide what was meant.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    strict: bool,
) -> Result<String, String> {
    let lookup = |name: &str| Ok(lookup(name));
    let result = match strict {
        true => disinto::model::dotenv::interpolate_strict(text, &lookup),
        false => disinto::model::dotenv::interpolate(text, &lookup),
    };
    result.map_err(|e| format!("{e:#}"))
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
        // The messages are disinto::model::dotenv's (one implementation); each names the problem.
        for (text, want) in [
            (
                "${UNSET:?say why}",
                "required variable UNSET is missing a value: say why",
            ),
            (
                "${EMPTY:?say why}",
                "required variable EMPTY is missing a value: say why",
            ),
            ("${UNSET?}", "required variable UNSET is missing a value"),
            ("a${B", "invalid interpolation in \"a${B\""),
            ("${}", "invalid interpolation in \"${}\""),
            ("${A#x}", "invalid interpolation in \"${A#x}\""),
        ] {
            let e = lenient(text).unwrap_err();
            assert!(e.starts_with(want), "{text}: {e}");
            assert_eq!(e.lines().count(), 1, "{text}: {e}");
        }
    }
}
