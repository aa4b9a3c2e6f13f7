"""The pages in a real browser: Playwright driving Debian's Chromium (headless) against the live
test server. Screenshots go to var/screenshots/ (git-ignored) for people to look at.

Chromium comes from apt (`chromium`, `fonts-liberation`); `playwright install` is never run.
Without /usr/bin/chromium these tests skip locally and fail in CI (REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.releases.choices import ReleaseStatus
from tests.pages.conftest import SMOKE, Rollout, build_plan, shot, sign_in, start_rollout

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def browser_rollout(service, production) -> Rollout:
    return start_rollout(service=service, environment=production, plan=build_plan("browser"))


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
    # Ticked in place (static/js/checklists.js): wait for the swapped-in item, no reload.
    expect(page.get_by_role("checkbox", name=SMOKE)).to_have_attribute("aria-checked", "true")

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
