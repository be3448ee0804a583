"""What the browser tests do in the page: sign in, check the basics of accessibility, take
screenshots at desktop and phone widths."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page

from tests.support.stack import Stack

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
CASE = "UA-2024-017"


@dataclass
class Mission:
    """What the role tests hand on to each other: files submitted, items sealed."""

    files: dict[str, Path] = field(default_factory=dict)
    evidence_ids: dict[str, str] = field(default_factory=dict)
    """File name → evidence id, once sealed."""


def sign_in(page: Page, stack: Stack, token: str) -> None:
    """Open the app and sign in by pasting ``token``, with the keyboard only."""
    page.goto(f"{stack.url('intake')}/")
    page.get_by_label("Token").fill(token)
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.get_by_text("Signed in as").wait_for()


def assert_accessible_basics(page: Page) -> None:
    """Every form control has a label; nothing is wider than the screen."""
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
             .filter(e => e.type !== 'hidden' && e.offsetParent !== null)
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
             .map(e => e.outerHTML.slice(0, 120))"""
    )
    assert not unlabelled, f"form controls without a label: {unlabelled}"
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"


def shoot(page: Page, folder: Path, name: str, phone_focus: str | None = None) -> None:
    """Screenshots of the page as it stands, at desktop width (whole page) and at phone width
    (the screenful at ``phone_focus``, a CSS selector, or at the top), both checked for labels
    and horizontal overflow; the page is left at desktop width."""
    page.set_viewport_size(DESKTOP)
    assert_accessible_basics(page)
    page.screenshot(path=str(folder / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    assert_accessible_basics(page)
    if phone_focus:
        page.locator(phone_focus).first.evaluate("element => element.scrollIntoView({block: 'start'})")
    else:
        page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(folder / f"{name}-phone.png"))
    page.set_viewport_size(DESKTOP)
