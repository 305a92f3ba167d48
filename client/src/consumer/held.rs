//! A lease this worker holds, shared by its renewer, its shard consumer and the
//! checkpointer.
//!
//! # Invariants
//!
//! - Every conditional write of the lease (renew, checkpoint, evict) runs under one lock and
//!   names the counter the previous write returned, so the worker never races itself.
//! - Once a write is refused (`ConditionalCheckFailedException`) or renewals have failed for
//!   longer than the failover time, the lease is lost for good: later writes are not even
//!   sent, and the shard consumer is told through [`Signal::Lost`].

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Mutex};

use crate::error::Error;
use crate::leases::Lease;

/// What the worker asks of a shard consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Run,
    /// Another worker has the lease: stop without checkpointing.
    Lost,
    /// The worker is shutting down: let the processor checkpoint, then stop.
    Shutdown,
}

struct State {
    counter: u64,
    last_renewed: Instant,
    lost: bool,
}

pub(crate) struct HeldLease {
    key: String,
    state: Mutex<State>,
    signal: watch::Sender<Signal>,
}

impl HeldLease {
    /// A lease just taken, as the take returned it.
    pub(crate) fn new(lease: &Lease) -> (HeldLease, watch::Receiver<Signal>) {
        let (signal, rx) = watch::channel(Signal::Run);
        let held = HeldLease {
            key: lease.lease_key.clone(),
            state: Mutex::new(State {
                counter: lease.lease_counter,
                last_renewed: Instant::now(),
                lost: false,
            }),
            signal,
        };
        (held, rx)
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The counter of the last successful write, or `None` once lost.
    pub(crate) async fn counter(&self) -> Option<u64> {
        let state = self.state.lock().await;
        (!state.lost).then_some(state.counter)
    }

    /// Runs one conditional write with the current counter. Success advances the counter
    /// (and counts as a renewal); a refused condition loses the lease.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] if the lease was lost before or by this write; the write's own
    /// error otherwise.
    pub(crate) async fn write<F, Fut>(&self, op: F) -> Result<Lease, Error>
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = Result<Lease, Error>>,
    {
        let mut state = self.state.lock().await;
        if state.lost {
            return Err(self.lost_error("lost earlier"));
        }
        match op(state.counter).await {
            Ok(lease) => {
                state.counter = lease.lease_counter;
                state.last_renewed = Instant::now();
                Ok(lease)
            }
            Err(e) if e.is_condition_failed() => {
                state.lost = true;
                self.signal.send_replace(Signal::Lost);
                Err(self.lost_error(&e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Marks the lease lost if it has not been renewed for `failover` (the renewals failed:
    /// other workers consider it expired by now). Returns whether it is lost.
    pub(crate) async fn expire_if_stale(&self, failover: Duration) -> bool {
        let mut state = self.state.lock().await;
        if !state.lost && state.last_renewed.elapsed() > failover {
            state.lost = true;
            self.signal.send_replace(Signal::Lost);
        }
        state.lost
    }

    /// Asks the shard consumer to shut down (unless the lease is already lost).
    pub(crate) fn request_shutdown(&self) {
        self.signal.send_if_modified(|s| {
            let run = *s == Signal::Run;
            if run {
                *s = Signal::Shutdown;
            }
            run
        });
    }

    fn lost_error(&self, detail: &str) -> Error {
        Error::LeaseLost {
            lease_key: self.key.clone(),
            detail: detail.to_string(),
        }
    }
}
