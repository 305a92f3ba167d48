//! Which leases to take: KCL's lease-count balancing (`DynamoDBLeaseTaker`, reference
//! section 7), as pure functions of what the worker has observed.
//!
//! # Rules
//!
//! - A lease is expired when its counter has not changed for the failover time on this
//!   worker's clock ([`ExpiryClock`]). A lease first seen unowned is available at once; one
//!   first seen owned must first stay unchanged for the failover time.
//! - Finished leases (checkpoint `SHARD_END`) are neither taken nor counted.
//! - Workers are this one plus every owner of an unexpired lease; the target is
//!   ⌈leases / workers⌉ (at least 1, at most `max_leases`).
//! - Below target, take available leases (leases this worker id owns but does not run,
//!   from an earlier life, first; then unowned ones and those expired for more than
//!   [`VERY_OLD_MULTIPLIER`] times the failover time (KCL's `veryOldLeaseDurationNanosMultiplier`);
//!   then the other expired ones) up to the target. With none
//!   available, steal one lease from the most loaded worker if it holds more than the
//!   target, or exactly the target while this worker needs more than one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;

use crate::leases::Lease;

/// A lease unchanged for this many failover times is taken before recently expired ones
/// (KCL's `veryOldLeaseDurationNanosMultiplier` default): its worker is long gone, while a
/// lease that just expired may belong to a worker that is only slow.
pub const VERY_OLD_MULTIPLIER: u32 = 3;

/// When each lease's counter last changed, on this worker's clock.
#[derive(Debug, Default)]
pub struct ExpiryClock {
    seen: HashMap<String, (u64, Option<Instant>)>,
}

impl ExpiryClock {
    /// Records a listing of the table taken at `now`.
    pub fn observe(&mut self, leases: &[Lease], now: Instant) {
        let mut seen = HashMap::with_capacity(leases.len());
        for lease in leases {
            let changed = match self.seen.get(&lease.lease_key) {
                Some((counter, at)) if *counter == lease.lease_counter => *at,
                // First seen unowned: available now. Otherwise the counter just changed.
                None if lease.lease_owner.is_none() => None,
                _ => Some(now),
            };
            seen.insert(lease.lease_key.clone(), (lease.lease_counter, changed));
        }
        self.seen = seen;
    }

    /// Whether the lease has not changed for `failover` (or was first seen unowned).
    pub fn is_expired(&self, lease_key: &str, now: Instant, failover: Duration) -> bool {
        match self.seen.get(lease_key) {
            Some((_, None)) => true,
            Some((_, Some(at))) => now.saturating_duration_since(*at) > failover,
            None => false,
        }
    }

    /// Whether the lease has not changed for [`VERY_OLD_MULTIPLIER`] times `failover` (or
    /// was first seen unowned).
    pub fn is_very_old(&self, lease_key: &str, now: Instant, failover: Duration) -> bool {
        self.is_expired(lease_key, now, failover.saturating_mul(VERY_OLD_MULTIPLIER))
    }
}

/// One lease as the taker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub lease_key: String,
    pub owner: Option<String>,
    pub expired: bool,
    /// Expired for more than [`VERY_OLD_MULTIPLIER`] failover times: taken first.
    pub very_old: bool,
    /// This worker runs it now.
    pub held: bool,
}

/// Where a lease is, for balancing.
enum Standing<'a> {
    /// Ours and running.
    Held,
    /// Free for the taking, with a preference (lower first).
    Available(u8),
    /// Running on another live worker.
    Other(&'a str),
}

fn standing<'a>(c: &'a Candidate, me: &str) -> Standing<'a> {
    match c.owner.as_deref() {
        Some(o) if o == me && c.held => Standing::Held,
        Some(o) if o == me => Standing::Available(0),
        None => Standing::Available(1),
        Some(_) if c.expired && c.very_old => Standing::Available(1),
        Some(_) if c.expired => Standing::Available(2),
        Some(o) => Standing::Other(o),
    }
}

/// The target lease count for one worker.
pub fn target(leases: usize, workers: usize, max_leases: usize) -> usize {
    let workers = workers.max(1);
    leases.div_ceil(workers).clamp(1, max_leases.max(1))
}

/// The leases `me` should try to take now (candidates must exclude finished leases).
pub fn leases_to_take(candidates: &[Candidate], me: &str, max_leases: usize) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    counts.insert(me, 0);
    let mut available: Vec<(u8, &Candidate)> = Vec::new();
    for c in candidates {
        match standing(c, me) {
            Standing::Held => *counts.entry(me).or_default() += 1,
            Standing::Other(owner) => *counts.entry(owner).or_default() += 1,
            Standing::Available(rank) => available.push((rank, c)),
        }
    }
    let target = target(candidates.len(), counts.len(), max_leases);
    let mine = counts[me];
    if mine >= target {
        return Vec::new();
    }
    let needed = target - mine;
    let mut rng = rand::thread_rng();
    if !available.is_empty() {
        available.shuffle(&mut rng);
        available.sort_by_key(|(rank, _)| *rank);
        return available
            .into_iter()
            .take(needed)
            .map(|(_, c)| c.lease_key.clone())
            .collect();
    }
    // Steal: the most loaded other worker (ties broken by name, for determinism).
    let Some((victim, load)) = counts
        .iter()
        .filter(|(w, _)| **w != me)
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(w, n)| (*w, *n))
    else {
        return Vec::new();
    };
    let steal = load > target || (load == target && needed > 1);
    if !steal {
        return Vec::new();
    }
    let theirs: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.owner.as_deref() == Some(victim))
        .collect();
    theirs
        .choose(&mut rng)
        .map(|c| vec![c.lease_key.clone()])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: &str, owner: Option<&str>, expired: bool, held: bool) -> Candidate {
        Candidate {
            lease_key: key.into(),
            owner: owner.map(str::to_string),
            expired,
            very_old: false,
            held,
        }
    }

    #[test]
    fn very_old_leases_are_taken_before_recently_expired_ones() {
        let mut leases = vec![c("held", Some("w1"), false, true)];
        for k in ["r1", "r2", "r3"] {
            leases.push(c(k, Some("w2"), true, false));
        }
        let mut old = c("old", Some("w3"), true, false);
        old.very_old = true;
        leases.push(old);
        // 5 leases, one live worker (w1): target 5, needs 4; but with max_leases 2 it needs
        // one, and the very old lease must be that one whatever the shuffle.
        for _ in 0..20 {
            assert_eq!(leases_to_take(&leases, "w1", 2), vec!["old"]);
        }
    }

    #[test]
    fn target_is_the_ceiling_share_capped_by_max_leases() {
        assert_eq!(target(8, 3, usize::MAX), 3);
        assert_eq!(target(9, 3, usize::MAX), 3);
        assert_eq!(target(2, 5, usize::MAX), 1);
        assert_eq!(target(8, 1, 5), 5);
        assert_eq!(target(0, 1, usize::MAX), 1);
    }

    #[test]
    fn a_lone_worker_takes_every_unowned_lease() {
        let leases: Vec<_> = (0..8)
            .map(|i| c(&format!("s{i}"), None, false, false))
            .collect();
        let mut got = leases_to_take(&leases, "w1", usize::MAX);
        got.sort();
        assert_eq!(got.len(), 8);
        assert_eq!(got[0], "s0");
    }

    #[test]
    fn max_leases_caps_the_take() {
        let leases: Vec<_> = (0..8)
            .map(|i| c(&format!("s{i}"), None, false, false))
            .collect();
        assert_eq!(leases_to_take(&leases, "w1", 3).len(), 3);
    }

    #[test]
    fn takes_expired_leases_up_to_the_target_before_stealing() {
        // 8 leases, 3 live workers (w1 holds 2, w2 holds 3, the dead w3's 3 expired).
        let mut leases = vec![
            c("a", Some("w1"), false, true),
            c("b", Some("w1"), false, true),
            c("c", Some("w2"), false, false),
            c("d", Some("w2"), false, false),
            c("e", Some("w2"), false, false),
        ];
        for k in ["f", "g", "h"] {
            leases.push(c(k, Some("w3"), true, false));
        }
        // Workers: w1, w2 (w3's leases are expired, so w3 is not counted): target 4.
        let got = leases_to_take(&leases, "w1", usize::MAX);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|k| ["f", "g", "h"].contains(&k.as_str())));
    }

    #[test]
    fn own_leases_from_an_earlier_life_come_first() {
        let leases = vec![
            c("a", None, false, false),
            c("b", Some("w1"), false, false),
            c("c", Some("w2"), true, false),
            c("d", Some("w2"), false, false),
        ];
        // Workers w1, w2: target 2. w1 runs none: "b" first, then the unowned "a".
        assert_eq!(leases_to_take(&leases, "w1", usize::MAX), vec!["b", "a"]);
    }

    #[test]
    fn steals_one_lease_from_the_most_loaded_worker() {
        let mut leases: Vec<_> = (0..6)
            .map(|i| c(&format!("x{i}"), Some("w2"), false, false))
            .collect();
        leases.push(c("y0", Some("w3"), false, false));
        leases.push(c("y1", Some("w3"), false, false));
        // 8 leases, 3 workers: target 3; w2 holds 6 > 3: steal exactly one of its leases.
        let got = leases_to_take(&leases, "w1", usize::MAX);
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with('x'));
    }

    #[test]
    fn no_steal_from_a_worker_at_target_when_one_is_needed() {
        let leases = vec![
            c("a", Some("w2"), false, false),
            c("b", Some("w2"), false, false),
            c("c", Some("w1"), false, true),
        ];
        // 3 leases, 2 workers: target 2; w1 needs 1, w2 holds exactly 2: balanced enough.
        assert!(leases_to_take(&leases, "w1", usize::MAX).is_empty());
        // A newcomer w3 needs 1 (target ⌈3/3⌉ = 1), w2 holds 2 > 1: steal.
        assert_eq!(leases_to_take(&leases, "w3", usize::MAX).len(), 1);
    }

    #[test]
    fn steals_at_target_when_two_are_needed() {
        let leases: Vec<_> = (0..4)
            .map(|i| c(&format!("s{i}"), Some("w2"), false, false))
            .chain((4..8).map(|i| c(&format!("s{i}"), Some("w3"), false, false)))
            .collect();
        // 8 leases, 3 workers: target 3; w2 and w3 hold 4 > 3: one steal per round.
        assert_eq!(leases_to_take(&leases, "w1", usize::MAX).len(), 1);
        let at_target: Vec<_> = (0..3)
            .map(|i| c(&format!("s{i}"), Some("w2"), false, false))
            .chain((3..6).map(|i| c(&format!("s{i}"), Some("w3"), false, false)))
            .collect();
        // 6 leases, 3 workers: target 2 < 3 held: steal.
        assert_eq!(leases_to_take(&at_target, "w1", usize::MAX).len(), 1);
        let exact: Vec<_> = (0..2)
            .map(|i| c(&format!("s{i}"), Some("w2"), false, false))
            .collect();
        // 2 leases, 2 workers: target 1; w2 holds 2 > 1: steal one.
        assert_eq!(leases_to_take(&exact, "w1", usize::MAX).len(), 1);
    }

    #[test]
    fn expiry_needs_an_unchanged_counter_for_the_failover_time() {
        let failover = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut lease = Lease {
            lease_key: "s".into(),
            stream_name: "st".into(),
            lease_owner: Some("w2".into()),
            lease_counter: 1,
            checkpoint: "TRIM_HORIZON".into(),
            checkpoint_sub_sequence_number: 0,
            owner_switches_since_checkpoint: 0,
            parent_shard_ids: vec![],
            child_shard_ids: vec![],
            hash_key_range: None,
        };
        let mut clock = ExpiryClock::default();
        clock.observe(std::slice::from_ref(&lease), t0);
        assert!(!clock.is_expired("s", t0 + Duration::from_secs(5), failover));
        assert!(clock.is_expired("s", t0 + Duration::from_secs(11), failover));
        // A renewal restarts the clock.
        lease.lease_counter = 2;
        clock.observe(std::slice::from_ref(&lease), t0 + Duration::from_secs(11));
        assert!(!clock.is_expired("s", t0 + Duration::from_secs(20), failover));
        assert!(clock.is_expired("s", t0 + Duration::from_secs(22), failover));
        // First seen unowned: available at once.
        let mut free = lease.clone();
        free.lease_key = "u".into();
        free.lease_owner = None;
        let mut clock = ExpiryClock::default();
        clock.observe(&[free], t0);
        assert!(clock.is_expired("u", t0, failover));
        assert!(clock.is_very_old("u", t0, failover));
        // Very old: three failover times without a change.
        let mut clock = ExpiryClock::default();
        clock.observe(std::slice::from_ref(&lease), t0);
        assert!(clock.is_expired("s", t0 + Duration::from_secs(11), failover));
        assert!(!clock.is_very_old("s", t0 + Duration::from_secs(29), failover));
        assert!(clock.is_very_old("s", t0 + Duration::from_secs(31), failover));
    }
}
