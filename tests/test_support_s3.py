"""The tests' own RGWs: one left behind by a session that died is stopped and wiped by the next."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.s3 import remove_abandoned_rgws


def _folder(owner: int) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="custody-rgw-"))
    (folder / "owner.pid").write_text(str(owner))
    (folder / "run").mkdir()
    return folder


def test_the_folder_of_a_session_that_died_is_wiped_and_a_living_ones_kept() -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = _folder(int(ended.stdout))
    living = _folder(os.getpid())
    try:
        remove_abandoned_rgws()
        assert not abandoned.exists()
        assert living.exists()
    finally:
        shutil.rmtree(abandoned, ignore_errors=True)
        shutil.rmtree(living, ignore_errors=True)
