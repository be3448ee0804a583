// The checksum each PATCH of the web app carries, against Node's own CRC-32 (zlib's).

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { crc32 } from "node:zlib";

import { ChecksummedHttpStack, chunkChecksum } from "../src/checksum.js";

/** A stand-in for tus-js-client's stack that records what each request would send. */
class RecordingStack {
  constructor() {
    this.sent = [];
  }

  createRequest(method, url) {
    const headers = {};
    const sent = this.sent;
    return {
      getMethod: () => method,
      getURL: () => url,
      setHeader: (name, value) => { headers[name] = value; },
      getHeader: (name) => headers[name],
      async send(body) {
        sent.push({ method, headers: { ...headers }, body });
        return { getStatus: () => 204 };
      },
    };
  }

  getName() {
    return "RecordingStack";
  }
}

/** What intake expects: `crc32 ` and the standard base64 of the CRC-32's 4 bytes, big-endian. */
function expected(bytes) {
  const value = Buffer.alloc(4);
  value.writeUInt32BE(crc32(bytes));
  return `crc32 ${value.toString("base64")}`;
}

test("a chunk's checksum is the standard base64 of its CRC-32, big-endian", async () => {
  const bytes = randomBytes(3 * 1024 * 1024 + 7);
  assert.equal(await chunkChecksum(new Blob([bytes])), expected(bytes));
  assert.equal(await chunkChecksum(new Blob([Buffer.from("abc")])), "crc32 NSRBwg=="); // 352441c2
  assert.equal(await chunkChecksum(new Blob([])), "crc32 AAAAAA==");
});

test("every PATCH carries the checksum of its own body, and no other request does", async () => {
  const recording = new RecordingStack();
  const stack = new ChecksummedHttpStack(recording);
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
  assert.equal(stack.getName(), "ChecksummedRecordingStack");
});
