"""The sequencer: takes custody events off the events stream, admits the genuine ones, and
appends each batch — leaves, stored subtree hashes and a new signed checkpoint, checked
consistent with the previous one — in one transaction, before acknowledging the messages.

A crash at any moment loses nothing (unacknowledged messages come back) and doubles nothing
(an event id already in the log is skipped). Each checkpoint signed is also kept in a file
outside the database (see :mod:`custody_audit.log.anchor`), and the stored log is checked
against it before appending, so a log cut short or rewritten in the database is never extended.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from custody_audit.errors import EventDeferred, EventRejected, LogDamaged
from custody_audit.log import repository
from custody_audit.log.admission import Admitted, TrustedKeys, admit
from custody_audit.log.anchor import keep_note, read_note
from custody_audit.log.checkpoint import Checkpoint, CheckpointError, sign_checkpoint, verifier_key, verify_checkpoint
from custody_audit.log.entry import build_leaf, parse_leaf
from custody_audit.log.jcs import canonical
from custody_audit.log.leadership import sequencer_connection
from custody_audit.log.merkle import (
    CompactRange,
    ProofError,
    consistency_nodes,
    consistency_proof,
    leaf_hash,
    root_nodes,
    verify_consistency,
)
from custody_audit.log.repository import StoredCheckpoint
from custody_common.announcement import key_id
from custody_common.bus import PullConsumer, Topology
from custody_common.crypto.signing import public_raw
from custody_common.events import actor_service, new_event, rfc3339, sign_event

log = logging.getLogger(__name__)

SERVICE = "audit"
DEFER_SECONDS = 6.0
"""When a deferred message comes back: after the keys may be read again (TrustedKeys' 5 s)."""


@dataclass(frozen=True)
class Incoming:
    """A message from the events stream, as the sequencer sees it."""

    subject: str
    payload: bytes
    message: Msg | None = field(default=None, repr=False, compare=False)
    """The JetStream message it came in, if any."""

    @property
    def stream_seq(self) -> int | None:
        """Its position in the events stream, parsed from the message's acknowledgement subject
        only when asked (for messages kept aside), not for every message admitted."""
        if self.message is None:
            return None
        try:
            return self.message.metadata.sequence.stream
        except Exception:  # noqa: BLE001 — a message without JetStream metadata still gets judged
            return None


@dataclass(frozen=True)
class Judged:
    """A batch after admission: what may be logged, and what is kept aside and why."""

    admitted: list[tuple[Incoming, Admitted]]
    rejected: list[tuple[Incoming, str]]
    deferred: list[Incoming] = field(default_factory=list)
    """Neither logged nor kept aside: delivered again later (see EventDeferred)."""


@dataclass(frozen=True)
class BatchOutcome:
    """What one append did."""

    appended: int
    duplicates: int
    rejected: list[str]
    checkpoint: StoredCheckpoint | None


@dataclass
class SequencerStats:
    """Counters since the process started (the rejected count is the one to alert on)."""

    appended: int = 0
    duplicates: int = 0
    rejected: int = 0
    deferred: int = 0
    checkpoints: int = 0
    batches: int = 0
    """Appends committed (sequencing made progress)."""
    rejected_reasons: dict[str, int] = field(default_factory=dict)


def _reason_kind(reason: str) -> str:
    return reason.split(":")[0][:80]


class Sequencer:
    """Appends admitted custody events to the log; only one runs at a time per log."""

    def __init__(
        self,
        engine: AsyncEngine,
        topology: Topology,
        *,
        origin: str,
        log_key: Ed25519PrivateKey,
        event_key: Ed25519PrivateKey,
        trusted_keys: TrustedKeys,
        anchor: Path | None = None,
        batch_size: int = 1000,
        fetch_timeout: float = 1.0,
        admission_threads: int | None = None,
    ) -> None:
        self._engine = engine
        self._topology = topology
        self._origin = origin
        self._log_key = log_key
        self._verifier = verifier_key(origin, log_key.public_key())
        self._anchor = anchor
        """The file that keeps the newest checkpoint signed; None: none kept (tests only)."""
        self._event_key = event_key
        self._keys = trusted_keys
        self._batch_size = batch_size
        self._fetch_timeout = fetch_timeout
        # Signature checks release the GIL, so they scale with cores: a thread per core. On 2
        # cores that gave 6,800-7,200 events/s against 6,300-6,500 with one thread (PostgreSQL).
        self._admission_threads = admission_threads or max(1, min(4, os.cpu_count() or 1))
        self._tree = CompactRange()
        self._deferred: dict[int, float] = {}
        """Stream positions of messages deferred once, and when (see EventDeferred)."""
        self._checkpoint: StoredCheckpoint | None = None
        self.stats = SequencerStats()
        self.leading = False
        self.damage: str | None = None
        """Why sequencing stopped for good, when the stored log failed its own checks."""

    @property
    def size(self) -> int:
        """Leaves in the log as this sequencer knows it."""
        return self._tree.size

    # --- the loop -------------------------------------------------------------------------

    async def run(self, js: JetStreamContext) -> None:
        """Sequence from ``js`` for the life of the process: wait for the right to sequence,
        recover the tree, announce audit's key, then append batch after batch. Outages are
        waited out; a damaged log stops the sequencer (see :attr:`damage`)."""
        delay = 1.0
        while True:
            committed = self.stats.batches
            try:
                async with sequencer_connection(self._engine, self._topology.namespace) as conn:
                    self.leading = True
                    await self.recover(conn)
                    await self.announce_key(conn)
                    async with PullConsumer(
                        js,
                        self._topology.events_stream,
                        self._topology.audit_consumer,
                        batch=self._batch_size,
                        timeout=self._fetch_timeout,
                    ) as consumer:
                        await self._sequence(conn, consumer)
            except asyncio.CancelledError:
                raise
            except LogDamaged as exc:
                self.damage = str(exc)
                log.critical("the custody log failed its own checks; sequencing stopped: %s", exc)
                return
            except Exception as exc:  # noqa: BLE001 — database or bus outages are waited out
                if self.stats.batches > committed:
                    delay = 1.0  # sequencing made progress since the last outage: a new one starts short
                log.warning("sequencing interrupted (%s: %s); resuming in %.0fs", type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                self.leading = False

    async def _sequence(self, conn: AsyncConnection, consumer: PullConsumer) -> None:
        """Append and acknowledge batches in stream order while the next batch is judged (in
        worker threads: signature checks release the GIL) and the one after it is pulled.
        Whatever was pulled and not yet committed when this stops goes back to the consumer,
        which gives it back to the stream when it closes."""
        outstanding: deque[list[Msg]] = deque()
        pulled: asyncio.Queue[list[Msg]] = asyncio.Queue(maxsize=1)
        judged_batches: asyncio.Queue[tuple[list[Msg], Judged]] = asyncio.Queue(maxsize=1)

        async def pull() -> None:
            while True:
                messages = await consumer.next_batch()
                outstanding.append(messages)
                await pulled.put(messages)

        async def judge() -> None:
            while True:
                messages = await pulled.get()
                await judged_batches.put((messages, await self._judge_in_threads(messages)))

        stages = [
            asyncio.create_task(pull(), name="custody-log-pull"),
            asyncio.create_task(judge(), name="custody-log-admission"),
        ]
        next_batch: asyncio.Future[tuple[list[Msg], Judged]] | None = None
        try:
            while True:
                next_batch = asyncio.ensure_future(judged_batches.get())
                await asyncio.wait({next_batch, *stages}, return_when=asyncio.FIRST_COMPLETED)
                if not next_batch.done():
                    for stage in stages:
                        if stage.done():
                            stage.result()  # re-raises what stopped the pulling or the judging
                    raise RuntimeError("pulling or judging stopped")
                messages, judged = next_batch.result()
                await self._commit(conn, messages, judged)
                outstanding.popleft()
        finally:
            waiting = [task for task in (*stages, next_batch) if task is not None]
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            consumer.hand_back(message for messages in outstanding for message in messages)

    async def _commit(self, conn: AsyncConnection, messages: list[Msg], judged: Judged) -> None:
        await self.append_judged(conn, judged)
        later = {id(incoming.message) for incoming in judged.deferred}
        for msg in messages:
            try:
                if id(msg) in later:
                    await msg.nak(delay=DEFER_SECONDS)
                else:
                    await msg.ack()
            except Exception:  # noqa: BLE001 — a lost ack means a redelivery, which is skipped
                log.warning("could not acknowledge a logged event; it will be redelivered and skipped")
                break

    # --- the steps ------------------------------------------------------------------------

    async def recover(self, conn: AsyncConnection) -> None:
        """Load the right edge of the stored tree and check it against the latest signed
        checkpoint; raises LogDamaged when they disagree."""
        async with conn.begin():
            size = await repository.log_size(conn)
            checkpoint = await repository.latest_checkpoint(conn)
            hashes = await repository.fetch_hashes(conn, root_nodes(size))
        checkpointed = checkpoint.size if checkpoint else 0
        if size != checkpointed:
            raise LogDamaged(f"the log holds {size} entries but its latest checkpoint covers {checkpointed}")
        try:
            tree = CompactRange.from_hashes(size, hashes)
        except ProofError as exc:
            raise LogDamaged(f"the stored tree is incomplete: {exc}") from None
        if checkpoint:
            # A row inserted behind the sequencer's back carries no signature of ours.
            try:
                signed = verify_checkpoint(checkpoint.note, self._verifier, self._origin)
            except CheckpointError as exc:
                raise LogDamaged(f"the latest stored checkpoint ({checkpoint.size}) is not this log's: {exc}") from None
            if (signed.size, signed.root) != (checkpoint.size, checkpoint.root):
                raise LogDamaged(f"the latest stored checkpoint ({checkpoint.size}) differs from its own signed note")
            if tree.root() != checkpoint.root:
                raise LogDamaged(f"the stored subtree hashes do not give the root of checkpoint {checkpoint.size}")
        await self._check_anchor(conn, tree)
        self._tree, self._checkpoint = tree, checkpoint
        async with conn.begin():
            announced = await repository.leaves_of_action(conn, "key_announced")
        for stored in announced:
            self._remember_key(parse_leaf(stored.leaf)["event"])
        log.info("custody log recovered at size %d", size)

    async def _check_anchor(self, conn: AsyncConnection, tree: CompactRange) -> None:
        """Raise LogDamaged unless the stored log ``tree`` extends the checkpoint kept outside
        the database: it holds that size with that root, proven by a consistency proof from
        the stored subtree hashes. A file that cannot be read now (permissions, say) raises
        OSError, an outage to wait out."""
        if self._anchor is None:
            return
        path, size = self._anchor, tree.size
        try:
            note = await asyncio.to_thread(read_note, path)
        except ValueError as exc:
            raise LogDamaged(f"the file that keeps the log's newest checkpoint is damaged: {exc}") from None
        if note is None:
            if size:
                log.warning(
                    "no checkpoint is kept at %s though the log holds %d entries: until one is, entries removed "
                    "from the database with their checkpoints would go unnoticed. Expected once, after an upgrade "
                    "or on a new audit host; otherwise find out where the file went",
                    path,
                    size,
                )
            return
        try:
            kept = verify_checkpoint(note, self._verifier, self._origin)
        except CheckpointError as exc:
            raise LogDamaged(f"the checkpoint kept at {path} is not one this log's key signed: {exc}") from None
        if kept.size > size:
            raise LogDamaged(
                f"the database holds {size} entries, but checkpoint {kept.size}, signed by this log and kept at "
                f"{path}, covers more: entries were removed from the database"
            )
        try:
            if kept.size == size:
                if tree.root() != kept.root:
                    raise ProofError("another root at the same size")
            elif kept.size:
                async with conn.begin():
                    await _prove_extends(conn, tree, kept.size, kept.root)
        except ProofError as exc:
            raise LogDamaged(
                f"the stored log of {size} entries does not extend the checkpoint {kept.size} kept at {path} ({exc}): "
                "the log was rewritten in the database"
            ) from None

    def _remember_key(self, event: dict[str, Any]) -> None:
        """Trust the key a logged ``key_announced`` event names for what its service signed."""
        try:
            self._keys.remember(event["service"], base64.b64decode(event["details"]["public_key"], validate=True))
        except (KeyError, TypeError, ValueError):
            log.warning("a logged key announcement (event %s) names no usable key", event.get("id"))

    async def announce_key(self, conn: AsyncConnection) -> dict[str, Any] | None:
        """Log audit's own event-signing key (``key_announced``) unless the log holds it
        already; returns the event when one was appended."""
        ours = base64.b64encode(public_raw(self._event_key.public_key())).decode()
        async with conn.begin():
            announced = await repository.leaves_of(conn, SERVICE, "key_announced")
        for stored in announced:
            details = parse_leaf(stored.leaf)["event"].get("details", {})
            if details.get("public_key") == ours:
                return None
        event = sign_event(
            new_event(
                action="key_announced",
                service=SERVICE,
                actor=actor_service(SERVICE),
                details={"public_key": ours, "key_id": key_id(self._event_key)},
            ),
            self._event_key,
        )
        await self.append_judged(conn, Judged([(Incoming("", b""), Admitted(event, canonical(event)))], []))
        log.info("announced audit's event-signing key in the log")
        return event

    async def _judge_in_threads(self, messages: list[Msg]) -> Judged:
        share = -(-len(messages) // self._admission_threads)
        parts = await asyncio.gather(
            *(
                asyncio.to_thread(self._judge_messages, messages[start : start + share])
                for start in range(0, len(messages), share)
            )
        )
        return Judged(
            [pair for part in parts for pair in part.admitted],
            [pair for part in parts for pair in part.rejected],
            [message for part in parts for message in part.deferred],
        )

    def _judge_messages(self, messages: list[Msg]) -> Judged:
        return self.judge([Incoming(msg.subject, msg.data, msg) for msg in messages])

    def judge(self, incoming: Sequence[Incoming]) -> Judged:
        """Admit or reject each message (pure CPU work; safe to run in a worker thread)."""
        admitted: list[tuple[Incoming, Admitted]] = []
        rejected: list[tuple[Incoming, str]] = []
        deferred: list[Incoming] = []
        for message in incoming:
            try:
                admitted.append((message, admit(message.subject, message.payload, self._topology, self._keys)))
            except EventRejected as exc:
                rejected.append((message, str(exc)))
            except EventDeferred as exc:
                # Deferred once at most: by its return the keys were read after it first failed,
                # so a service's new key is known; a forgery must not circle for ever.
                position = message.stream_seq
                if position is None or position in self._deferred:
                    rejected.append((message, str(exc)))
                else:
                    self._deferred[position] = time.monotonic()
                    deferred.append(message)
        return Judged(admitted, rejected, deferred)

    async def append(self, conn: AsyncConnection, incoming: Sequence[Incoming]) -> BatchOutcome:
        """Judge a batch of messages and append the admitted events, with a new signed
        checkpoint, in one transaction. Rejected messages are kept aside in the same
        transaction; events already logged are skipped."""
        return await self.append_judged(conn, self.judge(incoming))

    async def append_judged(self, conn: AsyncConnection, judged: Judged) -> BatchOutcome:
        """Append a judged batch (see :meth:`append`)."""
        moment = datetime.now(UTC)
        logged_at = rfc3339(moment)
        sources = [message for message, _ in judged.admitted]
        admitted = [candidate for _, candidate in judged.admitted]
        rejected = list(judged.rejected)
        duplicates = 0
        tree = self._tree.copy()
        checkpoint = None
        async with conn.begin():
            logged = await repository.logged_events(conn, [a.event["id"] for a in admitted])
            fresh: list[Admitted] = []
            in_batch: dict[str, bytes] = {}
            for source, candidate in zip(sources, admitted, strict=True):
                event = candidate.event
                known = logged.get(event["id"])
                if known is not None:
                    same = canonical(parse_leaf(known)["event"]) == candidate.canonical
                elif event["id"] in in_batch:
                    same = in_batch[event["id"]] == candidate.canonical
                else:
                    in_batch[event["id"]] = candidate.canonical
                    fresh.append(candidate)
                    continue
                if same:
                    duplicates += 1
                else:
                    rejected.append((source, f"conflicting event id: {event['id']} is logged with other content"))
            heads = await repository.item_heads(
                conn, [a.event["evidence_id"] for a in fresh if "evidence_id" in a.event]
            )
            leaf_rows = []
            node_rows = []
            for event, encoded in fresh:
                evidence_id = event.get("evidence_id")
                item_seq = prev_leaf = None
                if evidence_id is not None:
                    last_seq, prev_leaf = heads.get(evidence_id, (0, None))
                    item_seq = last_seq + 1
                leaf = build_leaf(encoded, item_seq, prev_leaf, logged_at)
                digest = leaf_hash(leaf)
                leaf_rows.append(
                    {
                        "idx": tree.size,
                        "event_id": event["id"],
                        "service": event["service"],
                        "action": event["action"],
                        "evidence_id": evidence_id,
                        "case_name": event.get("case"),
                        "item_seq": item_seq,
                        "prev_leaf": prev_leaf,
                        "leaf": leaf,
                        "leaf_hash": digest,
                        "logged_at": moment,
                    }
                )
                node_rows.extend(tree.append(digest))
                if evidence_id is not None:
                    heads[evidence_id] = (item_seq, digest)
            await repository.insert_leaves(conn, leaf_rows)
            await repository.insert_nodes(conn, node_rows)
            await repository.insert_rejected(
                conn,
                [
                    {
                        "subject": source.subject[:200],
                        "stream_seq": source.stream_seq,
                        "payload": source.payload,
                        "reason": reason[:500],
                        "received_at": moment,
                    }
                    for source, reason in rejected
                ],
            )
            if leaf_rows:
                checkpoint = await self._sign(conn, tree, moment)
        self._tree = tree
        if checkpoint is not None and self._anchor is not None:
            # After the commit: a crash before this line leaves the file one checkpoint behind.
            await asyncio.to_thread(keep_note, self._anchor, checkpoint.note, checkpoint.size)
        for candidate in fresh:
            if candidate.event["action"] == "key_announced":
                self._remember_key(candidate.event)
        self.stats.batches += 1
        self.stats.deferred += len(judged.deferred)
        if judged.deferred:  # forget what came back long ago (or never will)
            recent = time.monotonic() - 10 * DEFER_SECONDS
            self._deferred = {position: at for position, at in self._deferred.items() if at > recent}
        if checkpoint is not None:
            self._checkpoint = checkpoint
            self.stats.checkpoints += 1
        self.stats.appended += len(fresh)
        self.stats.duplicates += duplicates
        self.stats.rejected += len(rejected)
        for source, reason in rejected:
            kind = _reason_kind(reason)
            self.stats.rejected_reasons[kind] = self.stats.rejected_reasons.get(kind, 0) + 1
            log.warning("kept aside a message on %s (stream seq %s): %s", source.subject, source.stream_seq, reason)
        return BatchOutcome(len(fresh), duplicates, [reason for _, reason in rejected], checkpoint)

    async def _sign(self, conn: AsyncConnection, tree: CompactRange, moment: datetime) -> StoredCheckpoint:
        root = tree.root()
        previous = self._checkpoint
        if previous is not None:
            try:
                await _prove_extends(conn, tree, previous.size, previous.root)
            except ProofError as exc:
                raise LogDamaged(
                    f"the new tree of size {tree.size} is not consistent with checkpoint {previous.size}: {exc}"
                ) from None
        note = sign_checkpoint(Checkpoint(self._origin, tree.size, root), self._log_key)
        checkpoint = StoredCheckpoint(tree.size, root, note, moment)
        await repository.insert_checkpoint(conn, checkpoint)
        return checkpoint


async def _prove_extends(conn: AsyncConnection, tree: CompactRange, size: int, root: bytes) -> None:
    """Raise ProofError unless ``tree`` extends the tree of its first ``size`` (fewer) leaves
    whose root is ``root``: a consistency proof from the stored subtree hashes."""
    hashes = await repository.fetch_hashes(conn, consistency_nodes(size, tree.size))
    verify_consistency(size, tree.size, root, tree.root(), consistency_proof(size, tree.size, hashes))
