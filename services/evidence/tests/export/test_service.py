"""Waiting for the custody ledger: an export answers only once the ledger shows every event,
and gives up, saying so, when it does not in time; a package of items with hostile file names,
built by the real builder against a custody log kept here, passes the offline verifier. (The
whole export, against the real audit service, is exercised by tests/test_court_package.py.)"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import unicodedata
import zipfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custody_client.package import EXIT_OK, verify_package
from custody_client.verify import LogKey
from custody_common.auth import Principal
from custody_common.events import canonical
from custody_common.merkle import leaf_hash
from custody_common.settings import Settings
from custody_evidence.errors import LedgerTimeout
from custody_evidence.export.schemas import ExportRequest
from custody_evidence.export.service import ExportService
from custody_evidence.fixity.service import FixityService
from custody_evidence.seal.schemas import SealOutcome
from custody_evidence.seal.service import Sealer
from custody_evidence.vault import Vault
from tests.support.rfc6962 import audit_path, tree_hash


class _SlowLedger:
    """A ledger whose chains show an event only after it has been asked ``after`` times."""

    def __init__(self, after: int | None) -> None:
        self.after = after
        self.asked: list[tuple[str, str]] = []

    async def chain(self, evidence_id: str, bearer: str, tree_size: int | None = None) -> dict[str, Any] | None:
        self.asked.append((evidence_id, bearer))
        shown = self.after is not None and len(self.asked) > self.after
        if not shown:
            return None if len(self.asked) % 2 else {"checkpoint": "", "events": []}
        return {"checkpoint": "", "events": [{"entry": {"event": {"id": f"event-of-{evidence_id}"}}}]}


async def test_waits_until_every_event_is_logged_asking_as_the_caller() -> None:
    ledger = _SlowLedger(after=3)
    service = ExportService(None, None, ledger, timedelta(seconds=30))  # type: ignore[arg-type]
    await service._await_logged("the-callers-token", {"item-1": "event-of-item-1", "item-2": "event-of-item-2"})
    assert {bearer for _, bearer in ledger.asked} == {"the-callers-token"}
    assert {evidence_id for evidence_id, _ in ledger.asked} == {"item-1", "item-2"}


async def test_gives_up_with_a_clear_message() -> None:
    service = ExportService(None, None, _SlowLedger(after=None), timedelta(seconds=0.3))  # type: ignore[arg-type]
    with pytest.raises(LedgerTimeout, match=r"did not log the export of 1 item\(s\) within 0.3 s \(first: item-1\)"):
        await service._await_logged("token", {"item-1": "event-1"})


# --- a whole package, whatever the investigators named their files ---------------------------


class _LogStandIn:
    """The custody ledger as an export reads it: every event of the vault's outbox logged in
    order (each item's ``item_seq``/``prev_leaf`` chain as audit links it), in an RFC 6962
    tree whose checkpoints a key of the test signs as C2SP notes."""

    def __init__(self, vault: Vault, origin: str, outbox: Callable[[Vault], Awaitable[list[dict[str, Any]]]]) -> None:
        self._vault = vault
        self._outbox = outbox
        self._origin = origin
        self._key = Ed25519PrivateKey.generate()
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._key_id = hashlib.sha256(origin.encode() + b"\n\x01" + raw).digest()[:4]
        encoded = base64.b64encode(bytes([1]) + raw).decode()
        self.verifier_key = f"{origin}+{self._key_id.hex()}+{encoded}"

    async def _leaves(self) -> list[bytes]:
        leaves: list[bytes] = []
        last: dict[str, tuple[int, str]] = {}
        for event in await self._outbox(self._vault):
            item = event.get("evidence_id")
            seq, prev = (last[item][0] + 1, last[item][1]) if item in last else (1, None)
            entry = {
                "event": event,
                "item_seq": seq if item else None,
                "prev_leaf": prev if item else None,
                "logged_at": "2025-05-01T10:00:00.000Z",
            }
            leaves.append(canonical(entry))
            if item:
                last[item] = (seq, leaf_hash(leaves[-1]).hex())
        return leaves

    def _note(self, hashes: list[bytes]) -> str:
        body = f"{self._origin}\n{len(hashes)}\n{base64.b64encode(tree_hash(hashes)).decode()}\n"
        signature = base64.b64encode(self._key_id + self._key.sign(body.encode())).decode()
        return f"{body}\n\u2014 {self._origin} {signature}\n"

    async def chain(self, evidence_id: str, bearer: str, tree_size: int | None = None) -> dict[str, Any] | None:
        leaves = await self._leaves()
        leaves = leaves[: tree_size or len(leaves)]
        hashes = [leaf_hash(leaf) for leaf in leaves]
        events = [
            {
                "index": i,
                "leaf": base64.b64encode(leaf).decode(),
                "entry": json.loads(leaf),
                "inclusion": [base64.b64encode(h).decode() for h in audit_path(i, hashes)],
            }
            for i, leaf in enumerate(leaves)
            if json.loads(leaf)["event"].get("evidence_id") == evidence_id
        ]
        return {"checkpoint": self._note(hashes), "events": events} if events else None

    async def checkpoint(self) -> str:
        return self._note([leaf_hash(leaf) for leaf in await self._leaves()])

    async def log_key(self) -> str:
        return self.verifier_key

    async def timestamp(self, checkpoint: Any, bearer: str) -> bytes | None:
        return None


HOSTILE_NAMES = [
    "photo.jpg",
    "photo.jpg",  # the same name twice
    "PHOTO.JPG",
    "photo (2).jpg",  # the name the second photo.jpg would be given
    "\u00e9cole.jpg",  # é as one code point ...
    "e\u0301cole.jpg",  # ... and as e + combining accent
    "\u00c9COLE.JPG",
    "Stra\u00dfe.txt",  # ß casefolds to ss
    "STRASSE.TXT",
    "\u0130stanbul.txt",  # İ casefolds to i + combining dot
    "i\u0307stanbul.txt",
    "C:evil.txt",
    "C:",
    "..a",
    "...",
    " .",
    "   ",
    "  leading and trailing spaces  ",
    ".hidden",
    "trailing dot.",
    "CON",
    "con.txt",
    "LPT1.tar.gz",
    "NUL.",
    "aux",
    "manifest.json",
    "custody",
    "custody:abc.json",
    "report.pdf",
    "VERIFY.md",
    "log-key.txt",
    '<>:"|?*.bin',
    "\u0436" * 255,
    "a" * 230 + "." + "x" * 24,
    "\U0001f4f7 \u202eexe.jpg\u200d",  # emoji, right-to-left override, zero-width joiner
    "\x85next line\u2028\u2029.txt",  # controls beyond ASCII, which the metadata schema lets through
    "a\uff0fb\uff3cc\u2215d.txt",  # full-width and division slashes: look like separators, are not
]
HOSTILE_TITLES = [
    "",
    "\u202eRight-to-left override \U0001f4f7 \u0645\u0631\u062d\u0628\u0627",
    "x" * 500,  # one word wider than a page
    "e" + "\u0301" * 200,  # one character under a stack of accents
    "lines\nand\ttabs",
]


async def test_a_package_of_hostile_file_names_verifies_offline(
    vault: Vault, sealer: Sealer, intake: Any, events: Any, settings: Settings, tmp_path: Path
) -> None:
    """Whatever the investigators named their files, the package the evidence service builds
    passes every check of ``custody verify``, against the pinned log key: each path spelled
    plainly and once ignoring case and normalization, no bytes between the zip's entries."""
    submitted = {}
    for n, filename in enumerate(HOSTILE_NAMES):
        submission = intake.submit(
            os.urandom(n * 37), case="UA-2024-017", filename=filename, title=HOSTILE_TITLES[n % len(HOSTILE_TITLES)]
        )
        assert await sealer.seal(submission.payload) == SealOutcome.SEALED
        submitted[str(submission.evidence_id)] = submission.plaintext
    ledger = _LogStandIn(vault, settings.log_origin, events)
    fixity = FixityService(vault, timedelta(days=30))
    service = ExportService(vault, fixity, ledger, timedelta(seconds=30))  # type: ignore[arg-type]
    prosecutor = Principal(sub="petra", roles=frozenset({"prosecutor"}), cases=frozenset({"UA-2024-017"}))
    request = ExportRequest(case="UA-2024-017", purpose="Disclosure to the defence")
    prepared = await service.prepare(prosecutor, "petra's token", request, "request-1")
    package = tmp_path / prepared.filename
    with package.open("wb") as out:
        async for chunk in service.stream(prepared):
            out.write(chunk)

    verdict = verify_package(package, LogKey.parse(ledger.verifier_key))

    assert verdict.failures == []
    assert verdict.exit_code == EXIT_OK
    checks = {"zip paths", "manifest signature", "log key", "checkpoint", "reading aids"}
    assert {f.check for f in verdict.findings} >= checks
    assert not [f for f in verdict.findings if f.check == "zip entries"]
    assert sorted(item.evidence_id for item in verdict.items) == sorted(submitted)
    with zipfile.ZipFile(package) as archive:
        for item in verdict.items:
            assert archive.read(item.path) == submitted[item.evidence_id]
        names = archive.namelist()
    files = [name for name in names if name.startswith("files/")]
    assert len(files) == len(HOSTILE_NAMES)
    assert len({unicodedata.normalize("NFC", name).casefold() for name in names}) == len(names)
