//! Streams: a set of shards covering the hash key space, routing, and resharding lineage.
//!
//! Invariants:
//! - The open shards' hash key ranges tile `0..=2^128-1` exactly; a record goes to the open
//!   shard whose inclusive range holds its hash key.
//! - Metadata changes are made durable (`stream.meta`, written atomically) before they take
//!   effect in memory; a crash leaves either the old or the new layout, never a mix.
//! - A child shard's sequence-number epoch is strictly greater than each parent's, so every
//!   child sequence number sorts after every parent sequence number.
//! - Shard indexes are never reused within a stream incarnation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::commit::Committer;
use crate::config::{EngineConfig, MAX_PARTITION_KEY_CHARS};
use crate::error::{Error, Result};
use crate::hashkey::{HashKey, HashKeyRange};
use crate::ids::{Offset, ShardId};
use crate::log::batch::{PendingBatch, RecordRef};
use crate::log::ShardLog;
use crate::meta::{self, ShardMeta, StreamMeta};
use crate::seqno::SequenceNumber;
use crate::shard::{AppendReceiver, Shard};

/// A record to put into a stream.
#[derive(Debug, Clone, Copy)]
pub struct PutRecord<'a> {
    pub partition_key: &'a str,
    /// Routes the record instead of the partition key's MD5.
    pub explicit_hash_key: Option<HashKey>,
    pub data: &'a [u8],
}

/// Where a put record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutResult {
    pub shard: ShardId,
    pub sequence_number: SequenceNumber,
    pub timestamp_ms: u64,
}

/// An open shard in the routing table.
#[derive(Clone)]
struct Route {
    range: HashKeyRange,
    epoch_secs: u64,
    shard: Arc<Shard>,
}

/// A stream and its shards.
pub struct Stream {
    dir: PathBuf,
    /// The persisted description; changes are serialized by this lock.
    meta: Mutex<StreamMeta>,
    shards: RwLock<BTreeMap<ShardId, Arc<Shard>>>,
    /// Open shards sorted by range start, for routing without the metadata lock.
    routes: RwLock<Arc<Vec<Route>>>,
    committer: Arc<Committer>,
    config: EngineConfig,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("dir", &self.dir).finish()
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn shard_dir(stream_dir: &Path, id: ShardId) -> PathBuf {
    stream_dir.join(id.to_string())
}

impl Stream {
    /// Opens a stream whose metadata is already on disk, recovering every shard's log.
    pub(crate) fn open(
        dir: PathBuf,
        meta: StreamMeta,
        committer: Arc<Committer>,
        config: EngineConfig,
    ) -> Result<Stream> {
        let mut shards = BTreeMap::new();
        for sm in &meta.shards {
            let sdir = shard_dir(&dir, sm.id);
            if !sdir.is_dir() {
                return Err(Error::BadFormat {
                    path: sdir,
                    reason: "shard directory listed in stream.meta is missing".into(),
                });
            }
            let log = ShardLog::open(&sdir, sm.id, 0, config.log.clone())?;
            let shard = Shard::new(sm.id, meta.name.clone(), log, committer.clone());
            if !sm.is_open() {
                shard.mark_closed();
            }
            shards.insert(sm.id, shard);
        }
        let s = Stream {
            dir,
            meta: Mutex::new(meta),
            shards: RwLock::new(shards),
            routes: RwLock::new(Arc::new(Vec::new())),
            committer,
            config,
        };
        s.rebuild_routes();
        Ok(s)
    }

    /// Creates the (empty) logs of a new stream's shards, durably.
    pub(crate) fn create_shard_logs(
        dir: &Path,
        meta: &StreamMeta,
        config: &EngineConfig,
    ) -> Result<()> {
        for sm in &meta.shards {
            ShardLog::open(&shard_dir(dir, sm.id), sm.id, 0, config.log.clone())?;
        }
        Ok(())
    }

    fn rebuild_routes(&self) {
        let meta = self.meta.lock();
        rebuild_routes_from(self, &meta);
    }

    /// The stream's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A copy of the stream's metadata.
    pub fn meta(&self) -> StreamMeta {
        self.meta.lock().clone()
    }

    /// The stored status and when its transition completes (0 = none), without copying
    /// the rest of the metadata.
    pub fn status(&self) -> (meta::StreamStatus, u64) {
        let m = self.meta.lock();
        (m.status, m.status_until_ms)
    }

    /// The stream's name.
    pub fn name(&self) -> String {
        self.meta.lock().name.clone()
    }

    /// Changes the metadata with `f` and persists it; nothing changes if `f` or the write fails.
    ///
    /// # Errors
    /// Whatever `f` returns; I/O errors writing the metadata.
    pub fn update_meta<T>(&self, f: impl FnOnce(&mut StreamMeta) -> Result<T>) -> Result<T> {
        let mut meta = self.meta.lock();
        let mut next = meta.clone();
        let out = f(&mut next)?;
        meta::write_stream(&self.dir, &next)?;
        *meta = next;
        Ok(out)
    }

    /// Sets the retention period (Increase/DecreaseStreamRetentionPeriod); segments past
    /// it go at the next maintenance run.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] outside 24 to 8760 hours; I/O errors.
    pub fn set_retention_hours(&self, hours: u32) -> Result<()> {
        crate::config::check_retention_hours(hours)?;
        self.update_meta(|m| {
            m.retention_hours = hours;
            Ok(())
        })
    }

    /// Sets the largest record (partition key plus data) the stream accepts.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] above 10 MiB; I/O errors.
    pub fn set_max_record_bytes(&self, bytes: u32) -> Result<()> {
        crate::config::check_max_record_bytes(bytes)?;
        self.update_meta(|m| {
            m.max_record_bytes = bytes;
            Ok(())
        })
    }

    /// A shard by id, open or closed.
    pub fn shard(&self, id: ShardId) -> Option<Arc<Shard>> {
        self.shards.read().get(&id).cloned()
    }

    /// Metadata of one shard.
    pub fn shard_meta(&self, id: ShardId) -> Option<ShardMeta> {
        self.meta.lock().shards.iter().find(|s| s.id == id).cloned()
    }

    /// The index in `routes` of the open shard covering `key`.
    fn route_in(routes: &[Route], key: HashKey) -> Option<usize> {
        let i = routes
            .partition_point(|r| r.range.start <= key.0)
            .checked_sub(1)?;
        routes[i].range.contains(key).then_some(i)
    }

    fn check_record(&self, r: &PutRecord<'_>, max_record_bytes: usize) -> Result<()> {
        let bytes = r.partition_key.len();
        // Up to 256 bytes is up to 256 characters: count them only for longer keys.
        let chars = if bytes <= MAX_PARTITION_KEY_CHARS {
            bytes
        } else {
            r.partition_key.chars().count()
        };
        if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
            return Err(Error::InvalidInput(format!(
                "partition key must be 1 to {MAX_PARTITION_KEY_CHARS} characters, got {chars}"
            )));
        }
        if r.data.len() + r.partition_key.len() > max_record_bytes {
            return Err(Error::InvalidInput(format!(
                "record of {} bytes (partition key and data) exceeds the stream's limit of {max_record_bytes} bytes",
                r.data.len() + r.partition_key.len()
            )));
        }
        Ok(())
    }

    /// Submits `records`, grouped into one batch per shard, in order within each shard.
    fn submit(&self, records: &[PutRecord<'_>]) -> Submitted {
        let max = self.meta.lock().max_record_bytes as usize;
        let mut failed: Vec<Option<Error>> = records.iter().map(|_| None).collect();
        let mut done = vec![false; records.len()];
        let mut groups_out = Vec::new();
        // Shards to hand to the committer once every group is encoded (see below).
        let mut to_queue: Vec<Arc<Shard>> = Vec::new();
        for attempt in 0..3 {
            // One routing snapshot per attempt; groups are indexed like the routes.
            let routes = self.routes.read().clone();
            let mut groups: Vec<Vec<usize>> = vec![Vec::new(); routes.len()];
            let mut any = false;
            // One open shard over the whole key space takes every record: no need for the
            // partition keys' MD5 (11.5% of all CPU samples, client included, at 1.5 M
            // records/s of 100 B; docs/performance.md).
            let one_shard = matches!(routes.as_slice(), [only] if only.range == HashKeyRange::FULL);
            for (i, r) in records.iter().enumerate() {
                if done[i] {
                    continue;
                }
                if let Err(e) = self.check_record(r, max) {
                    failed[i] = Some(e);
                    done[i] = true;
                    continue;
                }
                if one_shard {
                    groups[0].push(i);
                    any = true;
                    continue;
                }
                let key = HashKey::of_record(r.partition_key, r.explicit_hash_key);
                match Self::route_in(&routes, key) {
                    Some(g) => {
                        groups[g].push(i);
                        any = true;
                    }
                    None => {
                        failed[i] = Some(Error::InvalidInput(format!(
                            "no open shard covers hash key {key}"
                        )));
                        done[i] = true;
                    }
                }
            }
            if !any {
                break;
            }
            for (g, idx) in groups.into_iter().enumerate() {
                if idx.is_empty() {
                    continue;
                }
                let route = routes[g].clone();
                let refs: Vec<RecordRef<'_>> = idx
                    .iter()
                    .map(|&i| RecordRef {
                        partition_key: records[i].partition_key.as_bytes(),
                        data: records[i].data,
                    })
                    .collect();
                let submitted = PendingBatch::encode(&refs)
                    .map_err(Error::InvalidInput)
                    .and_then(|batch| route.shard.submit_unqueued(batch));
                match submitted {
                    Ok((rx, queue)) => {
                        if queue {
                            to_queue.push(route.shard.clone());
                        }
                        for &i in &idx {
                            done[i] = true;
                        }
                        groups_out.push((route, idx, rx));
                    }
                    // Resharded under us: route these records again, to the children.
                    Err(Error::ShardClosed { .. }) if attempt < 2 => self.rebuild_routes(),
                    Err(e) => {
                        for &i in &idx {
                            failed[i] = Some(e.duplicate());
                            done[i] = true;
                        }
                    }
                }
            }
        }
        // All at once (see the committer's invariants). Every shard of the stream was made
        // with the stream's committer.
        if !to_queue.is_empty() {
            self.committer.enqueue_all(to_queue);
        }
        for (i, d) in done.iter().enumerate() {
            if !d {
                failed[i] = Some(Error::InvalidInput(
                    "the record's shard kept closing; retry".into(),
                ));
            }
        }
        Submitted {
            failed,
            groups: groups_out,
        }
    }

    /// Puts records and waits until they are acknowledged (blocking; not for async code).
    /// Results are in request order; a record's failure does not fail the others.
    pub fn put_records(&self, records: &[PutRecord<'_>]) -> Vec<Result<PutResult>> {
        let mut sub = self.submit(records);
        let groups = std::mem::take(&mut sub.groups);
        let acks = groups
            .into_iter()
            .map(|(route, idx, rx)| {
                (
                    route,
                    idx,
                    rx.blocking_recv().unwrap_or(Err(Error::ShuttingDown)),
                )
            })
            .collect();
        sub.finish(acks)
    }

    /// Puts records and waits until they are acknowledged. Results are in request order.
    pub async fn put_records_async(&self, records: &[PutRecord<'_>]) -> Vec<Result<PutResult>> {
        let mut sub = self.submit(records);
        let groups = std::mem::take(&mut sub.groups);
        let mut acks = Vec::with_capacity(groups.len());
        for (route, idx, rx) in groups {
            acks.push((route, idx, rx.await.unwrap_or(Err(Error::ShuttingDown))));
        }
        sub.finish(acks)
    }

    /// Splits open shard `id` at `new_start`: the parent closes, two children take its range.
    ///
    /// # Errors
    /// [`Error::ShardNotFound`], [`Error::ShardClosed`], [`Error::InvalidReshard`] for a bad
    /// key; I/O errors (the stream is then unchanged).
    pub fn split_shard(&self, id: ShardId, new_start: HashKey) -> Result<(ShardId, ShardId)> {
        let mut meta = self.meta.lock();
        let parent = self.open_shard_meta(&meta, id)?;
        let range = HashKeyRange {
            start: parent.hash_start,
            end: parent.hash_end,
        };
        let (low, high) = range.split_at(new_start).ok_or_else(|| {
            Error::InvalidReshard(format!(
                "new starting hash key {new_start} is not both greater than one plus the shard's starting hash key {} and less than its ending hash key {}",
                range.start, range.end
            ))
        })?;
        let epoch = (now_ms() / 1000).max(parent.seq_epoch_secs + 1);
        let a = ShardId(meta.next_shard_index);
        let b = ShardId(meta.next_shard_index + 1);
        let children = [(a, low, Some(id), None), (b, high, Some(id), None)];
        self.reshard(&mut meta, &[id], &children, epoch, 2)?;
        Ok((a, b))
    }

    /// Merges two open shards with adjacent ranges into one child.
    ///
    /// # Errors
    /// [`Error::ShardNotFound`], [`Error::ShardClosed`], [`Error::InvalidReshard`] if the
    /// ranges are not adjacent; I/O errors (the stream is then unchanged).
    pub fn merge_shards(&self, id: ShardId, adjacent: ShardId) -> Result<ShardId> {
        let mut meta = self.meta.lock();
        let a = self.open_shard_meta(&meta, id)?;
        let b = self.open_shard_meta(&meta, adjacent)?;
        let ra = HashKeyRange {
            start: a.hash_start,
            end: a.hash_end,
        };
        let rb = HashKeyRange {
            start: b.hash_start,
            end: b.hash_end,
        };
        let merged = HashKeyRange::merge(ra, rb)
            .or_else(|| HashKeyRange::merge(rb, ra))
            .ok_or_else(|| {
                Error::InvalidReshard(format!(
                    "shards {id} and {adjacent} are not an adjacent pair"
                ))
            })?;
        let epoch = (now_ms() / 1000).max(a.seq_epoch_secs.max(b.seq_epoch_secs) + 1);
        let child = ShardId(meta.next_shard_index);
        self.reshard(
            &mut meta,
            &[id, adjacent],
            &[(child, merged, Some(id), Some(adjacent))],
            epoch,
            1,
        )?;
        Ok(child)
    }

    fn open_shard_meta(&self, meta: &StreamMeta, id: ShardId) -> Result<ShardMeta> {
        let sm = meta
            .shards
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or_else(|| Error::ShardNotFound {
                stream: meta.name.clone(),
                shard: id.to_string(),
            })?;
        if !sm.is_open() {
            return Err(Error::ShardClosed {
                stream: meta.name.clone(),
                shard: id,
            });
        }
        Ok(sm)
    }

    /// Closes `parents`, creates `children`, persists, then switches routing.
    fn reshard(
        &self,
        meta: &mut StreamMeta,
        parents: &[ShardId],
        children: &[(ShardId, HashKeyRange, Option<ShardId>, Option<ShardId>)],
        epoch: u64,
        new_indexes: u32,
    ) -> Result<()> {
        let now = now_ms();
        let parent_shards: Vec<Arc<Shard>> =
            parents.iter().filter_map(|p| self.shard(*p)).collect();
        let mut next = meta.clone();
        let mut closed = Vec::new();
        let reopen =
            |closed: &[Arc<Shard>]| closed.iter().for_each(|s| s.reopen_after_failed_reshard());
        for s in &parent_shards {
            match s.close() {
                Ok(end) => {
                    closed.push(s.clone());
                    if let Some(pm) = next.shards.iter_mut().find(|m| m.id == s.id()) {
                        pm.closed_ms = Some(now);
                        pm.end_offset = Some(end.0);
                    }
                }
                Err(e) => {
                    reopen(&closed);
                    return Err(e);
                }
            }
        }
        let mut new_shards = Vec::new();
        for (id, range, parent, adjacent) in children {
            let log =
                match ShardLog::open(&shard_dir(&self.dir, *id), *id, 0, self.config.log.clone()) {
                    Ok(l) => l,
                    Err(e) => {
                        reopen(&closed);
                        return Err(e);
                    }
                };
            new_shards.push(Shard::new(
                *id,
                next.name.clone(),
                log,
                self.committer.clone(),
            ));
            next.shards.push(ShardMeta {
                id: *id,
                parent: *parent,
                adjacent_parent: *adjacent,
                hash_start: range.start,
                hash_end: range.end,
                seq_epoch_secs: epoch,
                created_ms: now,
                closed_ms: None,
                end_offset: None,
            });
        }
        next.next_shard_index += new_indexes;
        if let Err(e) = meta::write_stream(&self.dir, &next) {
            reopen(&closed);
            return Err(e);
        }
        *meta = next;
        {
            let mut shards = self.shards.write();
            for s in new_shards {
                shards.insert(s.id(), s);
            }
        }
        rebuild_routes_from(self, meta);
        for s in &closed {
            s.wake_readers();
        }
        Ok(())
    }

    /// Runs retention on every shard, and forgets closed shards whose records have all expired.
    ///
    /// # Errors
    /// I/O errors from deleting segments or writing metadata.
    pub fn enforce_retention(&self, now_ms: u64) -> Result<()> {
        let (hours, cap) = {
            let m = self.meta.lock();
            (m.retention_hours, m.shard_byte_cap)
        };
        let cutoff = now_ms.saturating_sub(u64::from(hours) * 3_600_000);
        let shards: Vec<Arc<Shard>> = self.shards.read().values().cloned().collect();
        for s in &shards {
            s.enforce_retention(cutoff, cap)?;
        }
        let expired: Vec<ShardId> = self
            .meta
            .lock()
            .shards
            .iter()
            .filter(|m| m.closed_ms.is_some_and(|c| c < cutoff))
            .map(|m| m.id)
            .collect();
        if !expired.is_empty() {
            self.update_meta(|m| {
                m.shards.retain(|s| !expired.contains(&s.id));
                Ok(())
            })?;
            let mut shards = self.shards.write();
            for id in &expired {
                shards.remove(id);
                let _ = std::fs::remove_dir_all(shard_dir(&self.dir, *id));
            }
        }
        Ok(())
    }

    /// Closes every shard to appends and waits for their pending writes (stream deletion).
    pub(crate) fn close_all(&self) {
        for s in self.shards.read().values() {
            let _ = s.close();
        }
    }

    /// All shards, open and closed, by id.
    pub fn shards(&self) -> Vec<Arc<Shard>> {
        self.shards.read().values().cloned().collect()
    }

    /// The sequence number of the record at `offset` of shard `id` that arrived at `arrival_ms`.
    pub fn sequence_number(
        &self,
        id: ShardId,
        offset: Offset,
        arrival_ms: u64,
    ) -> Option<SequenceNumber> {
        let epoch = self.shard_meta(id)?.seq_epoch_secs;
        Some(SequenceNumber::for_record(epoch, id, offset, arrival_ms))
    }
}

/// Rebuilds routing from metadata the caller already holds locked.
fn rebuild_routes_from(stream: &Stream, meta: &StreamMeta) {
    let shards = stream.shards.read();
    let mut routes: Vec<Route> = meta
        .shards
        .iter()
        .filter(|s| s.is_open())
        .filter_map(|s| {
            Some(Route {
                range: HashKeyRange {
                    start: s.hash_start,
                    end: s.hash_end,
                },
                epoch_secs: s.seq_epoch_secs,
                shard: shards.get(&s.id)?.clone(),
            })
        })
        .collect();
    routes.sort_by_key(|r| r.range.start);
    *stream.routes.write() = Arc::new(routes);
}

/// Records handed to shards, waiting for acknowledgement.
struct Submitted {
    failed: Vec<Option<Error>>,
    groups: Vec<(Route, Vec<usize>, AppendReceiver)>,
}

impl Submitted {
    fn finish(
        self,
        acks: Vec<(Route, Vec<usize>, Result<crate::shard::Appended>)>,
    ) -> Vec<Result<PutResult>> {
        let mut out: Vec<Option<Result<PutResult>>> =
            self.failed.into_iter().map(|f| f.map(Err)).collect();
        for (route, idx, ack) in acks {
            match ack {
                Ok(a) => {
                    for (k, &i) in idx.iter().enumerate() {
                        let offset = Offset(a.first_offset.0 + k as u64);
                        out[i] = Some(Ok(PutResult {
                            shard: route.shard.id(),
                            sequence_number: SequenceNumber::for_record(
                                route.epoch_secs,
                                route.shard.id(),
                                offset,
                                a.timestamp_ms,
                            ),
                            timestamp_ms: a.timestamp_ms,
                        }));
                    }
                }
                Err(e) => {
                    for &i in &idx {
                        out[i] = Some(Err(e.duplicate()));
                    }
                }
            }
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| Err(Error::InvalidInput("record was not submitted".into())))
            })
            .collect()
    }
}
