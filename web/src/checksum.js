// Each tus PATCH carries the CRC-32 of its body (`Upload-Checksum`), as `custody submit` sends
// it: intake keeps a chunk whole or not at all, refuses one damaged on the way (HTTP 460) so that
// it is sent again at once, and on S3 stores it as one streamed request. It guards against damage
// only, as any checksum sent beside the bytes does; the file's SHA-256 is what the vault verifies.

import { createCRC32 } from "hash-wasm";
import * as tus from "tus-js-client";

/** The `Upload-Checksum` of a chunk (a Blob): `crc32 <base64 of its 4 bytes, big-endian>`. */
export async function chunkChecksum(blob) {
  const hasher = await createCRC32();
  hasher.init();
  hasher.update(new Uint8Array(await blob.arrayBuffer()));
  return `crc32 ${btoa(String.fromCharCode(...hasher.digest("binary")))}`;
}

/** tus-js-client's requests, each PATCH with the checksum of the body it sends. */
export class ChecksummedHttpStack {
  constructor(inner = new tus.DefaultHttpStack()) {
    this.inner = inner;
  }

  createRequest(method, url) {
    const request = this.inner.createRequest(method, url);
    if (method === "PATCH") {
      const send = request.send.bind(request);
      request.send = async (body) => {
        if (body) request.setHeader("Upload-Checksum", await chunkChecksum(body));
        return send(body);
      };
    }
    return request;
  }

  getName() {
    return `Checksummed${this.inner.getName()}`;
  }
}
