"""The baselines' server: bare endpoints on the same server stack as the services
(``custody_common.web.create_app``, uvicorn, the object-store adapter the settings choose), doing
only the unavoidable part of each job.

    python -m bench.bare_server --port PORT      (with the stack's CUSTODY_* environment)

``PUT /bare/objects/{name}`` hashes the body (SHA-256) and writes it to the store as one object,
the way intake hands a PATCH body to a writer thread (1 MiB blocks through a queue at most 4
deep). ``GET /bare/evidence/{evidence_id}`` streams the item's stored parts as they are, still
encrypted, the way evidence hands stored chunks from a worker thread to the event loop.
``DELETE /bare/objects/{name}`` removes a baseline object. No tokens: it serves loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import queue
from collections.abc import AsyncIterator, Iterator

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from custody_common.objectstore import ObjectStore, open_object_store
from custody_common.settings import Settings
from custody_common.web import create_app, serve

BLOCK = 1024 * 1024
DEPTH = 4
OBJECT_PREFIX = "bare/"
_END = object()


def build_app(settings: Settings, store: ObjectStore) -> FastAPI:
    """The bare endpoints on ``store``."""
    app = create_app("bare", settings, None)

    @app.put("/bare/objects/{name}")
    async def hash_and_write(name: str, request: Request) -> dict[str, object]:
        """Hash the body and store it under ``bare/{name}``."""
        digest = hashlib.sha256()
        blocks: queue.Queue[object] = queue.Queue(maxsize=DEPTH)
        loop = asyncio.get_running_loop()

        def chunks() -> Iterator[bytes]:
            while (block := blocks.get()) is not _END:
                yield block  # type: ignore[misc]

        # Told the body's length, as intake tells the store a checksummed PATCH's part size.
        length = request.headers.get("content-length")
        size = int(length) if length is not None else None
        writer = loop.run_in_executor(None, lambda: store.put(OBJECT_PREFIX + name, chunks(), size=size))
        pending: list[bytes] = []
        pending_size = 0
        try:
            async for chunk in request.stream():
                digest.update(chunk)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= BLOCK:
                    await _hand_over(loop, blocks, b"".join(pending))
                    pending, pending_size = [], 0
            if pending:
                await _hand_over(loop, blocks, b"".join(pending))
        finally:
            await _hand_over(loop, blocks, _END)
        stored = await writer
        return {"sha256": digest.hexdigest(), "size": stored.size}

    @app.delete("/bare/objects/{name}", status_code=204)
    async def remove(name: str) -> None:
        """Remove a baseline object."""
        await asyncio.to_thread(store.delete, OBJECT_PREFIX + name)

    @app.get("/bare/evidence/{evidence_id}")
    async def serve_stored(evidence_id: str) -> StreamingResponse:
        """Every stored part of the item, concatenated, undecrypted."""
        prefix = f"evidence/{evidence_id}/parts/"
        keys = await asyncio.to_thread(lambda: list(store.list(prefix)))
        size = 0
        for key in keys:
            size += (await asyncio.to_thread(store.stat, key)).size

        def stored() -> Iterator[bytes]:
            for key in keys:
                yield from store.read(key)

        async def body() -> AsyncIterator[bytes]:
            source = stored()
            while (chunk := await asyncio.to_thread(next, source, None)) is not None:
                yield chunk

        return StreamingResponse(body(), headers={"Content-Length": str(size)}, media_type="application/octet-stream")

    return app


async def _hand_over(loop: asyncio.AbstractEventLoop, blocks: queue.Queue[object], block: object) -> None:
    try:
        blocks.put_nowait(block)
    except queue.Full:
        await loop.run_in_executor(None, blocks.put, block)


def main() -> None:
    """Serve the bare endpoints on ``--port`` until terminated."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare_server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings()
    serve(build_app(settings, open_object_store(settings)), args.port)


if __name__ == "__main__":
    main()
