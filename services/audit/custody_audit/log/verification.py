"""``custody-audit verify-log``: recompute the whole tree from the stored leaves and check it
against everything stored beside it — leaf hashes, the indexed columns, each item's chain
(item_seq, prev_leaf), every stored subtree hash, every checkpoint's signature and root, and
every checkpoint's RFC 3161 time-stamp — and against checkpoints kept outside the database
(audit's own file, checkpoints an auditor saved), which alone reveal newest entries removed
together with their checkpoints. Names the first altered entry."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncEngine

from custody_audit.log import repository
from custody_audit.log.checkpoint import CheckpointError, Verifier, verify_checkpoint
from custody_audit.log.entry import parse_leaf
from custody_audit.log.jcs import canonical
from custody_audit.log.merkle import CompactRange, NodeId, leaf_hash
from custody_audit.log.repository import StoredLeaf
from custody_audit.timestamps import repository as timestamp_repository
from custody_audit.timestamps.authority import ReplyRejected, check_reply

MAX_PROBLEMS = 100


@dataclass
class LogReport:
    """What verify-log found."""

    entries: int = 0
    checkpoints: int = 0
    nodes: int = 0
    timestamps: int = 0
    """Stored time-stamp tokens checked against their checkpoints."""
    kept: int = 0
    """Checkpoints kept outside the database that verified and were compared with the log."""
    problems: list[str] = field(default_factory=list)
    first_altered_index: int | None = None
    """The smallest index whose entry, hash, columns or signature do not match what was logged."""
    altered_range: tuple[int, int] | None = None
    """When only a stored subtree hash disagrees: the first entries (inclusive range) it covers."""
    more_problems: int = 0

    @property
    def ok(self) -> bool:
        """Whether the log passed every check."""
        return not self.problems and not self.more_problems

    def problem(self, message: str, index: int | None = None) -> None:
        """Record a finding; ``index`` names the entry it concerns."""
        if index is not None and (self.first_altered_index is None or index < self.first_altered_index):
            self.first_altered_index = index
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)
        else:
            self.more_problems += 1


def _columns_of(entry: dict[str, Any]) -> dict[str, Any]:
    event = entry["event"]
    prev = entry["prev_leaf"]
    return {
        "event_id": event.get("id"),
        "service": event.get("service"),
        "action": event.get("action"),
        "evidence_id": event.get("evidence_id"),
        "case": event.get("case"),
        "item_seq": entry["item_seq"],
        "prev_leaf": bytes.fromhex(prev) if isinstance(prev, str) else prev,
    }


class _Signatures:
    """Each service's keys: those trusted now, and those the log itself announced."""

    def __init__(self, trusted: Mapping[str, Ed25519PublicKey]) -> None:
        self._keys: dict[str, list[Ed25519PublicKey]] = {s: [k] for s, k in trusted.items()}

    def check(self, event: dict[str, Any]) -> bool:
        service, sig = event.get("service"), event.get("sig")
        if not isinstance(sig, str):
            return False
        try:
            signature = base64.b64decode(sig, validate=True)
            message = canonical({k: v for k, v in event.items() if k != "sig"})
        except Exception:  # noqa: BLE001 — an undecodable signature is a failed one
            return False
        for key in self._keys.get(service, []):
            try:
                key.verify(signature, message)
                return True
            except InvalidSignature:
                continue
        return False

    def learn(self, event: dict[str, Any]) -> None:
        """Trust a key a service announced in the log, once that announcement verified."""
        details = event.get("details") or {}
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(details.get("public_key", ""), validate=True))
        except Exception:  # noqa: BLE001 — an announcement of no usable key teaches nothing
            return
        self._keys.setdefault(event["service"], []).append(key)


async def verify_log(
    engine: AsyncEngine,
    origin: str,
    verifier: Verifier | str,
    trusted_keys: Mapping[str, Ed25519PublicKey] | None = None,
    timestamp_roots: Sequence[x509.Certificate] = (),
    kept: Mapping[str, str] | None = None,
) -> LogReport:
    """Check the whole stored log. ``trusted_keys`` (service → event key) adds a check of
    every event's signature; keys the log announces are learnt as it is read. Each stored
    time-stamp must cover its checkpoint's body, and with ``timestamp_roots`` be signed under
    one of them. Each note of ``kept`` (where it was kept → its text) must be signed by the
    log, and the log must hold its size with its root."""
    report = LogReport()
    kept_roots = _kept_roots(kept or {}, verifier, origin, report)
    signatures = _Signatures(trusted_keys) if trusted_keys is not None else None
    async with engine.connect() as conn:
        stored_checkpoints = await repository.all_checkpoints(conn)
        stored_timestamps = await timestamp_repository.all_timestamps(conn)
    report.checkpoints = len(stored_checkpoints)
    expected_roots: dict[int, bytes] = {}
    bodies: dict[int, bytes] = {}
    for checkpoint in stored_checkpoints:
        try:
            signed = verify_checkpoint(checkpoint.note, verifier, origin)
        except CheckpointError as exc:
            report.problem(f"checkpoint {checkpoint.size}: {exc}")
            continue
        if signed.size != checkpoint.size or signed.root != checkpoint.root:
            report.problem(f"checkpoint {checkpoint.size}: the stored size or root differs from its signed note")
        expected_roots[checkpoint.size] = signed.root
        bodies[checkpoint.size] = signed.body().encode()
    for stamp in stored_timestamps:
        _check_timestamp(stamp, bodies.get(stamp.size), timestamp_roots, report)

    tree = CompactRange()
    _compare_kept(tree, kept_roots, report)
    heads: dict[str, tuple[int, bytes]] = {}
    async with engine.connect() as leaf_conn, engine.connect() as node_conn:
        node_stream = repository.stream_nodes(node_conn)
        pending_node: tuple[NodeId, bytes] | None = await anext(node_stream, None)
        async for stored in repository.stream_leaves(leaf_conn):
            index = tree.size
            if stored.index != index:
                report.problem(f"entry {index} is missing (the next stored entry is {stored.index})", index)
                break
            digest = leaf_hash(stored.leaf)
            if digest != stored.leaf_hash:
                report.problem(f"entry {index}: its leaf bytes do not match its stored leaf hash", index)
            _check_entry(stored, digest, heads, signatures, report)
            for node, recomputed in tree.append(digest):
                if pending_node is None or pending_node[0] != node:
                    report.problem(f"the stored hash of subtree {tuple(node)} is missing")
                    continue
                if pending_node[1] != recomputed:
                    report.problem(
                        f"subtree {tuple(node)} (entries {node.start}–{node.end - 1}) does not match its stored hash"
                    )
                    if report.altered_range is None:
                        report.altered_range = (node.start, node.end - 1)
                report.nodes += 1
                pending_node = await anext(node_stream, None)
            if tree.size in expected_roots and tree.root() != expected_roots[tree.size]:
                report.problem(f"checkpoint {tree.size}: the root recomputed from the entries differs from the signed root")
            _compare_kept(tree, kept_roots, report)
        if pending_node is not None:
            report.problem(f"a stored subtree hash {tuple(pending_node[0])} covers entries beyond the log")
    report.entries = tree.size
    latest = max(expected_roots, default=0)
    if tree.size != latest:
        report.problem(f"the log holds {tree.size} entries but its latest valid checkpoint covers {latest}")
    for size in expected_roots:
        if size > tree.size:
            report.problem(f"checkpoint {size} covers entries the log does not hold")
    for size, notes in sorted(kept_roots.items()):
        for where, _ in notes if size > tree.size else ():
            report.problem(
                f"the checkpoint kept in {where} covers {size} entries, but the log holds {tree.size}: "
                "entries were removed, with the checkpoints that covered them"
            )
    return report


def _kept_roots(
    kept: Mapping[str, str], verifier: Verifier | str, origin: str, report: LogReport
) -> dict[int, list[tuple[str, bytes]]]:
    """Size → (where kept, root) of every kept note the log signed; the others are problems."""
    roots: dict[int, list[tuple[str, bytes]]] = {}
    for where, note in kept.items():
        try:
            signed = verify_checkpoint(note, verifier, origin)
        except CheckpointError as exc:
            report.problem(f"the checkpoint kept in {where} is not one this log signed: {exc}")
            continue
        roots.setdefault(signed.size, []).append((where, signed.root))
        report.kept += 1
    return roots


def _compare_kept(tree: CompactRange, kept_roots: dict[int, list[tuple[str, bytes]]], report: LogReport) -> None:
    for where, root in kept_roots.get(tree.size, ()):
        if tree.root() != root:
            report.problem(
                f"the checkpoint kept in {where} gives another root for the first {tree.size} entries: "
                "the log was rewritten since it was signed (a fork)"
            )


def _check_timestamp(
    stamp: timestamp_repository.StoredTimestamp,
    body: bytes | None,
    roots: Sequence[x509.Certificate],
    report: LogReport,
) -> None:
    report.timestamps += 1
    if body is None:
        report.problem(f"time-stamp of checkpoint {stamp.size}: the log holds no valid checkpoint of that size")
        return
    try:
        checked = check_reply(stamp.response, hashlib.sha256(body).digest(), None, roots)
    except ReplyRejected as exc:
        report.problem(f"time-stamp of checkpoint {stamp.size}: {exc}")
        return
    if checked.gen_time != stamp.gen_time:
        report.problem(
            f"time-stamp of checkpoint {stamp.size}: its stored time {stamp.gen_time.isoformat()} is not the "
            f"token's {checked.gen_time.isoformat()}"
        )


def _check_entry(
    stored: StoredLeaf,
    digest: bytes,
    heads: dict[str, tuple[int, bytes]],
    signatures: _Signatures | None,
    report: LogReport,
) -> None:
    index = stored.index
    try:
        entry = parse_leaf(stored.leaf)
    except ValueError as exc:
        report.problem(f"entry {index}: {exc}", index)
        return
    columns = _columns_of(entry)
    actual = {
        "event_id": stored.event_id,
        "service": stored.service,
        "action": stored.action,
        "evidence_id": stored.evidence_id,
        "case": stored.case,
        "item_seq": stored.item_seq,
        "prev_leaf": stored.prev_leaf,
    }
    differing = sorted(name for name in columns if columns[name] != actual[name])
    if differing:
        report.problem(f"entry {index}: stored columns differ from the entry: {', '.join(differing)}", index)
    evidence_id = columns["evidence_id"]
    if evidence_id is not None:
        last_seq, last_leaf = heads.get(evidence_id, (0, None))
        if columns["item_seq"] != last_seq + 1 or columns["prev_leaf"] != last_leaf:
            report.problem(
                f"entry {index}: item {evidence_id} event {columns['item_seq']} does not follow event {last_seq}",
                index,
            )
        heads[evidence_id] = (last_seq + 1, digest)
    elif columns["item_seq"] is not None or columns["prev_leaf"] is not None:
        report.problem(f"entry {index}: an event about no item carries an item sequence", index)
    if signatures is not None:
        event = entry["event"]
        # A key announcement is signed by the key it announces; the log vouches for it since.
        if event.get("action") == "key_announced" and _self_signed(event):
            signatures.learn(event)
        if not signatures.check(event):
            service = event.get("service")
            report.problem(f"entry {index}: the event's signature does not verify under {service}'s keys", index)


def _self_signed(event: dict[str, Any]) -> bool:
    probe = _Signatures({})
    probe.learn(event)
    return probe.check(event)
