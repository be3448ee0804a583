"""The browser's own ledger checks (web/src/ledger.js), run by Node's test runner: RFC 6962/9162
proofs against the published vectors and a reference tree, signed-note checkpoints, and the
verdict per custody event."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


def test_the_browsers_ledger_checks_pass_their_own_suite() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed to test the web app's ledger checks: install Node 20 (deploy/bootstrap.sh does)")
    if not (WEB / "node_modules" / "@noble" / "curves").is_dir():
        pytest.fail("web/node_modules is missing: run `npm ci` in web/ (make setup does it)")
    run = subprocess.run([node, "--test", "test/"], cwd=WEB, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout and "# pass 0" not in run.stdout
