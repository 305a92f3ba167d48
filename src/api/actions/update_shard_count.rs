//! UpdateShardCount (UNIFORM_SCALING).
//!
//! The new layout is CreateStream's for the target count ([`uniform_ranges`]), except that
//! a target boundary within a small tolerance of an existing boundary keeps the existing
//! one. That makes doubling split every shard in half and halving merge adjacent pairs,
//! as AWS recommends, and reaches any other target with splits at the missing boundaries
//! followed by merges of the pieces between kept boundaries. Every step is an ordinary
//! SplitShard or MergeShards, so lineage (parents, closed shards, sequence-number epochs)
//! is the same as if a client had made the calls.
//!
//! Limits (Kinesis API reference, UpdateShardCount): the target is within [½×, 2×] the
//! open shard count and at most 10000; at most 10 calls per stream per rolling 24 hours
//! (`reshard_history_ms`); provisioned streams only.

use std::collections::BTreeMap;
use std::sync::Arc;

use shardline_engine::hashkey::{uniform_ranges, HashKey};
use shardline_engine::{ShardId, Stream};

use super::common::{begin_update, blocking, ensure_active, update_meta, StreamRef};
use super::reshard::check_reshardable;
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::{now_ms, Api};

/// Most open shards a stream may be scaled up to.
const MAX_SHARDS_PER_STREAM: i64 = 10_000;
/// UpdateShardCount calls per stream in any rolling 24 hours.
const MAX_CALLS_PER_DAY: usize = 10;
const DAY_MS: u64 = 24 * 3_600_000;
/// A target boundary this close to an existing one (as a fraction of the target shard
/// width) keeps the existing boundary: 1/1024 of a shard is below any measurable skew.
const SNAP_FRACTION: u128 = 1024;

/// One reshard, naming shards by the first hash key they own (ids are assigned as the
/// plan runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Split {
        start: u128,
        at: u128,
    },
    /// Merges the shard starting at `low` with the adjacent one above it, starting at `high`.
    Merge {
        low: u128,
        high: u128,
    },
}

/// The splits, then merges, that turn the open shards starting at `starts` (sorted, first
/// is 0, together tiling the key space) into `target` shards.
fn plan(starts: &[u128], target: u32) -> Vec<Step> {
    let ideal: Vec<u128> = uniform_ranges(target)
        .into_iter()
        .skip(1)
        .map(|r| r.start)
        .collect();
    let width = u128::MAX / u128::from(target.max(1));
    let tolerance = width / SNAP_FRACTION;
    let kept: Vec<u128> = ideal
        .iter()
        .map(|&b| {
            starts
                .iter()
                .copied()
                .filter(|&c| c != 0 && c.abs_diff(b) <= tolerance)
                .min_by_key(|c| c.abs_diff(b))
                .unwrap_or(b)
        })
        .collect();
    let mut steps = Vec::new();
    // Splits at the new boundaries, in key order; each lands in the piece holding it.
    let mut pieces: Vec<u128> = starts.to_vec();
    for &b in &kept {
        if pieces.binary_search(&b).is_ok() {
            continue;
        }
        let i = pieces.partition_point(|&s| s < b);
        steps.push(Step::Split {
            start: pieces[i - 1],
            at: b,
        });
        pieces.insert(i, b);
    }
    // Merges of the pieces between consecutive kept boundaries, left to right.
    let mut group_start: Option<u128> = None;
    for &p in &pieces {
        if p == 0 || kept.binary_search(&p).is_ok() {
            group_start = Some(p);
        } else if let Some(low) = group_start {
            steps.push(Step::Merge { low, high: p });
        }
    }
    steps
}

/// Runs `steps` with the stream's ordinary split and merge.
fn execute(stream: &Stream, steps: &[Step]) -> shardline_engine::Result<()> {
    let mut open: BTreeMap<u128, ShardId> = stream
        .meta()
        .shards
        .iter()
        .filter(|s| s.is_open())
        .map(|s| (s.hash_start, s.id))
        .collect();
    let lookup = |open: &BTreeMap<u128, ShardId>, start: u128| {
        open.get(&start).copied().ok_or_else(|| {
            shardline_engine::Error::InvalidReshard(format!(
                "no open shard starts at hash key {start}; the stream was resharded concurrently"
            ))
        })
    };
    for step in steps {
        match *step {
            Step::Split { start, at } => {
                let id = lookup(&open, start)?;
                let (low, high) = stream.split_shard(id, HashKey(at))?;
                open.insert(start, low);
                open.insert(at, high);
            }
            Step::Merge { low, high } => {
                let a = lookup(&open, low)?;
                let b = lookup(&open, high)?;
                let child = stream.merge_shards(a, b)?;
                open.remove(&high);
                open.insert(low, child);
            }
        }
    }
    Ok(())
}

pub async fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let target = m.int("TargetShardCount")?;
    let scaling = m.string("ScalingType")?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.required("targetShardCount", target.is_some());
    v.range("targetShardCount", target, Some(1), None);
    v.required("scalingType", scaling.is_some());
    v.one_of("scalingType", scaling, &["UNIFORM_SCALING"]);
    v.finish()?;
    let target = target.unwrap_or(1);
    let stream = r.resolve(api)?;
    check_reshardable(api, &stream)?;
    let meta = stream.meta();
    let starts: Vec<u128> = {
        let mut s: Vec<u128> = meta
            .shards
            .iter()
            .filter(|s| s.is_open())
            .map(|s| s.hash_start)
            .collect();
        s.sort_unstable();
        s
    };
    let current = starts.len() as i64;
    let counts = format!("Current open shard count: {current}, Target shard count: {target}");
    if target > MAX_SHARDS_PER_STREAM && target > current {
        return Err(ApiError::LimitExceeded(format!(
            "Target shard count or number of open shards cannot be greater than {MAX_SHARDS_PER_STREAM}. {counts}"
        )));
    }
    if target > current * 2 {
        return Err(ApiError::LimitExceeded(format!(
            "UpdateShardCount cannot scale up over double your current open shard count. {counts}"
        )));
    }
    if target * 2 < current {
        return Err(ApiError::LimitExceeded(format!(
            "UpdateShardCount cannot scale down below half your current open shard count. {counts}"
        )));
    }
    let reply = Value::map([
        ("StreamName", Value::str(&meta.name)),
        ("CurrentShardCount", Value::Int(i128::from(current))),
        ("TargetShardCount", Value::Int(i128::from(target))),
        ("StreamARN", Value::str(&meta.arn)),
    ]);
    if target == current {
        return Ok(reply);
    }
    if meta.mode == shardline_engine::meta::StreamMode::Provisioned {
        super::limits::check_shard_quota(api, i128::from(target - current))?;
    }
    // Count the call and enter UPDATING atomically with the ACTIVE check, so concurrent
    // calls cannot both pass it (with a transition time configured).
    let account = api.account().to_string();
    let transition = api.config.state_transition;
    update_meta(api, &stream, move |m| {
        ensure_active(&account, m)?;
        let now = now_ms();
        m.reshard_history_ms
            .retain(|&t| now.saturating_sub(t) < DAY_MS);
        if m.reshard_history_ms.len() >= MAX_CALLS_PER_DAY {
            return Err(ApiError::LimitExceeded(format!(
                "UpdateShardCount cannot be called more than {MAX_CALLS_PER_DAY} times in a rolling 24 hour period for stream {} under account {account}.",
                m.name
            )));
        }
        m.reshard_history_ms.push(now);
        begin_update(m, transition);
        Ok(())
    })
    .await?;
    let steps = plan(&starts, target as u32);
    let target_stream: Arc<Stream> = stream.clone();
    blocking(move || execute(&target_stream, &steps))
        .await?
        .map_err(|e| api.engine_error(e))?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `steps` to a layout given by its starts, checking each step is a valid
    /// split or merge of open shards, and returns the resulting starts.
    fn apply(starts: &[u128], steps: &[Step]) -> Vec<u128> {
        let mut s = starts.to_vec();
        for step in steps {
            match *step {
                Step::Split { start, at } => {
                    let i = s.binary_search(&start).expect("split of an open shard");
                    let end = s.get(i + 1).map_or(u128::MAX, |n| n - 1);
                    assert!(start + 1 < at && at < end, "split key inside the shard");
                    s.insert(i + 1, at);
                }
                Step::Merge { low, high } => {
                    let i = s.binary_search(&low).expect("merge of an open shard");
                    assert_eq!(s.get(i + 1), Some(&high), "merged shards are adjacent");
                    s.remove(i + 1);
                }
            }
        }
        s
    }

    fn starts(n: u32) -> Vec<u128> {
        uniform_ranges(n).into_iter().map(|r| r.start).collect()
    }

    #[test]
    fn doubling_splits_each_shard_once() {
        for n in [1, 2, 3, 5, 7, 100] {
            let steps = plan(&starts(n), 2 * n);
            assert_eq!(steps.len(), n as usize);
            assert!(steps.iter().all(|s| matches!(s, Step::Split { .. })));
            assert_eq!(apply(&starts(n), &steps).len(), 2 * n as usize);
        }
    }

    #[test]
    fn halving_merges_adjacent_pairs() {
        for n in [2, 4, 6, 10, 200] {
            let steps = plan(&starts(n), n / 2);
            assert_eq!(steps.len(), n as usize / 2);
            assert!(steps.iter().all(|s| matches!(s, Step::Merge { .. })));
            // The kept boundaries are the old ones, a few keys from CreateStream's.
            let got = apply(&starts(n), &steps);
            let tolerance = u128::from(n);
            assert_eq!(got.len(), n as usize / 2);
            for (g, w) in got.iter().zip(starts(n / 2)) {
                assert!(g.abs_diff(w) <= tolerance, "{n}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn other_targets_end_even_with_the_target_count() {
        for (from, to) in [
            (3, 4),
            (4, 3),
            (5, 8),
            (8, 5),
            (3, 5),
            (10, 19),
            (7, 4),
            (1, 2),
        ] {
            let got = apply(&starts(from), &plan(&starts(from), to));
            assert_eq!(got.len(), to as usize, "{from} -> {to}");
            // Every boundary is within the snap tolerance of CreateStream's layout.
            let tolerance = u128::MAX / u128::from(to) / SNAP_FRACTION;
            for (g, w) in got.iter().zip(starts(to)) {
                assert!(g.abs_diff(w) <= tolerance, "{from} -> {to}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn uneven_layout_is_evened_out() {
        // One shard split off-centre, then scaled to 3.
        let s = vec![0, 1u128 << 120];
        let got = apply(&s, &plan(&s, 3));
        assert_eq!(got, starts(3));
    }
}
