//! Continuous and ad-hoc SQL-ish queries over streams (issue to come).
//!
//! Stream records may be KPL aggregates (issue 5): queries see their user records, as
//! `shardline_client::kpl::decode::deaggregate` yields them, the way the consumer library
//! and `shardline tail` do.
