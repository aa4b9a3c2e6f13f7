"""Generating, archiving and delivering reports; claiming the subscriptions that are due.

The scheduled task, the `send_report`/`send_reports` commands and the admin actions all call the
functions here. A due subscription is claimed by moving its `next_due_at` forward with a
conditional UPDATE (healthchecks' sendreports pattern): of two workers running the task at once,
exactly one moves it, and only that one adds the recipient to the period's report. Each recipient
is one ReportDelivery row, an outbox table (apps/outbox): written with the report, sent after
commit by the outbox engine, which claims it, retries it with backoff and sweeps strays.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from apps.core import emails
from apps.jobs.runner import job
from apps.outbox import engine as outbox
from apps.releases.models import Service

from . import charts, content
from .models import Report, ReportChart, ReportDelivery, ReportSubscription
from .schedule import Period, last_complete_period

logger = logging.getLogger(__name__)

EMAIL = "report"


def max_attempts() -> int:
    return settings.REPORTS_DELIVERY_MAX_ATTEMPTS


# --- generating -----------------------------------------------------------------------------


@dataclass
class Draft:
    """A generated report before it is stored: what a dry run prints."""

    service: Service | None
    period: Period
    content: dict[str, Any]
    subject: str
    text: str
    html: str
    charts: list[tuple[str, str, bytes]] = field(default_factory=list)


def render(data: dict[str, Any], *, chart_src: dict[str, str]) -> tuple[str, str, str]:
    """Subject, plain text and HTML of a report; charts referenced through `chart_src`."""
    return emails.render(EMAIL, {"report": data, "chart_src": chart_src, "report_url": ""})


def email_chart_src() -> dict[str, str]:
    return {name: f"cid:{name}@rolloutdesk" for name in charts.CHARTS}


def generate(service: Service | None, period: Period, *, now: datetime | None = None) -> Draft:
    """Compute, render and draw a report without storing anything."""
    now = now or timezone.now()
    data = content.build(service, period, now=now)
    # Before the period's end the figures stop at `now`: say so wherever the report is read.
    data["preview"] = now < period.end
    subject, text, html = render(data, chart_src=email_chart_src())
    return Draft(
        service=service,
        period=period,
        content=data,
        subject=subject,
        text=text,
        html=html,
        charts=charts.draw(data["weekly"]),
    )


def _existing(service: Service | None, period: Period) -> Report | None:
    """The complete report of this scope and period; a preview is never reused."""
    return Report.objects.filter(
        kind=period.kind,
        service=service,
        time_zone=period.time_zone,
        period_start=period.start,
        preview=False,
    ).first()


def obtain_report(
    service: Service | None, period: Period, *, now: datetime | None = None
) -> tuple[Report, bool]:
    """The stored report of this scope and period, generated now if there is none yet.

    Subscribers of the same scope, kind and time zone share one report; two workers generating
    it at once store it once (the unique constraint decides, the loser reads the winner's).
    A period that has not ended yet gets a fresh preview each time: its figures stop at `now`,
    so it is stored apart (preview=True) and never handed out again, least of all by the
    schedule, which generates the complete report once the period is over.
    """
    now = now or timezone.now()
    preview = now < period.end
    if not preview:
        report = _existing(service, period)
        if report is not None:
            return report, False
    draft = generate(service, period, now=now)
    try:
        with transaction.atomic():
            report = Report.objects.create(
                preview=preview,
                kind=period.kind,
                service=service,
                time_zone=period.time_zone,
                period_start=period.start,
                period_end=period.end,
                subject=draft.subject,
                content=draft.content,
                html=draft.html,
                text=draft.text,
                generated_at=now,
            )
            ReportChart.objects.bulk_create(
                ReportChart(report=report, name=name, title=title, png=png)
                for name, title, png in draft.charts
            )
            # Archive the email exactly as recipients get it: with the link to this report.
            report.subject, report.text, report.html = emails.render(EMAIL, email_context(report))
            report.save(update_fields=["subject", "text", "html"])
    except IntegrityError:
        report = None if preview else _existing(service, period)
        if report is None:
            raise
        return report, False
    return report, True


# --- recipients and the schedule ------------------------------------------------------------


def add_recipients(
    report: Report, recipients: Iterable[tuple[str, ReportSubscription | None]]
) -> list[ReportDelivery]:
    """One delivery per new address, queued once the surrounding transaction commits."""
    now = timezone.now()
    created = []
    for address, subscription in recipients:
        if not address:
            continue
        try:
            with transaction.atomic():
                created.append(
                    ReportDelivery.objects.create(
                        report=report,
                        subscription=subscription,
                        address=address,
                        created_at=now,
                        next_attempt_at=now,
                    )
                )
        except IntegrityError:
            continue  # this address already has this report
    _queue_after_commit([d.pk for d in created])
    return created


@dataclass
class RunReport:
    """What one run of the scheduled task did."""

    claimed: list[int] = field(default_factory=list)
    raced: int = 0
    reports_generated: int = 0
    deliveries: int = 0


def due_subscriptions(now: datetime) -> QuerySet[ReportSubscription]:
    return ReportSubscription.objects.filter(active=True, next_due_at__lte=now)


def claim(subscription: ReportSubscription, now: datetime) -> bool:
    """Move the subscription's due time past `now`; true for exactly one of concurrent callers."""
    due_at = subscription.next_due_at
    following = subscription.due_after(max(now, due_at))
    moved = ReportSubscription.objects.filter(
        pk=subscription.pk, active=True, next_due_at=due_at
    ).update(next_due_at=following, last_sent_at=now)
    return bool(moved)


def period_for(subscription: ReportSubscription, at: datetime) -> Period:
    """What a report sent at `at` to this subscriber covers: the last whole day or week."""
    return last_complete_period(subscription.frequency, at, subscription.time_zone)


def send_due(now: datetime | None = None) -> RunReport:
    """The scheduled task: claim every due subscription, report to it, retry failed sends.

    Each subscription is one item of the job, in its own savepoint with its claim: one that
    fails (a time zone that is no zone, say) is recorded, its claim rolls back so the next run
    tries it again, and the other subscriptions get their reports.
    """
    now = now or timezone.now()
    run = RunReport()
    with job("reports.send_due") as job_run:
        for subscription in (
            due_subscriptions(now).select_related("user", "service").order_by("next_due_at", "pk")
        ):
            due_at = subscription.next_due_at
            with job_run.item(subscription):
                if not claim(subscription, now):
                    run.raced += 1
                    continue
                report, generated = obtain_report(
                    subscription.service, period_for(subscription, due_at), now=now
                )
                made = add_recipients(report, [(subscription.address, subscription)])
                run.claimed.append(subscription.pk)
                run.reports_generated += int(generated)
                run.deliveries += len(made)
    # Failed sends are retried by the outbox sweep, like every other outgoing message.
    return run


def send_now(subscription: ReportSubscription, *, now: datetime | None = None) -> ReportDelivery:
    """Send the subscriber the report of their last whole period now; the schedule is unchanged.

    An address that already had that report gets it again.
    """
    now = now or timezone.now()
    with transaction.atomic():
        report, _ = obtain_report(subscription.service, period_for(subscription, now), now=now)
        made = add_recipients(report, [(subscription.address, subscription)])
        if made:
            return made[0]
        delivery = ReportDelivery.objects.get(report=report, address=subscription.address)
        outbox.resend(ReportDelivery.objects.filter(pk=delivery.pk), include_sent=True)
    delivery.refresh_from_db()
    return delivery


def recipients_for(report: Report) -> list[tuple[str, ReportSubscription]]:
    """Active subscriptions of the report's kind and scope (all-services ones for all)."""
    subscriptions = ReportSubscription.objects.filter(active=True, frequency=report.kind)
    if report.service_id is None:
        subscriptions = subscriptions.filter(service__isnull=True)
    else:
        subscriptions = subscriptions.filter(service_id=report.service_id)
    return [(s.address, s) for s in subscriptions.select_related("user").order_by("pk")]


# --- sending (by the outbox engine, which claims, retries and records) -------------------------


def _queue_after_commit(ids: list[int]) -> None:
    outbox.queue_after_commit(ReportDelivery, ids)


def report_url(report: Report) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("reports:detail", args=[report.pk])


def email_context(report: Report) -> dict[str, Any]:
    return {
        "report": report.content,
        "chart_src": email_chart_src(),
        "report_url": report_url(report),
    }


def _send(delivery: ReportDelivery) -> None:
    report = delivery.report
    images = [(chart.content_id, bytes(chart.png)) for chart in report.charts.all()]
    # Retries of one send share a Message-ID (a mail server takes them as one message); a
    # person's "send again" after it went out (sent_at set) is a new message with a new one.
    previous = delivery.sent_at.isoformat() if delivery.sent_at else "first"
    key = f"report-{report.pk}:to:{delivery.address.lower()}:{previous}"
    context = email_context(report)
    if not emails.send(EMAIL, [delivery.address], context, inline_images=images, key=key):
        raise OSError("The mail backend accepted no message.")


outbox.register(ReportDelivery, _send, related=("report",), max_attempts=max_attempts)


def render_page_html(report: Report) -> str:
    """The report's body for the web page: the same template, charts served by URL."""
    chart_src = {name: reverse("reports:chart", args=[report.pk, name]) for name in charts.CHARTS}
    return render_to_string(
        "reports/_report.html", {"report": report.content, "chart_src": chart_src}
    )
