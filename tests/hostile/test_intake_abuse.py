"""What a fuzzer cannot send intake, sent by hand on real connections: header blocks past 64 KiB,
metadata of a megabyte, bodies longer than they declare, bytes dripped one a second, and twenty
PATCHes racing for one submission. Each answer must be a 4xx (never a 5xx), nothing beyond what
was declared may be kept, and the service must stay up and keep serving everyone else."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import pytest

from tests.hostile.conftest import CASE
from tests.hostile.outcome import custody_actions, still_up, wait_for_outcome
from tests.hostile.wire import (
    Answer,
    OFFSET_STREAM,
    TUS,
    connect,
    create_upload,
    encode_metadata,
    exchange,
    patch,
    read_answer,
    request_head,
    resume,
    send_quietly,
    stored_offset,
    submission_metadata,
)
from tests.support.stack import Stack

KIB = 1024
MIB = 1024 * KIB
HEADER_LIMIT = 64 * KIB
"""The header block a service reads at most (``serve`` configures it)."""


def _creation_headers(token: str, content: bytes) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        **TUS,
        "Upload-Length": str(len(content)),
        "Upload-Metadata": submission_metadata(CASE, content),
        "Content-Length": "0",
    }


def _refused(answer_status: int | None) -> bool:
    return answer_status is not None and 400 <= answer_status < 500


# --- oversized headers and metadata ----------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"X-Padding": "a" * (HEADER_LIMIT + 6 * KIB)}, id="one-70KiB-header"),
        pytest.param({f"X-Field-{n}": "v" * 120 for n in range(600)}, id="600-headers-72KiB"),
        pytest.param({"X-Padding": "a" * MIB}, id="one-1MiB-header"),
    ],
)
def test_header_block_over_64_kib_is_refused(running_stack: Stack, tokens: dict[str, str], extra: dict) -> None:
    content = os.urandom(100)
    head = request_head("POST", "/v1/uploads", {**_creation_headers(tokens["investigator"], content), **extra})
    assert len(head) > HEADER_LIMIT
    answer = exchange(running_stack.ports["intake"], head)
    assert answer.status is None or answer.status < 500, f"intake answered {answer.status}: {answer.body[:300]!r}"
    refused = answer.status is None or _refused(answer.status)
    assert refused, (
        f"a {len(head) // KIB} KiB header block was accepted by intake ({answer.status}, "
        f"Location {answer.header('location')}); it should refuse it with 431"
    )
    assert still_up(running_stack)["intake"] == "ok"


def test_endless_header_is_cut_off(running_stack: Stack) -> None:
    """A header line that never ends must not be buffered without bound: intake stops reading it
    (answers and closes) long before 16 MiB, token or no token."""
    sent = 0
    with connect(running_stack.ports["intake"], timeout=30) as conn:
        cut_off = not send_quietly(conn, b"POST /v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ")
        while not cut_off and sent < 16 * MIB:
            cut_off = not send_quietly(conn, b"a" * (64 * KIB))
            sent += 64 * KIB
        answer = read_answer(conn) if cut_off else None
    assert cut_off, f"intake kept reading one header line for {sent // MIB} MiB; it should stop near 64 KiB"
    assert answer is not None and (answer.status is None or _refused(answer.status)), answer
    assert still_up(running_stack)["intake"] == "ok"


@pytest.mark.parametrize(
    ("metadata", "why"),
    [
        pytest.param(
            lambda content: submission_metadata(CASE, content) + ",notes " + "QUFB" * 15_000,
            "notes",
            id="notes-45000-chars",
        ),
        pytest.param(
            lambda content: submission_metadata(CASE, content) + ",title " + "QUFB" * 400,
            "title",
            id="title-1200-chars",
        ),
        pytest.param(
            lambda content: ",".join(f"k{n} QQ==" for n in range(5000)),  # 54 KiB: inside the head limit
            "k0",
            id="5000-keys",
        ),
        pytest.param(
            lambda content: encode_metadata({"case": CASE, "filename": "../../etc/passwd", "sha256": "0" * 64}),
            "filename",
            id="filename-with-folders",
        ),
    ],
)
def test_oversized_or_malformed_metadata_is_refused(
    running_stack: Stack, tokens: dict[str, str], metadata: Callable[[bytes], str], why: str
) -> None:
    """Within the header limit, so intake's own checks must refuse it, naming the field."""
    content = os.urandom(100)
    headers = {**_creation_headers(tokens["investigator"], content), "Upload-Metadata": metadata(content)}
    with running_stack.client("intake") as intake:
        answer = intake.post("/v1/uploads", headers=headers)
    assert answer.status_code == 400, f"{answer.status_code} {answer.text[:300]}"
    assert "Location" not in answer.headers
    assert why in answer.json()["detail"]


def test_upload_metadata_of_one_mib_is_refused(running_stack: Stack, tokens: dict[str, str]) -> None:
    content = os.urandom(100)
    headers = _creation_headers(tokens["investigator"], content)
    headers["Upload-Metadata"] += ",notes " + "QUFB" * (MIB // 4)
    answer = exchange(running_stack.ports["intake"], request_head("POST", "/v1/uploads", headers))
    assert answer.status is None or _refused(answer.status), f"{answer.status} {answer.body[:300]!r}"
    assert answer.header("location") is None
    assert still_up(running_stack)["intake"] == "ok"


# --- bodies longer than declared -------------------------------------------------------------


def test_patch_longer_than_the_upload_is_refused_and_nothing_kept(
    running_stack: Stack, tokens: dict[str, str]
) -> None:
    """Declared by Content-Length, streamed chunked, or smuggled behind a short Content-Length:
    no byte past the declared length joins the submission, which still seals with its own hash."""
    content = os.urandom(100 * KIB)
    auth = {"Authorization": f"Bearer {tokens['investigator']}"}
    port = running_stack.ports["intake"]
    with running_stack.client("intake", tokens["investigator"]) as intake:
        upload = create_upload(intake, CASE, content)

        # Content-Length says 8 MiB for 100 KiB declared: refused before a byte is read
        answer = patch(intake, upload, 0, content + os.urandom(8 * MIB))
        assert answer.status_code == 413, f"{answer.status_code} {answer.text[:300]}"
        assert stored_offset(intake, upload) == 0

        # chunked, no length given: refused once the body passes the declared length
        with connect(port) as conn:
            head = request_head(
                "PATCH",
                upload,
                {**auth, **TUS, "Upload-Offset": "0", "Content-Type": OFFSET_STREAM, "Transfer-Encoding": "chunked"},
            )
            open_ = send_quietly(conn, head)
            for _ in range(160):  # 10 MiB in 64 KiB chunks
                if not open_:
                    break
                block = os.urandom(64 * KIB)
                open_ = send_quietly(conn, b"%x\r\n%b\r\n" % (len(block), block))
            if open_:
                send_quietly(conn, b"0\r\n\r\n")
            answer = read_answer(conn)
        assert answer.status == 413, answer
        assert stored_offset(intake, upload) == 0

        # Content-Length says 100 bytes, then 1 MiB follows: only the declared 100 may count
        with connect(port) as conn:
            head = request_head(
                "PATCH",
                upload,
                {**auth, **TUS, "Upload-Offset": "0", "Content-Type": OFFSET_STREAM, "Content-Length": "100"},
            )
            send_quietly(conn, head + content[:100] + os.urandom(MIB))
            first = read_answer(conn)
        assert first.status is None or first.status < 500, first
        kept, finished = resume(intake, upload, content)
        assert kept in (0, 100), f"the upload stood at {kept} after a PATCH that declared 100 bytes"
        assert finished.status_code == 204, f"{finished.status_code} {finished.text[:300]}"
        assert stored_offset(intake, upload) == len(content)

    evidence_id = upload.rsplit("/", 1)[1]
    record = wait_for_outcome(running_stack, tokens["prosecutor"], evidence_id)
    assert record["status"] == "sealed", record
    assert record["sha256"] == hashlib.sha256(content).hexdigest() and record["size"] == len(content)
    assert still_up(running_stack)["intake"] == "ok"


def test_creation_with_a_body_longer_than_the_upload_is_refused(running_stack: Stack, tokens: dict[str, str]) -> None:
    content = os.urandom(10 * KIB)
    headers = {**_creation_headers(tokens["investigator"], content), "Content-Type": OFFSET_STREAM}
    del headers["Content-Length"]
    with running_stack.client("intake") as intake:
        answer = intake.post("/v1/uploads", headers=headers, content=content + os.urandom(MIB))
    assert answer.status_code == 413, f"{answer.status_code} {answer.text[:300]}"
    assert "Location" not in answer.headers


# --- slow drip -------------------------------------------------------------------------------

DRIP_BODIES = 6
DRIP_HEADERS = 4
DRIP_LENGTH = 40
MIN_DRIP_SECONDS = 10
OTHERS_BOUND_SECONDS = 30
"""Generous: the other uploads take about a second; only a service tied up by the drips misses it."""


class _Dripper(threading.Thread):
    """One connection that sends a PATCH body a byte a second until told to finish (after at
    least :data:`MIN_DRIP_SECONDS`), then the rest at once."""

    def __init__(self, port: int, token: str, upload: str, content: bytes, finish: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.upload, self.content, self.finish = port, token, upload, content, finish
        self.dripped = 0
        self.answer: Answer | None = None
        self.cut_off: OSError | None = None
        """Set when intake closed the connection on the drip."""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            headers = {
                "Authorization": f"Bearer {self.token}",
                **TUS,
                "Upload-Offset": "0",
                "Content-Type": OFFSET_STREAM,
                "Content-Length": str(len(self.content)),
            }
            with connect(self.port, timeout=120) as conn:
                conn.sendall(request_head("PATCH", self.upload, headers))
                started = time.monotonic()
                while self.dripped < len(self.content) - 1:
                    if self.finish.is_set() and time.monotonic() - started >= MIN_DRIP_SECONDS:
                        break
                    conn.sendall(self.content[self.dripped : self.dripped + 1])
                    self.dripped += 1
                    time.sleep(1)
                conn.sendall(self.content[self.dripped :])
                self.answer = read_answer(conn)
        except TimeoutError as exc:  # intake neither answered nor closed: it hangs
            self.error = exc
        except OSError as exc:
            self.cut_off = exc
        except BaseException as exc:  # noqa: BLE001 — reported by the test
            self.error = exc


def test_slow_drip_does_not_tie_up_intake(running_stack: Stack, tokens: dict[str, str]) -> None:
    port = running_stack.ports["intake"]
    investigator = tokens["investigator"]
    finish = threading.Event()
    drip_contents = [os.urandom(DRIP_LENGTH) for _ in range(DRIP_BODIES)]
    with running_stack.client("intake", investigator) as intake:
        drip_uploads = [create_upload(intake, CASE, content) for content in drip_contents]
    drippers = [_Dripper(port, investigator, u, c, finish) for u, c in zip(drip_uploads, drip_contents, strict=True)]
    header_drips = [connect(port, timeout=120) for _ in range(DRIP_HEADERS)]
    for conn in header_drips:
        conn.sendall(b"POST /v1/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    for dripper in drippers:
        dripper.start()

    def one_normal_upload(n: int) -> tuple[str, bytes]:
        content = os.urandom(256 * KIB + n)
        with running_stack.client("intake", investigator) as intake:
            upload = create_upload(intake, CASE, content)
            answer = patch(intake, upload, 0, content)
            assert answer.status_code == 204, f"{answer.status_code} {answer.text[:200]}"
            assert stored_offset(intake, upload) == len(content)
        return upload.rsplit("/", 1)[1], content

    try:
        time.sleep(2)  # every drip connection is open and has sent something
        for step, conn in enumerate(header_drips):
            conn.sendall(b"X-Slow-%d: " % step)
        with ThreadPoolExecutor(max_workers=3) as pool:
            others = [pool.submit(one_normal_upload, n) for n in range(6)]
            done, pending = wait(others, timeout=OTHERS_BOUND_SECONDS)
        drips_open = [d for d in drippers if d.is_alive()]
        finish.set()
        assert not pending, f"{len(pending)} of 6 ordinary uploads were not done after {OTHERS_BOUND_SECONDS} s"
        results = [future.result() for future in done]
        assert len(drips_open) == DRIP_BODIES, "the ordinary uploads should be done while every drip is still open"
    finally:
        finish.set()
        for conn in header_drips:
            conn.close()
        for dripper in drippers:
            dripper.join(120)

    with running_stack.client("intake", investigator) as intake:
        for dripper in drippers:
            assert dripper.error is None, repr(dripper.error)
            if dripper.answer is not None and dripper.answer.status == 204:
                assert dripper.answer.header("upload-offset") == str(DRIP_LENGTH)
                continue
            # intake may cut a crawling client off, with a 4xx or by closing, if it keeps what arrived
            assert dripper.answer is None or _refused(dripper.answer.status), dripper.answer
            kept, finished = resume(intake, dripper.upload, dripper.content)
            assert kept <= dripper.dripped and finished.status_code == 204, (kept, dripper.dripped, finished)
    dripped = [(upload.rsplit("/", 1)[1], content) for upload, content in zip(drip_uploads, drip_contents, strict=True)]
    for evidence_id, content in results + dripped:
        record = wait_for_outcome(running_stack, tokens["prosecutor"], evidence_id)
        assert record["status"] == "sealed" and record["sha256"] == hashlib.sha256(content).hexdigest(), record
    assert still_up(running_stack)["intake"] == "ok"


# --- many PATCHes to one submission ----------------------------------------------------------

RACERS = 20


def test_racing_patches_at_one_offset_let_exactly_one_through(running_stack: Stack, tokens: dict[str, str]) -> None:
    content = os.urandom(2 * MIB)
    with running_stack.client("intake", tokens["investigator"]) as intake:
        upload = create_upload(intake, CASE, content)
    start = threading.Barrier(RACERS)

    def race(_: int) -> int:
        with running_stack.client("intake", tokens["investigator"]) as intake:
            start.wait(30)
            return patch(intake, upload, 0, content).status_code

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        statuses = list(pool.map(race, range(RACERS)))
    assert statuses.count(204) == 1, statuses
    assert set(statuses) <= {204, 409, 423}, statuses
    _assert_sealed_once(running_stack, tokens, upload, content)


def test_racing_patches_in_turn_store_each_byte_once(running_stack: Stack, tokens: dict[str, str]) -> None:
    """Twenty clients each keep asking where the upload stands and sending the next 64 KiB:
    the PATCHes that succeed cover the file exactly once, end to end, with no overlap."""
    chunk = 64 * KIB
    content = os.urandom(RACERS * 2 * chunk)
    with running_stack.client("intake", tokens["investigator"]) as intake:
        upload = create_upload(intake, CASE, content)
    start = threading.Barrier(RACERS)

    def take_turns(_: int) -> list[tuple[int, int, int]]:
        sent = []
        with running_stack.client("intake", tokens["investigator"]) as intake:
            start.wait(30)
            for _attempt in range(1000):
                offset = stored_offset(intake, upload)
                if offset == len(content):
                    break
                answer = patch(intake, upload, offset, content[offset : offset + chunk])
                after = int(answer.headers.get("Upload-Offset", -1))
                sent.append((answer.status_code, offset, after))
                if answer.status_code == 409 and "no longer change" in answer.text:
                    break
        return sent

    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        attempts = [a for found in pool.map(take_turns, range(RACERS)) for a in found]
    statuses = {status for status, _, _ in attempts}
    assert statuses <= {204, 409, 423}, sorted(statuses)
    stored = sorted((offset, after) for status, offset, after in attempts if status == 204)
    covered = 0
    for offset, after in stored:
        assert offset == covered, f"two PATCHes wrote at {offset}: {stored}"
        covered = after
    assert covered == len(content), stored
    refused = sum(1 for status, _, _ in attempts if status != 204)
    print(f"\n{len(stored)} PATCHes stored, {refused} refused (409/423) while {RACERS} clients raced")
    _assert_sealed_once(running_stack, tokens, upload, content)


def _assert_sealed_once(running_stack: Stack, tokens: dict[str, str], upload: str, content: bytes) -> None:
    with running_stack.client("intake", tokens["investigator"]) as intake:
        assert stored_offset(intake, upload) == len(content)
    evidence_id = upload.rsplit("/", 1)[1]
    record = wait_for_outcome(running_stack, tokens["prosecutor"], evidence_id)
    assert record["status"] == "sealed", record
    assert record["sha256"] == hashlib.sha256(content).hexdigest() and record["size"] == len(content)
    actions = custody_actions(running_stack, tokens["auditor"], evidence_id, until="sealed")
    assert actions.count("received") == 1 and actions.count("sealed") == 1, actions
    assert still_up(running_stack)["intake"] == "ok"


# --- the routes the OpenAPI document leaves out ----------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/assets/..%2f..%2fsettings.py",
        "/assets/%2e%2e%2f%2e%2e%2fapp.py",
        "/assets/....%2f%2f....%2f%2fmain.py",
        "/assets/index.html%00.js",
        "/assets/%c0%ae%c0%ae%2fapp.py",
        "/assets/" + "a" * 5000 + ".js",
        "/assets/.env",
        "/..%2f..%2fetc%2fpasswd",
        "/%2e%2e/%2e%2e/etc/passwd",
    ],
    ids=lambda path: path[:40],
)
def test_web_app_routes_serve_nothing_outside_their_assets(running_stack: Stack, path: str) -> None:
    """The page and its assets need no token and are not in the OpenAPI document, so the fuzzer
    never meets them: names that climb out of the asset folder, or hide a NUL, find nothing."""
    answer = exchange(running_stack.ports["intake"], request_head("GET", path, {}))
    assert answer.status is not None and 400 <= answer.status < 500, answer
    for secret in (b"import ", b"root:", b"CUSTODY_"):
        assert secret not in answer.body, f"{path} served {answer.body[:200]!r}"


@pytest.mark.parametrize("path", ["/v1/uploads", "/v1/uploads/not-an-id", "/v1/uploads/" + "a" * 5000])
def test_tus_discovery_answers_without_a_token(running_stack: Stack, path: str) -> None:
    """tus ``OPTIONS`` is left out of the OpenAPI document too; it answers anyone, whatever follows."""
    headers = {"Tus-Resumable": "0.0.1", "Upload-Length": "-1", "Access-Control-Request-Method": "PATCH"}
    answer = exchange(running_stack.ports["intake"], request_head("OPTIONS", path, headers))
    assert answer.status == 204, answer
    assert answer.header("tus-version") == "1.0.0"
