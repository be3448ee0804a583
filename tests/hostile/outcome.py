"""What became of a submission after the attack: its seal in the vault and its custody chain."""

from __future__ import annotations

import time

from tests.support.stack import Stack


def wait_for_outcome(stack: Stack, prosecutor: str, evidence_id: str, timeout: float = 120) -> dict:
    """The vault's record of ``evidence_id`` once it is sealed or rejected."""
    deadline = time.monotonic() + timeout
    with stack.client("evidence", prosecutor) as evidence:
        while True:
            answer = evidence.get(f"/v1/evidence/{evidence_id}")
            if answer.status_code == 200 and answer.json()["status"] in ("sealed", "rejected", "damaged"):
                return answer.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"{evidence_id} has no outcome: {answer.status_code} {answer.text[:300]}")
            time.sleep(0.3)


def custody_actions(stack: Stack, auditor: str, evidence_id: str, until: str, timeout: float = 60) -> list[str]:
    """The actions of the item's custody chain once ``until`` is among them."""
    deadline = time.monotonic() + timeout
    actions: list[str] = []
    with stack.client("audit", auditor) as audit:
        while True:
            answer = audit.get(f"/v1/custody/{evidence_id}")
            if answer.status_code == 200:
                actions = [e["entry"]["event"]["action"] for e in answer.json()["events"]]
                if until in actions:
                    return actions
            if time.monotonic() > deadline:
                kept_aside = [line for line in stack.log_path("audit").read_text().splitlines() if "kept aside" in line]
                raise AssertionError(
                    f"audit logged no {until} event for {evidence_id} in {timeout:g} s "
                    f"(its chain: {actions or answer.status_code}); audit kept aside {len(kept_aside)} messages"
                    + (f", e.g. {kept_aside[:3]}" if kept_aside else "")
                )
            time.sleep(0.3)


def still_up(stack: Stack) -> dict[str, str]:
    """Each service's process and /healthz: ``ok`` or what is wrong."""
    found = {}
    for service, process in stack.processes.items():
        if process.poll() is not None:
            found[service] = f"exited with {process.returncode}"
            continue
        with stack.client(service) as http:
            try:
                answer = http.get("/healthz", timeout=10)
                found[service] = "ok" if answer.status_code == 200 else f"/healthz answered {answer.status_code}"
            except Exception as exc:  # noqa: BLE001 — reported as the finding
                found[service] = f"/healthz failed: {exc!r}"
    return found


def log_excerpt(stack: Stack, service: str, size: int = 2500) -> str:
    """The service's last traceback (where a 5xx is explained), else the end of its log."""
    text = stack.log_path(service).read_text(errors="replace")
    start = text.rfind("Traceback (most recent call last)")
    if start >= 0:
        line_start = text.rfind("\n", 0, max(0, text.rfind("\n", 0, start))) + 1
        return text[line_start : line_start + size]
    return text[-size:]
