"""The sealer's side of the bus: pulls completed submissions from the durable consumer made at
deploy time, seals them a few at a time, and acknowledges each only once its outcome is
committed (so a crash at any moment means a redelivery, which sealing absorbs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from custody_common.bus import Topology, pull_batches
from custody_common.bus.provision import ACK_WAIT_SECONDS

from custody_evidence.seal.service import SealPostponed, Sealer

log = logging.getLogger(__name__)

RETRY_SECONDS = 30
PROGRESS_SECONDS = ACK_WAIT_SECONDS / 3
"""How often a long seal tells JetStream it is still working, so that it is not delivered again
to another sealer (a redelivery would be absorbed, but the work would be done twice)."""


async def run_sealer(sealer: Sealer, js: JetStreamContext, topology: Topology, concurrency: int = 4) -> None:
    """Seal submissions for as long as the service runs."""
    # Pull requests wait 1 s (the default) when idle: stopping waits for the open one to end.
    async for msgs in pull_batches(js, topology.submissions_stream, topology.sealer_consumer, batch=concurrency):
        await asyncio.gather(*(handle(sealer, msg) for msg in msgs))


async def handle(sealer: Sealer, msg: Msg) -> None:
    """Seal one message and acknowledge it; on a passing failure, ask for redelivery later."""
    try:
        sequence = msg.metadata.sequence.stream
    except Exception:  # noqa: BLE001 — not a JetStream message (only in tests); no sequence then
        sequence = None
    progress = asyncio.create_task(_keep_in_progress(msg))
    try:
        await sealer.seal(msg.data, sequence)
    except asyncio.CancelledError:
        raise
    except SealPostponed as exc:
        log.warning("sealing postponed (stream sequence %s): %s; retrying in %ss", sequence, exc, RETRY_SECONDS)
        await _nak(msg)
        return
    except Exception:  # noqa: BLE001 — a fault in one message must not stop the sealer
        log.exception("sealing failed unexpectedly (stream sequence %s); retrying in %ss", sequence, RETRY_SECONDS)
        await _nak(msg)
        return
    finally:
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
    try:
        await msg.ack()
    except Exception as exc:  # noqa: BLE001 — the outcome is committed; a redelivery is absorbed
        log.warning(
            "acknowledging stream sequence %s failed (%s); it will be redelivered", sequence, type(exc).__name__
        )


async def _keep_in_progress(msg: Msg) -> None:
    while True:
        await asyncio.sleep(PROGRESS_SECONDS)
        with contextlib.suppress(Exception):
            await msg.in_progress()


async def _nak(msg: Msg) -> None:
    with contextlib.suppress(Exception):
        await msg.nak(delay=RETRY_SECONDS)
