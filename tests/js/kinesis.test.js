// The AWS SDK for JavaScript v3 (`@aws-sdk/client-kinesis`) against the real server.
//
// The same scenario runs with three request handlers, each through a wire tap that records
// what the SDK actually sent first on every connection (wire reference §1.8):
// - the client's default: KinesisClient's runtime config builds a `NodeHttp2Handler` (with
//   `disableConcurrentStreams: true`), so every call is HTTP/2 with prior knowledge (h2c);
// - `NodeHttp2Handler` configured explicitly (HTTP/2, concurrent streams on one session);
// - `NodeHttpHandler` (HTTP/1.1).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
  PutRecordCommand,
  PutRecordsCommand,
  RegisterStreamConsumerCommand,
  ResourceNotFoundException,
  SubscribeToShardCommand,
} from "@aws-sdk/client-kinesis";
import { NodeHttp2Handler, NodeHttpHandler } from "@smithy/node-http-handler";

import { startServer, startWireTap } from "./server.js";

const ACCOUNT = "000000000000";
// Per test; `scripts/test` also runs node with --test-timeout as a backstop.
const TEST_TIMEOUT_MS = 60_000;
const REQUEST_TIMEOUT_MS = 10_000;

const VARIANTS = [
  { name: "default client config", handler: () => undefined, expect: "h2" },
  {
    name: "NodeHttp2Handler",
    handler: () => new NodeHttp2Handler({ requestTimeout: REQUEST_TIMEOUT_MS, sessionTimeout: REQUEST_TIMEOUT_MS }),
    expect: "h2",
  },
  {
    name: "NodeHttpHandler",
    handler: () => new NodeHttpHandler({ requestTimeout: REQUEST_TIMEOUT_MS, connectionTimeout: REQUEST_TIMEOUT_MS }),
    expect: "http/1.1",
  },
];

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  if (server) {
    const code = await server.stop();
    assert.equal(code, 0, `server exit after SIGTERM; stderr:\n${server.stderr()}`);
  }
});

function client(endpoint, requestHandler) {
  return new KinesisClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
    maxAttempts: 1,
    ...(requestHandler ? { requestHandler } : {}),
  });
}

/** Every byte value, so base64 and framing mistakes cannot hide. */
function binaryPayload(tag) {
  const bytes = new Uint8Array(256 + tag.length);
  for (let i = 0; i < 256; i++) {
    bytes[i] = i;
  }
  bytes.set(Buffer.from(tag), 256);
  return bytes;
}

for (const variant of VARIANTS) {
  describe(`JS SDK v3 with ${variant.name}`, () => {
    let tap;
    let kinesis;
    // Distinct names per variant: the three share one server.
    const stream = `js-${variant.name.replace(/\W+/g, "-")}`;

    before(async () => {
      tap = await startWireTap(server.addr);
      kinesis = client(tap.endpoint, variant.handler());
    });

    after(async () => {
      kinesis?.destroy();
      await tap?.close();
    });

    test("stream lifecycle, records and errors", { timeout: TEST_TIMEOUT_MS }, async (t) => {
      await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 2 }));

      const summary = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
      assert.equal(summary.$metadata.httpStatusCode, 200);
      assert.equal(summary.StreamDescriptionSummary.StreamName, stream);
      assert.equal(summary.StreamDescriptionSummary.StreamStatus, "ACTIVE");
      assert.equal(summary.StreamDescriptionSummary.OpenShardCount, 2);
      assert.equal(summary.StreamDescriptionSummary.StreamARN, `arn:aws:kinesis:us-east-1:${ACCOUNT}:stream/${stream}`);

      const shards = await kinesis.send(new ListShardsCommand({ StreamName: stream }));
      assert.deepEqual(
        shards.Shards.map((s) => s.ShardId),
        ["shardId-000000000000", "shardId-000000000001"],
      );

      // One partition key: every record lands on the same shard, in put order.
      const sent = [binaryPayload("one"), binaryPayload("two"), binaryPayload("three"), new Uint8Array([0])];
      const first = await kinesis.send(new PutRecordCommand({ StreamName: stream, PartitionKey: "pk", Data: sent[0] }));
      assert.match(first.SequenceNumber, /^\d{56}$/);
      assert.ok(shards.Shards.some((s) => s.ShardId === first.ShardId), first.ShardId);

      const batch = await kinesis.send(
        new PutRecordsCommand({
          StreamName: stream,
          Records: sent.slice(1).map((Data) => ({ Data, PartitionKey: "pk" })),
        }),
      );
      assert.equal(batch.FailedRecordCount ?? 0, 0);
      assert.equal(batch.Records.length, 3);
      for (const r of batch.Records) {
        assert.equal(r.ShardId, first.ShardId);
        assert.equal(r.ErrorCode, undefined);
      }

      const iterator = await kinesis.send(
        new GetShardIteratorCommand({ StreamName: stream, ShardId: first.ShardId, ShardIteratorType: "TRIM_HORIZON" }),
      );
      assert.ok(iterator.ShardIterator);
      const got = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator.ShardIterator }));
      assert.deepEqual(
        got.Records.map((r) => r.SequenceNumber),
        [first.SequenceNumber, ...batch.Records.map((r) => r.SequenceNumber)],
      );
      assert.deepEqual(
        got.Records.map((r) => Buffer.from(r.Data)),
        sent.map((d) => Buffer.from(d)),
      );
      for (const r of got.Records) {
        assert.equal(r.PartitionKey, "pk");
        assert.ok(r.ApproximateArrivalTimestamp instanceof Date);
      }
      assert.ok(got.NextShardIterator);
      assert.equal(typeof got.MillisBehindLatest, "number");

      const ghost = `${stream}-ghost`;
      await assert.rejects(kinesis.send(new DescribeStreamSummaryCommand({ StreamName: ghost })), (err) => {
        assert.ok(err instanceof ResourceNotFoundException, `${err.name}: ${err.message}`);
        assert.equal(err.name, "ResourceNotFoundException");
        assert.equal(err.message, `Stream ${ghost} under account ${ACCOUNT} not found.`);
        assert.equal(err.$metadata.httpStatusCode, 400);
        return true;
      });

      await kinesis.send(new DeleteStreamCommand({ StreamName: stream }));
      await assert.rejects(
        kinesis.send(new DescribeStreamSummaryCommand({ StreamName: stream })),
        (err) => err.name === "ResourceNotFoundException",
      );

      assertProtocols(t, tap, variant);
    });

    // Enhanced fan-out: the SDK's event-stream unmarshaller over this handler (HTTP/2 DATA
    // frames or HTTP/1.1 chunks). Records written before and during the subscription all
    // arrive, in order, pushed as they are acknowledged.
    test("SubscribeToShard event stream", { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const efoStream = `${stream}-efo`;
      await kinesis.send(new CreateStreamCommand({ StreamName: efoStream, ShardCount: 1 }));
      const arn = `arn:aws:kinesis:us-east-1:${ACCOUNT}:stream/${efoStream}`;
      const { Consumer } = await kinesis.send(
        new RegisterStreamConsumerCommand({ StreamARN: arn, ConsumerName: "js" }),
      );
      assert.equal(Consumer.ConsumerStatus, "ACTIVE");
      assert.match(Consumer.ConsumerARN, new RegExp(`^${arn}/consumer/js:\\d+$`));
      const before = [binaryPayload("before-1"), binaryPayload("before-2")];
      const during = [binaryPayload("during-1"), binaryPayload("during-2"), binaryPayload("during-3")];
      await kinesis.send(
        new PutRecordsCommand({ StreamName: efoStream, Records: before.map((Data) => ({ Data, PartitionKey: "pk" })) }),
      );
      const out = await kinesis.send(
        new SubscribeToShardCommand({
          ConsumerARN: Consumer.ConsumerARN,
          ShardId: "shardId-000000000000",
          StartingPosition: { Type: "TRIM_HORIZON" },
        }),
      );
      assert.equal(out.$metadata.httpStatusCode, 200);
      const received = [];
      let continuation;
      let wrote = false;
      for await (const event of out.EventStream) {
        const e = event.SubscribeToShardEvent;
        if (!e) {
          continue;
        }
        received.push(...e.Records.map((r) => Buffer.from(r.Data)));
        assert.match(e.ContinuationSequenceNumber, /^\d{56}$/);
        assert.equal(typeof e.MillisBehindLatest, "number");
        continuation = e.ContinuationSequenceNumber;
        if (!wrote && received.length >= before.length) {
          wrote = true;
          for (const Data of during) {
            await kinesis.send(new PutRecordCommand({ StreamName: efoStream, PartitionKey: "pk", Data }));
          }
        }
        if (received.length >= before.length + during.length) {
          break;
        }
      }
      assert.deepEqual(received, [...before, ...during].map((d) => Buffer.from(d)));
      assert.ok(continuation);
      await kinesis.send(new DeleteStreamCommand({ StreamName: efoStream, EnforceConsumerDeletion: true }));
      assertProtocols(t, tap, variant);
    });
  });
}

/** Every connection the tap saw opened with the protocol the variant expects. */
function assertProtocols(t, tap, variant) {
    const protocols = tap.protocols();
    t.diagnostic(`${protocols.length} connection(s), opened with: ${[...new Set(protocols)].join(", ")}`);
    assert.ok(protocols.length > 0, "the tap saw no connection");
    assert.deepEqual(
      protocols,
      protocols.map(() => variant.expect),
      `HTTP versions on the wire: ${protocols.join(", ")}`,
    );
}
