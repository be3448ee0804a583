"""Sign-in with an OpenID Connect provider when one is configured: the code flow with PKCE from
the page, and the provider's access token used as the bearer token afterwards."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.stack import Stack


def test_sign_in_with_the_organisations_provider(web_stack: Stack, page: Page) -> None:
    provider = web_stack.identity_provider  # type: ignore[attr-defined]
    page.goto(f"{web_stack.url('intake')}/")
    page.get_by_role("button", name="Sign in with your organisation").click()
    expect(page.get_by_text("Signed in as")).to_be_visible()
    expect(page.locator("[data-sub]")).to_have_text("erin")
    expect(page.locator("#who")).to_contain_text("prosecutor")
    assert "code=" not in page.url and "state=" not in page.url  # the code left the address bar
    assert len(provider.issued) == 1
    assert page.evaluate("() => sessionStorage.getItem('custody.token')") == provider.issued[0]
    expect(page.get_by_role("heading", name="Evidence of your cases")).to_be_visible()
