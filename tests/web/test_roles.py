"""Each role's main task in the web app, in headless Chromium against the real stack, in order:
the investigator submits two files through a network drop and sees both sealed; the prosecutor
finds one, downloads it with a stated purpose and gets the same bytes; the auditor sees every
custody event's proof checked green, then, after a stored event is altered, sees it red."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from pathlib import Path

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from tests.support.stack import Stack
from tests.web.browser import CASE, Mission, shoot, sign_in

MIB = 1024 * 1024
SEALED = 120_000
"""How long (ms) a page may wait for the vault to seal what was submitted."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _network(context: BrowserContext, page: Page):  # type: ignore[no-untyped-def]
    """The DevTools session that shapes this page's network (throughput and outage)."""
    session = context.new_cdp_session(page)
    session.send("Network.enable")
    return session


def _shape(session, *, offline: bool = False, upload_bytes_per_s: int = -1) -> None:  # type: ignore[no-untyped-def]
    session.send(
        "Network.emulateNetworkConditions",
        {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload_bytes_per_s},
    )


def _row(page: Page, filename: str):  # type: ignore[no-untyped-def]
    return page.locator("li.submission", has=page.locator(".filename", has_text=filename))


def test_a_foreign_token_is_refused_with_a_sentence(web_stack: Stack, page: Page) -> None:
    page.goto(f"{web_stack.url('intake')}/")
    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("does not look like a token")
    forged = web_stack.token("mallory", ["prosecutor"], [CASE]).rsplit(".", 1)[0] + ".AAAA"
    page.get_by_label("Token").fill(forged)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("refused your token")
    expect(page.get_by_role("alert")).to_contain_text("Sign in again with a fresh token.")


def test_investigator_submits_two_files_through_a_network_drop(
    web_stack: Stack, context: BrowserContext, page: Page, tmp_path: Path, mission: Mission, screenshots: Path
) -> None:
    files = {"photo.jpg": 1 * MIB + 4321, "video.mp4": 12 * MIB + 17}
    for name, size in files.items():
        mission.files[name] = tmp_path / name
        mission.files[name].write_bytes(os.urandom(size))
    sign_in(page, web_stack, web_stack.token("alice", ["investigator"], [CASE]))
    expect(page.get_by_role("heading", name="Submit evidence")).to_be_visible()
    expect(page.get_by_label("Case")).to_have_value(CASE)

    page.get_by_label("Files", exact=True).set_input_files(list(mission.files.values()))
    _row(page, "photo.jpg").get_by_label("Title (optional)").fill("School yard, north side")
    _row(page, "video.mp4").get_by_label("Title (optional)").fill("Bus departure")
    page.get_by_label("Captured at").fill("2024-05-01T10:00:00")
    page.get_by_label("Latitude").fill("47.1")
    page.get_by_label("Longitude").fill("37.5")
    page.get_by_label("Notes").fill("Given by witness 4")

    network = _network(context, page)
    _shape(network, upload_bytes_per_s=2 * MIB)  # slow enough to cut the video's upload midway
    page.get_by_role("button", name="Upload 2 files").click()
    video = _row(page, "video.mp4")
    page.wait_for_function(
        """() => { const row = [...document.querySelectorAll('li.submission')]
                     .find(r => r.querySelector('.filename').textContent === 'video.mp4');
                   return row.dataset.state === 'uploading' && row.querySelector('progress').value >= 20; }"""
    )

    _shape(network, offline=True)
    context.set_offline(True)  # navigator.onLine and the "offline" event
    expect(video).to_have_attribute("data-state", "offline")
    expect(video.locator(".status")).to_contain_text("resumes by itself when the network is back")
    dropped_at = int(video.locator("progress").get_attribute("value") or "0")
    assert 0 < dropped_at < 100
    _shape(network)
    context.set_offline(False)

    for name in files:
        expect(_row(page, name)).to_have_attribute("data-state", "sealed", timeout=SEALED)
        expect(_row(page, name).locator(".status")).to_contain_text("Sealed")
        expect(_row(page, name).locator(".identity")).to_contain_text(_sha256(mission.files[name]))
        mission.evidence_ids[name] = _row(page, name).get_attribute("data-evidence-id") or ""

    # the drop cost nothing but time: the same upload resumed, none was started afresh
    with sqlite3.connect(web_stack.home / "intake.db") as db:
        uploads = db.execute("SELECT count(*) FROM uploads WHERE case_name = ?", (CASE,)).fetchone()[0]
    assert uploads == 2
    # the browser kept no file name or metadata for resuming, only ids, URLs and sizes
    stored = json.dumps(page.evaluate("() => Object.fromEntries(Object.entries(localStorage))"))
    for text in ("photo.jpg", "video.mp4", "School yard", "Bus departure", "witness", CASE):
        assert text not in stored, f"{text!r} kept in the browser's storage"
    shoot(page, screenshots, "investigator", phone_focus="ol.submissions")


def test_prosecutor_finds_downloads_and_checks_an_item(
    web_stack: Stack, page: Page, tmp_path: Path, mission: Mission, screenshots: Path
) -> None:
    assert mission.evidence_ids.get("video.mp4"), "the investigator's test did not seal the video"
    sign_in(page, web_stack, web_stack.token("bob", ["prosecutor"], [CASE]))
    items = page.locator("ul.items > li")
    expect(items).to_have_count(2)
    page.get_by_label("Title or file name contains").fill("bus")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Bus departure")
    page.get_by_label("Title or file name contains").fill("")
    page.get_by_label("SHA-256 begins with").fill(_sha256(mission.files["photo.jpg"])[:10])
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("School yard")
    page.get_by_label("SHA-256 begins with").fill("")
    page.get_by_label("Date from").fill("2024-05-02")
    expect(items).to_have_count(0)
    page.get_by_label("Date from").fill("2024-05-01")
    page.get_by_label("Date until").fill("2024-05-01")
    expect(items).to_have_count(2)
    shoot(page, screenshots, "prosecutor")

    page.get_by_role("link", name="Bus departure").click()
    expect(page.get_by_role("heading", name="Bus departure")).to_be_visible()
    expect(page.locator(".verification")).to_contain_text("Sealed")
    expect(page.locator(".facts")).to_contain_text(_sha256(mission.files["video.mp4"]))
    expect(page.locator(".facts")).to_contain_text("Given by witness 4")
    page.get_by_role("button", name="Download…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Download", exact=True).click()
    expect(dialog.get_by_role("alert")).to_contain_text("State why you need this file")
    dialog.get_by_label("Purpose of this download").fill("prepare hearing 2024-117")
    with page.expect_download() as download:
        dialog.get_by_role("button", name="Download", exact=True).click()
    saved = tmp_path / "downloaded"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "video.mp4"
    assert _sha256(saved) == _sha256(mission.files["video.mp4"])
    expect(dialog.get_by_role("status")).to_contain_text(_sha256(mission.files["video.mp4"]))
    dialog.get_by_role("button", name="Close").click()

    # the read is on record, its purpose sealed rather than shown
    page.reload()
    expect(page.locator(".timeline li")).to_have_count(4)
    expect(page.locator(".timeline li").last).to_contain_text("File read")
    expect(page.locator(".timeline li").last).to_contain_text("bob")
    expect(page.locator(".timeline")).not_to_contain_text("hearing")
    shoot(page, screenshots, "prosecutor-item")


def test_an_address_made_to_reach_another_request_is_refused_and_signing_out_forgets_what_was_read(
    web_stack: Stack, page: Page, mission: Mission
) -> None:
    evidence_id = mission.evidence_ids.get("video.mp4")
    assert evidence_id, "the investigator's test did not seal the video"
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, web_stack, web_stack.token("bob", ["prosecutor"], [CASE]))
    # A link someone sends: the browser would turn \ into /, and the service %2F, reading the file.
    for crafted in (f"{evidence_id}\\content?purpose=press", f"{evidence_id}%2Fcontent?purpose=press"):
        page.goto(f"{web_stack.url('intake')}/#/prosecutor/item/{crafted}")
        expect(page.get_by_role("alert")).to_contain_text("This address names no evidence item")
    assert not [url for url in requested if "/content" in url or "press" in url]

    page.goto(f"{web_stack.url('intake')}/#/prosecutor/item/{evidence_id}")
    expect(page.get_by_role("heading", name="Bus departure")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Token").fill(web_stack.token("olga", ["prosecutor"], ["CASE-OTHER"]))
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_text("Signed in as").wait_for()
    page.goto(f"{web_stack.url('intake')}/#/prosecutor/item/{evidence_id}")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("heading", name="Bus departure")).to_have_count(0)
    expect(page.locator("main")).not_to_contain_text("Given by witness 4")


def test_auditor_sees_every_proof_green_then_the_altered_event_red(
    web_stack: Stack, page: Page, mission: Mission, screenshots: Path
) -> None:
    video = mission.evidence_ids.get("video.mp4")
    assert video, "the investigator's test did not seal the video"
    sign_in(page, web_stack, web_stack.token("carol", ["auditor"], ["*"]))
    expect(page.get_by_role("heading", name="Custody log")).to_be_visible()
    # the key is pinned from a channel other than the page: here, the test's own request
    key = httpx.get(f"{web_stack.url('audit')}/v1/log/key").text.strip()
    page.get_by_role("textbox", name="Log key").fill(key)
    page.get_by_role("button", name="Pin this key").click()
    expect(page.locator("[data-log-size]")).to_be_visible()
    expect(page.locator(".log-state")).to_contain_text("Latest checkpoint verified")

    page.get_by_role("textbox", name="Evidence id").fill(video)
    page.get_by_role("button", name="Show timeline").click()
    events = page.locator(".timeline li")
    expect(events).to_have_count(4)
    expect(page.locator(".timeline-summary")).to_have_attribute("data-verified", "true")
    expect(page.locator(".timeline .mark[data-mark=ok]")).to_have_count(4)
    expect(page.locator(".timeline .mark[data-mark=bad]")).to_have_count(0)
    actions = [events.nth(i).get_attribute("data-action") for i in range(4)]
    assert actions == ["submitted", "received", "sealed", "accessed"]
    shoot(page, screenshots, "auditor", phone_focus=".timeline-summary")

    # someone with write access to the audit database alters the stored "sealed" event
    with sqlite3.connect(web_stack.home / "audit.db") as db:
        index, leaf = db.execute(
            "SELECT idx, leaf FROM log_leaves WHERE evidence_id = ? AND action = 'sealed'", (video,)
        ).fetchone()
        digest = re.search(rb'"sha256":"([0-9a-f]{64})"', leaf)
        assert digest
        forged = digest.group(1)[:-1] + (b"0" if digest.group(1)[-1:] != b"0" else b"1")
        db.execute("UPDATE log_leaves SET leaf = ? WHERE idx = ?", (leaf.replace(digest.group(1), forged), index))

    page.reload()
    expect(events).to_have_count(4)
    expect(page.locator(".timeline-summary")).to_have_attribute("data-verified", "false")
    expect(page.locator(".timeline-summary")).to_contain_text("1 of 4 events failed")
    sealed = page.locator(".timeline li[data-action=sealed]")
    expect(sealed.locator(".mark")).to_have_attribute("data-mark", "bad")
    expect(sealed).to_contain_text("not in the signed log")
    expect(page.locator(".timeline .mark[data-mark=ok]")).to_have_count(3)
    shoot(page, screenshots, "auditor-altered", phone_focus="li[data-action=sealed]")
