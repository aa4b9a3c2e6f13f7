"""Emails carry what people typed as they typed it: a release version, a reason or an incident
title such as `<script>"R&D"</script>` appears verbatim in the subject and the plain-text part
and escaped in the HTML part, for every email template there is (apps.core.emails.render decides
escaping by the part's kind, not each template)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.utils.html import escape

from apps.checks.models import CheckResult
from apps.core import emails
from apps.core.actors import Actor
from apps.incidents.models import Incident
from apps.releases.choices import EventVerb
from apps.releases.models import Event, Release
from apps.reports import services as reports
from apps.reports.schedule import period_containing
from apps.rollouts import gate, transitions
from apps.signoffs.models import SignOffRequest
from tests.factories import ServiceFactory, UserFactory, make_release

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(\"R&D\")</script> 'x'"
ESCAPED = escape(HOSTILE)  # &lt;script&gt;alert(&quot;R&amp;D&quot;)&lt;/script&gt; &#x27;x&#x27;


@pytest.fixture
def release(production) -> Release:
    service = ServiceFactory(name=f"Svc {HOSTILE}", slug="hostile")
    return make_release(service=service, environment=production, version=HOSTILE)


def _event(release: Release, verb: str, **fields: Any) -> Event:
    return Event(release=release, verb=verb, actor_name=HOSTILE, reason=HOSTILE, **fields)


def _release_transition(release: Release) -> dict[str, Any]:
    event = _event(release, EventVerb.PAUSED)
    return {"event": event, "release": release, "verdict": gate.evaluate(release)}


def _signoff_event(release: Release) -> dict[str, Any]:
    event = _event(release, EventVerb.SIGNED_OFF, data={"gate": HOSTILE})
    return {"event": event, "release": release, "signoff_url": "/s/1/"}


def _signoff_request(release: Release) -> dict[str, Any]:
    person = UserFactory(first_name=HOSTILE)
    request = SignOffRequest(release=release, user=person)
    return {
        "request": request,
        "release": release,
        "person": person,
        "gate_label": HOSTILE,
        "rule": HOSTILE,
        "needed": HOSTILE,
        "blockers": [{"detail": HOSTILE}],
        "signoff_url": "/s/1/",
    }


def _signoff_reminder(release: Release) -> dict[str, Any]:
    item = {"release": release, "signoff_url": "/s/1/", "asked_at": release.created_at}
    return {"person": UserFactory(first_name=HOSTILE), "items": [item]}


def _metric_check(release: Release) -> dict[str, Any]:
    result = CheckResult(release=release, label=HOSTILE, verdict="warn", detail=HOSTILE)
    return {"release": release, "result": result, "value": "1", "threshold": ""}


def _incident_page(release: Release) -> dict[str, Any]:
    incident = Incident(
        service=release.service, release=release, title=HOSTILE, description=HOSTILE
    )
    links = {"acknowledge_url": "/a/", "resolve_url": "/r/", "incident_url": "/i/"}
    return {"incident": incident, "contact": None, "level": 1, "round": 0, **links}


def _report(release: Release) -> dict[str, Any]:
    period = period_containing("weekly", date(2026, 11, 16), "UTC")
    with time_machine.travel(datetime(2026, 11, 23, 8, tzinfo=period.start.tzinfo), tick=False):
        stored, _ = reports.obtain_report(release.service, period)
    return reports.email_context(stored)


CONTEXTS = {
    "release-transition": _release_transition,
    "signoff-event": _signoff_event,
    "signoff-request": _signoff_request,
    "signoff-reminder": _signoff_reminder,
    "metric-check": _metric_check,
    "incident-page": _incident_page,
    "report": _report,
}
# Subjects that name no typed text (a count only) cannot carry it.
SUBJECT_WITHOUT_INPUT = {"signoff-reminder"}


def _email_names() -> set[str]:
    """Every email any template directory defines (by its -subject.txt)."""
    roots = [Path(d) for d in settings.TEMPLATES[0]["DIRS"]]
    roots += [Path(p) for p in (settings.BASE_DIR / "apps").glob("*/templates")]
    return {
        path.name.removesuffix("-subject.txt")
        for root in roots
        for path in (root / "emails").glob("*-subject.txt")
    }


def test_every_email_template_is_covered() -> None:
    assert _email_names() == set(CONTEXTS)


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_typed_text_is_verbatim_in_text_parts_and_escaped_in_html(name, release) -> None:
    subject, text, html = emails.render(name, CONTEXTS[name](release))

    if name not in SUBJECT_WITHOUT_INPUT:
        assert HOSTILE in subject
    assert "&lt;" not in subject and "&amp;" not in subject and "&quot;" not in subject
    assert HOSTILE in text
    assert "&lt;" not in text and "&amp;" not in text and "&#x27;" not in text
    assert ESCAPED in html
    assert "<script>" not in html


def test_a_sent_transition_email_keeps_the_version_and_reason(run, release) -> None:
    """The whole path: a transition queues its email after commit; the task sends it."""
    release.service.notification_emails = "ops@example.com"
    release.service.save(update_fields=["notification_emails"])
    run(transitions.start, release, actor=Actor.system("tests"), reason=HOSTILE)

    [message] = mail.outbox
    assert HOSTILE in message.subject
    assert f"Reason: {HOSTILE}" in message.body
    [(html, _)] = message.alternatives
    assert f"Reason: {ESCAPED}" in html
