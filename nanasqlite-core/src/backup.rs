//! Backup and restore of whole database files, shared by both stores.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::storage::{ConnectionOptions, SqliteStorage, Storage};

/// Whether `path` names an in-memory database.
#[must_use]
pub fn is_memory(path: &Path) -> bool {
    let text = path.to_string_lossy();
    text.is_empty() || text == ":memory:" || text.starts_with("file::memory:") || text.contains("mode=memory")
}

/// Whether `a` and `b` are the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Checks a backup destination: a file path other than the database itself.
///
/// # Errors
///
/// [`Error::Validation`].
pub fn check_destination(database: &Path, dest: &Path) -> Result<()> {
    if is_memory(dest) {
        return Err(Error::validation("a backup needs a file, not an in-memory database"));
    }
    if same_file(database, dest) {
        return Err(Error::validation("a backup cannot overwrite the database it copies"));
    }
    Ok(())
}

/// A fresh file name beside `path`, for writing before an atomic rename.
fn temp_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let unique = format!("{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let name = path.file_name().map_or_else(|| "nanasqlite".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{unique}.tmp"))
}

/// Opens `path` read-only and checks `PRAGMA integrity_check` says `ok`.
///
/// # Errors
///
/// [`Error::Validation`] naming what failed: the file cannot be opened, is not SQLite, or is damaged.
pub fn check_integrity(path: &Path) -> Result<()> {
    let invalid = |why: String| Error::validation(format!("{} is not a usable SQLite database: {why}", path.display()));
    if !path.is_file() {
        return Err(invalid("no such file".into()));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| invalid(e.to_string()))?;
    let verdict: String =
        conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).map_err(|e| invalid(e.to_string()))?;
    if verdict == "ok" { Ok(()) } else { Err(invalid(verdict)) }
}

/// Copies the database of `source` (one consistent snapshot) into a temp file beside `dest`,
/// checks it, syncs it, and renames it over `dest` atomically. On failure the temp file is
/// removed and `dest` is untouched.
///
/// # Errors
///
/// SQLite's or the file system's error; [`Error::Validation`] if the copy fails its check.
pub fn copy_to(source: &Connection, dest: &Path) -> Result<()> {
    let temp = temp_beside(dest);
    let copied = write_copy(source, &temp).and_then(|()| {
        check_integrity(&temp)?;
        if let Ok(existing) = fs::metadata(dest) {
            fs::set_permissions(&temp, existing.permissions())?;
        }
        fs::rename(&temp, dest)?;
        sync_directory(dest);
        Ok(())
    });
    if copied.is_err() {
        let _ = fs::remove_file(&temp);
    }
    copied
}

fn write_copy(source: &Connection, temp: &Path) -> Result<()> {
    let mut target = Connection::open(temp)?;
    {
        let backup = Backup::new(source, &mut target)?;
        // All pages in one step: one snapshot. Retry while another connection holds a lock.
        for _ in 0..1000 {
            if backup.step(-1)? == StepResult::Done {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // A backup of a WAL database is a WAL database: fold it into the main file.
    target.execute_batch("PRAGMA journal_mode = DELETE")?;
    target.close().map_err(|(_, e)| Error::Sqlite(e))?;
    File::open(temp)?.sync_all()?;
    Ok(())
}

/// Makes a rename durable (best effort: not every platform can open a directory).
fn sync_directory(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
}

/// Replaces the database file at `path`, whose connection `live` is, with a checked copy of
/// `source`. Returns the connection to use from now on (the new file's; or the old one's when
/// the swap failed; `None` if not even that could be reopened) and how it went. The copy is
/// made and checked before the live connection is closed.
///
/// The outcome is [`Error::Validation`] when `source` is not a usable database (nothing
/// changes then), or SQLite's or the file system's error.
pub fn replace_database(
    live: SqliteStorage,
    path: &Path,
    source: &Path,
    options: &ConnectionOptions,
) -> (Option<SqliteStorage>, Result<()>) {
    let temp = match stage_copy(path, source) {
        Ok(temp) => temp,
        Err(error) => return (Some(live), Err(error)),
    };
    let swapped = live.close().and_then(|()| swap_in(&temp, path)).and_then(|()| SqliteStorage::open(path, options));
    match swapped {
        Ok(storage) => (Some(storage), Ok(())),
        Err(error) => {
            let _ = fs::remove_file(&temp);
            (SqliteStorage::open(path, options).ok(), Err(error))
        }
    }
}

/// A checked copy of `source` beside `path`, ready to be renamed over it.
fn stage_copy(path: &Path, source: &Path) -> Result<PathBuf> {
    check_integrity(source)?;
    let temp = temp_beside(path);
    let from = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let copied = write_copy(&from, &temp).and_then(|()| check_integrity(&temp));
    if copied.is_err() {
        let _ = fs::remove_file(&temp);
    }
    copied.map(|()| temp)
}

/// Renames `temp` over `path` and removes the old file's WAL and shared-memory files, which
/// belong to the old database and must never be applied to the new one.
fn swap_in(temp: &Path, path: &Path) -> Result<()> {
    for suffix in ["-wal", "-shm", "-journal"] {
        let sidecar = PathBuf::from(format!("{}{suffix}", path.display()));
        if sidecar.exists() {
            fs::remove_file(&sidecar)?;
        }
    }
    fs::rename(temp, path)?;
    sync_directory(path);
    Ok(())
}
