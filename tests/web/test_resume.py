"""An upload cut off by a page reload resumes, in the same submission, once the investigator
picks the same file again; the browser kept nothing but ids, URLs and sizes meanwhile."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect

from tests.support.stack import Stack
from tests.web.browser import sign_in

MIB = 1024 * 1024
CASE = "UA-2024-018"


def test_an_upload_cut_by_a_reload_resumes_in_the_same_submission(
    web_stack: Stack, context: BrowserContext, page: Page, tmp_path: Path
) -> None:
    testimony = tmp_path / "testimony.m4a"
    testimony.write_bytes(os.urandom(10 * MIB + 3))
    sign_in(page, web_stack, web_stack.token("dan", ["investigator"], [CASE]))
    network = context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 2 * MIB},
    )
    page.get_by_label("Files", exact=True).set_input_files(testimony)
    page.get_by_label("Notes").fill("Recorded in the shelter")
    page.get_by_role("button", name="Upload").click()
    row = page.locator("li.submission")
    page.wait_for_function(
        "() => { const r = document.querySelector('li.submission');"
        " return r.dataset.state === 'uploading' && r.querySelector('progress').value >= 20; }"
    )
    first_id = row.get_attribute("data-evidence-id")
    assert first_id

    page.reload()
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    expect(page.get_by_text("Signed in as")).to_be_visible()  # the tab kept its sign-in
    earlier = page.locator(".earlier-section")
    expect(earlier).to_contain_text("was interrupted in this browser")
    expect(earlier.locator(f"li[data-evidence-id='{first_id}']")).to_contain_text("Not all of it has arrived yet")
    stored = json.dumps(page.evaluate("() => Object.fromEntries(Object.entries(localStorage))"))
    for text in ("testimony", "shelter", CASE):
        assert text not in stored, f"{text!r} kept in the browser's storage"

    page.get_by_label("Files", exact=True).set_input_files(testimony)
    page.get_by_label("Notes").fill("Recorded in the shelter")
    page.get_by_role("button", name="Upload").click()
    expect(row).to_have_attribute("data-state", "sealed", timeout=120_000)
    assert row.get_attribute("data-evidence-id") == first_id
    with sqlite3.connect(web_stack.home / "intake.db") as db:
        uploads = db.execute("SELECT count(*) FROM uploads WHERE case_name = ?", (CASE,)).fetchone()[0]
    assert uploads == 1
