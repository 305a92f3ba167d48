// Starts the real `shardline` binary for the JS SDK tests, and a TCP tap that records which
// HTTP version each client connection opened with.
//
// Same contract as tests/kinesis/conftest.py: port 0, a fresh data directory, wait for the
// one `listening on http://ADDR` line, SIGTERM at the end and exit code 0 required. The binary
// comes from SHARDLINE_BIN, else <CARGO_TARGET_DIR or target>/debug/shardline (scripts/test
// builds it first). Everything listens and connects on 127.0.0.1 only.

import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const READY_PREFIX = "listening on http://";
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
// RFC 9113 §3.4: what an HTTP/2 client sends first (with prior knowledge, no Upgrade).
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export function binaryPath() {
  if (process.env.SHARDLINE_BIN) {
    return path.resolve(REPO, process.env.SHARDLINE_BIN);
  }
  const target = path.resolve(REPO, process.env.CARGO_TARGET_DIR ?? "target");
  return path.join(target, "debug", "shardline");
}

/** A running `shardline serve`; `stop()` sends SIGTERM and resolves to the exit code. */
export async function startServer(args = []) {
  const binary = binaryPath();
  if (!fs.existsSync(binary)) {
    throw new Error(`${binary} does not exist: run \`cargo build --bin shardline\` or set SHARDLINE_BIN`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shardline-js-"));
  const child = spawn(binary, ["serve", "--listen", "127.0.0.1:0", "--data-dir", path.join(dir, "data"), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-8000);
  });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal)));
  const line = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no ready line within ${START_TIMEOUT_MS} ms; stderr:\n${stderr}`));
    }, START_TIMEOUT_MS);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it was ready; stderr:\n${stderr}`));
    });
  });
  if (!line.startsWith(READY_PREFIX)) {
    child.kill("SIGKILL");
    throw new Error(`unexpected ready line ${JSON.stringify(line)}; stderr:\n${stderr}`);
  }
  const addr = line.slice(READY_PREFIX.length).trim();
  return {
    addr,
    endpoint: `http://${addr}`,
    stderr: () => stderr,
    async stop() {
      child.kill("SIGTERM");
      let timer;
      const code = await Promise.race([
        exited,
        new Promise((resolve) => {
          timer = setTimeout(() => {
            child.kill("SIGKILL");
            resolve(`still running ${STOP_TIMEOUT_MS} ms after SIGTERM`);
          }, STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      fs.rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/**
 * A loopback TCP proxy in front of `target` ("HOST:PORT"). For each client connection it
 * records how the bytes began: "h2" (the HTTP/2 prior-knowledge preface), "http/1.1" (an
 * HTTP/1.1 request line) or "other". This is what the client really put on the wire,
 * whatever its handler is called.
 */
export async function startWireTap(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const connections = [];
  const sockets = new Set();
  const server = net.createServer((client) => {
    const record = { protocol: "pending" };
    connections.push(record);
    const upstream = net.connect({ host, port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    let head = Buffer.alloc(0);
    const classify = (chunk) => {
      head = Buffer.concat([head, chunk]);
      if (head.length >= H2_PREFACE.length || head.includes("\r\n")) {
        if (head.subarray(0, H2_PREFACE.length).equals(H2_PREFACE)) {
          record.protocol = "h2";
        } else if (/^[A-Z]+ \S+ HTTP\/1\.1\r\n/.test(head.toString("latin1"))) {
          record.protocol = "http/1.1";
        } else {
          record.protocol = "other";
        }
        client.off("data", classify);
      }
    };
    client.on("data", classify);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port: tapPort } = server.address();
  return {
    endpoint: `http://127.0.0.1:${tapPort}`,
    /** The protocols of the connections seen so far, in order. */
    protocols: () => connections.map((c) => c.protocol),
    async close() {
      for (const s of sockets) {
        s.destroy();
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
