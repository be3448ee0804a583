"""The resume state: where it lives, that it is private, and that it says nothing in clear."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from custody_client.resume import ResumeState, state_folder, submission_key
from custody_client.tus import TusUploader


def test_the_state_folder_follows_custody_then_xdg_then_home() -> None:
    assert state_folder({"CUSTODY_STATE_DIR": "/s", "XDG_STATE_HOME": "/x", "HOME": "/h"}) == Path("/s")
    assert state_folder({"XDG_STATE_HOME": "/x", "HOME": "/h"}) == Path("/x/custody")
    assert state_folder({"HOME": "/h"}) == Path("/h/.local/state/custody")
    assert state_folder({"CUSTODY_STATE_DIR": "", "XDG_STATE_HOME": "", "HOME": "/h"}) == Path("/h/.local/state/custody")


def test_the_state_file_holds_no_name_path_hash_or_metadata_and_is_private(tmp_path: Path, tus_server) -> None:
    secret_name = "interview-witness-Olena-Kovalenko.mp4"
    folder = tmp_path / "victims-of-Izium"
    folder.mkdir()
    path = folder / secret_name
    data = os.urandom(100_000)
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    metadata = {"case": "UA-2022-IZIUM", "sha256": sha, "filename": secret_name, "title": "Testimony of O.K."}
    state = ResumeState(tmp_path / "state")
    http = httpx.Client(transport=httpx.MockTransport(tus_server))
    uploader = TusUploader(http, "http://intake/v1/uploads", resume=state, chunk_size=32 * 1024)
    upload = uploader.upload(path, metadata=metadata)

    text = state.path.read_text()
    for clear in ["Olena", "Kovalenko", "interview", "Izium", "IZIUM", "victims", "Testimony", sha, str(tmp_path)]:
        assert clear not in text, f"{clear!r} is readable in the resume state"
    document = json.loads(text)
    (key, entry), = document["uploads"].items()
    # The file stands for itself by its modification time and first MiB: it is not read whole first.
    fingerprint = hashlib.sha256(f"{path.stat().st_mtime_ns}\n".encode() + data[: 1024 * 1024]).hexdigest()
    assert key == submission_key(
        endpoint="http://intake/v1/uploads", path=path, size=len(data), fingerprint=fingerprint, metadata=metadata
    )
    assert entry["url"] == upload.url and entry["complete"] is True
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.folder.stat().st_mode) == 0o700


def test_a_state_file_made_readable_by_others_is_private_again_after_a_write(tmp_path: Path) -> None:
    state = ResumeState(tmp_path)
    state.remember("k", "http://intake/v1/uploads/1")
    os.chmod(state.path, 0o644)
    state.remember("k2", "http://intake/v1/uploads/2")
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600


def test_entries_are_remembered_completed_and_forgotten(tmp_path: Path) -> None:
    state = ResumeState(tmp_path)
    assert state.get("k") is None
    state.remember("k", "http://intake/v1/uploads/0190a7c2-0000-7000-8000-000000000001")
    assert state.get("k").url.endswith("0001") and not state.get("k").complete  # type: ignore[union-attr]
    state.mark_complete("k")
    assert state.get("k").complete  # type: ignore[union-attr]
    state.remember("other", "http://intake/v1/uploads/0190a7c2-0000-7000-8000-000000000002")
    state.forget_evidence("0190a7c2-0000-7000-8000-000000000001")
    assert state.get("k") is None and state.get("other") is not None
    state.forget("other")
    assert json.loads(state.path.read_text())["uploads"] == {}


def test_old_entries_are_dropped(tmp_path: Path) -> None:
    state = ResumeState(tmp_path)
    old = (datetime.now(UTC) - timedelta(days=45)).isoformat()
    state.path.write_text(json.dumps({"version": 1, "uploads": {"old": {"url": "http://i/v1/uploads/1", "created": old}}}))
    state.remember("new", "http://i/v1/uploads/2")
    assert state.get("old") is None and state.get("new") is not None


def test_a_damaged_state_file_costs_only_a_fresh_upload(tmp_path: Path) -> None:
    state = ResumeState(tmp_path)
    state.path.write_text("{not json")
    assert state.get("k") is None
    state.remember("k", "http://i/v1/uploads/1")
    assert state.get("k") is not None


def test_keys_differ_by_file_destination_and_metadata(tmp_path: Path) -> None:
    base = dict(endpoint="http://a/v1/uploads", path=tmp_path / "f", size=1, fingerprint="0" * 64, metadata={"case": "A"})
    key = submission_key(**base)  # type: ignore[arg-type]
    for change in [
        {"endpoint": "http://b/v1/uploads"},
        {"path": tmp_path / "g"},
        {"size": 2},
        {"fingerprint": "1" * 64},
        {"metadata": {"case": "B"}},
    ]:
        assert submission_key(**{**base, **change}) != key  # type: ignore[arg-type]
    assert submission_key(**{**base, "metadata": {"case": "A"}}) == key  # type: ignore[arg-type]
