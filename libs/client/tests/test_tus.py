"""The tus uploader: metadata encoding, chunked PATCHes with checksums, retries, and resuming
across runs, against an in-memory tus server."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody_client.errors import AuthError, InvalidRequest, NetworkError, NotFound, VerificationFailed
from custody_client.resume import ResumeState
from custody_client.tus import (
    _ChunkReader,
    MIN_CHUNK_SIZE,
    PATCH_SECONDS,
    Backoff,
    TusUploader,
    chunk_checksum,
    decode_metadata,
    encode_metadata,
)

ENDPOINT = "http://intake/v1/uploads"
CHUNK = 64 * 1024


# --- metadata -----------------------------------------------------------------------------


def test_metadata_is_key_space_base64_pairs_joined_by_commas() -> None:
    header = encode_metadata({"filename": "photo 1.jpg", "case": "UA-2024-17"})
    assert header == "filename cGhvdG8gMS5qcGc=,case VUEtMjAyNC0xNw=="


def test_metadata_with_an_empty_value_is_a_bare_key() -> None:
    assert encode_metadata({"notes": "", "case": "C"}) == "notes,case Qw=="
    assert decode_metadata("notes,case Qw==") == {"notes": "", "case": "C"}


def test_metadata_values_are_utf8_before_base64() -> None:
    header = encode_metadata({"title": "Дитячий будинок №3, Херсон"})
    key, value = header.split(" ")
    assert key == "title"
    assert base64.b64decode(value).decode() == "Дитячий будинок №3, Херсон"


@pytest.mark.parametrize("key", ["", "with space", "with,comma", "ключ", "tab\tkey"])
def test_metadata_keys_must_be_plain_ascii_tokens(key: str) -> None:
    with pytest.raises(ValueError, match="tus metadata key"):
        encode_metadata({key: "value"})


def test_malformed_metadata_is_refused_when_decoding() -> None:
    with pytest.raises(ValueError, match="not base64"):
        decode_metadata("title not-base64!")
    with pytest.raises(ValueError, match="twice"):
        decode_metadata("a YQ==,a Yg==")


@given(
    st.dictionaries(
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=","), min_size=1),
        st.text(),
        max_size=8,
    )
)
def test_metadata_round_trips(metadata: dict[str, str]) -> None:
    assert decode_metadata(encode_metadata(metadata)) == metadata


def test_chunk_checksum_names_crc32_and_gives_the_base64_of_its_four_bytes() -> None:
    assert chunk_checksum(b"abc") == "crc32 " + base64.b64encode(bytes.fromhex("352441c2")).decode()
    assert chunk_checksum(memoryview(b"abc")) == chunk_checksum(b"abc")


def test_backoff_grows_exponentially_up_to_its_ceiling() -> None:
    backoff = Backoff(initial=1, factor=2, maximum=8)
    for failures, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (12, 8)]:
        delay = backoff.delay(failures)
        assert ceiling / 2 <= delay <= ceiling


# --- uploading ----------------------------------------------------------------------------


def _file(tmp_path: Path, size: int, name: str = "evidence.bin") -> tuple[Path, str]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _uploader(server, tmp_path: Path, sleeps: list[float], attempts: int = 10, chunk: int = CHUNK) -> TusUploader:
    http = httpx.Client(transport=httpx.MockTransport(server), base_url="http://intake")
    return TusUploader(
        http,
        ENDPOINT,
        resume=ResumeState(tmp_path / "state"),
        chunk_size=chunk,
        backoff=Backoff(attempts=attempts),
        sleep=sleeps.append,
    )


def _outage(server):
    """A fault: from this request on, the network is down."""

    def fault(request: httpx.Request) -> None:
        server.down = True
        raise httpx.ConnectError("network is unreachable", request=request)

    return fault


def test_a_file_goes_up_in_checksummed_chunks_with_its_metadata(tmp_path: Path, tus_server) -> None:
    path, sha = _file(tmp_path, 3 * CHUNK + 123)
    progress: list[tuple[int, int]] = []
    upload = _uploader(tus_server, tmp_path, []).upload(
        path,
        metadata={"case": "C-1", "title": "Witness 4"},
        on_progress=lambda d, t: progress.append((d, t)),
    )
    stored = tus_server.only_upload()
    assert bytes(stored.data) == path.read_bytes()
    assert stored.metadata == {"case": "C-1", "title": "Witness 4"}
    assert upload.url.startswith("http://intake/v1/uploads/") and upload.resumed_from == 0
    patches = tus_server.patches()
    assert [int(p.headers["Upload-Offset"]) for p in patches] == [0, CHUNK, 2 * CHUNK, 3 * CHUNK]
    # The file's SHA-256 goes with the last PATCH only, as RFC 9530's Repr-Digest.
    assert ["Repr-Digest" in p.headers for p in patches] == [False, False, False, True]
    assert stored.stated_sha256 == upload.sha256 == sha
    assert all(p.headers["Content-Length"] == str(len(p.content)) for p in patches)
    assert not any("Transfer-Encoding" in p.headers for p in patches)
    assert all(p.headers["Upload-Checksum"] == chunk_checksum(p.content) for p in patches)
    assert progress[-1] == (path.stat().st_size, path.stat().st_size)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_an_empty_file_is_created_and_needs_no_patch(tmp_path: Path, tus_server) -> None:
    path, sha = _file(tmp_path, 0)
    _uploader(tus_server, tmp_path, []).upload(path, metadata={"case": "C"})
    assert tus_server.only_upload().length == 0
    assert tus_server.only_upload().metadata == {"case": "C", "sha256": sha}, "declared at creation: no PATCH"
    assert tus_server.patches() == []


def test_a_file_cut_short_while_it_goes_up_is_not_declared(tmp_path: Path, tus_server) -> None:
    path, _ = _file(tmp_path, 3 * CHUNK)

    def cut_short(request: httpx.Request) -> None:
        if request.method == "PATCH" and request.headers["Upload-Offset"] == "0":
            with open(path, "r+b") as file:
                file.truncate(CHUNK)

    tus_server.faults.append(lambda request: None)
    tus_server.faults.append(cut_short)
    with pytest.raises(VerificationFailed, match="shorter|to the end"):
        _uploader(tus_server, tmp_path, []).upload(path, metadata={"case": "C"})
    assert tus_server.only_upload().stated_sha256 is None


def test_server_errors_and_locks_are_retried_with_backoff(tmp_path: Path, tus_server, faults, sleeps) -> None:
    path, sha = _file(tmp_path, 2 * CHUNK)
    tus_server.faults.extend(
        [
            faults.status(503),  # POST
            lambda r: None,  # POST again: served
            faults.status(423, headers={"Retry-After": "7"}),  # first PATCH: the upload is locked
            lambda r: None,  # HEAD
            faults.status(500),  # PATCH again
        ]
    )
    _uploader(tus_server, tmp_path, sleeps).upload(path, metadata={"case": "C"})
    assert bytes(tus_server.only_upload().data) == path.read_bytes()
    assert len(sleeps) == 3
    assert sleeps[1] >= 7, "Retry-After is honoured"


def test_a_damaged_chunk_is_sent_again(tmp_path: Path, tus_server, faults, sleeps) -> None:
    path, sha = _file(tmp_path, CHUNK)
    tus_server.faults.extend([lambda r: None, faults.status(460, "checksum mismatch")])
    _uploader(tus_server, tmp_path, sleeps).upload(path, metadata={"case": "C"})
    assert bytes(tus_server.only_upload().data) == path.read_bytes()
    assert len(tus_server.patches()) == 2


def test_a_dropped_connection_continues_from_the_servers_offset(tmp_path: Path, tus_server, faults, sleeps) -> None:
    path, sha = _file(tmp_path, 3 * CHUNK)
    tus_server.faults.extend([lambda r: None, lambda r: None, faults.drop_connection_after(0.5)])
    _uploader(tus_server, tmp_path, sleeps).upload(path, metadata={"case": "C"})
    assert bytes(tus_server.only_upload().data) == path.read_bytes()
    offsets = [int(p.headers["Upload-Offset"]) for p in tus_server.patches()]
    assert offsets == [0, CHUNK, CHUNK + CHUNK // 2, 2 * CHUNK + CHUNK // 2]
    heads = [r for r in tus_server.requests if r.method == "HEAD"]
    assert len(heads) == 1


def test_an_offset_conflict_is_resolved_by_asking_the_server(tmp_path: Path, tus_server, faults, sleeps) -> None:
    path, sha = _file(tmp_path, 2 * CHUNK)
    tus_server.faults.extend([lambda r: None, faults.status(409, "offset mismatch")])
    _uploader(tus_server, tmp_path, sleeps).upload(path, metadata={"case": "C"})
    assert bytes(tus_server.only_upload().data) == path.read_bytes()


def test_too_large_chunks_are_halved(tmp_path: Path, tus_server) -> None:
    path, sha = _file(tmp_path, 1024 * 1024)
    tus_server.max_chunk = 300 * 1024
    _uploader(tus_server, tmp_path, [], chunk=1024 * 1024).upload(path, metadata={"case": "C"})
    assert bytes(tus_server.only_upload().data) == path.read_bytes()
    sizes = [len(p.content) for p in tus_server.patches()]
    assert sizes[:3] == [1024 * 1024, 512 * 1024, 256 * 1024], "refused chunks are halved down to 256 KiB"
    assert sizes[2:] == [256 * 1024] * 4


def test_a_file_that_shrinks_during_the_upload_is_refused(tmp_path: Path, tus_server) -> None:
    path, sha = _file(tmp_path, 3 * CHUNK)

    def shrink(request: httpx.Request) -> None:
        with open(path, "r+b") as file:
            file.truncate(CHUNK + CHUNK // 2)

    tus_server.faults.extend([lambda r: None, shrink])  # the file shrinks while its first chunk is sent
    with pytest.raises(VerificationFailed, match="became shorter while it was being uploaded"):
        _uploader(tus_server, tmp_path, []).upload(path, metadata={"case": "C"})
    assert len(tus_server.only_upload().data) < 3 * CHUNK


def test_reading_ahead_never_overwrites_the_chunk_being_sent(tmp_path: Path) -> None:
    data = os.urandom(5000)
    path = tmp_path / "file"
    path.write_bytes(data)
    with _ChunkReader(path) as reader:
        chunk, checksum = reader.read(0, 1000)
        reader.read_ahead(1000, 1000)
        reader.read_ahead(3000, 2000)  # a longer chunk: that buffer grows
        reader._thread.submit(lambda: None).result()  # every read ahead has landed
        assert bytes(chunk) == data[:1000] and checksum == chunk_checksum(data[:1000])
        ahead, _ = reader.read(3000, 2000)
        assert bytes(ahead) == data[3000:]
        reader.read_ahead(0, 2000)
        reader._thread.submit(lambda: None).result()
        assert bytes(ahead) == data[3000:]
        again, _ = reader.read(2000, 1000)  # not the one read ahead: read now
        assert bytes(again) == data[2000:3000]


def _adaptive(server, tmp_path: Path, sleeps: list[float], patch_seconds: float, start: int, most: int) -> TusUploader:
    """An uploader whose every PATCH takes ``patch_seconds`` by its clock."""
    ticks = iter(range(10_000))
    http = httpx.Client(transport=httpx.MockTransport(server), base_url="http://intake")
    return TusUploader(
        http,
        ENDPOINT,
        chunk_size=start,
        max_chunk_size=most,
        backoff=Backoff(attempts=5),
        sleep=sleeps.append,
        clock=lambda: next(ticks) * patch_seconds,  # read as a PATCH starts and as it ends
    )


def test_adaptive_chunks_double_while_patches_are_quick_up_to_their_ceiling(tmp_path: Path, tus_server) -> None:
    size = 13 * MIN_CHUNK_SIZE + 5
    path, sha = _file(tmp_path, size)
    uploader = _adaptive(tus_server, tmp_path, [], PATCH_SECONDS / 4, MIN_CHUNK_SIZE, 4 * MIN_CHUNK_SIZE)
    uploader.upload(path, metadata={"case": "C"})
    assert bytes(tus_server.only_upload().data) == path.read_bytes()
    sizes = [len(p.content) for p in tus_server.patches()]
    assert sizes == [MIN_CHUNK_SIZE * n for n in (1, 2, 4, 4)] + [2 * MIN_CHUNK_SIZE + 5]


def test_adaptive_chunks_keep_their_size_while_patches_take_about_the_target(tmp_path: Path, tus_server) -> None:
    path, sha = _file(tmp_path, 3 * MIN_CHUNK_SIZE)
    uploader = _adaptive(tus_server, tmp_path, [], PATCH_SECONDS, MIN_CHUNK_SIZE, 4 * MIN_CHUNK_SIZE)
    uploader.upload(path, metadata={"case": "C"})
    assert [len(p.content) for p in tus_server.patches()] == [MIN_CHUNK_SIZE] * 3


def test_adaptive_chunks_halve_after_a_slow_patch_down_to_the_minimum(tmp_path: Path, tus_server) -> None:
    size = 8 * MIN_CHUNK_SIZE
    path, sha = _file(tmp_path, size)
    uploader = _adaptive(tus_server, tmp_path, [], 3 * PATCH_SECONDS, 4 * MIN_CHUNK_SIZE, 8 * MIN_CHUNK_SIZE)
    uploader.upload(path, metadata={"case": "C"})
    assert bytes(tus_server.only_upload().data) == path.read_bytes()
    sizes = [len(p.content) for p in tus_server.patches()]
    assert sizes == [MIN_CHUNK_SIZE * n for n in (4, 2, 1, 1)]


def test_adaptive_chunks_halve_after_a_failed_patch(tmp_path: Path, tus_server, faults, sleeps) -> None:
    size = 8 * MIN_CHUNK_SIZE
    path, sha = _file(tmp_path, size)
    tus_server.faults.extend([lambda r: None, faults.status(503)])  # POST served, first PATCH refused
    uploader = _adaptive(tus_server, tmp_path, sleeps, PATCH_SECONDS, 4 * MIN_CHUNK_SIZE, 8 * MIN_CHUNK_SIZE)
    uploader.upload(path, metadata={"case": "C"})
    assert bytes(tus_server.only_upload().data) == path.read_bytes()
    sizes = [len(p.content) for p in tus_server.patches()]
    assert sizes == [4 * MIN_CHUNK_SIZE] + [2 * MIN_CHUNK_SIZE] * 4


def test_an_interrupted_upload_resumes_on_the_next_run(tmp_path: Path, tus_server, faults, sleeps) -> None:
    path, sha = _file(tmp_path, 4 * CHUNK)
    metadata = {"case": "C", "sha256": sha}
    tus_server.faults.extend([lambda r: None, lambda r: None, lambda r: None, faults.drop_connection_after(0.25)])
    tus_server.faults.append(_outage(tus_server))  # the network goes away for good mid-third chunk
    first = _uploader(tus_server, tmp_path, sleeps, attempts=3)
    with pytest.raises(NetworkError, match="run the same command again"):
        first.upload(path, metadata=metadata)
    stored = tus_server.only_upload()
    assert len(stored.data) == 2 * CHUNK + CHUNK // 4

    tus_server.down = False
    patches_before = len(tus_server.patches())
    second = _uploader(tus_server, tmp_path, sleeps)
    upload = second.upload(path, metadata=metadata)
    assert upload.resumed_from == 2 * CHUNK + CHUNK // 4
    assert len(tus_server.uploads) == 1, "no second upload was created"
    assert bytes(stored.data) == path.read_bytes() and stored.stated_sha256 == sha
    resumed = tus_server.patches()[patches_before:]
    assert int(resumed[0].headers["Upload-Offset"]) == 2 * CHUNK + CHUNK // 4


def test_a_finished_upload_is_not_sent_again(tmp_path: Path, tus_server) -> None:
    path, sha = _file(tmp_path, CHUNK)
    uploader = _uploader(tus_server, tmp_path, [])
    first = uploader.upload(path, metadata={"case": "C"})
    requests = len(tus_server.requests)
    again = uploader.upload(path, metadata={"case": "C"})
    assert again.url == first.url and again.resumed_from == CHUNK
    assert [r.method for r in tus_server.requests[requests:]] == ["HEAD"]


def test_a_finished_upload_the_server_handed_on_is_not_sent_again(tmp_path: Path, tus_server) -> None:
    path, sha = _file(tmp_path, CHUNK)
    uploader = _uploader(tus_server, tmp_path, [])
    first = uploader.upload(path, metadata={"case": "C"})
    tus_server.uploads.clear()  # intake forgot the tus resource once the submission completed
    again = uploader.upload(path, metadata={"case": "C"})
    assert again.url == first.url
    assert tus_server.uploads == {}


def test_an_expired_unfinished_upload_starts_afresh(tmp_path: Path, tus_server, faults, sleeps) -> None:
    path, sha = _file(tmp_path, 2 * CHUNK)
    tus_server.faults.extend([lambda r: None, lambda r: None, _outage(tus_server)])
    with pytest.raises(NetworkError):
        _uploader(tus_server, tmp_path, sleeps, attempts=2).upload(path, metadata={"case": "C"})
    tus_server.down = False
    tus_server.uploads.clear()  # expired on the server
    upload = _uploader(tus_server, tmp_path, sleeps).upload(path, metadata={"case": "C"})
    assert upload.resumed_from == 0
    assert bytes(tus_server.only_upload().data) == path.read_bytes()


def test_different_metadata_is_a_different_submission(tmp_path: Path, tus_server) -> None:
    path, sha = _file(tmp_path, CHUNK)
    uploader = _uploader(tus_server, tmp_path, [])
    a = uploader.upload(path, metadata={"case": "A"})
    b = uploader.upload(path, metadata={"case": "B"})
    assert a.url != b.url and len(tus_server.uploads) == 2


def test_refusals_are_not_retried_and_carry_the_servers_sentence(tmp_path: Path, tus_server, faults, sleeps) -> None:
    path, sha = _file(tmp_path, CHUNK)
    tus_server.faults.append(faults.status(403, "you are not assigned case C"))
    with pytest.raises(AuthError) as caught:
        _uploader(tus_server, tmp_path, sleeps).upload(path, metadata={"case": "C"})
    assert caught.value.detail == "you are not assigned case C"
    assert caught.value.status == 403
    assert sleeps == []

    tus_server.faults.append(faults.status(413, "the file is larger than 64 GiB"))
    with pytest.raises(InvalidRequest, match="larger than 64 GiB"):
        _uploader(tus_server, tmp_path, sleeps).upload(path, metadata={"case": "C"})


def test_an_upload_removed_mid_transfer_is_reported_and_forgotten(tmp_path: Path, tus_server, faults, sleeps) -> None:
    path, sha = _file(tmp_path, 2 * CHUNK)

    def vanish(request: httpx.Request) -> httpx.Response:
        tus_server.uploads.clear()
        return httpx.Response(503)

    tus_server.faults.extend([lambda r: None, vanish])
    uploader = _uploader(tus_server, tmp_path, sleeps)
    with pytest.raises(NotFound, match="expired or was removed"):
        uploader.upload(path, metadata={"case": "C"})
    assert ResumeState(tmp_path / "state").path.read_text().count("http") == 0


def test_an_upload_the_token_may_not_continue_is_started_afresh(tmp_path: Path, tus_server, faults, sleeps) -> None:
    path, sha = _file(tmp_path, 2 * CHUNK)
    tus_server.faults.extend([lambda r: None, lambda r: None, _outage(tus_server)])
    with pytest.raises(NetworkError):
        _uploader(tus_server, tmp_path, sleeps, attempts=2).upload(path, metadata={"case": "C"})
    tus_server.down = False
    tus_server.faults.append(faults.status(403, "this upload belongs to someone else"))
    upload = _uploader(tus_server, tmp_path, sleeps).upload(path, metadata={"case": "C"})
    assert upload.resumed_from == 0 and len(tus_server.uploads) == 2
    assert bytes(tus_server.uploads[upload.url.rsplit("/", 1)[1]].data) == path.read_bytes()


def test_an_expired_token_while_resuming_is_reported_not_worked_around(tmp_path: Path, tus_server, faults, sleeps) -> None:
    path, sha = _file(tmp_path, 2 * CHUNK)
    tus_server.faults.extend([lambda r: None, lambda r: None, _outage(tus_server)])
    with pytest.raises(NetworkError):
        _uploader(tus_server, tmp_path, sleeps, attempts=2).upload(path, metadata={"case": "C"})
    tus_server.down = False
    tus_server.faults.append(faults.status(401, "token has expired; get a new one"))
    with pytest.raises(AuthError, match="token has expired"):
        _uploader(tus_server, tmp_path, sleeps).upload(path, metadata={"case": "C"})
    assert len(tus_server.uploads) == 1


@pytest.mark.parametrize("value", ["4\u00b2", "9" * 5000, "-1", " "])
def test_a_server_offset_that_is_no_plain_number_is_reported_not_a_traceback(tmp_path: Path, value: str) -> None:
    """isdigit() passes "²" and int() refuses it, as it refuses over 4300 digits."""
    path, sha = _file(tmp_path, CHUNK)

    def server(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, headers={"Location": "/v1/uploads/x", "Tus-Resumable": "1.0.0"})
        return httpx.Response(204, headers={"Upload-Offset": value.encode("latin-1"), "Tus-Resumable": "1.0.0"})

    with pytest.raises(NetworkError, match="sent no valid Upload-Offset"):
        _uploader(server, tmp_path, []).upload(path, metadata={"case": "C"})
