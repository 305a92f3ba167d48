//! Firehose delivery streams: buffering, compression and delivery of stream data (issue to come).
