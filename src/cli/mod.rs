//! `shardline streams|put|tail|consume`: a small client for people, speaking the Kinesis JSON
//! API (awsJson1.1 over HTTP/1.1) to a running server, this one or any other Kinesis endpoint.
//!
//! # Layout
//!
//! - The endpoint, its calls and SigV4 signing are [`shardline_client`]'s.
//! - [`mod@streams`]: `streams create|list|describe|delete`.
//! - [`mod@put`]: stdin lines to PutRecords batches, with retries of failed entries.
//! - [`mod@produce`]: `put --aggregate`/`--native`: stdin lines through the producer library
//!   (KPL aggregation, the native protocol).
//! - [`mod@tail`]: GetRecords over every shard, following resharding into child shards.
//! - [`mod@bench`]: `shardline bench`, the load generator (HTTP API or native protocol).
//! - [`mod@consume`]: a KCL-style worker running a MultiLangDaemon record processor per
//!   shard; [`multilang`] is the protocol's codec.
//!
//! `streams`, `put` and `tail` run on a single-threaded tokio runtime: they make one call at
//! a time, and output stays in the order the calls return. `consume` runs shards
//! concurrently on a multi-threaded one.

pub mod bench;
mod consume;
mod multilang;
mod produce;
mod put;
mod streams;
mod tail;

use clap::{Args, Subcommand, ValueEnum};

pub use shardline_client::Client;

/// Where the server is; shared by every client subcommand.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// The Kinesis endpoint (default: $AWS_ENDPOINT_URL_KINESIS, else $AWS_ENDPOINT_URL, else
    /// http://127.0.0.1:4567). Requests are SigV4-signed when $AWS_ACCESS_KEY_ID and
    /// $AWS_SECRET_ACCESS_KEY are set.
    #[arg(long, global = true, value_name = "URL")]
    endpoint: Option<String>,
}

#[derive(Args, Debug)]
pub struct StreamsArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: StreamsCommand,
}

#[derive(Subcommand, Debug)]
enum StreamsCommand {
    /// Create a provisioned stream and wait until it is ACTIVE.
    Create {
        /// The stream's name (1 to 128 of `a-zA-Z0-9_.-`).
        name: String,
        /// Number of shards.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        shards: u32,
        /// Return once the server has accepted the request, without waiting for ACTIVE.
        #[arg(long)]
        no_wait: bool,
    },
    /// List stream names, one per line.
    List,
    /// Show a stream's status, retention and shards (hash key and sequence number ranges).
    Describe {
        /// The stream's name.
        name: String,
    },
    /// Delete a stream and wait until it is gone.
    Delete {
        /// The stream's name.
        name: String,
        /// Return once the server has accepted the request, without waiting.
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Args, Debug)]
pub struct PutArgs {
    #[command(flatten)]
    connection: Connection,
    /// The stream to write to.
    stream: String,
    /// Partition key for every record (default: the line number, which spreads lines over
    /// the shards).
    #[arg(long, value_name = "KEY", value_parser = parse_partition_key)]
    partition_key: Option<String>,
    /// Send through the producer library and KPL-aggregate the records (any KCL consumer,
    /// `shardline tail` and `shardline consume` de-aggregate them).
    #[arg(long)]
    aggregate: bool,
    /// Send through the producer library over the native protocol at ADDR (`host:port` of
    /// `serve --native-listen`); the shard map still comes from --endpoint.
    #[arg(long, value_name = "ADDR")]
    native: Option<String>,
}

#[derive(Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    connection: Connection,
    /// The stream to read.
    stream: String,
    /// Where to start in each shard.
    #[arg(long, value_enum, default_value_t = Position::Latest)]
    from: Position,
    /// Keep polling for new records (the default).
    #[arg(long, overrides_with = "no_follow")]
    follow: bool,
    /// Stop once every shard is caught up.
    #[arg(long, overrides_with = "follow")]
    no_follow: bool,
    /// One JSON object per record: shard, sequence_number, partition_key, timestamp, data,
    /// encoding (`utf-8`, or `base64` for data that is not valid UTF-8). KPL aggregates print
    /// one object per user record, with sub_sequence_number.
    #[arg(long)]
    json: bool,
}

/// Where `tail` starts reading each shard.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// The oldest record still kept, in every shard (parents before their children).
    TrimHorizon,
    /// Only records written after the start, in the open shards.
    Latest,
}

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    connection: Connection,
    /// The stream to consume.
    stream: String,
    /// The application: names the lease table its workers share.
    #[arg(long, value_name = "NAME")]
    app: String,
    /// This worker's id, unique among the application's workers (default: process id and a
    /// random suffix).
    #[arg(long, value_name = "ID")]
    worker_id: Option<String>,
    /// A lease not renewed for this long is taken over by other workers (KCL default).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    failover_ms: u64,
    /// Where a new application starts in the stream's shards.
    #[arg(long, value_enum, default_value_t = InitialPosition::TrimHorizon)]
    initial_position: InitialPosition,
    /// Read through this enhanced fan-out consumer (SubscribeToShard) instead of polling.
    #[arg(long, value_name = "CONSUMER_NAME")]
    fanout: Option<String>,
    /// The pause after a GetRecords call that returned nothing (KCL default).
    #[arg(long, value_name = "N", default_value_t = 1500)]
    idle_ms: u64,
    /// The most leases this worker holds.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_leases: Option<u64>,
    /// How often new shards get leases (also done whenever a shard ends; KCL default).
    #[arg(long, value_name = "N", default_value_t = 60_000)]
    shard_sync_ms: u64,
    /// The record processor: a command speaking the KCL MultiLangDaemon protocol, one
    /// process per shard.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Where a new application starts.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum InitialPosition {
    /// Every record still kept.
    #[value(name = "TRIM_HORIZON", alias = "trim-horizon")]
    TrimHorizon,
    /// Only records written after the application's first start.
    #[value(name = "LATEST", alias = "latest")]
    Latest,
}

/// Partition keys are 1 to 256 characters (Kinesis API reference, PutRecordsRequestEntry).
const MAX_PARTITION_KEY_CHARS: usize = 256;

fn parse_partition_key(s: &str) -> Result<String, String> {
    let chars = s.chars().count();
    if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
        return Err(format!(
            "a partition key has 1 to {MAX_PARTITION_KEY_CHARS} characters, not {chars}"
        ));
    }
    Ok(s.to_string())
}

/// Runs `shardline streams ...`.
///
/// # Errors
/// The server's `__type: message`, or why the server could not be reached.
pub fn streams(args: StreamsArgs) -> anyhow::Result<()> {
    let client = Client::new(args.connection.endpoint.as_deref())?;
    block_on(async {
        match args.command {
            StreamsCommand::Create {
                name,
                shards,
                no_wait,
            } => streams::create(&client, &name, shards, !no_wait).await,
            StreamsCommand::List => streams::list(&client).await,
            StreamsCommand::Describe { name } => streams::describe(&client, &name).await,
            StreamsCommand::Delete { name, no_wait } => {
                streams::delete(&client, &name, !no_wait).await
            }
        }
    })
}

/// Runs `shardline put STREAM`.
///
/// # Errors
/// A server error that retrying cannot fix, or records that could not be written.
pub fn put(args: PutArgs) -> anyhow::Result<()> {
    let client = Client::new(args.connection.endpoint.as_deref())?;
    if args.aggregate || args.native.is_some() {
        let options = produce::Options {
            partition_key: args.partition_key,
            aggregate: args.aggregate,
            native: args.native,
        };
        return block_on(produce::run(&client, &args.stream, options));
    }
    block_on(put::run(&client, &args.stream, args.partition_key))
}

/// Runs `shardline tail STREAM`.
///
/// # Errors
/// A server error, or stdout failing for a reason other than a closed pipe.
pub fn tail(args: TailArgs) -> anyhow::Result<()> {
    let client = Client::new(args.connection.endpoint.as_deref())?;
    let options = tail::Options {
        from: args.from,
        follow: !args.no_follow,
        json: args.json,
    };
    block_on(tail::run(&client, &args.stream, options))
}

/// Runs `shardline consume STREAM --app NAME -- COMMAND...`.
///
/// # Errors
/// A bad option, or a server refusing the lease table.
pub fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    use shardline_client::consumer::{Transport, WorkerConfig};
    use shardline_client::leases;

    let client = Client::new(args.connection.endpoint.as_deref())?;
    let worker_id = args.worker_id.unwrap_or_else(|| {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        format!("{}-{}", std::process::id(), &suffix[..8])
    });
    let mut config = WorkerConfig::new(&args.app, &args.stream, &worker_id);
    config.failover = std::time::Duration::from_millis(args.failover_ms);
    config.initial_position = match args.initial_position {
        InitialPosition::TrimHorizon => leases::InitialPosition::TrimHorizon,
        InitialPosition::Latest => leases::InitialPosition::Latest,
    };
    if let Some(max) = args.max_leases {
        config.max_leases = usize::try_from(max).unwrap_or(usize::MAX);
    }
    config.shard_sync_interval = std::time::Duration::from_millis(args.shard_sync_ms.max(1));
    let idle = std::time::Duration::from_millis(args.idle_ms);
    config.transport = match args.fanout {
        None => Transport::Polling {
            idle,
            max_records: shardline_client::consumer::fetch::polling::MAX_RECORDS_PER_CALL,
        },
        Some(consumer_name) => Transport::FanOut { consumer_name },
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?
        .block_on(consume::run(client, config, args.command))
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?
        .block_on(f)
}

/// The client crate's SigV4 signatures, checked with the server's verifier (itself tested
/// against AWS's published SigV4 suite).
#[cfg(test)]
mod sign_tests {
    use chrono::{TimeZone, Utc};
    use hyper::HeaderMap;
    use shardline_client::sign::Signer;

    use crate::api::auth::{verify, Credentials, SignedRequest};

    const KEY_ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn signer(token: Option<&str>) -> Signer {
        Signer::new(KEY_ID, SECRET, token, "eu-west-1")
    }

    fn verify_signed(signer: &Signer, secret_on_server: &str, tamper: bool) -> bool {
        let now = Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap();
        let body = br#"{"StreamName":"orders"}"#;
        let fixed = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "Kinesis_20131202.DescribeStreamSummary"),
        ];
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:4567".parse().unwrap());
        for (n, v) in fixed {
            headers.insert(n, v.parse().unwrap());
        }
        for (n, v) in signer.sign_at("127.0.0.1:4567", "/", &fixed, body, now) {
            headers.insert(n, v.parse().unwrap());
        }
        let body: &[u8] = if tamper { b"{}" } else { body };
        let creds = Credentials::parse(
            &format!("{KEY_ID} {secret_on_server}\n"),
            std::path::Path::new("keys"),
        )
        .unwrap();
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            authority: None,
            body,
        };
        verify(&creds, &req, "kinesis", now).is_ok()
    }

    #[test]
    fn signatures_verify_with_the_servers_checker() {
        assert!(verify_signed(&signer(None), SECRET, false));
        assert!(verify_signed(&signer(Some("session token")), SECRET, false));
    }

    #[test]
    fn wrong_secret_or_changed_body_fails_verification() {
        assert!(!verify_signed(&signer(None), "another-secret", false));
        assert!(!verify_signed(&signer(None), SECRET, true));
    }
}
