//! Firehose delivery streams: buffering, compression and delivery of stream data (issue to come).
//!
//! Stream records may be KPL aggregates (issue 5): a delivery stream reading a Kinesis
//! stream delivers their user records, as `shardline_client::kpl::decode::deaggregate`
//! yields them, the way the consumer library and `shardline tail` do.
