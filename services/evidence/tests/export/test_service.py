"""Waiting for the custody ledger: an export answers only once the ledger shows every event,
and gives up, saying so, when it does not in time. (The whole export, against the real audit
service, is exercised by tests/test_court_package.py.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from custody_evidence.errors import LedgerTimeout
from custody_evidence.export.service import ExportService


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
