//! Checkpointing from inside a record processor.
//!
//! # Rules (KCL's `ShardRecordProcessorCheckpointer`)
//!
//! - A checkpoint is at the last record delivered ([`Checkpointer::checkpoint`]) or at a
//!   given sequence and sub-sequence number ([`Checkpointer::checkpoint_at`]).
//! - It may not go backwards (before the lease's checkpoint) nor beyond the last record
//!   delivered to the processor: both are refused without a call.
//! - In `shard_ended`, [`Checkpointer::checkpoint`] writes `SHARD_END`, which is what lets
//!   the shard's children be processed.
//! - The write is the lease API's conditional `Checkpoint`: a refusal means another worker
//!   has the lease, and the processor gets `lease_lost` next.
//! - After `lease_lost` (or once the shard consumer stopped) every checkpoint fails with
//!   [`Error::CheckpointerClosed`].

use std::sync::Arc;

use crate::error::Error;
use crate::leases::{LeaseTable, SHARD_END};

use super::held::HeldLease;
use super::record::{validate_sequence_number, ExtendedSequenceNumber};

/// Where the shard consumer is, which decides what a checkpoint may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Records are being processed.
    Processing,
    /// The shard has been read to its end: `checkpoint()` means `SHARD_END`.
    ShardEnded,
    /// No checkpoint may be written (lease lost, or the consumer has stopped).
    Closed,
}

/// Writes checkpoints for one lease; handed to the processor's callbacks.
pub struct Checkpointer {
    lease: Arc<HeldLease>,
    table: LeaseTable,
    owner: String,
    /// The lease's checkpoint: the floor of every new one.
    current: ExtendedSequenceNumber,
    /// The last record delivered: the ceiling of every new one.
    last_delivered: Option<ExtendedSequenceNumber>,
    phase: Phase,
}

impl Checkpointer {
    pub(crate) fn new(
        lease: Arc<HeldLease>,
        table: LeaseTable,
        owner: &str,
        current: ExtendedSequenceNumber,
    ) -> Checkpointer {
        Checkpointer {
            lease,
            table,
            owner: owner.to_string(),
            current,
            last_delivered: None,
            phase: Phase::Processing,
        }
    }

    /// The lease (shard id) this checkpointer writes.
    pub fn lease_key(&self) -> &str {
        self.lease.key()
    }

    /// The lease's checkpoint as last written or read.
    pub fn current(&self) -> &ExtendedSequenceNumber {
        &self.current
    }

    /// The last record delivered to the processor, if any.
    pub fn last_delivered(&self) -> Option<&ExtendedSequenceNumber> {
        self.last_delivered.as_ref()
    }

    pub(crate) fn set_last_delivered(&mut self, position: ExtendedSequenceNumber) {
        self.last_delivered = Some(position);
    }

    pub(crate) fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    /// Checkpoints at the last delivered record; in `shard_ended`, at `SHARD_END`. With
    /// nothing delivered yet there is nothing to record and the checkpoint is unchanged.
    ///
    /// # Errors
    /// [`Error::CheckpointerClosed`], [`Error::LeaseLost`] (refused: another worker has the
    /// lease), or a transport failure (the checkpoint may be retried).
    pub async fn checkpoint(&mut self) -> Result<(), Error> {
        self.check_open()?;
        if self.phase == Phase::ShardEnded {
            return self.write(ExtendedSequenceNumber::shard_end()).await;
        }
        match self.last_delivered.clone() {
            Some(last) if last > self.current => self.write(last).await,
            _ => Ok(()),
        }
    }

    /// Checkpoints at `sequence_number`/`sub_sequence_number`, which must lie between the
    /// lease's checkpoint and the last delivered record (both included).
    ///
    /// # Errors
    /// [`Error::InvalidSequenceNumber`], [`Error::CheckpointBackwards`],
    /// [`Error::CheckpointBeyondDelivered`], and those of [`Checkpointer::checkpoint`].
    pub async fn checkpoint_at(
        &mut self,
        sequence_number: &str,
        sub_sequence_number: u64,
    ) -> Result<(), Error> {
        self.check_open()?;
        if self.phase == Phase::ShardEnded && sequence_number == SHARD_END {
            return self.write(ExtendedSequenceNumber::shard_end()).await;
        }
        let requested = self.check_range(sequence_number, sub_sequence_number)?;
        self.write(requested).await
    }

    /// The checks of [`Checkpointer::checkpoint_at`] that need no server.
    fn check_range(
        &self,
        sequence_number: &str,
        sub_sequence_number: u64,
    ) -> Result<ExtendedSequenceNumber, Error> {
        validate_sequence_number(sequence_number)?;
        let requested = ExtendedSequenceNumber::new(sequence_number, sub_sequence_number);
        if requested < self.current {
            return Err(Error::CheckpointBackwards {
                lease_key: self.lease.key().to_string(),
                requested: requested.to_string(),
                current: self.current.to_string(),
            });
        }
        match &self.last_delivered {
            Some(last) if requested <= *last => Ok(requested),
            last => Err(Error::CheckpointBeyondDelivered {
                lease_key: self.lease.key().to_string(),
                requested: requested.to_string(),
                last_delivered: last
                    .as_ref()
                    .map_or_else(|| "(none)".to_string(), ToString::to_string),
            }),
        }
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.phase == Phase::Closed {
            return Err(Error::CheckpointerClosed {
                lease_key: self.lease.key().to_string(),
                detail: "the lease was lost or its processing has stopped".into(),
            });
        }
        Ok(())
    }

    async fn write(&mut self, at: ExtendedSequenceNumber) -> Result<(), Error> {
        let (table, owner, key) = (&self.table, &self.owner, self.lease.key());
        let result = self
            .lease
            .write(|counter| {
                table.checkpoint(
                    key,
                    owner,
                    counter,
                    &at.sequence_number,
                    at.sub_sequence_number,
                )
            })
            .await;
        match result {
            Ok(_) => {
                self.current = at;
                Ok(())
            }
            Err(e) => {
                if matches!(e, Error::LeaseLost { .. }) {
                    self.phase = Phase::Closed;
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Client;
    use crate::leases::{Lease, TRIM_HORIZON};

    /// A checkpointer whose endpoint is never reached: these tests stop before any write.
    fn checkpointer(current: &str) -> Checkpointer {
        let lease = Lease {
            lease_key: "shardId-000000000000".into(),
            stream_name: "s".into(),
            lease_owner: Some("w".into()),
            lease_counter: 1,
            checkpoint: current.into(),
            checkpoint_sub_sequence_number: 0,
            owner_switches_since_checkpoint: 0,
            parent_shard_ids: vec![],
            child_shard_ids: vec![],
            hash_key_range: None,
        };
        let (held, _rx) = HeldLease::new(&lease);
        let table = LeaseTable::new(Client::new(Some("http://127.0.0.1:9")).unwrap(), "app");
        Checkpointer::new(
            Arc::new(held),
            table,
            "w",
            ExtendedSequenceNumber::new(current, 0),
        )
    }

    #[test]
    fn refuses_going_backwards() {
        let mut c = checkpointer("500");
        c.set_last_delivered(ExtendedSequenceNumber::new("900", 0));
        let e = c.check_range("499", 0).unwrap_err();
        assert!(matches!(e, Error::CheckpointBackwards { .. }), "{e}");
        assert_eq!(
            c.check_range("500", 0).unwrap(),
            ExtendedSequenceNumber::new("500", 0)
        );
    }

    #[test]
    fn refuses_beyond_the_last_delivered_record() {
        let mut c = checkpointer(TRIM_HORIZON);
        let e = c.check_range("1", 0).unwrap_err();
        assert!(matches!(e, Error::CheckpointBeyondDelivered { .. }), "{e}");
        c.set_last_delivered(ExtendedSequenceNumber::new("900", 2));
        assert!(c.check_range("900", 2).is_ok());
        assert!(matches!(
            c.check_range("900", 3).unwrap_err(),
            Error::CheckpointBeyondDelivered { .. }
        ));
        assert!(matches!(
            c.check_range("1000", 0).unwrap_err(),
            Error::CheckpointBeyondDelivered { .. }
        ));
        assert!(c.check_range("12", 0).is_ok());
    }

    #[test]
    fn refuses_sentinels_and_garbage_as_sequence_numbers() {
        let mut c = checkpointer(TRIM_HORIZON);
        c.set_last_delivered(ExtendedSequenceNumber::new("900", 0));
        for bad in ["LATEST", "SHARD_END", "", "12x"] {
            assert!(matches!(
                c.check_range(bad, 0).unwrap_err(),
                Error::InvalidSequenceNumber { .. }
            ));
        }
    }

    #[tokio::test]
    async fn nothing_delivered_means_nothing_to_checkpoint() {
        let mut c = checkpointer(TRIM_HORIZON);
        c.checkpoint().await.unwrap();
        assert_eq!(c.current().sequence_number, TRIM_HORIZON);
    }

    #[tokio::test]
    async fn closed_checkpointer_refuses_every_checkpoint() {
        let mut c = checkpointer(TRIM_HORIZON);
        c.set_last_delivered(ExtendedSequenceNumber::new("900", 0));
        c.set_phase(Phase::Closed);
        assert!(matches!(
            c.checkpoint().await.unwrap_err(),
            Error::CheckpointerClosed { .. }
        ));
        assert!(matches!(
            c.checkpoint_at("900", 0).await.unwrap_err(),
            Error::CheckpointerClosed { .. }
        ));
    }
}
