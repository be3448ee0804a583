"""Each PATCH the web app sends carries the CRC-32 of its chunk (``Upload-Checksum``); a chunk
that reaches intake damaged — here, one whose checksum is altered on the way — is refused, kept
nowhere, and sent again (in a chunk half the size), and the file is sealed whole. The file's
SHA-256, computed while it goes up, is stated by the PATCH that completes it (``Repr-Digest``)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from playwright.sync_api import Page, Response, Route, expect

from tests.support.stack import Stack
from tests.support.submissions import upload_checksum
from tests.web.browser import sign_in

MIB = 1024 * 1024
CHUNK = 8 * MIB
"""The web app's first PATCH size."""
CASE = "UA-2024-019"


def test_every_chunk_carries_its_checksum_and_a_damaged_one_is_sent_again(
    web_stack: Stack, page: Page, tmp_path: Path
) -> None:
    content = os.urandom(2 * CHUNK + 5)
    statement = tmp_path / "statement.pdf"
    statement.write_bytes(content)
    damaged: list[int] = []
    answered: list[tuple[int, str | None, int]] = []  # offset, checksum sent, status
    digests: list[str | None] = []  # Repr-Digest of each PATCH intake took

    def damage_the_second_chunk_once(route: Route) -> None:
        request = route.request
        if request.method == "PATCH" and not damaged and int(request.headers["upload-offset"]) == CHUNK:
            damaged.append(CHUNK)
            route.continue_(headers={**request.headers, "upload-checksum": upload_checksum(b"other bytes")})
        else:
            route.continue_()

    def note(response: Response) -> None:
        request = response.request
        if request.method == "PATCH":
            offset = int(request.headers["upload-offset"])
            answered.append((offset, request.headers.get("upload-checksum"), response.status))
            if response.status == 204:
                digests.append(request.headers.get("repr-digest"))

    page.route("**/v1/uploads/*", damage_the_second_chunk_once)
    page.on("response", note)
    sign_in(page, web_stack, web_stack.token("frank", ["investigator"], [CASE]))
    page.get_by_label("Files", exact=True).set_input_files(statement)
    page.get_by_role("button", name="Upload").click()

    row = page.locator("li.submission")
    expect(row).to_have_attribute("data-state", "sealed", timeout=120_000)
    expect(row.locator(".identity")).to_contain_text(hashlib.sha256(content).hexdigest())
    assert damaged == [CHUNK]
    refused = [(offset, status) for offset, _, status in answered if status != 204]
    assert refused == [(CHUNK, 460)]
    kept = [(offset, checksum) for offset, checksum, status in answered if status == 204]
    ends = [offset for offset, _ in kept[1:]] + [len(content)]
    assert kept[0][0] == 0 and all(offset < end for (offset, _), end in zip(kept, ends))
    assert kept == [(offset, upload_checksum(content[offset:end])) for (offset, _), end in zip(kept, ends)]
    stated = f"sha-256=:{base64.b64encode(hashlib.sha256(content).digest()).decode()}:"
    assert digests == [None] * (len(kept) - 1) + [stated]
