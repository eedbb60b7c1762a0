//! File-system helpers that keep the "nothing lost" promise: atomic writes and temp dirs.
//! Hand-written because each is a few lines; a crate would cost more compile time than it saves.

use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};

/// What [`write_if_changed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Generated,
    Unchanged,
}

/// Writes `contents` to `path` atomically (temp file in the same directory, fsync, rename),
/// so a crash or a full disk leaves either the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        unique()
    ));
    let result = (|| -> Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        if let Ok(meta) = fs::metadata(path) {
            // Keep the operator's permissions on a file we replace.
            fs::set_permissions(&tmp, meta.permissions())?;
        }
        fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// Writes only when the content differs, so timestamps and watchers are left alone.
pub fn write_if_changed(path: &Path, contents: &str) -> Result<Written> {
    if fs::read(path).is_ok_and(|old| old == contents.as_bytes()) {
        return Ok(Written::Unchanged);
    }
    write_atomic(path, contents.as_bytes())?;
    Ok(Written::Generated)
}

fn unique() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "disinto-{prefix}-{}-{nanos}-{}",
            std::process::id(),
            unique()
        ));
        // Private (0700) and new: some of these hold a registry login for a moment.
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("cannot create temp dir {}", path.display()))?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = TempDir::new("fsx").unwrap();
        let path = dir.path().join("out.yml");
        assert_eq!(write_if_changed(&path, "a\n").unwrap(), Written::Generated);
        assert_eq!(write_if_changed(&path, "a\n").unwrap(), Written::Unchanged);
        assert_eq!(write_if_changed(&path, "b\n").unwrap(), Written::Generated);
        assert_eq!(fs::read_to_string(&path).unwrap(), "b\n");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = TempDir::new("fsx").unwrap();
        let path = dir.path().join("missing-dir").join("out.yml");
        assert!(write_atomic(&path, b"x").is_err());
        let path = dir.path().join("out.yml");
        fs::write(&path, "old").unwrap();
        // A directory where the temp file would go makes the write fail part-way.
        assert!(write_atomic(&dir.path().join("out.yml/"), b"new").is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
    }
}
