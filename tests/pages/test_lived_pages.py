"""Issue 19's moments, lived in Chromium at a desktop (1366×900) and a phone (390×844) width:
ticking a checklist in place and a section at once, the confirmation where the person looks,
why a stopped release stopped at the top of its page, a pending criterion that is not red after
a healthy advance, and an axe-core pass over the main pages. Screenshots go to var/screenshots/.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.checklists.models import ChecklistItem, ChecklistItemChange
from apps.checks.choices import CriticalAction
from apps.checks.models import Sample
from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Event
from apps.rollouts import transitions
from apps.rollouts.breach_response import run_checks
from tests.factories import ServiceFactory
from tests.pages.conftest import SMOKE, Rollout, build_plan, shot, sign_in, start_rollout

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

WIDTHS = {1366: 900, 390: 844}
EXTRA_ITEMS = 13  # with SMOKE: the fourteen manual items of the issue


@pytest.fixture
def lived(service, production) -> Rollout:
    return start_rollout(
        service=service, environment=production, plan=build_plan("lived", items=EXTRA_ITEMS)
    )


def tab(browser, live_server, width: int, *, script: bool = True):
    context = browser.new_context(
        viewport={"width": width, "height": WIDTHS[width]}, java_script_enabled=script
    )
    context.set_default_timeout(10_000)
    return context.new_page()


def in_view(page, selector: str) -> bool:
    """The element is inside the window as the person sees it now (not scrolled away)."""
    box = page.locator(selector).first.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + min(box["height"], 40) <= height


@pytest.mark.parametrize("width", WIDTHS)
def test_fourteen_items_tick_in_place_and_a_section_at_once(
    lived, alice, browser, live_server, width
):
    release = lived.release
    page = tab(browser, live_server, width)
    sign_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/releases/{release.pk}/")
    page.evaluate("window.sameDocument = true")  # gone if the page reloads

    smoke = ChecklistItem.objects.get(checklist__release=release, text=SMOKE)
    page.get_by_role("checkbox", name=SMOKE).click()
    expect(page.get_by_role("checkbox", name=SMOKE)).to_have_attribute("aria-checked", "true")
    note = page.locator(f"#item-{smoke.pk} .note")
    expect(note).to_contain_text(f"Ticked: {SMOKE}")
    assert page.evaluate("window.sameDocument === true"), "the tick reloaded the page"
    assert in_view(page, f"#item-{smoke.pk}")

    # The other thirteen of the section at once: one click, still the same page.
    button = page.get_by_role("button", name=f"Tick all {EXTRA_ITEMS} open in “Verification”")
    button.click()
    checklist = smoke.checklist
    expect(page.locator(f"#note-{checklist.pk}")).to_contain_text(
        f"Ticked {EXTRA_ITEMS} items in “Verification”."
    )
    assert page.evaluate("window.sameDocument === true")
    expect(page.locator(f"#checklist-{checklist.pk} [aria-checked='false']")).to_have_count(1)
    expect(page.locator(f"#status-{checklist.pk}")).to_contain_text(
        f"{EXTRA_ITEMS + 1} of {EXTRA_ITEMS + 2} done"
    )
    shot(page, f"checklist-ticked-in-place-{width}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    # The same history as fourteen single ticks: a change row and a timeline event per item.
    items = ChecklistItem.objects.filter(checklist=checklist, section="Verification")
    assert all(item.is_done for item in items)
    assert ChecklistItemChange.objects.filter(item__in=items).count() == EXTRA_ITEMS + 1
    done_events = Event.objects.filter(release=release, verb=EventVerb.CHECKLIST_ITEM_DONE)
    assert done_events.count() == EXTRA_ITEMS + 1
    page.context.close()


def test_without_script_a_tick_still_works_and_lands_on_its_item(
    lived, alice, browser, live_server
):
    release = lived.release
    page = tab(browser, live_server, 390, script=False)
    sign_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/releases/{release.pk}/")
    item = ChecklistItem.objects.get(checklist__release=release, text="Extra check 12")

    page.get_by_role("checkbox", name="Extra check 12").click()
    page.wait_for_url(re.compile(rf"/releases/{release.pk}/#item-{item.pk}$"))
    expect(page.locator(f"#item-{item.pk} .note")).to_contain_text("Ticked: Extra check 12")
    assert in_view(page, f"#item-{item.pk} .note")
    assert ChecklistItem.objects.get(pk=item.pk).is_done
    shot(page, "checklist-tick-no-script-390")
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_confirmation_is_where_the_person_is_looking(lived, rita, browser, live_server, width):
    release = lived.release
    page = tab(browser, live_server, width)
    sign_in(page, live_server, "rita")
    page.goto(f"{live_server.url}/releases/{release.pk}/")
    page.locator("#action-pause summary").click()
    page.locator("#reason-pause").fill("Holding for the payment provider")
    page.locator("#action-pause").get_by_role("button").click()
    page.wait_for_url(re.compile(rf"/releases/{release.pk}/#top$"))

    expect(page.locator("#notes")).to_contain_text("Done: the release is now paused")
    assert in_view(page, "#notes"), "the confirmation is scrolled out of view"
    # ...and base.html's list above the page's top is not shown twice.
    expect(page.locator(".messages")).to_have_count(1)
    shot(page, f"confirmation-after-pause-{width}")
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_stopped_release_says_why_at_the_top(lived, rita, browser, live_server, width):
    release = lived.release
    criterion = lived.criterion
    criterion.on_critical = CriticalAction.ROLLBACK
    criterion.save()
    later = timezone.now() + timedelta(minutes=2)  # a new tick slot
    Sample.objects.bulk_create(
        [
            Sample(
                release=release,
                metric=lived.metric,
                at=later - timedelta(seconds=5 + s),
                value=0.09,
                count=500,
            )
            for s in range(3)
        ]
    )
    run_checks(now=later)  # the breach rolls back
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ROLLED_BACK

    page = tab(browser, live_server, width)
    sign_in(page, live_server, "rita")
    page.goto(f"{live_server.url}/releases/{release.pk}/")
    why = page.locator("#why")
    expect(why).to_contain_text("Rolled back")
    expect(why).to_contain_text("automatic")
    expect(why).to_contain_text("error_rate")
    expect(why).to_contain_text("> 5 %")  # the threshold
    assert re.search(r"9(\.\d+)? %", why.inner_text()), why.inner_text()  # the value
    assert in_view(page, "#why"), "the reason is not at the top of the page"
    shot(page, f"why-rolled-back-{width}")

    # A person's pause says who and their reason, not "automatic".
    # (Another service: the breach's incident holds this one's rollouts.)
    other = start_rollout(
        service=ServiceFactory(name="Search", slug="search"),
        environment=release.environment,
        plan=build_plan("lived-pause"),
        version="9.9.9",
    ).release
    transitions.pause(other, actor=Actor.for_user(rita), reason="Waiting for the DBA's review")
    page.goto(f"{live_server.url}/releases/{other.pk}/")
    expect(page.locator("#why")).to_contain_text("Waiting for the DBA's review")
    expect(page.locator("#why")).to_contain_text("rita")
    expect(page.locator("#why .badge")).to_have_count(0)
    assert in_view(page, "#why")
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_after_a_healthy_advance_a_criterion_is_pending_not_red(
    lived, rita, browser, live_server, width
):
    release = lived.release
    transitions.advance(release, actor=Actor.for_user(rita), reason="Canary healthy", force=True)
    page = tab(browser, live_server, width)
    sign_in(page, live_server, "rita")

    card = page.locator(".card", has_text=release.version)
    expect(card.locator(".light")).to_contain_text("Amber")
    expect(card).to_contain_text("is pending")
    page.goto(f"{live_server.url}/releases/{release.pk}/")
    expect(page.locator(".headline .light")).to_contain_text("Amber")
    caption = page.locator(f"#chart-cap-{lived.criterion.pk}")
    expect(caption.locator("[data-state='pending']")).to_contain_text("Pending")
    expect(caption).to_contain_text("the first evaluation is due at")
    expect(page.locator("#gate")).to_contain_text("is pending: not evaluated yet")
    assert "Red" not in page.locator("#gate").inner_text()
    shot(page, f"pending-after-advance-{width}")
    page.context.close()


def test_no_serious_accessibility_violations_on_the_main_pages(lived, alice, browser, live_server):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    release = lived.release
    found = {}
    for width in WIDTHS:
        page = tab(browser, live_server, width)
        sign_in(page, live_server, "alice")
        for path in (
            "/",
            f"/releases/{release.pk}/",
            f"/releases/{release.pk}/signoff/",
            "/incidents/",
        ):
            page.goto(live_server.url + path)
            violations = axe.run(page).response["violations"]
            serious = [v["id"] for v in violations if v["impact"] in ("serious", "critical")]
            if serious:
                found[f"{path} at {width}"] = serious
            assert page.evaluate("document.documentElement.scrollWidth") <= width, path
        page.context.close()
    assert found == {}
