"""The world a journey lives in: a clock moved by time-machine, beat's periodic jobs called as beat
calls them, the cast's browsers and the CI pipeline's token, and everyone's inbox.

Nothing of the project's own code is faked: people use the test client on the real pages (and
follow the links in the emails they got), CI uses the real API with a real token, and the jobs
are the Celery tasks of `CELERY_BEAT_SCHEDULE`, run in-process (tasks they queue run eagerly,
after the commit that queued them: the journeys run in transactional tests).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework.test import APIClient

from apps.checks.models import MetricDefinition
from apps.incidents.models import Incident, NotificationDelivery
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Event, Release
from apps.reports.models import ReportSubscription

MINUTE = timedelta(minutes=1)
PASSWORD = "pw-for-tests-1"  # tests.factories.UserFactory's
LINK = re.compile(r"https?://[^\s\"'<>]+")


def site_path(url: str) -> str:
    """The path (and query) of a link in an email, for the test client."""
    site = urlparse(settings.SITE_URL)
    parsed = urlparse(url)
    assert (parsed.scheme, parsed.netloc) == (site.scheme, site.netloc), url
    return parsed.path + (f"?{parsed.query}" if parsed.query else "")


@dataclass
class Person:
    """Someone of the cast: a browser of their own, and what reached their inbox."""

    name: str
    user: Any
    world: World
    client: Client = field(default_factory=Client)

    @property
    def email(self) -> str:
        return self.user.email

    def inbox(self, subject: str = "") -> list[mail.EmailMessage]:
        return [
            m
            for m in mail.outbox
            if self.email in [*m.to, *m.cc, *m.bcc] and subject.lower() in m.subject.lower()
        ]

    def links(self, message: mail.EmailMessage, contains: str) -> list[str]:
        """The links of one email (its text part) whose path contains `contains`."""
        return [u for u in LINK.findall(message.body) if contains in u]

    def follow(self, url: str) -> Any:
        """Open a link from an email as a person would: sign in first if the page asks."""
        response = self.client.get(site_path(url))
        if response.status_code == 302 and "/accounts/login/" in response["Location"]:
            response = self.client.post(
                response["Location"],
                {"username": self.user.get_username(), "password": PASSWORD},
                follow=True,
            )
        assert response.status_code == 200, (self.name, url, response.status_code)
        return response

    def sign_from(
        self, message: mail.EmailMessage, release_id: int, decision: str = "go", comment: str = ""
    ) -> str:
        """Follow an email's sign-off link (the page records nothing), then sign; returns the
        page as it was seen before signing."""
        [link] = self.links(message, f"/releases/{release_id}/signoff/")
        page = self.follow(link).content.decode()
        self.post(site_path(link), {"action": decision, "comment": comment})
        return page

    def sign_in(self) -> None:
        response = self.client.post(
            "/accounts/login/",
            {"username": self.user.get_username(), "password": PASSWORD},
        )
        assert response.status_code == 302, response.content[:500]
        # Without ?next= the sign-in lands on the dashboard, never on a 404; someone with no
        # role there is told so (403 with the reason).
        landing = self.client.get(response["Location"])
        assert response["Location"] == "/", response["Location"]
        assert landing.status_code == (200 if self.user.groups.exists() else 403)

    def sees(self, path: str) -> str:
        response = self.client.get(path)
        assert response.status_code == 200, (self.name, path, response.status_code)
        return response.content.decode()

    def card(self, release_id: int) -> str:
        """The release's card on the dashboard as this person sees it ('' when it is not there)."""
        html = self.sees("/")
        card = r'<li class="card[^"]*">(?:(?!</li>).)*?href="/releases/{}/"(?:(?!</li>).)*</li>'
        found = re.search(card.format(release_id), html, re.S)
        return found.group(0) if found else ""

    def light(self, release_id: int) -> str:
        """The colour word of the release's gate light on the dashboard."""
        found = re.search(r"light-(\w+)", self.card(release_id))
        return found.group(1) if found else ""

    def post(self, path: str, data: dict[str, Any], *, expect: int = 302) -> Any:
        response = self.client.post(path, data)
        assert response.status_code == expect, (self.name, path, response.content[:800])
        return response


class Pipeline:
    """The service's CI job: its token and the calls docs/ci.md makes."""

    def __init__(self, key: str) -> None:
        self.api = APIClient()
        self.api.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    def call(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        response = getattr(self.api, method)(f"/api/v1{path}", body, format="json")
        assert response.status_code == expect, (method, path, response.status_code, response.data)
        return response.json()

    def register(self, **fields: Any) -> dict[str, Any]:
        return self.call("post", "/releases/", fields, expect=201)

    def report(self, release_id: int, key: str, passed: bool = True, **extra: Any) -> Any:
        body = {"key": key, "passed": passed, **extra}
        return self.call("post", f"/releases/{release_id}/checks/", body)

    def gate(self, release_id: int) -> dict[str, Any]:
        return self.call("get", f"/releases/{release_id}/gate/")

    def traffic(self, release_id: int) -> int:
        return self.call("get", f"/releases/{release_id}/traffic/")["percentage"]


@dataclass
class Signal:
    """What CI pushes each minute for one release: value per metric key (None: nothing)."""

    values: dict[str, float]
    requests: int = 600


class World:
    """The clock, beat, and the metrics CI pushes for the releases it watches."""

    def __init__(self, traveller: Any, pipeline: Pipeline | None = None) -> None:
        self.traveller = traveller
        self.pipeline = pipeline
        self.signals: dict[int, Signal] = {}
        # The services of every release ever watched: their incidents are the journey's.
        self.services: set[int] = set()
        self.pushed_until: dict[int, datetime] = {}
        self.beats = 0
        self.jobs_run: Counter[str] = Counter()
        self._last_run: dict[str, datetime] = {}
        self._quiet_beats = 0
        self._fingerprint: tuple[int, ...] = ()

    @property
    def now(self) -> datetime:
        return timezone.now()

    # --- metrics CI pushes ---------------------------------------------------------------
    def watch(self, release_id: int, **values: float) -> None:
        """From now on CI pushes these values every minute for the release (until changed)."""
        self._push_due()
        self.signals[release_id] = Signal(values)
        self.services.add(Release.objects.values_list("service_id", flat=True).get(pk=release_id))
        self.pushed_until.setdefault(release_id, self.now.replace(second=0, microsecond=0))

    def unwatch(self, release_id: int) -> None:
        self._push_due()
        self.signals.pop(release_id, None)

    def _push_due(self) -> None:
        if self.pipeline is None:
            return
        metrics = {m.key: m for m in MetricDefinition.objects.all()}
        batch: list[dict[str, Any]] = []
        for release_id, signal in self.signals.items():
            start = self.pushed_until[release_id]
            minute = start
            while minute + MINUTE <= self.now:
                for key, value in signal.values.items():
                    metric = metrics[key]
                    batch.append(
                        {
                            "release": release_id,
                            "metric": key,
                            "at": (minute + timedelta(seconds=30)).isoformat(),
                            "value": value,
                            **({"count": signal.requests} if metric.kind == "ratio" else {}),
                        }
                    )
                minute += MINUTE
            self.pushed_until[release_id] = minute
        for chunk in range(0, len(batch), 10_000):
            self.pipeline.call("post", "/samples/", batch[chunk : chunk + 10_000], expect=201)

    # --- beat ------------------------------------------------------------------------------
    def _due_jobs(self) -> list[str]:
        due = []
        for entry in settings.CELERY_BEAT_SCHEDULE.values():
            every = timedelta(seconds=float(entry["schedule"]))
            last = self._last_run.get(entry["task"])
            if last is None or self.now - last >= every:
                due.append(entry["task"])
        return due

    def beat(self) -> None:
        """What beat sends at this moment, each job as a worker would run it."""
        self._push_due()
        for name in self._due_jobs():
            # The task itself, not .delay(): a job that raises fails the journey, as it would
            # show in the worker's log every minute.
            import_string(name)()
            self._last_run[name] = self.now
            self.jobs_run[name] += 1
        self.beats += 1

    def _activity(self) -> tuple[int, ...]:
        return (
            len(mail.outbox),
            Event.objects.count(),
            NotificationDelivery.objects.count(),
            Incident.objects.unresolved().count(),
        )

    def _next_due(self, until: datetime) -> datetime:
        """The next moment something is due by time alone: a soak ending, a report, a reminder."""
        due = [until]
        for release in Release.objects.filter(
            status=ReleaseStatus.IN_PROGRESS, pk__in=list(self.signals)
        ).select_related("current_stage"):
            stage = release.current_stage
            if stage and stage.entered_at:
                end = stage.entered_at + stage.min_soak + stage.paused_for
                if end > self.now:
                    due.append(end + MINUTE)
        next_report = (
            ReportSubscription.objects.filter(active=True, next_due_at__gt=self.now)
            .order_by("next_due_at")
            .values_list("next_due_at", flat=True)
            .first()
        )
        if next_report:
            due.append(next_report + MINUTE)
        return min(due)

    def wait(
        self,
        duration: timedelta,
        *,
        quiet_step: timedelta = timedelta(hours=6),
        stop: Callable[[], bool] | None = None,
    ) -> None:
        """Let time pass: beat every minute while things happen, larger steps when quiet
        (never past the next soak end or report due); stop early once `stop()` holds."""
        until = self.now + duration
        self._fingerprint = self._activity()
        while self.now < until and not (stop and stop()):
            # An unacknowledged incident of the journey escalates minute by minute: no skipping.
            # Only the journey's own: load_demo's open demo incident would make every wait
            # beat each minute for days (hours of test time).
            busy = (
                Incident.objects.unresolved()
                .filter(acknowledged_at__isnull=True, service_id__in=self.services)
                .exists()
            )
            if self._quiet_beats >= 5 and not busy:
                step = min(quiet_step, max(self._next_due(until) - self.now, MINUTE))
            else:
                step = MINUTE
            self.traveller.shift(min(step, until - self.now))
            self.beat()
            fingerprint = self._activity()
            self._quiet_beats = 0 if fingerprint != self._fingerprint else self._quiet_beats + 1
            self._fingerprint = fingerprint

    def minutes(self, count: int) -> None:
        """Beat every minute for `count` minutes (a breach, an escalation: nothing skipped)."""
        for _ in range(count):
            self.traveller.shift(MINUTE)
            self.beat()
        self._quiet_beats = 0

    def until(self, condition: Callable[[], bool], *, limit: timedelta, what: str) -> None:
        """Let time pass (skipping quiet hours) until `condition` holds."""
        self.wait(limit, stop=condition)
        assert condition(), f"Not within {limit}: {what}"


def duplicates(messages: Iterable[mail.EmailMessage]) -> list[tuple[str, str]]:
    """(recipient, subject) pairs that arrived more than once with the same body."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for message in messages:
        for to in [*message.to, *message.cc, *message.bcc]:
            seen[(to, message.subject, message.body)] += 1
    return [(to, subject) for (to, subject, _), n in seen.items() if n > 1]
