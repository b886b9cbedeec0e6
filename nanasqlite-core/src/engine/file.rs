//! Operations on the whole database: opening tables, expired rows, backup and restore,
//! re-encryption, and noticing other writers.

use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Applied, Kind, Operation, Shared, Table};
use crate::cache::{Cache, CacheChange};
use crate::codec::ValueCodec;
use crate::encryption::Encryption;
use crate::error::{Error, Result};
use crate::identifier::Identifier;
use crate::scan::SCAN_PAGE;
use crate::storage::{KeyRange, Storage, atomically};

/// Deletes from the file the rows that expired in TTL caches with `delete_expired`, for every
/// open table. Runs first in each write transaction, before any other write of it, so a write
/// of the same key in that transaction comes after the delete and stands. The returned
/// [`Purge`] confirms the deletions once committed; until then the keys stay absent to
/// readers, and a failed transaction leaves them to the next one.
///
/// # Errors
///
/// The backend's error.
pub(crate) fn purge_expired<S: Storage>(storage: &mut S, shared: &Shared<S>) -> Result<Purge> {
    let mut purged = Vec::new();
    for table in shared.tables() {
        let keys = table.cache().pending_deletes();
        if !keys.is_empty() {
            let names: Vec<&str> = keys.iter().map(|key| &**key).collect();
            storage.delete_many(table.handle(), &names)?;
            purged.push((Arc::clone(table.cache()), keys));
        }
    }
    Ok(Purge(purged))
}

/// Expired rows a committed transaction deleted, per cache: apply it after the commit.
#[derive(Debug, Default)]
#[must_use = "the deletions must be confirmed once committed"]
pub(crate) struct Purge(Vec<(Arc<Cache>, Vec<Box<str>>)>);

impl Purge {
    /// Confirms the deletions to the caches.
    pub(crate) fn apply(self) {
        self.0.into_iter().for_each(|(cache, keys)| cache.confirm_deleted(keys));
    }
}

/// Deletes the rows that expired in TTL caches with `delete_expired`: a write of nothing, as the
/// purge that begins every write transaction does the work. Runs before an operation that
/// [lists](Operation::lists) rows when some are due ([`Shared::expired_pending`]).
#[derive(Debug, Default)]
pub(crate) struct DeleteExpired;

impl<S: Storage> Operation<S> for DeleteExpired {
    type Output = ();

    fn name(&self) -> &'static str {
        "delete_expired"
    }

    fn kind(&self) -> Kind {
        Kind::Write
    }

    fn run(&mut self, _: &mut S, _: &Table<S>) -> Result<Applied<()>> {
        Ok(Applied::plain(()))
    }
}

/// Creates (or checks) a key/value table; returns the backend's handle on it.
#[derive(Debug)]
pub(crate) struct OpenTable {
    name: Identifier,
}

impl OpenTable {
    /// Opens table `name`.
    #[must_use]
    pub(crate) fn new(name: Identifier) -> Self {
        Self { name }
    }
}

impl<S: Storage> Operation<S> for OpenTable {
    type Output = S::Table;

    fn name(&self) -> &'static str {
        "open_table"
    }

    fn kind(&self) -> Kind {
        Kind::Write
    }

    fn run(&mut self, storage: &mut S, _: &Table<S>) -> Result<Applied<S::Table>> {
        storage.open_table(&self.name).map(Applied::plain)
    }
}

/// Runs the checkpoint that a write committed on a caller's thread left due
/// ([`Storage::write_on_callers_thread`]), on the connection's own thread.
#[derive(Debug, Default)]
pub struct Checkpoint;

impl<S: Storage> Operation<S> for Checkpoint {
    type Output = ();

    fn name(&self) -> &'static str {
        "checkpoint"
    }

    fn kind(&self) -> Kind {
        Kind::Exclusive
    }

    fn run(&mut self, storage: &mut S, _: &Table<S>) -> Result<Applied<()>> {
        storage.checkpoint().map(Applied::plain)
    }
}

/// Copies the database into a new file (online: a read).
#[derive(Debug)]
pub(crate) struct Backup {
    dest: PathBuf,
}

impl Backup {
    /// A backup into `dest`.
    #[must_use]
    pub(crate) fn new(dest: PathBuf) -> Self {
        Self { dest }
    }
}

impl<S: Storage> Operation<S> for Backup {
    type Output = ();

    fn name(&self) -> &'static str {
        "backup"
    }

    fn kind(&self) -> Kind {
        Kind::Read
    }

    fn run(&mut self, storage: &mut S, _: &Table<S>) -> Result<Applied<()>> {
        storage.backup_to(&self.dest).map(Applied::plain)
    }
}

/// Replaces the database's content with a file's, in place; recreates the open tables the file
/// lacks and empties every cache.
#[derive(Debug)]
pub(crate) struct Restore<S: Storage> {
    source: PathBuf,
    shared: Arc<Shared<S>>,
}

impl<S: Storage> Restore<S> {
    /// A restore from `source` of the database `shared` describes.
    pub(crate) fn new(source: PathBuf, shared: Arc<Shared<S>>) -> Self {
        Self { source, shared }
    }
}

/// The restore's outcome is the operation's output, not its error: the caches are emptied
/// whatever happened, since a restore that failed half way may have changed the file.
impl<S: Storage> Operation<S> for Restore<S> {
    type Output = Result<()>;

    fn name(&self) -> &'static str {
        "restore"
    }

    fn kind(&self) -> Kind {
        Kind::Exclusive
    }

    fn run(&mut self, storage: &mut S, _: &Table<S>) -> Result<Applied<Result<()>>> {
        let restored = storage.restore_from(&self.source).and_then(|()| {
            self.shared.tables().iter().try_for_each(|table| storage.open_table(table.name()).map(drop))
        });
        Ok(Applied { output: restored, change: self.shared.clear_every_cache() })
    }
}

/// Asks the database whether another connection committed since the last check, and if so
/// empties every cache of the file.
#[derive(Debug)]
pub struct CheckExternalWrites<S: Storage> {
    shared: Arc<Shared<S>>,
}

impl<S: Storage> CheckExternalWrites<S> {
    /// A check for the database `shared` describes.
    pub fn new(shared: Arc<Shared<S>>) -> Self {
        Self { shared }
    }
}

impl<S: Storage> Operation<S> for CheckExternalWrites<S> {
    type Output = bool;

    fn name(&self) -> &'static str {
        "watch"
    }

    fn kind(&self) -> Kind {
        Kind::Exclusive
    }

    fn run(&mut self, storage: &mut S, _: &Table<S>) -> Result<Applied<bool>> {
        let version = storage.data_version()?;
        let changed = version.zip(self.shared.external()).is_some_and(|(version, watch)| watch.changed(version));
        let change = if changed { self.shared.clear_every_cache() } else { CacheChange::none() };
        Ok(Applied { output: changed, change })
    }
}

/// The size of the database in bytes (0 in memory).
#[derive(Debug, Default)]
pub(crate) struct Size;

impl<S: Storage> Operation<S> for Size {
    type Output = u64;

    fn name(&self) -> &'static str {
        "get_db_size"
    }

    fn kind(&self) -> Kind {
        Kind::Read
    }

    fn run(&mut self, storage: &mut S, _: &Table<S>) -> Result<Applied<u64>> {
        storage.size().map(Applied::plain)
    }
}

/// Re-encrypts every key/value table of the database (not only those open) from the store's
/// encryption to `to`, in one write transaction: a crash leaves every value under the old key
/// or every value under the new one. Plaintext rows the store can read (without encryption, or
/// with `allow_legacy_plaintext`) are encrypted too, and so are rows whose key is not text
/// (another tool's: a number, a blob, invalid UTF-8); tables are read a page at a time, so
/// memory stays at one page. Once committed, every table of the store writes and reads with
/// `to`, and legacy mode ends: plaintext rows are refused again unless the store is reopened
/// with `allow_legacy_plaintext`. A row that cannot be read with the current key stops the
/// rekey before anything is written, naming its table and key.
///
/// Reads that overlap the rotation (on other connections, or on the caller's thread) cache
/// nothing ([`Table::read_start`]): one of them may have read one side of the commit with the
/// other side's key.
#[derive(Debug)]
pub(crate) struct Rekey {
    to: Option<Encryption>,
}

impl Rekey {
    /// A rekey to `to` (`None`: store values as plain JSON text again).
    pub(crate) fn new(to: Option<Encryption>) -> Self {
        Self { to }
    }
}

/// Marks a key rotation running on a table's codec while it lives (even if the rotation
/// panics), so that no read overlapping it fills the caches.
struct Rotating<'a, S: Storage>(&'a Table<S>);

impl<'a, S: Storage> Rotating<'a, S> {
    fn begin(table: &'a Table<S>) -> Self {
        table.mark_rotation();
        Self(table)
    }
}

impl<S: Storage> Drop for Rotating<'_, S> {
    fn drop(&mut self) {
        self.0.mark_rotation();
    }
}

impl<S: Storage> Operation<S> for Rekey {
    type Output = ();

    fn name(&self) -> &'static str {
        "rekey"
    }

    fn kind(&self) -> Kind {
        Kind::Exclusive
    }

    fn run(&mut self, storage: &mut S, table: &Table<S>) -> Result<Applied<()>> {
        let from = table.codec();
        let to = ValueCodec::new(self.to.clone(), false);
        let _rotating = Rotating::begin(table);
        atomically(storage, |storage| {
            for name in storage.key_value_tables()? {
                reseal(storage, &name, &from, &to)?;
            }
            Ok(())
        })?;
        table.switch_codec(to);
        Ok(Applied::plain(()))
    }
}

/// Reads every row of table `name` with `from` and writes it again with `to`, a page at a time
/// (all inside the caller's transaction, so memory stays at one page whatever the table's size).
fn reseal<S: Storage>(storage: &S, name: &Identifier, from: &ValueCodec, to: &ValueCodec) -> Result<()> {
    let handle = storage.open_table(name)?;
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let range = KeyRange {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
            after: cursor.as_deref(),
            descending: false,
            limit: SCAN_PAGE,
        };
        let (mut rows, mut seen, mut last, mut unreadable) = (Vec::new(), 0, None, None);
        storage.scan_page(&handle, &range, &mut |row| {
            seen += 1;
            last = Some(row.raw_key.to_vec());
            let Some(key) = row.key else { return };
            let value = from.read(row.value);
            match value.text(key) {
                Ok(_) => rows.push((key.to_owned(), value)),
                Err(error) => drop(unreadable.get_or_insert(error)),
            }
        })?;
        if let Some(error) = unreadable {
            return Err(Error::Validation {
                message: format!("cannot rekey table {}: {error}; nothing was changed", name.as_str()),
            });
        }
        let sealed = rows
            .iter()
            .map(|(key, value)| Ok((key.as_str(), to.seal(value.text(key)?)?)))
            .collect::<Result<Vec<_>>>()?;
        storage.put_many(&handle, &mut sealed.iter().map(|(key, value)| (*key, value.stored())))?;
        if seen < SCAN_PAGE {
            break;
        }
        cursor = last;
    }
    storage.rewrite_unnamed(&handle, &mut |stored| {
        let value = from.read(stored);
        let text = value.text("(a key that is not text)").map_err(|error| Error::Validation {
            message: format!("cannot rekey table {}: {error}; nothing was changed", name.as_str()),
        })?;
        Ok(to.seal(text)?.into_stored())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Get, Set, TableSettings, encode, run_write};
    use crate::storage::{ConnectionOptions, SqliteStorage};

    /// A read whose snapshot began before a rotation committed, and which runs after the switch
    /// to the new key, reads the old ciphertext with the new key: it fails, and must not leave
    /// that failure in the cache.
    #[test]
    fn a_read_overlapping_a_rotation_caches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rotation.db");
        let old = Encryption::aes_gcm([1; 32]).unwrap();
        let options = crate::NanaSQLite::builder(&path).encryption(old).options().clone();
        let connect = || SqliteStorage::open(&path, &ConnectionOptions::default()).unwrap();
        let (mut writer, mut reader) = (connect(), connect());
        let name = Identifier::new("data").unwrap();
        let table = Table::new(
            name.clone(),
            writer.open_table(&name).unwrap(),
            TableSettings::new(&options).unwrap(),
            Arc::default(),
        );
        let shared = Shared::new(None, None);
        let written = run_write(&mut writer, &shared, &table, &mut Set::new("k", encode("k", &1).unwrap())).unwrap();
        table.apply(written.change);
        table.clear_cache();

        let mut get = Get::new(&table, "k");
        let applied = reader
            .read_snapshot(|reader| {
                assert!(reader.get(table.handle(), "pinned").unwrap().is_none(), "the snapshot is taken");
                let rotated =
                    Rekey::new(Some(Encryption::chacha20([2; 32]).unwrap())).run(&mut writer, &table).unwrap();
                table.apply(rotated.change);
                get.run(reader, &table).unwrap()
            })
            .unwrap();
        let found = applied.output.clone().expect("the row is in the old snapshot");
        assert!(found.json().is_none(), "the old ciphertext does not decrypt with the new key");
        table.apply(applied.change);
        assert!(!table.is_cached("k"), "the overlapping read cached nothing");

        let mut again = Get::new(&table, "k");
        let applied = again.run(&mut reader, &table).unwrap();
        table.apply(applied.change);
        assert!(table.is_cached("k"), "a read after the rotation caches again");
        assert_eq!(table.decode::<i32>("k", &applied.output.unwrap()).unwrap(), 1);
    }
}
