"""Single sign-on in Chromium: the sign-in button, the provider, back signed in, and sign-out at
the provider, across two real servers on loopback (the pages' CSP must let forms end there)."""

from __future__ import annotations

import pytest

from tests.pages.conftest import browser, live_server, open_page  # noqa: F401 (fixtures)
from tests.sso.conftest import CLIENT_ID

pytestmark = pytest.mark.django_db(transaction=True)


def test_sign_in_and_out_with_the_provider_in_a_browser(
    idp,
    carol,
    live_server,  # noqa: F811
    open_page,  # noqa: F811
) -> None:
    idp.clients[CLIENT_ID].redirect_uris.append(f"{live_server.url}/oidc/callback/")
    idp.signed_in_as = carol.sub  # Carol is signed in at her IdP already (its page is not ours)
    page = open_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("button", name="Sign in with Acme ID").click()
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("form.who strong").inner_text() == "carol"
    (asked,) = idp.authorize_requests
    assert asked["code_challenge_method"] == "S256"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    assert idp.end_sessions and idp.signed_in_as is None
    assert page.get_by_role("button", name="Sign in with Acme ID").is_visible()
    assert blocked == []
