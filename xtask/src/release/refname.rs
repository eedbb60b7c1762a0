//! Git's rules for reference names, as `git check-ref-format` applies them, so a version git
//! cannot tag (`v1.0.0-x.lock`) is refused before anything is tagged, built or pushed.
//! Pure; a unit test holds it to `git check-ref-format` itself.

/// Why git refuses `refname` (a full name such as `refs/tags/v1.0.0`), or `None` when git
/// accepts it: git's `check_refname_format` (refs.c) with default flags, byte by byte.
pub fn refname_problem(refname: &str) -> Option<&'static str> {
    if refname == "@" {
        return Some("it is the single character '@'");
    }
    let mut components = 0;
    for component in refname.as_bytes().split(|b| *b == b'/') {
        let mut last = 0u8;
        for &b in component {
            match b {
                0..=0x1f | 0x7f => return Some("it contains a control character"),
                b' ' | b'~' | b'^' | b':' | b'?' | b'*' | b'[' | b'\\' => {
                    return Some("it contains one of: space ~ ^ : ? * [ \\")
                }
                b'.' if last == b'.' => return Some("it contains '..'"),
                b'{' if last == b'@' => return Some("it contains '@{'"),
                _ => {}
            }
            last = b;
        }
        match component {
            [] => return Some("it has an empty part (a leading, trailing or doubled '/')"),
            [b'.', ..] => return Some("a part of it starts with '.'"),
            c if c.ends_with(b".lock") => return Some("a part of it ends with '.lock'"),
            _ => components += 1,
        }
    }
    if refname.ends_with('.') {
        return Some("it ends with '.'");
    }
    if components < 2 {
        return Some("it has no '/'");
    }
    None
}

/// Why `git tag NAME` refuses `name`, or `None`: `refs/tags/NAME` must be a valid reference
/// name, and the tag must not start with '-' (git would read it as an option).
pub fn tag_problem(name: &str) -> Option<&'static str> {
    if name.starts_with('-') {
        return Some("it starts with '-'");
    }
    refname_problem(&format!("refs/tags/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn versions_git_cannot_tag_are_named() {
        for bad in [
            "v1.0.0-x.lock",
            "v1.0.0-rc.lock",
            "v1.0.0..1",
            "v1.0@{1}",
            "v1.0.",
            "-v1",
            "v1 0",
            "v1~1",
        ] {
            assert!(tag_problem(bad).is_some(), "{bad}");
        }
        for good in [
            "v1.0.0",
            "v1.0.0-rc.1",
            "v1.0.0-lock",
            "v1.0.0-x.locked",
            "v1.0@1",
        ] {
            assert_eq!(tag_problem(good), None, "{good}");
        }
    }

    /// Whether `git check-ref-format NAME` accepts `name`.
    fn git_accepts(name: &str) -> bool {
        Command::new("git")
            .args(["check-ref-format", name])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("git must be installed: it is the oracle of this test")
            .success()
    }

    /// Names built from the pieces git's rules are about, two or three at a time.
    fn candidates() -> Vec<String> {
        const PIECES: [&str; 24] = [
            "v1", "a", "-", "0", "a.b", ".", "..", ".lock", "lock", "/", "//", "@", "{", "@{", "~",
            "^", ":", "?", "*", "[", "\\", " ", "\u{7f}", "é",
        ];
        const FIXED: [&str; 9] = [
            "",
            "@",
            "\u{1}",
            "\t",
            "a.lock/b",
            "refs/tags/.x",
            "refs/tags/x.",
            "x/@",
            "@/x",
        ];
        let mut names: Vec<String> = FIXED.iter().map(|s| s.to_string()).collect();
        for a in PIECES {
            for b in PIECES {
                names.push(format!("{a}{b}"));
                names.push(format!("v1{a}x{b}"));
            }
        }
        names
            .into_iter()
            .flat_map(|n| [format!("refs/tags/{n}"), n])
            .collect()
    }

    #[test]
    fn agrees_with_git_check_ref_format() {
        let names = candidates();
        assert!(names.len() > 2000);
        let mut refused = 0;
        for name in &names {
            let git = git_accepts(name);
            assert_eq!(
                refname_problem(name).is_none(),
                git,
                "{name:?}: git says {}",
                if git { "valid" } else { "invalid" }
            );
            refused += usize::from(!git);
        }
        // Both verdicts occur, so the comparison means something.
        assert!(refused > 100 && refused < names.len() - 100, "{refused}");
    }
}
