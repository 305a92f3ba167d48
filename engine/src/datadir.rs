//! The data directory, its exclusive lock, and crash-safe whole-file writes.
//!
//! # Invariants
//!
//! - At most one [`DataDir`] per directory is open at a time, across processes *and* within
//!   one process: `<dir>/LOCK` is held with an exclusive, non-blocking `flock`-style lock
//!   ([`File::try_lock`]) for as long as the `DataDir` lives. A lock is tied to the open file,
//!   so a second `open` in the same process conflicts too, and the kernel drops the lock
//!   when the holder exits, even on `kill -9`: there is no stale lock to clean up.
//! - The `LOCK` file is never deleted. Unlinking it would let a newcomer lock a fresh inode
//!   while the old holder still holds the old one. Its content (the holder's pid) is only a
//!   hint for error messages; the lock, not the file, is the truth.
//! - [`write_atomic`] leaves either the old or the new content at `path`, never a mix, once
//!   it returns. A crash can leave `<path>.tmp` behind; readers ignore it and the next
//!   `write_atomic` overwrites it. Callers serialize writes to one `path` (the data
//!   directory lock plus one writer per stream), since concurrent writers share the temp name.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Suffix [`write_atomic`] appends to the target's file name for its temporary file.
pub const TMP_SUFFIX: &str = ".tmp";

/// An open, exclusively locked data directory. Dropping it releases the lock.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    /// Holds the lock: closing this file (on drop) is what releases it.
    _lock: File,
}

impl DataDir {
    /// Opens (creating if missing) the data directory at `path` and locks it.
    ///
    /// The holder's pid is written into `<path>/LOCK`; see [`DataDir::holder_pid`].
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] if another `DataDir` (in this or another process) holds the
    /// directory; [`Error::Io`] if the directory or lock file cannot be created or locked.
    pub fn open(path: &Path) -> Result<DataDir> {
        fs::create_dir_all(path).map_err(|e| Error::io("create directory", path, e))?;
        let lock_path = path.join(LOCK_FILE);
        // No truncate before the lock is ours: the file holds the current holder's pid.
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io("open lock file", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                    holder: DataDir::holder_pid(path).map_or_else(
                        || "another process".to_string(),
                        |pid| format!("process {pid}"),
                    ),
                    lock: lock_path,
                })
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", &lock_path, e)),
        }
        lock.set_len(0)
            .and_then(|()| writeln!(lock, "{}", std::process::id()))
            .map_err(|e| Error::io("write pid to", &lock_path, e))?;
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory this handle locks.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid last written into `<path>/LOCK`, for telling a person who holds the directory
    /// after [`DataDir::open`] returned [`Error::Locked`]. `None` if the file is missing or
    /// holds no pid. The value is stale if nobody holds the lock any more.
    pub fn holder_pid(path: &Path) -> Option<u32> {
        fs::read_to_string(path.join(LOCK_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// Replaces the content of `path` with `bytes` so that a crash leaves the old or the new
/// content, never a mix: write `<path>.tmp`, fsync it, rename it over `path`, fsync the
/// parent directory (so the rename itself is durable).
///
/// # Errors
///
/// [`Error::Io`] naming the failed step and file. After an error `path` still holds its
/// old content, or the new one if only the final directory fsync failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| Error::io("write", &tmp, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| Error::io("rename", &tmp, e))?;
    fsync_dir(parent_dir(path))
}

/// Makes a directory's entries (creates, renames, unlinks) durable.
///
/// # Errors
///
/// [`Error::Io`] if the directory cannot be opened or synced.
pub fn fsync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| Error::io("fsync directory", path, e))
}

/// `<path>.tmp`: the temporary file [`write_atomic`] uses for `path`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// The directory holding `path`; `.` for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_of_a_locked_dir_fails_with_locked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let first = DataDir::open(&dir).unwrap();
        assert_eq!(first.path(), dir);
        match DataDir::open(&dir) {
            Err(Error::Locked { path, lock, .. }) => {
                assert_eq!(path, dir);
                assert_eq!(lock, dir.join(LOCK_FILE));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        let message = DataDir::open(&dir).unwrap_err().to_string();
        assert!(message.contains(&dir.display().to_string()), "{message}");
    }

    #[test]
    fn open_creates_missing_directories_and_records_the_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/c");
        let _held = DataDir::open(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(DataDir::holder_pid(&dir), Some(std::process::id()));
    }

    /// A child process forked by a parallel test inherits every open descriptor, our lock
    /// included, until it execs; tests that spawn and tests that expect a dropped lock to
    /// be free at once take turns.
    static SPAWN_GATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn dropping_the_data_dir_releases_the_lock() {
        let _gate = SPAWN_GATE.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = tempfile::tempdir().unwrap();
        let first = DataDir::open(tmp.path()).unwrap();
        drop(first);
        let second = DataDir::open(tmp.path()).unwrap();
        assert!(matches!(
            DataDir::open(tmp.path()),
            Err(Error::Locked { .. })
        ));
        drop(second);
        DataDir::open(tmp.path()).unwrap();
    }

    /// The lock must hold against other processes, not just other handles: `flock` on a
    /// file opened by a child process conflicts with ours.
    #[test]
    fn lock_is_visible_to_another_process() {
        let _gate = SPAWN_GATE.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = tempfile::tempdir().unwrap();
        let _held = DataDir::open(tmp.path()).unwrap();
        let lock = tmp.path().join(LOCK_FILE);
        // `flock -n` exits 1 when the lock is held; skip if the tool is not installed.
        let Ok(status) = std::process::Command::new("flock")
            .arg("-n")
            .arg(&lock)
            .arg("true")
            .status()
        else {
            eprintln!("flock(1) not available; skipping");
            return;
        };
        assert!(!status.success(), "another process took a held lock");
    }

    #[test]
    fn write_atomic_replaces_content_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("file");
        write_atomic(&path, b"first version").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first version");
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert!(!tmp_path(&path).exists());
    }

    /// A crash between creating the temp file and the rename leaves `<path>.tmp`; the next
    /// write must simply overwrite it.
    #[test]
    fn write_atomic_overwrites_a_leftover_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("file");
        fs::write(
            tmp_path(&path),
            b"torn garbage from a crash, longer than the new data",
        )
        .unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn write_atomic_into_a_missing_directory_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("missing/file");
        match write_atomic(&path, b"x") {
            Err(Error::Io { op, path: p, .. }) => {
                assert_eq!(op, "create");
                assert_eq!(p, tmp_path(&path));
            }
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn tmp_path_appends_the_suffix() {
        assert_eq!(
            tmp_path(Path::new("d/stream.meta")),
            Path::new("d/stream.meta.tmp")
        );
        assert_eq!(parent_dir(Path::new("file")), Path::new("."));
        assert_eq!(parent_dir(Path::new("d/file")), Path::new("d"));
    }

    #[test]
    fn fsync_dir_of_a_missing_directory_fails_with_io() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            fsync_dir(&tmp.path().join("missing")),
            Err(Error::Io { .. })
        ));
    }
}
