// The chunks the web app sends: each PATCH's checksum against Node's own CRC-32 (zlib's), and
// their size adapting to how each PATCH went, as `custody submit` adapts its own.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import { crc32 } from "node:zlib";

import { ChunkSizes, ChunkedHttpStack, FIRST_CHUNK, MAX_CHUNK, MIN_CHUNK, chunkChecksum, reprDigest } from "../src/chunks.js";

/** What intake expects: `crc32 ` and the standard base64 of the CRC-32's 4 bytes, big-endian. */
function expected(bytes) {
  const value = Buffer.alloc(4);
  value.writeUInt32BE(crc32(bytes));
  return `crc32 ${value.toString("base64")}`;
}

/** A stand-in for tus-js-client's stack: records what each request would send, answers `status`. */
class RecordingStack {
  constructor(status = 204) {
    this.sent = [];
    this.status = status;
  }

  createRequest(method, url) {
    const headers = {};
    const stack = this;
    return {
      getMethod: () => method,
      getURL: () => url,
      setHeader: (name, value) => { headers[name] = value; },
      getHeader: (name) => headers[name],
      async send(body) {
        stack.sent.push({ method, headers: { ...headers }, body });
        if (stack.status === 0) throw new Error("the connection dropped");
        return { getStatus: () => stack.status };
      },
    };
  }

  getName() {
    return "RecordingStack";
  }
}

test("a chunk's checksum is the standard base64 of its CRC-32, big-endian", async () => {
  const bytes = randomBytes(3 * 1024 * 1024 + 7);
  assert.equal(await chunkChecksum(new Blob([bytes])), expected(bytes));
  assert.equal(await chunkChecksum(new Blob([Buffer.from("abc")])), "crc32 NSRBwg=="); // 352441c2
  assert.equal(await chunkChecksum(new Blob([])), "crc32 AAAAAA==");
});

test("every PATCH carries the checksum of its own body, and no other request does", async () => {
  const recording = new RecordingStack();
  const ends = [];
  const stack = new ChunkedHttpStack((bytes, seconds) => ends.push([bytes, seconds]), recording);
  const file = new Blob([randomBytes(2 * 1024 * 1024)]);
  await stack.createRequest("POST", "https://intake.example/v1/uploads").send(null);
  for (const [start, end] of [[0, 1024 * 1024], [1024 * 1024, 2 * 1024 * 1024]]) {
    const patch = stack.createRequest("PATCH", "https://intake.example/v1/uploads/1");
    patch.setHeader("Upload-Offset", String(start));
    await patch.send(file.slice(start, end));
  }
  await stack.createRequest("HEAD", "https://intake.example/v1/uploads/1").send(null);

  assert.deepEqual(recording.sent.map((request) => request.method), ["POST", "PATCH", "PATCH", "HEAD"]);
  assert.equal(recording.sent[0].headers["Upload-Checksum"], undefined);
  assert.equal(recording.sent[3].headers["Upload-Checksum"], undefined);
  for (const patch of recording.sent.slice(1, 3)) {
    const body = Buffer.from(await patch.body.arrayBuffer());
    assert.equal(patch.headers["Upload-Checksum"], expected(body));
  }
  assert.notEqual(recording.sent[1].headers["Upload-Checksum"], recording.sent[2].headers["Upload-Checksum"]);
  assert.deepEqual(ends.map(([bytes]) => bytes), [1024 * 1024, 1024 * 1024]);
  assert.ok(ends.every(([, seconds]) => seconds !== null && seconds >= 0));
  assert.equal(stack.getName(), "ChunkedRecordingStack");
});

test("the PATCH that ends at the file's last byte, and only it, states the file's SHA-256", async () => {
  const content = randomBytes(3000);
  const sha256 = createHash("sha256").update(content).digest();
  const recording = new RecordingStack();
  const asked = [];
  const file = { size: content.length, sha256: () => { asked.push("sha256"); return Promise.resolve(sha256.toString("hex")); } };
  const stack = new ChunkedHttpStack(() => {}, recording, file);
  for (const [start, end] of [[0, 1000], [1000, 2000], [2000, 3000]]) {
    const patch = stack.createRequest("PATCH", "https://intake.example/v1/uploads/1");
    patch.setHeader("Upload-Offset", String(start));
    await patch.send(new Blob([content.subarray(start, end)]));
  }
  assert.deepEqual(recording.sent.map((request) => request.headers["Repr-Digest"]), [
    undefined,
    undefined,
    `sha-256=:${sha256.toString("base64")}:`,
  ]);
  assert.deepEqual(asked, ["sha256"]);
  assert.equal(reprDigest("00".repeat(32)), `sha-256=:${Buffer.alloc(32).toString("base64")}:`);
});

test("a PATCH refused or cut off is told as failed", async () => {
  for (const status of [460, 409, 0]) {
    const ends = [];
    const stack = new ChunkedHttpStack((bytes, seconds) => ends.push([bytes, seconds]), new RecordingStack(status));
    const sending = stack.createRequest("PATCH", "https://intake.example/v1/uploads/1").send(new Blob(["chunk"]));
    if (status === 0) await assert.rejects(sending);
    else assert.equal((await sending).getStatus(), status);
    assert.deepEqual(ends, [[5, null]]);
  }
});

test("chunks double while PATCHes are quick, halve when one is slow or fails, within their bounds", () => {
  const sizes = new ChunkSizes();
  assert.equal(sizes.size, FIRST_CHUNK);
  assert.equal(sizes.after(FIRST_CHUNK, 0.3), 2 * FIRST_CHUNK);
  assert.equal(sizes.after(2 * FIRST_CHUNK, 0.5), MAX_CHUNK);
  assert.equal(sizes.after(MAX_CHUNK, 0.2), MAX_CHUNK);
  assert.equal(sizes.after(MAX_CHUNK, 1.5), MAX_CHUNK); // within what a PATCH should take
  assert.equal(sizes.after(1000, 0.01), MAX_CHUNK); // the file's short last chunk says nothing
  assert.equal(sizes.after(MAX_CHUNK, 5), MAX_CHUNK / 2);
  assert.equal(sizes.after(MAX_CHUNK / 2, null), MAX_CHUNK / 4);
  for (let failures = 0; failures < 20; failures += 1) sizes.after(sizes.size, null);
  assert.equal(sizes.size, MIN_CHUNK);
});
