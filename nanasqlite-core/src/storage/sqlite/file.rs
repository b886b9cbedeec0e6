//! Backup and restore of whole SQLite databases, through SQLite's backup API.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::error::{Error, Result};

/// How long a backup step waits for other connections' locks before it gives up.
const STEP_RETRIES: u32 = 1000;
const STEP_PAUSE: Duration = Duration::from_millis(5);

/// Whether `a` and `b` are the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Whether `path` names no file: `:memory:`, an empty path, or an in-memory URI.
fn names_no_file(path: &Path) -> bool {
    let text = path.to_string_lossy();
    text.is_empty() || text == ":memory:" || text.starts_with("file::memory:") || text.contains("mode=memory")
}

/// Checks a backup destination: a file other than the database itself (`database`, `None` when
/// it is in memory).
pub(super) fn check_destination(database: Option<&Path>, dest: &Path) -> Result<()> {
    if names_no_file(dest) {
        return Err(Error::validation("a backup needs a file, not an in-memory database"));
    }
    if database.is_some_and(|database| same_file(database, dest)) {
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
pub(crate) fn check_integrity(path: &Path) -> Result<()> {
    open_checked(path).map(drop)
}

/// `path` opened read-only, after `PRAGMA integrity_check` said `ok`.
fn open_checked(path: &Path) -> Result<Connection> {
    let invalid = |why: String| Error::validation(format!("{} is not a usable SQLite database: {why}", path.display()));
    if !path.is_file() {
        return Err(invalid("no such file".into()));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| invalid(e.to_string()))?;
    let verdict: String =
        conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).map_err(|e| invalid(e.to_string()))?;
    if verdict == "ok" { Ok(conn) } else { Err(invalid(verdict)) }
}

/// Copies the database of `source` (one consistent snapshot) into a temp file beside `dest`,
/// checks it, syncs it, and renames it over `dest` atomically. On failure the temp file is
/// removed and `dest` is untouched.
pub(super) fn copy_to(source: &Connection, dest: &Path) -> Result<()> {
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
    copy_pages(source, &mut target)?;
    // A backup of a WAL database is a WAL database: fold it into the main file.
    target.execute_batch("PRAGMA journal_mode = DELETE")?;
    target.close().map_err(|(_, e)| Error::Sqlite(e))?;
    File::open(temp)?.sync_all()?;
    Ok(())
}

/// Copies every page of `source` into `target` in one step (one snapshot), retrying while
/// another connection holds a lock.
fn copy_pages(source: &Connection, target: &mut Connection) -> Result<()> {
    let backup = Backup::new(source, target)?;
    for _ in 0..STEP_RETRIES {
        if backup.step(-1)? == StepResult::Done {
            return Ok(());
        }
        std::thread::sleep(STEP_PAUSE);
    }
    Err(Error::LockTimeout { waited: STEP_PAUSE * STEP_RETRIES })
}

/// Makes a rename durable (best effort: not every platform can open a directory).
fn sync_directory(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
}

/// Replaces the content of `live`'s database with the checked database at `source`, in place,
/// through the backup API: one write transaction on the live file, so every connection to it,
/// in this process or another, sees either the old content or the new one at its next
/// transaction, and nothing written by them is lost to a file swapped under their feet.
pub(super) fn restore_into(live: &mut Connection, source: &Path) -> Result<()> {
    let from = open_checked(source)?;
    let page_size = |conn: &Connection| conn.query_row("PRAGMA page_size", [], |row| row.get::<_, i64>(0));
    let (theirs, ours) = (page_size(&from)?, page_size(live)?);
    match copy_pages(&from, live) {
        Err(Error::Sqlite(error)) if error.sqlite_error_code() == Some(ErrorCode::ReadOnly) && theirs != ours => {
            Err(Error::validation(format!(
                "{} has pages of {theirs} bytes and the database {ours}: a database in WAL mode can only be \
                 restored from one with the same page size (VACUUM INTO a copy with PRAGMA page_size = {ours} first)",
                source.display()
            )))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_that_name_no_file_or_the_database_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        fs::write(&db, b"").unwrap();
        for dest in [":memory:", "", "file::memory:", "file:x?mode=memory"] {
            assert!(check_destination(Some(&db), Path::new(dest)).is_err(), "{dest:?}");
        }
        assert!(check_destination(Some(&db), &db).is_err());
        assert!(check_destination(Some(&db), &dir.path().join("copy.sqlite")).is_ok());
    }

    #[test]
    fn integrity_is_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        fs::write(&junk, b"this is not a database at all, not even close").unwrap();
        assert!(matches!(check_integrity(&junk), Err(Error::Validation { .. })));
        assert!(matches!(check_integrity(&dir.path().join("missing.db")), Err(Error::Validation { .. })));
    }
}
