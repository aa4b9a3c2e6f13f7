"""The emailed report: a plain-text part and an HTML part telling the same figures, the subject
naming the scope and the period, and the charts attached inline and referenced by the HTML."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.core import mail

from apps.reports import services
from apps.reports.models import ReportSubscription
from apps.reports.schedule import period_containing
from tests.reports.conftest import GENERATED_AT

pytestmark = pytest.mark.django_db

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def send_week(run, service=None, address="em@example.com"):
    period = period_containing("weekly", date(2026, 11, 16), "UTC")
    with time_machine.travel(datetime.fromisoformat(GENERATED_AT), tick=False):
        report, _ = services.obtain_report(service, period)
        run(services.add_recipients, report, [(address, None)])
    return report


def test_both_parts_the_subject_and_the_inline_charts(week, run):
    report = send_week(run)
    [message] = mail.outbox
    assert message.to == ["em@example.com"]
    assert message.subject == (
        "[rolloutdesk] Weekly report · All services · Week 47, 16–22 Nov 2026"
    )
    text = message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"

    # The same figures in both parts.
    for line in [
        "Releases started: 8 / 2 / +6",
        "Change failure rate: 60 % / 0 % / +60 pp",
        "Lead time for changes: 37.3 h / 26.0 h / +11.3 h",
        "Precision of automatic actions: 33 % / — / n/a",
        "Mean wait for sign-off: 3.0 h / 1.0 h / +2.0 h",
    ]:
        assert line in text
    for cells in [
        ("Releases started", "8", "2", "+6"),
        ("Change failure rate", "60 %", "0 %", "+60 pp"),
        ("Lead time for changes", "37.3 h", "26.0 h", "+11.3 h"),
    ]:
        pattern = r".*?".join(rf">{re.escape(c)}</td>" for c in cells)
        assert re.search(pattern, html, re.S), cells
    for phrase in [
        "AI Orchestra 2.0.3",
        "waiting for alice",
        "Search slow",
        "Deployment frequency",
    ]:
        assert phrase in text and phrase in html

    # Charts: two PNG parts with Content-IDs, each referenced by an <img> of the HTML.
    assert "<script" not in html.lower()
    images = [p for p in message.message().walk() if p.get_content_type() == "image/png"]
    assert len(images) == 2
    for image in images:
        content_id = image["Content-ID"].strip("<>")
        assert f'src="cid:{content_id}"' in html
        assert image.get_payload(decode=True).startswith(PNG_MAGIC)
        assert image.get_content_disposition() == "inline"
    assert message.message().get_content_type() == "multipart/related"
    assert f"/reports/{report.pk}/" in text and f"/reports/{report.pk}/" in html
    # The archive keeps the email as it was sent.
    report.refresh_from_db()
    assert (report.subject, report.text, report.html) == (message.subject, text, html)


def test_the_subject_names_a_service_scope(week, run, service):
    send_week(run, service=service)
    assert mail.outbox[0].subject == (
        "[rolloutdesk] Weekly report · AI Orchestra · Week 47, 16–22 Nov 2026"
    )


def test_html_escapes_what_people_typed(week, run, service, rita_actor):
    from apps.incidents import lifecycle

    with time_machine.travel(datetime(2026, 11, 20, tzinfo=UTC), tick=False):
        lifecycle.open_incident(
            service=service, title="<script>alert(1)</script>", actor=rita_actor
        )
    send_week(run)
    html = mail.outbox[0].alternatives[0][0]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" in mail.outbox[0].body  # plain text stays plain


def test_a_subscription_for_a_user_uses_their_address(run, alice):
    with time_machine.travel(datetime(2026, 11, 22, tzinfo=UTC), tick=False) as clock:
        ReportSubscription.objects.create(user=alice)
        clock.move_to(datetime(2026, 11, 23, 9, tzinfo=UTC))
        run(services.send_due)
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]


def test_long_lists_stop_at_fifty_rows_and_point_to_the_csv(
    week, run, service, production, rita_actor
):
    from apps.rollouts import transitions
    from tests.factories import make_release

    with time_machine.travel(datetime(2026, 11, 18, 10, tzinfo=UTC), tick=False):
        for n in range(55):
            release = make_release(service=service, environment=production, version=f"bulk-{n}")
            # Many at once in one environment: only a release manager's forced start allows it.
            transitions.start(release, actor=rita_actor, force=True, reason="bulk test data")
    report = send_week(run)
    [message] = mail.outbox
    [(html, _)] = message.alternatives
    total = len(report.content["releases"]["rows"])
    assert total > 50
    assert f"… and {total - 50} more releases in the CSV." in message.body
    assert f"… and {total - 50} more releases in the CSV." in html
