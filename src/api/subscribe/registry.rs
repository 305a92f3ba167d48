//! Who is subscribed: one live subscription per (consumer ARN, shard).
//!
//! AWS rule (wire reference §6): the same ConsumerARN and ShardId again within 5 s of a
//! successful call while that subscription is live is ResourceInUseException; 5 s or later
//! the new call takes over and the old subscription ends. A subscription that has ended
//! (lifetime, client gone, shard end) frees its slot at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use shardline_engine::ShardId;
use tokio::sync::watch;

use crate::api::error::ApiError;

/// How long a subscription holds its (consumer, shard) against a new call (SubscribeToShard
/// API reference: "within 5 seconds of a successful call").
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(5);

type Key = (String, ShardId);

struct Entry {
    id: u64,
    started: Instant,
    /// Set to true to end the subscription (taken over).
    cancel: watch::Sender<bool>,
}

/// The live subscriptions, and the server-wide stop signal.
#[derive(Debug)]
pub struct Subscriptions {
    /// (last subscription id, live subscriptions); shared with the claims, which free
    /// their slot when dropped.
    live: Arc<Mutex<(u64, HashMap<Key, Entry>)>>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("id", &self.id).finish()
    }
}

impl Default for Subscriptions {
    fn default() -> Self {
        Subscriptions {
            live: Arc::new(Mutex::new((0, HashMap::new()))),
            shutdown: watch::channel(false).0,
        }
    }
}

/// A claimed slot: dropping it (when the subscription task ends) frees the slot unless a
/// newer subscription took it over.
pub struct Claim {
    live: Arc<Mutex<(u64, HashMap<Key, Entry>)>>,
    key: Key,
    id: u64,
    /// Fires when a newer call takes over.
    pub cancel: watch::Receiver<bool>,
    /// Fires when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

impl Subscriptions {
    /// Claims (consumer, shard) for a new subscription at `now`.
    ///
    /// # Errors
    /// ResourceInUse while a live subscription younger than [`TAKEOVER_AFTER`] holds it.
    pub fn claim(
        &self,
        consumer_arn: &str,
        shard: ShardId,
        now: Instant,
    ) -> Result<Claim, ApiError> {
        let key = (consumer_arn.to_string(), shard);
        let mut live = self.live.lock();
        if let Some(old) = live.1.get(&key) {
            if now.duration_since(old.started) < TAKEOVER_AFTER {
                return Err(ApiError::ResourceInUse(
                    "Another active subscription exists for this consumer".into(),
                ));
            }
            old.cancel.send_replace(true);
        }
        live.0 += 1;
        let id = live.0;
        let (cancel, rx) = watch::channel(false);
        live.1.insert(
            key.clone(),
            Entry {
                id,
                started: now,
                cancel,
            },
        );
        Ok(Claim {
            live: self.live.clone(),
            key,
            id,
            cancel: rx,
            shutdown: self.shutdown.subscribe(),
        })
    }

    /// Ends every subscription (server shutdown), so draining connections do not wait for
    /// their lifetimes.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Live subscriptions.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.live.lock().1.len()
    }

    /// Whether none is live.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut live = self.live.lock();
        if live.1.get(&self.key).is_some_and(|e| e.id == self.id) {
            live.1.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_call_within_five_seconds_is_refused_then_takes_over() {
        let r = Subscriptions::default();
        let t0 = Instant::now();
        let first = r.claim("arn", ShardId(0), t0).unwrap();
        let refused = r.claim("arn", ShardId(0), t0 + Duration::from_millis(4_999));
        assert!(matches!(refused, Err(ApiError::ResourceInUse(_))));
        // Another shard or consumer is independent.
        let other = r.claim("arn", ShardId(1), t0).unwrap();
        let second = r.claim("arn", ShardId(0), t0 + TAKEOVER_AFTER).unwrap();
        assert!(
            *first.cancel.borrow(),
            "the old subscription is told to end"
        );
        assert!(!*second.cancel.borrow());
        // The old one ending does not free the slot the new one holds.
        drop(first);
        assert_eq!(r.len(), 2);
        drop(second);
        drop(other);
        assert!(r.is_empty());
    }

    #[test]
    fn an_ended_subscription_frees_its_slot_at_once() {
        let r = Subscriptions::default();
        let t0 = Instant::now();
        drop(r.claim("arn", ShardId(0), t0).unwrap());
        assert!(r.claim("arn", ShardId(0), t0).is_ok());
    }
}
