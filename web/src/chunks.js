// The chunks a file is sent in, as `custody submit` sends them.
//
// Each PATCH carries the CRC-32 of its body (`Upload-Checksum`): intake keeps a chunk whole or not
// at all, refuses one damaged on the way (HTTP 460) so that it is sent again at once, and on S3
// stores it as one streamed request. It guards against damage only, as any checksum sent beside
// the bytes does; the file's SHA-256 is what the vault verifies. That SHA-256 is computed while
// the chunks go up, and the PATCH that completes the upload states it in `Repr-Digest` (RFC 9530).
//
// Since a chunk cut off on the way is sent again whole, its size follows the connection: it
// doubles while a PATCH takes under a second and halves after one that takes over four or fails,
// so a fast link sends few large PATCHes and a poor one loses a few seconds of sending to a drop.

import { createCRC32 } from "hash-wasm";
import * as tus from "tus-js-client";

export const FIRST_CHUNK = 8 * 1024 * 1024;
/** The largest chunk: the browser holds one in memory while it computes its checksum. */
export const MAX_CHUNK = 32 * 1024 * 1024;
export const MIN_CHUNK = 256 * 1024;
/** What a PATCH should take, in seconds. */
export const PATCH_SECONDS = 2;

/** The `Upload-Checksum` of a chunk (a Blob): `crc32 <base64 of its 4 bytes, big-endian>`. */
export async function chunkChecksum(blob) {
  const hasher = await createCRC32();
  hasher.init();
  hasher.update(new Uint8Array(await blob.arrayBuffer()));
  return `crc32 ${btoa(String.fromCharCode(...hasher.digest("binary")))}`;
}

/** The `Repr-Digest` stating the SHA-256 `hex`: `sha-256=:<its standard base64>:`. */
export function reprDigest(hex) {
  return `sha-256=:${btoa(String.fromCharCode(...hex.match(/../g).map((pair) => parseInt(pair, 16))))}:`;
}

/** The size of each next chunk, from how the last PATCH went. */
export class ChunkSizes {
  constructor(first = FIRST_CHUNK) {
    this.size = first;
  }

  /** The next size, after a PATCH of `sent` bytes took `seconds` (null: it failed). */
  after(sent, seconds) {
    if (seconds === null || seconds > PATCH_SECONDS * 2) {
      this.size = Math.max(MIN_CHUNK, Math.floor(this.size / 2));
    } else if (sent === this.size && seconds < PATCH_SECONDS / 2) {
      this.size = Math.min(MAX_CHUNK, this.size * 2);
    }
    return this.size;
  }
}

/**
 * tus-js-client's requests, each PATCH with the checksum of the body it sends; how each PATCH
 * went is told to `onPatchEnd(bytes, seconds)` (seconds null when it failed or was refused).
 * Given `file` ({size, sha256: () => Promise of its hex SHA-256}), the PATCH that ends at the
 * file's last byte also states its SHA-256 in `Repr-Digest`.
 */
export class ChunkedHttpStack {
  constructor(onPatchEnd = () => {}, inner = new tus.DefaultHttpStack(), file = null) {
    this.onPatchEnd = onPatchEnd;
    this.inner = inner;
    this.file = file;
  }

  createRequest(method, url) {
    const request = this.inner.createRequest(method, url);
    if (method === "PATCH") {
      const send = request.send.bind(request);
      request.send = async (body) => {
        const bytes = body?.size ?? 0;
        if (body) request.setHeader("Upload-Checksum", await chunkChecksum(body));
        if (this.file && Number(request.getHeader("Upload-Offset")) + bytes === this.file.size) {
          request.setHeader("Repr-Digest", reprDigest(await this.file.sha256()));
        }
        const started = performance.now();
        let response;
        try {
          response = await send(body);
        } catch (error) {
          this.onPatchEnd(bytes, null);
          throw error;
        }
        const status = response.getStatus();
        this.onPatchEnd(bytes, status >= 200 && status < 300 ? (performance.now() - started) / 1000 : null);
        return response;
      };
    }
    return request;
  }

  getName() {
    return `Chunked${this.inner.getName()}`;
  }
}
