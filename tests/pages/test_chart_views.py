"""Charts as people see them: the sign-off page formats values as the charts do, and in a real
browser a lone point is drawn, a phone shows the newest buckets first, and stage labels do not
overprint (Debian's Chromium; screenshots in var/screenshots/)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.checks.models import Sample
from apps.checks.recording import run_now
from apps.releases.choices import StageStatus
from tests.pages.conftest import build_plan, client_for, shot, sign_in, start_rollout


@pytest.mark.django_db
def test_the_signoff_page_shows_values_as_the_charts_do(rollout, alice):
    html = client_for(alice).get(f"/releases/{rollout.release.pk}/signoff/").content.decode()
    table = html[html.index("Recent metric verdicts") :]
    cells = re.findall(r"<td>([^<]*)</td><td>[^<]*</td><td>([^<]*)</td>", table)
    assert cells, table[:500]
    values = [value for _, value in cells]
    # The error rate is a ratio: "0.9 %" as on the chart, never "0.009".
    assert all(value.endswith(" %") for value in values), values
    assert not any(value.startswith("0.00") for value in values)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_charts_in_a_browser_lone_point_newest_first_labels_apart(
    service, production, victor, live_server, open_page
):
    rollout = start_rollout(
        service=service,
        environment=production,
        plan=build_plan("chart-browser", extra_stages=3),
        minutes=90,
        per_minute=1,
    )
    release = rollout.release
    # The stages entered a minute apart (labels would overprint), and one sample alone, far
    # above the rest, after a gap of data (the kind that triggers a rollback).
    now = timezone.now()
    for i, stage in enumerate(release.stages.order_by("position")[:4]):
        stage.entered_at = now - timedelta(minutes=30 - i)
        stage.status = StageStatus.PASSED if i < 3 else StageStatus.ACTIVE
        stage.save()
    Sample.objects.filter(release=release, at__gte=now - timedelta(minutes=6)).delete()
    Sample.objects.create(
        release=release,
        metric=rollout.metric,
        at=now - timedelta(minutes=3, seconds=20),
        value=0.2,
        count=500,
    )
    run_now(release, now=now)

    page = open_page(width=1366)
    sign_in(page, live_server, "victor")
    page.goto(f"{live_server.url}/releases/{release.pk}/?range=all")
    chart = page.locator("figure.chart").first
    assert chart.locator("circle.dot-treatment").count() == 1
    boxes = chart.locator(".stage-change text").evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return [r.left, r.right, r.top, r.bottom]; })"
    )
    assert len(boxes) >= 3
    for i, (left, right, top, bottom) in enumerate(boxes):
        for other in boxes[i + 1 :]:
            apart = right <= other[0] or left >= other[1] or bottom <= other[2] or top >= other[3]
            assert apart, (boxes[i], other)
    shot(page, "chart-labels-1366")

    phone = open_page(width=390)
    sign_in(phone, live_server, "victor")
    phone.goto(f"{live_server.url}/releases/{release.pk}/?range=all")
    scroller = phone.locator(".chart-scroll").first
    scroller.scroll_into_view_if_needed()
    # The chart is wider than the phone and scrolls in its box, showing its right (newest) end.
    wider, right_gap = scroller.evaluate(
        "s => { const svg = s.querySelector('svg').getBoundingClientRect();"
        " const box = s.getBoundingClientRect();"
        " return [svg.width > box.width + 20, Math.abs(svg.right - box.right)]; }"
    )
    assert wider and right_gap < 2
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "chart-newest-first-390")
