"""The web app in a real browser against the real stack: Debian's headless Chromium driven by
Playwright, the three services as processes (SQLite files, a local folder, the shared NATS).

``CUSTODY_SCREENSHOTS=docs/screenshots`` keeps the screenshots the tests take of each role's
main page (desktop and phone widths) in that folder; otherwise they go to a temporary one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from custody_intake.web.endpoints import STATIC
from tests.support.nats import NATS_URL, provision_namespace, remove_namespace
from tests.support.stack import Stack
from tests.web.browser import DESKTOP, Mission
from tests.web.identity_provider import IdentityProvider

WEB_SOURCES = Path(__file__).resolve().parents[2] / "web" / "src"
CHROMIUM = Path(os.environ.get("CUSTODY_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One started stack for the whole browser suite, in its own namespace and home, whose web
    app offers sign-in with a small OpenID Connect provider (``stack.identity_provider``)."""
    built = STATIC / "assets" / "app.js"
    if not built.is_file():
        pytest.fail(f"the web app is not built in {STATIC}: run `npm ci && npm run build` in web/ (make setup does it)")
    stale = [p.name for p in WEB_SOURCES.rglob("*") if p.is_file() and p.stat().st_mtime > built.stat().st_mtime]
    if stale:
        pytest.fail(f"the built web app is older than {', '.join(stale)}: run `npm run build` in web/ (make setup does it)")
    namespace = f"t{uuid.uuid4().hex[:10]}"
    provision_namespace(NATS_URL, namespace)
    home = tmp_path_factory.mktemp("web-stack")
    stack = Stack(home=home, namespace=namespace)
    provider = IdentityProvider(lambda: stack.token("erin", ["prosecutor"], ["UA-2024-017"]))
    stack.extra_env.update(CUSTODY_WEB_OIDC_ISSUER=provider.issuer, CUSTODY_WEB_OIDC_CLIENT_ID="custody-web")
    stack.identity_provider = provider  # type: ignore[attr-defined]
    provider.start()
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        provider.stop()
        remove_namespace(NATS_URL, namespace)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless (Playwright downloads no browser of its own here)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (deploy/bootstrap.sh --test does)")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def mission() -> Mission:
    return Mission()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: CUSTODY_SCREENSHOTS, or a temporary folder."""
    wanted = os.environ.get("CUSTODY_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def context(browser: Browser, tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh browser profile (empty storage) at desktop width, downloads accepted."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(30_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert not errors, f"the page raised: {errors}"
