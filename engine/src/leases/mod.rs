//! KCL-style lease tables, kept by the engine so that consumers need no DynamoDB.
//!
//! An application (a consumer group, named like a KCL application) has one lease table,
//! bound to one stream: a lease per shard saying which worker processes it (`owner`), how
//! far it got (`checkpoint`), and a `counter` that every take, renew, evict and checkpoint
//! bumps. Workers coordinate only through conditional updates on that counter; the engine
//! keeps no timers (a worker decides a lease has expired when its counter stood still for
//! the failover time on the worker's own clock).
//!
//! # Invariants
//!
//! - Every mutation is durable before it returns: the table is changed on a copy, the copy
//!   is written whole with [`crate::datadir::write_atomic`] (temp file, fsync, rename, fsync
//!   directory), and only then swapped in. A failed write changes nothing in memory. The
//!   whole-table rewrite is fine for tables of up to a few thousand leases. No table is
//!   poisoned after a failed write: every write is a complete new file, so the next
//!   successful one makes the table on disk equal to memory again (the failed mutation was
//!   never acknowledged, and a crash in between may or may not keep it, as for any request
//!   whose answer was lost).
//! - Mutations of one table are serialized by that table's lock (which also serializes its
//!   file's writers, as `write_atomic` requires). Creating and deleting tables is serialized
//!   by one more lock; a deleted table's entry is emptied under its lock first, so a
//!   mutation that raced the deletion cannot write the file back.
//! - A table is bound to one incarnation of one stream. Naming another stream is refused,
//!   and a sync after the stream was deleted (even if created again under the same name)
//!   fails rather than mixing shards of two streams.
//! - Tables are loaded when the engine opens; a damaged file refuses the open with an error
//!   naming it (the layout is in `docs/formats/leases.md`), never a panic.
//!
//! # Layout
//!
//! - [`table`]: the table in memory and the conditional operations.
//! - [`sync`]: reconciliation with the stream's shards (splits, merges, retention).
//! - [`store`]: the file format and `<data>/leases/<application>.leases`.

pub mod store;
pub mod sync;
pub mod table;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::datadir::fsync_dir;
use crate::error::{Error, Result};
use crate::ids::ShardId;
use crate::meta::StreamMeta;

pub use table::{Expected, InitialPosition, Lease, LeaseTable};

/// Directory of the lease tables inside the data directory.
pub const LEASES_DIR: &str = "leases";

/// One table's slot; `None` once the table has been deleted.
type Slot = Arc<Mutex<Option<LeaseTable>>>;

/// What a sync did.
#[derive(Debug, Clone)]
pub struct Synced {
    /// The table after the sync.
    pub table: LeaseTable,
    /// Keys of the leases this sync created, ascending.
    pub created: Vec<ShardId>,
}

/// A lease with the stream its table belongs to (every lease the API returns names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLease {
    pub stream: String,
    pub lease: Lease,
}

/// All applications' lease tables.
pub struct Leases {
    dir: PathBuf,
    tables: RwLock<BTreeMap<String, Slot>>,
    /// Serializes creating and deleting tables.
    ddl: Mutex<()>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").field("dir", &self.dir).finish()
    }
}

impl Leases {
    /// Opens (creating if missing) `dir` and loads every table in it.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::BadFormat`] naming a damaged table file.
    pub fn open(dir: &Path) -> Result<Leases> {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
            if let Some(parent) = dir.parent() {
                fsync_dir(parent)?;
            }
        }
        let tables = store::read_all(dir)?
            .into_iter()
            .map(|(name, t)| (name, Arc::new(Mutex::new(Some(t)))))
            .collect();
        Ok(Leases {
            dir: dir.to_path_buf(),
            tables: RwLock::new(tables),
            ddl: Mutex::new(()),
        })
    }

    /// The directory holding the table files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn slot(&self, application: &str) -> Option<Slot> {
        self.tables.read().get(application).cloned()
    }

    /// Creates `application`'s table bound to `stream` on first call, or brings it up to
    /// date with the stream's shards (see [`sync`] for the rules). `initial` only matters
    /// when the table is created.
    ///
    /// # Errors
    /// [`Error::LeaseStreamMismatch`] if the table belongs to another stream;
    /// [`Error::LeaseStreamGone`] if its stream was deleted since; I/O errors.
    pub fn sync(
        &self,
        application: &str,
        stream: &StreamMeta,
        initial: InitialPosition,
    ) -> Result<Synced> {
        loop {
            if let Some(slot) = self.slot(application) {
                let mut guard = slot.lock();
                // Deleted meanwhile: go round and create it afresh.
                let Some(table) = guard.as_mut() else {
                    continue;
                };
                check_binding(table, stream)?;
                let mut next = table.clone();
                let created = sync::sync(&mut next, stream);
                if next != *table {
                    store::write(&self.dir, &next)?;
                    *table = next;
                }
                return Ok(Synced {
                    table: table.clone(),
                    created,
                });
            }
            let _ddl = self.ddl.lock();
            if self.tables.read().contains_key(application) {
                continue;
            }
            let (table, created) = sync::create(application, stream, initial);
            store::write(&self.dir, &table)?;
            self.tables.write().insert(
                application.to_string(),
                Arc::new(Mutex::new(Some(table.clone()))),
            );
            return Ok(Synced { table, created });
        }
    }

    /// A copy of `application`'s table.
    ///
    /// # Errors
    /// [`Error::LeaseTableNotFound`].
    pub fn table(&self, application: &str) -> Result<LeaseTable> {
        self.slot(application)
            .and_then(|s| s.lock().clone())
            .ok_or_else(|| not_found(application))
    }

    /// One lease.
    ///
    /// # Errors
    /// [`Error::LeaseTableNotFound`], [`Error::LeaseNotFound`].
    pub fn lease(&self, application: &str, shard: ShardId) -> Result<StreamLease> {
        let slot = self
            .slot(application)
            .ok_or_else(|| not_found(application))?;
        let guard = slot.lock();
        let table = guard.as_ref().ok_or_else(|| not_found(application))?;
        Ok(StreamLease {
            stream: table.stream.clone(),
            lease: table.lease(shard)?.clone(),
        })
    }

    /// Names of the applications that have a table, ascending.
    pub fn applications(&self) -> Vec<String> {
        self.tables.read().keys().cloned().collect()
    }

    /// Applies `f` to a copy of the table, makes the copy durable, then swaps it in.
    fn mutate(
        &self,
        application: &str,
        f: impl FnOnce(&mut LeaseTable) -> Result<Lease>,
    ) -> Result<StreamLease> {
        let slot = self
            .slot(application)
            .ok_or_else(|| not_found(application))?;
        let mut guard = slot.lock();
        let table = guard.as_mut().ok_or_else(|| not_found(application))?;
        let mut next = table.clone();
        let lease = f(&mut next)?;
        store::write(&self.dir, &next)?;
        *table = next;
        Ok(StreamLease {
            stream: table.stream.clone(),
            lease,
        })
    }

    /// Takes a lease iff its counter is `expected_counter` (see [`LeaseTable::take`]).
    ///
    /// # Errors
    /// [`Error::LeaseTableNotFound`], [`Error::LeaseNotFound`],
    /// [`Error::LeaseConditionFailed`]; I/O errors (nothing changed).
    pub fn take(
        &self,
        application: &str,
        shard: ShardId,
        owner: &str,
        expected_counter: u64,
    ) -> Result<StreamLease> {
        self.mutate(application, |t| t.take(shard, owner, expected_counter))
    }

    /// Renews a lease (see [`LeaseTable::renew`]).
    ///
    /// # Errors
    /// As [`Leases::take`].
    pub fn renew(
        &self,
        application: &str,
        shard: ShardId,
        expected: Expected<'_>,
    ) -> Result<StreamLease> {
        self.mutate(application, |t| t.renew(shard, expected))
    }

    /// Hands a lease back (see [`LeaseTable::evict`]).
    ///
    /// # Errors
    /// As [`Leases::take`].
    pub fn evict(
        &self,
        application: &str,
        shard: ShardId,
        expected: Expected<'_>,
    ) -> Result<StreamLease> {
        self.mutate(application, |t| t.evict(shard, expected))
    }

    /// Records a checkpoint (see [`LeaseTable::checkpoint`]).
    ///
    /// # Errors
    /// As [`Leases::take`], and [`Error::InvalidInput`] for a malformed checkpoint.
    pub fn checkpoint(
        &self,
        application: &str,
        shard: ShardId,
        expected: Expected<'_>,
        checkpoint: &str,
        sub_sequence: u64,
    ) -> Result<StreamLease> {
        self.mutate(application, |t| {
            t.checkpoint(shard, expected, checkpoint, sub_sequence)
        })
    }

    /// Deletes one lease (a finished shard's); later syncs do not create it again.
    ///
    /// # Errors
    /// [`Error::LeaseTableNotFound`], [`Error::LeaseNotFound`]; I/O errors.
    pub fn delete_lease(&self, application: &str, shard: ShardId) -> Result<()> {
        self.mutate(application, |t| t.delete(shard)).map(drop)
    }

    /// Deletes an application's table and its file.
    ///
    /// # Errors
    /// [`Error::LeaseTableNotFound`]; I/O errors (the table is then still there).
    pub fn delete_table(&self, application: &str) -> Result<()> {
        let _ddl = self.ddl.lock();
        let slot = self
            .slot(application)
            .ok_or_else(|| not_found(application))?;
        let mut guard = slot.lock();
        if guard.is_none() {
            return Err(not_found(application));
        }
        let path = store::table_path(&self.dir, application);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("delete lease table", &path, e)),
        }
        fsync_dir(&self.dir)?;
        *guard = None;
        drop(guard);
        self.tables.write().remove(application);
        Ok(())
    }
}

fn not_found(application: &str) -> Error {
    Error::LeaseTableNotFound {
        application: application.to_string(),
    }
}

/// The table must belong to this incarnation of this stream.
fn check_binding(table: &LeaseTable, stream: &StreamMeta) -> Result<()> {
    if table.stream != stream.name {
        return Err(Error::LeaseStreamMismatch {
            application: table.application.clone(),
            bound: table.stream.clone(),
            given: stream.name.clone(),
        });
    }
    if table.stream_incarnation != stream.dir_name {
        return Err(Error::LeaseStreamGone {
            application: table.application.clone(),
            stream: table.stream.clone(),
        });
    }
    Ok(())
}
