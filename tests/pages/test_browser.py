"""The pages in a real browser: Playwright driving Debian's Chromium (headless) against the live
test server. Screenshots go to var/screenshots/ (git-ignored) for people to look at.

Chromium comes from apt (`chromium`, `fonts-liberation`); `playwright install` is never run.
Without /usr/bin/chromium these tests skip locally and fail in CI (REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from apps.releases.choices import ReleaseStatus
from tests.conftest import need_service
from tests.pages.conftest import SMOKE, Rollout, build_plan, start_rollout

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory


@pytest.fixture
def browser(transactional_db, monkeypatch) -> Iterator:
    """Chromium, started once the test database is ready (and stopped before it is flushed).

    While Playwright's sync API runs, this thread counts as "async" for Django: the ORM calls
    the test makes meanwhile are plain synchronous ones (hence DJANGO_ALLOW_ASYNC_UNSAFE), on a
    connection of their own, closed before Playwright stops.
    """
    if not os.path.exists(CHROMIUM):
        need_service(f"{CHROMIUM} is missing: apt-get install chromium fonts-liberation")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
            connections.close_all()


@pytest.fixture(scope="module")
def live_server(django_db_setup) -> Iterator:
    """pytest-django's live server, started with plain-HTTP settings.

    The server builds its middleware once, when it starts: the HTTPS redirect and secure cookies
    of the production settings must be off by then (the suite's autouse `_plain_http` comes too
    late for a server started earlier).
    """
    from django.test.utils import override_settings
    from pytest_django.live_server_helper import LiveServer

    with override_settings(
        SECURE_SSL_REDIRECT=False,
        SECURE_HSTS_SECONDS=0,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
    ):
        server = LiveServer("localhost")
        yield server
        server.stop()


@pytest.fixture
def open_page(browser, live_server):
    """A new browser tab at the given width; closed after the test."""
    contexts = []

    def make(width: int = 1280):
        context = browser.new_context(viewport={"width": width, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def browser_rollout(service, production) -> Rollout:
    return start_rollout(service=service, environment=production, plan=build_plan("browser"))


def sign_in(page, live_server, username: str) -> None:
    page.goto(live_server.url + "/")
    # Not signed in: the dashboard sends us to the styled sign-in page and back.
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server.url + "/")


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_release_flow_in_a_browser(browser_rollout, alice, rita, live_server, open_page):
    release = browser_rollout.release
    page = open_page()

    # Alice, an approver: from the dashboard to the release, tick the exit item and say go.
    sign_in(page, live_server, "alice")
    card = page.locator(".card", has_text=release.version)
    assert "Amber" in card.locator(".light").inner_text()
    shot(page, "dashboard-1280")
    card.get_by_role("link", name=release.version).click()
    page.wait_for_url(re.compile(rf"/releases/{release.pk}/$"))
    assert page.locator("#traffic").inner_text() == "Traffic 5 %"

    box = page.get_by_role("checkbox", name=SMOKE)
    assert box.get_attribute("aria-checked") == "false"
    box.click()
    page.wait_for_load_state()
    assert page.get_by_role("checkbox", name=SMOKE).get_attribute("aria-checked") == "true"

    page.get_by_label("Comment").fill("Canary looks healthy")
    page.get_by_role("button", name="Go", exact=True).click()
    page.wait_for_load_state()
    assert "Your go is recorded." in page.locator(".messages").inner_text()
    assert page.locator("#gate .light").first.inner_text().strip().endswith("Green")
    # Alice may not advance: the button is there, disabled, with the reason.
    assert page.get_by_role("button", name="Advance").is_disabled()
    assert "Only release managers" in page.locator("#why-no-actions").inner_text()
    page.get_by_role("button", name="Sign out").click()

    # Rita, a release manager, advances: the stage timeline moves on.
    sign_in(page, live_server, "rita")
    page.goto(f"{live_server.url}/releases/{release.pk}/")
    current = page.locator('.stage[aria-current="step"] .stage-name')
    assert current.inner_text() == "1. canary"
    page.locator("#action-advance summary").click()
    page.get_by_label("Reason to advance").fill("Canary clean for an hour")
    page.get_by_role("button", name="Advance to half (50 %)").click()
    page.wait_for_load_state()
    assert page.locator("#traffic").inner_text() == "Traffic 50 %"
    assert current.inner_text() == "2. half"
    assert page.locator(".stage-passed .stage-name").inner_text() == "1. canary"
    assert "Advanced from canary to half (50 %)" in page.locator("#timeline").inner_text()

    # The error-rate chart: treatment and control lines, both thresholds, the verdicts marked.
    chart = page.locator("figure.chart").first
    chart.scroll_into_view_if_needed()
    plot = chart.locator("svg").bounding_box()
    for threshold, label in (("warning", "warning > 2 %"), ("critical", "critical > 5 %")):
        line = chart.locator(f'line[data-threshold="{threshold}"]').bounding_box()
        # Drawn across the plot (a horizontal line has no height, so it is not "visible").
        assert line["width"] > plot["width"] * 0.8
        assert plot["y"] < line["y"] < plot["y"] + plot["height"]
        assert chart.locator("svg text", has_text=label).is_visible()
    for series in ("treatment", "control"):
        assert chart.locator(f'[data-series="{series}"]').get_attribute("d").startswith("M")
    assert chart.locator('[data-verdict="pass"]').count() == 4
    shot(page, "release-1280")

    # Roll back with a reason: traffic 0, the reason in the timeline.
    page.locator("#action-rollback summary").click()
    page.get_by_label("Reason to roll back").fill("Error budget burning in EU")
    page.get_by_role("button", name="Roll back to 0 %").click()
    page.wait_for_load_state()
    assert page.locator("#traffic").inner_text() == "Traffic 0 %"
    assert page.locator("#release-status").inner_text() == "Rolled back"
    assert "Error budget burning in EU" in page.locator("#timeline").inner_text()
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ROLLED_BACK


def test_the_gate_refusal_in_words_using_the_keyboard_only(
    browser_rollout, rita, live_server, open_page
):
    release = browser_rollout.release
    page = open_page()
    sign_in(page, live_server, "rita")
    page.goto(f"{live_server.url}/releases/{release.pk}/")

    summary = page.locator("#action-advance summary")
    summary.focus()
    page.keyboard.press("Enter")  # opens the confirmation
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "reason-advance"
    page.keyboard.type("Let's go")
    page.keyboard.press("Tab")  # the override box (Rita may force) — leave it unticked
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Advance to half (50 %)"
    page.keyboard.press("Enter")
    page.wait_for_load_state()

    refusal = page.get_by_role("alert")
    assert "The gate refuses: the release may not advance now." in refusal.inner_text()
    assert SMOKE in refusal.inner_text()
    assert "Sign-off needed for leaving stage canary" in refusal.inner_text()
    assert page.locator("#traffic").inner_text() == "Traffic 5 %"


def test_readable_on_a_phone(browser_rollout, victor, live_server, open_page):
    page = open_page(width=390)
    sign_in(page, live_server, "victor")
    shot(page, "dashboard-390")
    page.goto(f"{live_server.url}/releases/{browser_rollout.release.pk}/")
    # Nothing wider than the screen but the charts, which scroll inside their own box.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("#traffic").is_visible()
    assert "Amber" in page.locator(".headline .light").inner_text()
    shot(page, "release-390")
    for path in (f"/releases/{browser_rollout.release.pk}/signoff/", "/incidents/", "/oncall/"):
        page.goto(live_server.url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
