//! One module per Kinesis operation (parse -> apply -> render), dispatched through
//! [`Operation`].

mod account_settings;
pub mod common;
pub mod consumers;
mod create_stream;
mod delete_stream;
mod describe_stream;
mod encryption;
mod get_records;
pub(crate) mod get_shard_iterator;
pub(crate) mod limits;
mod list_shards;
mod list_streams;
mod monitoring;
mod put_records;
pub mod put_records_fast;
mod reshard;
mod resource_policy;
mod retention;
mod stream_settings;
mod tags;
mod update_shard_count;

use super::error::ApiError;
use super::input::Members;
use super::value::Value;
use super::Api;

macro_rules! operations {
    ($($name:ident),* $(,)?) => {
        /// Every operation in the Kinesis Data Streams API (2013-12-02).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Operation { $($name),* }

        impl Operation {
            /// Parses the part of `X-Amz-Target` after `Kinesis_20131202.`.
            pub fn from_name(s: &str) -> Option<Operation> {
                match s {
                    $(stringify!($name) => Some(Operation::$name),)*
                    _ => None,
                }
            }
        }
    };
}

operations!(
    AddTagsToStream,
    CreateStream,
    DecreaseStreamRetentionPeriod,
    DeleteResourcePolicy,
    DeleteStream,
    DeregisterStreamConsumer,
    DescribeAccountSettings,
    DescribeLimits,
    DescribeStream,
    DescribeStreamConsumer,
    DescribeStreamSummary,
    DisableEnhancedMonitoring,
    EnableEnhancedMonitoring,
    GetRecords,
    GetResourcePolicy,
    GetShardIterator,
    IncreaseStreamRetentionPeriod,
    ListShards,
    ListStreamConsumers,
    ListStreams,
    ListTagsForResource,
    ListTagsForStream,
    MergeShards,
    PutRecord,
    PutRecords,
    PutResourcePolicy,
    RegisterStreamConsumer,
    RemoveTagsFromStream,
    SplitShard,
    StartStreamEncryption,
    StopStreamEncryption,
    SubscribeToShard,
    TagResource,
    UntagResource,
    UpdateAccountSettings,
    UpdateMaxRecordSize,
    UpdateShardCount,
    UpdateStreamMode,
    UpdateStreamWarmThroughput,
);

/// Runs `op`, for every operation answered with one body (all but SubscribeToShard).
pub async fn dispatch(api: &Api, op: Operation, m: Members<'_>) -> Result<Value, ApiError> {
    match op {
        Operation::CreateStream => create_stream::handle(api, m).await,
        Operation::DeleteStream => delete_stream::handle(api, m).await,
        Operation::DescribeStream => describe_stream::describe(api, m),
        Operation::DescribeStreamSummary => describe_stream::summary(api, m),
        Operation::ListStreams => list_streams::handle(api, m),
        Operation::ListShards => list_shards::handle(api, m),
        Operation::PutRecord => put_records::put_record(api, m).await,
        Operation::PutRecords => put_records::put_records(api, m).await,
        Operation::GetShardIterator => get_shard_iterator::handle(api, m).await,
        Operation::GetRecords => get_records::handle(api, m).await,
        Operation::IncreaseStreamRetentionPeriod => retention::increase(api, m).await,
        Operation::DecreaseStreamRetentionPeriod => retention::decrease(api, m).await,
        Operation::SplitShard => reshard::split(api, m).await,
        Operation::MergeShards => reshard::merge(api, m).await,
        Operation::AddTagsToStream => tags::add_tags_to_stream(api, m).await,
        Operation::RemoveTagsFromStream => tags::remove_tags_from_stream(api, m).await,
        Operation::ListTagsForStream => tags::list_tags_for_stream(api, m),
        Operation::TagResource => tags::tag_resource(api, m).await,
        Operation::UntagResource => tags::untag_resource(api, m).await,
        Operation::ListTagsForResource => tags::list_tags_for_resource(api, m),
        Operation::PutResourcePolicy => resource_policy::put(api, m).await,
        Operation::GetResourcePolicy => resource_policy::get(api, m),
        Operation::DeleteResourcePolicy => resource_policy::delete(api, m).await,
        Operation::StartStreamEncryption => encryption::start(api, m).await,
        Operation::StopStreamEncryption => encryption::stop(api, m).await,
        Operation::EnableEnhancedMonitoring => monitoring::enable(api, m).await,
        Operation::DisableEnhancedMonitoring => monitoring::disable(api, m).await,
        Operation::DescribeLimits => limits::handle(api, m),
        Operation::DescribeAccountSettings => account_settings::describe(api, m),
        Operation::UpdateAccountSettings => account_settings::update(api, m).await,
        Operation::UpdateShardCount => update_shard_count::handle(api, m).await,
        Operation::UpdateStreamMode => stream_settings::update_stream_mode(api, m).await,
        Operation::UpdateMaxRecordSize => stream_settings::update_max_record_size(api, m).await,
        Operation::UpdateStreamWarmThroughput => {
            stream_settings::update_stream_warm_throughput(api, m).await
        }
        Operation::RegisterStreamConsumer => consumers::register(api, m).await,
        Operation::DescribeStreamConsumer => consumers::describe(api, m),
        Operation::ListStreamConsumers => consumers::list(api, m),
        Operation::DeregisterStreamConsumer => consumers::deregister(api, m).await,
        // Streams its answer: the server routes it to `subscribe` before dispatching.
        Operation::SubscribeToShard => Err(ApiError::UnknownOperation),
    }
}
