//! One module per Kinesis operation (parse -> apply -> render), dispatched through
//! [`Operation`].

pub mod common;
mod create_stream;
mod delete_stream;
mod describe_stream;
mod get_records;
mod get_shard_iterator;
mod list_shards;
mod list_streams;
mod put_records;
mod reshard;
mod retention;

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

/// Runs `op`. Operations not implemented yet answer UnknownOperationException, as AWS does
/// for a call it does not support.
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
        Operation::AddTagsToStream
        | Operation::DeleteResourcePolicy
        | Operation::DeregisterStreamConsumer
        | Operation::DescribeAccountSettings
        | Operation::DescribeLimits
        | Operation::DescribeStreamConsumer
        | Operation::DisableEnhancedMonitoring
        | Operation::EnableEnhancedMonitoring
        | Operation::GetResourcePolicy
        | Operation::ListStreamConsumers
        | Operation::ListTagsForResource
        | Operation::ListTagsForStream
        | Operation::PutResourcePolicy
        | Operation::RegisterStreamConsumer
        | Operation::RemoveTagsFromStream
        | Operation::StartStreamEncryption
        | Operation::StopStreamEncryption
        | Operation::SubscribeToShard
        | Operation::TagResource
        | Operation::UntagResource
        | Operation::UpdateAccountSettings
        | Operation::UpdateMaxRecordSize
        | Operation::UpdateShardCount
        | Operation::UpdateStreamMode
        | Operation::UpdateStreamWarmThroughput => Err(ApiError::UnknownOperation),
    }
}
