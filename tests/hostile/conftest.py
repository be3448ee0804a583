"""One running stack per test module (the embedded default on the shared NATS), and a token
for each role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nats import NATS_URL, provision_namespace, remove_namespace
from tests.support.stack import Stack

CASE = "UA-2024-017"
ROLES = ("investigator", "prosecutor", "auditor", "admin")


def started_stack(home: Path) -> Iterator[Stack]:
    """A stack in its own NATS namespace, started; stopped and its namespace removed after."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    provision_namespace(NATS_URL, namespace)
    home.mkdir(parents=True, exist_ok=True)
    stack = Stack(home=home, namespace=namespace)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        remove_namespace(NATS_URL, namespace)


@pytest.fixture(scope="module")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The three services as real processes, shared by the tests of one module."""
    yield from started_stack(tmp_path_factory.mktemp("stack") / "home")


@pytest.fixture(scope="module")
def tokens(running_stack: Stack) -> dict[str, str]:
    """A valid token per role: investigator and prosecutor of CASE, auditor and admin of every case."""
    cases = {"investigator": [CASE], "prosecutor": [CASE], "auditor": ["*"], "admin": ["*"]}
    return {role: running_stack.token(f"{role}-1", [role], cases[role]) for role in ROLES}
