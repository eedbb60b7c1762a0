//! File-system helpers that keep the "never damage an operator's file" promise: safe writes
//! and temp dirs. The temp file and temp dir themselves are `tempfile`'s (unique names, O_EXCL,
//! removal on every error path); what to write where, and how, is decided here.
//!
//! # How a path is written
//!
//! What the path names decides how it is written, as `cp` and `install` decide:
//!
//! - A regular file, or nothing yet: replaced atomically. The text goes to a temp file in the
//!   same directory (`.{name}.tmp.XXXXXX`, the name cut so it fits NAME_MAX), created 0600 so
//!   a secret in it is never readable by others even for a moment; the temp file gets the old
//!   file's owner, group and mode (or the mode for a new file), is fsynced and renamed over
//!   the old name. A crash or a full disk leaves the old file or the new one, never half of
//!   one; a failed write leaves no temp file behind.
//! - A symlink: followed to its final target, even a dangling one, and that target is replaced
//!   as above, so the link stays a link. A loop is an error naming the path.
//! - A character device (`/dev/null`, a terminal), a FIFO, or `/dev/stdout` and its kin:
//!   written through, never replaced: renaming over `/dev/null` would break it for every
//!   process on the machine. A FIFO with no reader is an error, not a hang.
//! - A directory, a socket or a block device: an error. None of them holds a text file, and a
//!   compose file written onto a disk is never what the operator meant.
//!
//! Not kept across a replacement: other hard links to the old file (they keep the old text),
//! ACLs and extended attributes. Not root, the owner becomes whoever runs this; when the
//! group cannot be kept either, its permission bits are dropped rather than handed to a group
//! the old file did not have.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

/// Mode of a new file that holds nothing secret (a compose file).
const NEW_FILE_MODE: u32 = 0o644;
/// Mode of a new file that holds, or will hold, secrets (`.env`).
const NEW_PRIVATE_MODE: u32 = 0o600;
/// Mode of every temp file until it is complete: nobody else reads a half-written secret.
/// tempfile's default is the same; it is asked for by name so no default can change it.
const TEMP_MODE: u32 = 0o600;
/// Mode of a temp dir: some hold a registry login for a moment.
const TEMP_DIR_MODE: u32 = 0o700;
/// How many random characters tempfile puts after [`temp_name`]'s prefix; set here, not left
/// to its default, because the NAME_MAX bound counts them.
const TEMP_RANDOM: usize = 6;

// Values std has no stable name for, from libc, which has each architecture's: O_NONBLOCK
// makes opening a FIFO for writing fail with ENXIO (no reader) instead of waiting for one;
// ELOOP is too many symlinks in a lookup.
use libc::{ELOOP, ENXIO, O_NONBLOCK};
/// `NAME_MAX`: the longest file name, in bytes.
const NAME_MAX: usize = libc::NAME_MAX as usize;
/// `MAXSYMLINKS`: how many symlinks Linux follows before it calls it a loop (a kernel
/// constant, in no header libc binds).
const MAX_SYMLINKS: usize = 40;

/// What [`write_if_changed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Generated,
    Unchanged,
}

/// Writes `contents` to `path` safely (see the module doc); a new file gets mode 0644.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write(path, contents, NEW_FILE_MODE)
}

/// As [`write_atomic`], for a file that holds secrets (`.env`): a new file gets mode 0600.
pub fn write_atomic_private(path: &Path, contents: &[u8]) -> Result<()> {
    write(path, contents, NEW_PRIVATE_MODE)
}

/// Fails, as [`write_atomic`] would, when `contents` cannot be written to `path` now, and
/// changes nothing: every step of the write but the last (the temp file beside the target is
/// written, given the old file's owner and mode, synced, and removed instead of renamed).
/// For a command that must know a file can be written before it changes anything else.
pub fn check_writable(path: &Path, contents: &[u8]) -> Result<()> {
    match target(path)? {
        Target::Replace {
            path: real,
            existing,
        } => replace(&real, contents, existing.as_ref(), NEW_FILE_MODE, false)
            .map_err(|e| anyhow!("cannot write {}: {e}", real.display())),
        // Written through (a FIFO, a device) or in place: an open for writing is the test.
        Target::Through { fifo: true } => fs::OpenOptions::new()
            .write(true)
            .custom_flags(O_NONBLOCK)
            .open(path)
            .map(drop)
            .map_err(|e| match e.raw_os_error() {
                Some(ENXIO) => anyhow!("{} is a FIFO with no reader", path.display()),
                _ => anyhow!("cannot write {}: {}", path.display(), reason(&e)),
            }),
        Target::Through { fifo: false } | Target::Reopen => fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map(drop)
            .map_err(|e| anyhow!("cannot write {}: {}", path.display(), reason(&e))),
    }
}

/// The bytes of a file disinto keeps (its state, its records), `None` when there is none.
/// Only a regular file is read, opened non-blocking so a FIFO in its place cannot hang the
/// open, and at most `max` bytes of it: `/dev/zero` there is an error, not all of memory.
pub fn read_regular(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let shown = path.display();
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("cannot read {shown}: {}", reason(&e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| anyhow!("cannot read {shown}: {}", reason(&e)))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        bail!("{shown} is {what}, not a regular file");
    }
    let too_big = || anyhow!("{shown} is bigger than {max} bytes");
    if meta.len() > max {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    // Bounded again: the file may grow while it is read.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow!("cannot read {shown}: {}", reason(&e)))?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(Some(bytes))
}

/// A small JSON record disinto keeps (a marker, a lock holder, a last look), if there is one
/// that reads: a missing, odd or garbled file is no record.
pub fn read_record<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = read_regular(path, 64 * 1024).ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// Writes only when the content differs, so timestamps and watchers are left alone.
/// Only a regular file is read to compare: reading a FIFO or a device would hang or consume
/// what someone else wrote, so anything else counts as changed.
pub fn write_if_changed(path: &Path, contents: &str) -> Result<Written> {
    write_changed(path, contents, NEW_FILE_MODE)
}

/// As [`write_if_changed`], for a generated file that holds secrets (the stack file, with
/// `.env`'s values written in): a new file gets mode 0600.
pub fn write_private_if_changed(path: &Path, contents: &str) -> Result<Written> {
    write_changed(path, contents, NEW_PRIVATE_MODE)
}

fn write_changed(path: &Path, contents: &str, new_mode: u32) -> Result<Written> {
    let unchanged = fs::metadata(path).is_ok_and(|m| m.is_file())
        && fs::read(path).is_ok_and(|old| old == contents.as_bytes());
    if unchanged {
        return Ok(Written::Unchanged);
    }
    write(path, contents.as_bytes(), new_mode)?;
    Ok(Written::Generated)
}

/// How a path is written.
enum Target {
    /// A regular file or nothing yet, at `path` once symlinks are followed: replace it.
    Replace {
        path: PathBuf,
        existing: Option<fs::Metadata>,
    },
    /// A FIFO or a character device: open it and write into it.
    Through { fifo: bool },
    /// A regular file reached through a `/proc` magic link (`/dev/stdout` redirected to a
    /// file): its name is not a path that can be renamed over, so truncate and write, as `cp`.
    Reopen,
}

fn write(path: &Path, contents: &[u8], new_mode: u32) -> Result<()> {
    match target(path)? {
        Target::Replace {
            path: real,
            existing,
        } => replace(&real, contents, existing.as_ref(), new_mode, true).map_err(|e| {
            if real == path {
                anyhow!("cannot write {}: {e}", path.display())
            } else {
                anyhow!(
                    "cannot write {} (where the symlink {} points): {e}",
                    real.display(),
                    path.display()
                )
            }
        }),
        Target::Through { fifo } => write_through(path, contents, fifo),
        Target::Reopen => {
            let result = fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)
                .and_then(|mut file| write_patiently(&mut file, contents));
            result.map_err(|e| anyhow!("cannot write {}: {}", path.display(), reason(&e)))
        }
    }
}

/// Decides how `path` is written, from what it names once every symlink is followed.
fn target(path: &Path) -> Result<Target> {
    // metadata() follows links as the kernel does, /proc magic links included.
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Nothing there yet, or a dangling symlink: create what the chain names.
            return Ok(Target::Replace {
                path: resolve(path)?,
                existing: None,
            });
        }
        Err(e) if e.raw_os_error() == Some(ELOOP) => {
            bail!("{} is a symlink loop", path.display())
        }
        Err(e) => bail!("cannot write {}: {}", path.display(), reason(&e)),
    };
    let kind = meta.file_type();
    if kind.is_file() {
        let real = resolve(path)?;
        // The chain read by hand must end at the very file the kernel found; a /proc magic
        // link (/dev/stdout, /proc/self/fd/N) reads as a name that is not the file.
        let same =
            fs::metadata(&real).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
        return Ok(if same {
            Target::Replace {
                path: real,
                existing: Some(meta),
            }
        } else {
            Target::Reopen
        });
    }
    let what = if kind.is_fifo() {
        return Ok(Target::Through { fifo: true });
    } else if kind.is_char_device() {
        return Ok(Target::Through { fifo: false });
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_socket() {
        "a socket, not a file"
    } else if kind.is_block_device() {
        "a block device (a disk); refusing to write over it"
    } else {
        "not a regular file"
    };
    bail!("{} is {what}", path.display())
}

/// The path `path` names once every symlink in the chain is followed, existing or not, so a
/// dangling link is created at its target. Each link's text is relative to its directory.
fn resolve(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..=MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let next = fs::read_link(&current).map_err(|e| {
                    anyhow!(
                        "cannot write {}: cannot read the symlink {}: {}",
                        path.display(),
                        current.display(),
                        reason(&e)
                    )
                })?;
                // join() keeps an absolute target as it is; `..` is left for the kernel,
                // which resolves it against the real directory.
                current = match current.parent() {
                    Some(dir) => dir.join(next),
                    None => next,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) if e.raw_os_error() == Some(ELOOP) => break,
            Err(e) => bail!("cannot write {}: {}", path.display(), reason(&e)),
        }
    }
    bail!("{} is a symlink loop", path.display())
}

/// Replaces `path` (no symlink) atomically, keeping `existing`'s owner, group and mode; when
/// not `commit`, does all of it but the rename, and removes the temp file instead.
fn replace(
    path: &Path,
    contents: &[u8],
    existing: Option<&fs::Metadata>,
    new_mode: u32,
    commit: bool,
) -> std::result::Result<(), String> {
    let (name, dir) = name_and_dir(path)?;
    let mut tmp = temp_file(dir, name).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!("directory {} does not exist", dir.display()),
        _ => format!(
            "cannot create a temp file in {}: {}",
            dir.display(),
            reason(&e)
        ),
    })?;
    // On any error below, dropping `tmp` (or the PersistError holding it) removes the file.
    let file = tmp.as_file_mut();
    file.write_all(contents).map_err(|e| reason(&e))?;
    let mode = match existing {
        Some(meta) => keep_owner(file, meta).map_err(|e| reason(&e))?,
        None => new_mode,
    };
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| reason(&e))?;
    file.sync_all().map_err(|e| reason(&e))?;
    if !commit {
        // A check only: every step but the rename; dropping `tmp` removes the file.
        return Ok(());
    }
    // persist, not persist_noclobber: replacing the old file in one rename is the point.
    tmp.persist(path).map_err(|e| reason(&e.error))?;
    // The rename is durable only once the directory is; a failure here loses nothing written.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The file name of `path` (no symlink) and the directory its temp file goes to.
fn name_and_dir(path: &Path) -> std::result::Result<(&OsStr, &Path), String> {
    // "out.yml/" names a directory; Path would quietly drop the slash and create out.yml.
    let name = match path.file_name() {
        Some(name) if !path.as_os_str().as_bytes().ends_with(b"/") => name,
        _ => return Err("it does not name a file".into()),
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((name, dir))
}

/// Gives `file` the owner and group of `old`, and returns the mode it should have: the old
/// one, less the group bits when the group could not be kept (they were meant for another).
fn keep_owner(file: &fs::File, old: &fs::Metadata) -> io::Result<u32> {
    let mode = old.mode() & 0o7777;
    let denied = |e: &io::Error| e.kind() == io::ErrorKind::PermissionDenied;
    match std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid())) {
        Ok(()) => return Ok(mode),
        Err(e) if !denied(&e) => return Err(e),
        Err(_) => {}
    }
    // Not root: the owner stays whoever runs this, but the group may be one of ours.
    match std::os::unix::fs::fchown(file, None, Some(old.gid())) {
        Ok(()) => Ok(mode),
        Err(e) if denied(&e) => Ok(mode & !0o070),
        Err(e) => Err(e),
    }
}

/// A new, empty temp file in `dir` for replacing `name`: private (0600) from its creation,
/// so a secret written into it is never readable by others.
fn temp_file(dir: &Path, name: &OsStr) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&temp_name(name))
        .rand_bytes(TEMP_RANDOM)
        .permissions(fs::Permissions::from_mode(TEMP_MODE))
        .tempfile_in(dir)
}

/// `.{name}.tmp.`, the start of a temp file's name, to which tempfile adds [`TEMP_RANDOM`]
/// characters; the name part is cut so the whole stays within NAME_MAX bytes, or a file with
/// a long name could never be written.
fn temp_name(name: &OsStr) -> OsString {
    const TMP: &[u8] = b".tmp.";
    let room = NAME_MAX - 1 - TMP.len() - TEMP_RANDOM;
    let name = name.as_bytes();
    let mut out = Vec::with_capacity(NAME_MAX);
    out.push(b'.');
    out.extend_from_slice(&name[..name.len().min(room)]);
    out.extend_from_slice(TMP);
    OsString::from_vec(out)
}

/// Writes into a FIFO or a character device that is already there, without replacing it.
fn write_through(path: &Path, contents: &[u8], fifo: bool) -> Result<()> {
    // Non-blocking, so a FIFO with no reader fails at once instead of hanging for one.
    let opened = fs::OpenOptions::new()
        .write(true)
        .custom_flags(O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if fifo && e.raw_os_error() == Some(ENXIO) => {
            bail!("{} is a FIFO with no reader", path.display())
        }
        Err(e) => bail!("cannot write {}: {}", path.display(), reason(&e)),
    };
    write_patiently(&mut file, contents)
        .map_err(|e| anyhow!("cannot write {}: {}", path.display(), reason(&e)))
}

/// write_all for a non-blocking file: waits while a pipe is full instead of failing.
fn write_patiently(file: &mut fs::File, mut rest: &[u8]) -> io::Result<()> {
    while !rest.is_empty() {
        match file.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    file.flush()
}

/// The system's words for an I/O error, without the "(os error N)" that means nothing to an
/// operator.
pub(crate) fn reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A private (0700) directory `disinto-{prefix}-XXXXXX` under the system temp dir, removed
/// with all it holds on drop. A thin wrapper over `tempfile::TempDir`, whose default mode
/// (0777 less the umask) would let others read what is put in it.
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir> {
        tempfile::Builder::new()
            .prefix(&format!("disinto-{prefix}-"))
            .permissions(fs::Permissions::from_mode(TEMP_DIR_MODE))
            .tempdir()
            .map(TempDir)
            .map_err(|e| {
                anyhow!(
                    "cannot create a temp dir in {}: {}",
                    std::env::temp_dir().display(),
                    reason(&e)
                )
            })
    }

    pub fn path(&self) -> &Path {
        self.0.path()
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

    /// The error as main prints it.
    fn message(result: Result<impl std::fmt::Debug>) -> String {
        format!("{:#}", result.unwrap_err())
    }

    fn is_root() -> bool {
        // No unsafe geteuid(): a file we create is owned by whoever we are.
        let dir = TempDir::new("fsx").unwrap();
        fs::metadata(dir.path()).unwrap().uid() == 0
    }

    /// Runs `f` on a thread, so a hang fails the test instead of stalling the run.
    fn within_seconds<T: Send + 'static>(
        seconds: u64,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = send.send(f());
        });
        receive
            .recv_timeout(Duration::from_secs(seconds))
            .expect("the write hangs")
    }

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn a_symlink_stays_a_symlink_and_its_target_gets_the_text() {
        let dir = TempDir::new("fsx").unwrap();
        fs::create_dir(dir.path().join("real")).unwrap();
        let target = dir.path().join("real").join("compose.yml");
        fs::write(&target, "old\n").unwrap();
        // A relative link through another relative link: each resolves against its own dir.
        std::os::unix::fs::symlink("real/compose.yml", dir.path().join("hop")).unwrap();
        let link = dir.path().join("out.yml");
        std::os::unix::fs::symlink("hop", &link).unwrap();
        assert_eq!(
            write_if_changed(&link, "new\n").unwrap(),
            Written::Generated
        );
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(fs::symlink_metadata(dir.path().join("hop"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "new\n");
        assert_eq!(
            write_if_changed(&link, "new\n").unwrap(),
            Written::Unchanged
        );
        // The temp file went next to the target, and is gone.
        let names: Vec<_> = fs::read_dir(dir.path().join("real")).unwrap().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_dangling_symlink_creates_its_target() {
        let dir = TempDir::new("fsx").unwrap();
        let link = dir.path().join(".env");
        std::os::unix::fs::symlink("secrets/env", &link).unwrap();
        fs::create_dir(dir.path().join("secrets")).unwrap();
        write_atomic_private(&link, b"A=1\n").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let target = dir.path().join("secrets").join("env");
        assert_eq!(fs::read_to_string(&target).unwrap(), "A=1\n");
        assert_eq!(fs::metadata(&target).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_symlink_loop_is_one_line_naming_the_path() {
        let dir = TempDir::new("fsx").unwrap();
        let a = dir.path().join("a.yml");
        std::os::unix::fs::symlink("b.yml", &a).unwrap();
        std::os::unix::fs::symlink("a.yml", dir.path().join("b.yml")).unwrap();
        let text = message(write_if_changed(&a, "x\n"));
        assert!(
            text.contains(&format!("{} is a symlink loop", a.display())),
            "{text}"
        );
        assert!(!text.contains('\n') && !text.contains("os error"), "{text}");
        assert!(fs::symlink_metadata(&a).unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_fifo_with_no_reader_is_an_error_not_a_hang() {
        let dir = TempDir::new("fsx").unwrap();
        let fifo = dir.path().join("out.yml");
        mkfifo(&fifo);
        let path = fifo.clone();
        let result = within_seconds(10, move || {
            write_if_changed(&path, "x\n").map_err(|e| format!("{e:#}"))
        });
        let text = result.unwrap_err();
        assert!(
            text.contains(&format!("{} is a FIFO with no reader", fifo.display())),
            "{text}"
        );
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn a_fifo_with_a_reader_gets_the_text_and_stays_a_fifo() {
        let dir = TempDir::new("fsx").unwrap();
        let fifo = dir.path().join("out.yml");
        mkfifo(&fifo);
        // A non-blocking read end opens at once, with no writer yet.
        let mut reader = fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let path = fifo.clone();
        let written = within_seconds(10, move || write_if_changed(&path, "x\n").unwrap());
        assert_eq!(written, Written::Generated);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut reader, &mut text).unwrap();
        assert_eq!(text, "x\n");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn a_pipe_named_through_proc_is_written_through() {
        // What `--output /dev/stdout` meets when stdout is a pipe.
        use std::os::fd::AsRawFd;
        let (mut reader, writer) = std::io::pipe().unwrap();
        let path = PathBuf::from(format!("/proc/self/fd/{}", writer.as_raw_fd()));
        write_atomic(&path, b"x\n").unwrap();
        drop(writer);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut reader, &mut text).unwrap();
        assert_eq!(text, "x\n");
    }

    #[test]
    fn dev_null_as_the_target_stays_a_device() {
        // Through a link in a temp dir, so a regression replaces the link, not /dev/null.
        let dir = TempDir::new("fsx").unwrap();
        let link = dir.path().join("out.yml");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert_eq!(write_if_changed(&link, "x\n").unwrap(), Written::Generated);
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let null = fs::symlink_metadata("/dev/null").unwrap();
        assert!(null.file_type().is_char_device());
    }

    #[test]
    fn a_device_named_directly_is_written_through() {
        if !is_root() {
            eprintln!("skipped: mknod needs root");
            return;
        }
        // A private node with /dev/null's numbers: the same code path as writing "/dev/null".
        let dir = TempDir::new("fsx").unwrap();
        let node = dir.path().join("null");
        let made = std::process::Command::new("mknod")
            .arg(&node)
            .args(["c", "1", "3"])
            .status()
            .unwrap();
        if !made.success() {
            eprintln!("skipped: mknod is not allowed here");
            return;
        }
        write_atomic(&node, b"x\n").unwrap();
        assert!(fs::symlink_metadata(&node)
            .unwrap()
            .file_type()
            .is_char_device());
    }

    #[test]
    fn a_directory_is_a_one_line_error() {
        let dir = TempDir::new("fsx").unwrap();
        let text = message(write_atomic(dir.path(), b"x"));
        assert!(
            text.contains(&format!("{} is a directory", dir.path().display())),
            "{text}"
        );
    }

    #[test]
    fn a_missing_directory_is_named_without_an_errno() {
        let dir = TempDir::new("fsx").unwrap();
        let path = dir.path().join("nowhere").join("out.yml");
        let text = message(write_atomic(&path, b"x"));
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            text.contains("does not exist") && !text.contains("os error"),
            "{text}"
        );
    }

    #[test]
    fn a_name_of_244_bytes_is_written() {
        let dir = TempDir::new("fsx").unwrap();
        let path = dir.path().join(format!("{}.yml", "a".repeat(240)));
        write_atomic(&path, b"x").unwrap();
        write_atomic(&path, b"y").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "y");
    }

    #[test]
    fn new_files_get_their_mode_and_old_files_keep_theirs() {
        let dir = TempDir::new("fsx").unwrap();
        let env = dir.path().join(".env");
        write_atomic_private(&env, b"SECRET=1\n").unwrap();
        assert_eq!(fs::metadata(&env).unwrap().mode() & 0o7777, 0o600);
        let compose = dir.path().join("docker-compose.yml");
        write_atomic(&compose, b"services: {}\n").unwrap();
        assert_eq!(fs::metadata(&compose).unwrap().mode() & 0o7777, 0o644);
        fs::set_permissions(&env, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic_private(&env, b"SECRET=2\n").unwrap();
        assert_eq!(fs::metadata(&env).unwrap().mode() & 0o7777, 0o640);
        assert_eq!(fs::read_to_string(&env).unwrap(), "SECRET=2\n");
        let stack = dir.path().join("docker-stack.yml");
        assert_eq!(
            write_private_if_changed(&stack, "s\n").unwrap(),
            Written::Generated
        );
        assert_eq!(fs::metadata(&stack).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(
            write_private_if_changed(&stack, "s\n").unwrap(),
            Written::Unchanged
        );
    }

    #[test]
    fn the_temp_file_is_private_from_the_start() {
        let dir = TempDir::new("fsx").unwrap();
        let tmp = dir.path().join(temp_name(OsStr::new(".env")));
        // The mode replace() asks tempfile for; it is what others could see mid-write.
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(TEMP_MODE)
            .open(&tmp)
            .unwrap();
        assert_eq!(file.metadata().unwrap().mode() & 0o077, 0);
    }

    #[test]
    fn a_temp_file_for_replace_is_private_hidden_and_fits_name_max() {
        let dir = TempDir::new("fsx").unwrap();
        let long = "e".repeat(NAME_MAX);
        for name in [".env", long.as_str()] {
            let tmp = temp_file(dir.path(), OsStr::new(name)).unwrap();
            assert_eq!(tmp.as_file().metadata().unwrap().mode() & 0o077, 0);
            let made = tmp.path().file_name().unwrap().as_bytes();
            assert!(made.len() <= NAME_MAX, "{} bytes", made.len());
            assert!(made.starts_with(b"."), "{made:?}");
            assert_eq!(tmp.path().parent(), Some(dir.path()));
        }
    }

    #[test]
    fn a_name_of_255_bytes_is_written() {
        // NAME_MAX itself: the temp name's random part must be counted in its bound.
        let dir = TempDir::new("fsx").unwrap();
        let path = dir.path().join("b".repeat(NAME_MAX));
        write_atomic_private(&path, b"x").unwrap();
        write_atomic_private(&path, b"y").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "y");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_rename_leaves_no_temp_file() {
        // A directory with something in it cannot be renamed over: the last step fails.
        let dir = TempDir::new("fsx").unwrap();
        let busy = dir.path().join("busy");
        fs::create_dir(&busy).unwrap();
        fs::write(busy.join("keep"), "k").unwrap();
        assert!(replace(&busy, b"x", None, NEW_FILE_MODE, true).is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [OsString::from("busy")]);
        assert_eq!(fs::read_to_string(busy.join("keep")).unwrap(), "k");
    }

    #[test]
    fn a_temp_dir_is_private_and_gone_after_drop() {
        let dir = TempDir::new("fsx").unwrap();
        let path = dir.path().to_path_buf();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("disinto-fsx-"), "{name}");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, TEMP_DIR_MODE);
        fs::create_dir(path.join("inner")).unwrap();
        fs::write(path.join("inner").join("secret"), "s").unwrap();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn owner_and_group_are_kept() {
        if !is_root() {
            eprintln!("skipped: chown to another user needs root");
            return;
        }
        let dir = TempDir::new("fsx").unwrap();
        let path = dir.path().join(".env");
        fs::write(&path, "A=1\n").unwrap();
        std::os::unix::fs::chown(&path, Some(1234), Some(1234)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic_private(&path, b"A=2\n").unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (1234, 1234));
        assert_eq!(meta.mode() & 0o7777, 0o640);
    }

    #[test]
    fn check_writable_changes_nothing_and_fails_where_a_write_would() {
        let dir = TempDir::new("fsx").unwrap();
        let env = dir.path().join(".env");
        fs::write(&env, "A=1\n").unwrap();
        fs::set_permissions(&env, fs::Permissions::from_mode(0o640)).unwrap();
        let before = fs::metadata(&env).unwrap();
        check_writable(&env, b"A=2\n").unwrap();
        let after = fs::metadata(&env).unwrap();
        assert_eq!(fs::read_to_string(&env).unwrap(), "A=1\n");
        assert_eq!(after.ino(), before.ino(), "the file was replaced");
        assert_eq!(after.mode(), before.mode());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "a temp file was left"
        );
        // Nothing there yet: writable, and still nothing there.
        check_writable(&dir.path().join("new"), b"x").unwrap();
        assert!(!dir.path().join("new").exists());
        // A link into a directory that is not there, and a directory: as write_atomic fails.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("gone/env", &link).unwrap();
        assert!(check_writable(&link, b"x").is_err());
        assert!(write_atomic(&link, b"x").is_err());
        assert!(check_writable(dir.path(), b"x").is_err());
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let text = message(check_writable(&fifo, b"x"));
        assert!(text.contains("FIFO with no reader"), "{text}");
    }

    #[test]
    fn a_trailing_slash_is_not_a_file_name() {
        let dir = TempDir::new("fsx").unwrap();
        let path = dir.path().join("out.yml/");
        assert!(write_atomic(&path, b"x").is_err());
        assert!(!dir.path().join("out.yml").exists());
    }
}
