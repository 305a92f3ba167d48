//! The lease renewer: every `failover / 3 - 25 ms` it renews each held lease with the
//! conditional RenewLease, all at once.
//!
//! - A refused renewal (the counter moved: another worker took the lease) loses the lease;
//!   [`HeldLease::write`] signals the shard consumer.
//! - A renewal that fails otherwise (server unreachable, timeout) is retried next round; once
//!   a lease has gone unrenewed for `failover`, other workers consider it expired, so it is
//!   given up locally too ([`HeldLease::expire_if_stale`]).

use std::sync::Arc;

use crate::error::Error;
use crate::leases::LeaseTable;

use super::held::HeldLease;
use super::worker::{lock, Running, WorkerConfig};

pub(crate) async fn renew_loop(config: Arc<WorkerConfig>, table: LeaseTable, running: Running) {
    let mut tick = tokio::time::interval(config.renew_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let held: Vec<Arc<HeldLease>> = lock(&running).values().cloned().collect();
        let mut renewals = tokio::task::JoinSet::new();
        for lease in held {
            let (table, config) = (table.clone(), config.clone());
            renewals.spawn(async move {
                let me = &config.worker_id;
                match lease.write(|c| table.renew(lease.key(), me, c)).await {
                    Ok(_) => {}
                    Err(Error::LeaseLost { detail, .. }) => {
                        tracing::info!(lease = %lease.key(), %detail, "renewal refused");
                    }
                    Err(e) => {
                        tracing::warn!(lease = %lease.key(), error = %e, "renewal failed");
                        lease.expire_if_stale(config.failover).await;
                    }
                }
            });
        }
        while renewals.join_next().await.is_some() {}
    }
}
