//! Reconciling a lease table with its stream's shards (`SyncLeases`).
//!
//! Rules (see the "Lease API" section of `docs/api.md`):
//! - A new table gets a lease for every shard its initial position reads: all retained
//!   shards for TRIM_HORIZON, the open ones for LATEST, the ones open at the timestamp or
//!   created after it for AT_TIMESTAMP. Their checkpoint is the position's sentinel.
//! - Shard indexes only grow, so the table remembers the stream's next shard index as of the
//!   last sync ([`LeaseTable::next_shard_index`]). Later syncs lease exactly the shards at or
//!   above it (children of splits and merges since), at TRIM_HORIZON: shards an initial
//!   position left out, and leases deleted after their shard was finished, never come back.
//! - Every sync fills in the children of closed shards and drops the leases of shards that
//!   retention has removed from the stream.
//! - A sync that changes nothing writes nothing.

use crate::ids::ShardId;
use crate::meta::{ShardMeta, StreamMeta};

use super::table::{InitialPosition, Lease, LeaseTable, TRIM_HORIZON};

/// A new table for `application` bound to `meta`'s stream, with the leases its initial
/// position asks for. Returns the table and the keys of the leases created.
pub(crate) fn create(
    application: &str,
    meta: &StreamMeta,
    initial: InitialPosition,
) -> (LeaseTable, Vec<ShardId>) {
    let mut table = LeaseTable {
        application: application.to_string(),
        stream: meta.name.clone(),
        stream_incarnation: meta.dir_name.clone(),
        initial_position: initial,
        next_shard_index: meta.next_shard_index,
        leases: Default::default(),
    };
    let mut created = Vec::new();
    for s in &meta.shards {
        let wanted = match initial {
            InitialPosition::TrimHorizon => true,
            InitialPosition::Latest => s.is_open(),
            InitialPosition::AtTimestamp { timestamp_ms } => {
                s.closed_ms.is_none_or(|c| c >= timestamp_ms)
            }
        };
        if wanted {
            table
                .leases
                .insert(s.id, new_lease(s, initial.checkpoint()));
            created.push(s.id);
        }
    }
    fill_lineage(&mut table, meta);
    (table, created)
}

/// Brings `table` up to date with `meta` (the same stream incarnation). Returns the keys of
/// the leases created. `meta` may be older than the layout an earlier sync saw (two syncs
/// raced); that undoes nothing.
pub(crate) fn sync(table: &mut LeaseTable, meta: &StreamMeta) -> Vec<ShardId> {
    let mut created = Vec::new();
    for s in &meta.shards {
        if s.id.0 >= table.next_shard_index && !table.leases.contains_key(&s.id) {
            table.leases.insert(s.id, new_lease(s, TRIM_HORIZON));
            created.push(s.id);
        }
    }
    table.next_shard_index = table.next_shard_index.max(meta.next_shard_index);
    // Shards retention has dropped from the stream: nothing is left to read. A shard at or
    // above the snapshot's next index is newer than the snapshot (a concurrent sync saw a
    // later layout), not gone.
    table
        .leases
        .retain(|id, _| id.0 >= meta.next_shard_index || meta.shards.iter().any(|s| s.id == *id));
    fill_lineage(table, meta);
    created
}

fn new_lease(s: &ShardMeta, checkpoint: &str) -> Lease {
    Lease {
        shard: s.id,
        owner: None,
        counter: 0,
        checkpoint: checkpoint.to_string(),
        checkpoint_sub_sequence: 0,
        owner_switches_since_checkpoint: 0,
        parents: [s.parent, s.adjacent_parent]
            .into_iter()
            .flatten()
            .collect(),
        children: Vec::new(),
        hash_start: s.hash_start,
        hash_end: s.hash_end,
    }
}

/// Sets the children of every closed shard's lease.
fn fill_lineage(table: &mut LeaseTable, meta: &StreamMeta) {
    for s in meta.shards.iter().filter(|s| !s.is_open()) {
        let Some(lease) = table.leases.get_mut(&s.id) else {
            continue;
        };
        let mut children: Vec<ShardId> = meta
            .shards
            .iter()
            .filter(|c| c.parent == Some(s.id) || c.adjacent_parent == Some(s.id))
            .map(|c| c.id)
            .collect();
        children.sort();
        lease.children = children;
    }
}
