//! The one reading of a compose `volumes:` entry: the short syntax as compose-go reads it,
//! and whether a source is a bind (a path) or a named volume. The compose model, the stack
//! file and check-volumes all decide it here.

/// One entry of a service's `volumes:`, in the long form.
#[derive(Debug, Clone, PartialEq)]
pub struct MountSpec {
    /// `volume`, `bind`, `tmpfs`, `image`, ...
    pub kind: String,
    pub source: Option<String>,
    pub target: String,
    /// `:ro` in the short form, `read_only: true` in the long one.
    pub read_only: bool,
}

impl MountSpec {
    /// Whether data written there outlives the container: a named volume or a bind mount.
    /// An anonymous volume (no source), tmpfs or an image mount does not.
    pub fn persistent(&self) -> bool {
        matches!(self.kind.as_str(), "volume" | "bind")
            && self.source.as_deref().is_some_and(|s| !s.is_empty())
    }
}

/// A short-syntax volume (`[source:]target[:options]`), as compose-go's `ParseVolume` reads
/// it, quirks included: a single letter before a ':' is a Windows drive, so `v:/data` is an
/// anonymous volume at `v:/data` (which Docker then refuses), not volume `v` at `/data`.
pub fn parse_short(spec: &str) -> std::result::Result<MountSpec, String> {
    let anonymous = |target: &str| MountSpec {
        kind: "volume".into(),
        source: None,
        target: target.to_string(),
        read_only: false,
    };
    if spec.is_empty() {
        return Err("an empty volume".into());
    }
    if spec.len() <= 2 {
        return Ok(anonymous(spec));
    }
    let mut source: Option<String> = None;
    let mut target: Option<String> = None;
    let mut options: Option<String> = None;
    let mut buffer = String::new();
    let mut section = |buffer: &str, at_colon: bool| -> std::result::Result<(), String> {
        if buffer.is_empty() {
            return Err("an empty section between colons".into());
        }
        if source.is_none() && target.is_none() && !at_colon {
            target = Some(buffer.to_string());
        } else if source.is_none() {
            source = Some(buffer.to_string());
        } else if target.is_none() {
            target = Some(buffer.to_string());
        } else if at_colon {
            return Err("too many colons".into());
        } else {
            // A third section holds options (ro, rw, nocopy, ...): they do not change the target.
            options = Some(buffer.to_string());
        }
        Ok(())
    };
    for c in spec.chars() {
        if c == ':' && is_drive(&buffer) {
            buffer.push(c);
        } else if c == ':' {
            section(&buffer, true)?;
            buffer.clear();
        } else {
            buffer.push(c);
        }
    }
    section(&buffer, false)?;
    let target = target.unwrap_or_default();
    let read_only = options.is_some_and(|o| o.split(',').any(|o| o == "ro"));
    Ok(match source {
        None => anonymous(&target),
        Some(source) => MountSpec {
            // A path (or a drive) is a bind mount, any other word a named volume.
            kind: if is_path(&source) { "bind" } else { "volume" }.into(),
            source: Some(source),
            target,
            read_only,
        },
    })
}

/// compose-go's `isFilePath`: a relative, absolute or home path, a Windows pipe or drive.
pub fn is_path(source: &str) -> bool {
    let mut chars = source.chars();
    source.starts_with(['.', '/', '~'])
        || source.starts_with(r"\\")
        || (chars.next().is_some_and(char::is_alphabetic) && chars.next() == Some(':'))
}

/// A lone letter: before a ':' it is a Windows drive.
fn is_drive(buffer: &str) -> bool {
    let mut chars = buffer.chars();
    chars.next().is_some_and(char::is_alphabetic) && chars.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(kind: &str, source: Option<&str>, target: &str, read_only: bool) -> MountSpec {
        MountSpec {
            kind: kind.into(),
            source: source.map(str::to_string),
            target: target.into(),
            read_only,
        }
    }

    #[test]
    fn the_short_form_reads_as_compose_go_reads_it() {
        // Quirks included: a lone letter before ':' is a Windows drive.
        for (spec, want) in [
            (
                "agent-data:/home/agent/data",
                Ok(mount(
                    "volume",
                    Some("agent-data"),
                    "/home/agent/data",
                    false,
                )),
            ),
            (
                "./projects:/p",
                Ok(mount("bind", Some("./projects"), "/p", false)),
            ),
            ("/a", Ok(mount("volume", None, "/a", false))),
            ("v:/data", Ok(mount("volume", None, "v:/data", false))),
            ("w:/y:ro", Ok(mount("bind", Some("w:/y"), "ro", false))),
            (
                "data:/d:ro,nocopy",
                Ok(mount("volume", Some("data"), "/d", true)),
            ),
            ("/s:/d:rw", Ok(mount("bind", Some("/s"), "/d", false))),
            ("~/d:/d", Ok(mount("bind", Some("~/d"), "/d", false))),
            (":/d", Err("an empty section between colons".to_string())),
            ("ab:/b:ro:x", Err("too many colons".to_string())),
        ] {
            assert_eq!(parse_short(spec), want, "{spec}");
        }
    }
}
