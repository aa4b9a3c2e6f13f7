"""The dashboard: the fleet's running and paused releases by service, filtered and paged, with
each gate light in words and its most important blocker first; what waits for the signed-in
person, planned releases, and what finished lately.

Every gate light is the release's kept verdict (apps.rollouts.verdicts, gate.evaluate's stored
answer), never a fresh evaluation: the page reads a fixed number of queries however many
releases run (1,000 running are one page's query for its rows). The few kept verdicts that are
missing or due (time alone changed them and the tick has not come yet) are recomputed first,
through the same read API, so no light is stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any
from urllib.parse import urlencode

from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When
from django.http import QueryDict
from django.utils import timezone

from apps.jobs import heartbeat
from apps.releases.choices import BlockerKind, ReleaseStatus
from apps.releases.models import Environment, Release, Service
from apps.rollouts import verdicts
from apps.rollouts.models import GateState, KeptVerdict
from apps.signoffs import services as signoffs
from apps.signoffs.choices import Decision
from apps.signoffs.models import ReleaseSignOffRule, SignOff

from . import incidents
from .presenters import Light, kept_light, soak_left, stage_progress

PLANNED_SHOWN = 20
FINISHED_SHOWN = 15
FINISHED_WITHIN = timedelta(days=14)
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# The gate states a running release can have, most urgent first (the filter's choices).
STATES = [GateState.RED, GateState.AMBER, GateState.GREEN]
ORDERS = {
    "service": "by service, most urgent first within each",
    "urgency": "most urgent first, across services",
}


# Columns no card reads, left unread: a thousand rows of them cost more to load than the query.
CARD_UNUSED = [
    "commit_time",
    "changelog_url",
    "finished_at",
    "updated_at",
    "service__description",
    "current_stage__auto_advance",
    "current_stage__min_requests",
    "service__notification_emails",
    "service__owner_team",
    "kept_verdict__traffic",
    "kept_verdict__computed_at",
]


class BadFilter(ValueError):
    """A filter or page the dashboard cannot apply; the message names the parameter."""


@dataclass
class Filters:
    """What the dashboard's list shows: one service, one environment, one gate state, a page."""

    service: str = ""
    environment: str = ""
    gate: str = ""
    order: str = "service"
    page: int = 1
    per: int = PAGE_SIZE

    def query(self, **changes: Any) -> str:
        """The query string for these filters with `changes`, defaults left out."""
        values = {**self.__dict__, **changes}
        defaults = Filters().__dict__
        return urlencode({k: v for k, v in values.items() if v != defaults[k]})


def parse_filters(params: QueryDict) -> Filters:
    """The filters of a request's query string; BadFilter naming what is wrong."""
    filters = Filters(
        service=params.get("service", "").strip(),
        environment=params.get("environment", "").strip(),
        gate=params.get("gate", "").strip(),
        order=params.get("order", "service").strip() or "service",
    )
    if filters.gate and filters.gate not in STATES:
        raise BadFilter(f"gate must be one of {', '.join(STATES)}; got {filters.gate!r}.")
    if filters.order not in ORDERS:
        raise BadFilter(f"order must be one of {', '.join(ORDERS)}; got {filters.order!r}.")
    for name, low, high in (("page", 1, None), ("per", 1, MAX_PAGE_SIZE)):
        raw = params.get(name, "").strip()
        if not raw:
            continue
        if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
            limit = f"from {low} to {high}" if high else f"{low} or more"
            raise BadFilter(f"{name} must be a whole number {limit}; got {raw!r}.")
        setattr(filters, name, int(raw))
    return filters


@dataclass
class Row:
    """One release on the dashboard, lit by its kept verdict."""

    release: Release
    kept: KeptVerdict
    light: Light
    progress: str
    soak: str
    waiting_for_me: bool = False

    @property
    def blocker_kinds(self) -> set[str]:
        return {b["kind"] for b in self.kept.payload.get("blockers", [])}

    @property
    def environment(self) -> Environment:
        """Where it runs now: its current stage's environment (a plan may cross several)."""
        stage = self.release.current_stage
        if stage is not None and self.release.status in ReleaseStatus.active():
            return stage.environment
        return self.release.environment


@dataclass
class ServiceGroup:
    service: Service
    rows: list[Row]
    open_incidents: int


@dataclass
class Paging:
    """Where the shown rows sit in the filtered list."""

    number: int
    per: int
    total: int
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        self.pages = max(1, -(-self.total // self.per))

    @property
    def first(self) -> int:
        return min(self.total, (self.number - 1) * self.per + 1)

    @property
    def last(self) -> int:
        return min(self.total, self.number * self.per)


def waiting_for(user: Any, rows: list[Row]) -> set[int]:
    """Releases whose current gate still needs a go this person may give and has not given.

    Reads the person's groups, the matching rules and their standing sign-offs: three queries.
    """
    candidates = [r for r in rows if BlockerKind.SIGNOFF in r.blocker_kinds]
    if not candidates or not user.is_authenticated:
        return set()
    group_ids = set(user.groups.values_list("id", flat=True))
    ids = [r.release.pk for r in candidates]
    rules = {
        (release_id, stage_id): author_may_approve
        for release_id, stage_id, author_may_approve in ReleaseSignOffRule.objects.filter(
            release_id__in=ids, groups__id__in=group_ids
        )
        .values_list("release_id", "stage_id", "author_may_approve")
        .distinct()
    }
    signed = set(
        SignOff.objects.standing()
        .filter(release_id__in=ids, signer_id=user.pk)
        .values_list("release_id", "gate_key")
    )
    found = set()
    for row in candidates:
        release = row.release
        current = signoffs.current_gate(release)
        if current is None:
            continue
        key = (release.pk, current.stage.pk if current.stage else None)
        if key not in rules or (release.pk, current.key) in signed:
            continue
        refusal = signoffs.sign_refusal(
            release, user, Decision.GO, in_groups=True, author_may_approve=rules[key]
        )
        if refusal:
            continue  # their go would not count
        found.add(release.pk)
    return found


def _urgency() -> list[Any]:
    """Order by the kept verdict: red before amber before green, then by the most important
    blocker's kind (BlockerKind order: an incident or a failing metric before a missing sign-off,
    before soak), then the longest running."""
    state = Case(
        *[When(kept_verdict__state=s, then=Value(i)) for i, s in enumerate(STATES)],
        default=Value(len(STATES)),
        output_field=IntegerField(),
    )
    kinds = BlockerKind.values
    blocker = Case(
        *[When(kept_verdict__top_kind=k, then=Value(i)) for i, k in enumerate(kinds)],
        default=Value(len(kinds)),
        output_field=IntegerField(),
    )
    return [state, blocker, "started_at", "pk"]


def _with_kept(releases: QuerySet[Release]) -> QuerySet[Release]:
    """What a card shows, in the rows' one query (not the plan or the author: building those
    objects for a thousand rows costs more than the query)."""
    return releases.select_related(
        "service", "environment", "current_stage__environment", "kept_verdict"
    ).defer(*CARD_UNUSED)


def _stale(now: datetime) -> Q:
    """Kept verdicts missing or due (time alone changed them and the tick has not come yet)."""
    return Q(kept_verdict__isnull=True) | Q(kept_verdict__next_change_at__lte=now)


def _planned(now: datetime) -> list[Release]:
    """The newest planned releases with their kept verdicts (recomputed first if stale)."""
    planned = _with_kept(Release.objects.filter(status=ReleaseStatus.PLANNED)).order_by(
        "-created_at", "-pk"
    )[:PLANNED_SHOWN]
    releases = list(planned)
    stale = [r.pk for r in releases if not hasattr(r, "kept_verdict") or r.kept_verdict.is_due(now)]
    if stale:
        verdicts.read_many(stale, now=now)
        releases = list(planned.all())  # a fresh read: the list above is cached
    return releases


def _row(release: Release, now: datetime) -> Row:
    kept = release.kept_verdict
    return Row(
        release=release,
        kept=kept,
        light=kept_light(kept),
        progress=stage_progress(release),
        soak=soak_left(release, release.current_stage, now),
    )


def build(user: Any, filters: Filters | None = None) -> dict[str, Any]:
    """The dashboard's context for these filters (default: everything, first page)."""
    filters = filters or Filters()
    now = timezone.now()
    active = Release.objects.active()
    summary, stale = _summary(active, now)
    if stale:
        # Before filtering by state, so the filter reads fresh rows.
        verdicts.read_many(active.filter(_stale(now)).values_list("pk", flat=True), now=now)
        summary, _ = _summary(active, now)

    shown = active
    if filters.service:
        shown = shown.filter(service__slug=filters.service)
    if filters.environment:
        shown = shown.filter(current_stage__environment__slug=filters.environment)
    if filters.gate:
        shown = shown.filter(kept_verdict__state=filters.gate)
    filtered = bool(filters.service or filters.environment or filters.gate)
    # Unfiltered, the summary already counted them.
    total = shown.count() if filtered else summary["running"] + summary["paused"]
    paging = Paging(filters.page, filters.per, total)
    if filters.page > paging.pages:
        raise BadFilter(f"page {filters.page} is past the last page ({paging.pages}).")
    order = _urgency()
    if filters.order == "service":
        order = ["service__name", "service_id", *order]
    start = (filters.page - 1) * filters.per
    rows = [
        _row(release, now)
        for release in _with_kept(shown).order_by(*order)[start : start + filters.per]
    ]
    planned_rows = [_row(release, now) for release in _planned(now)]
    finished = list(
        Release.objects.filter(
            status__in=ReleaseStatus.finished(), finished_at__gte=now - FINISHED_WITHIN
        )
        .with_related()
        .order_by("-finished_at", "-pk")[:FINISHED_SHOWN]
    )
    mine = waiting_for(user, rows + planned_rows)
    for row in rows + planned_rows:
        row.waiting_for_me = row.release.pk in mine
    counts = incidents.open_counts([r.release for r in rows + planned_rows])
    if filters.order == "service":
        groups = [
            ServiceGroup(
                service=rows_[0].release.service, rows=rows_, open_incidents=counts.get(sid, 0)
            )
            for sid, group in groupby(rows, key=lambda r: r.release.service_id)
            if (rows_ := list(group))
        ]
    else:
        groups = []
    return {
        "now": now,
        "filters": filters,
        "orders": ORDERS,
        "states": STATES,
        "services": list(Service.objects.order_by("name").values_list("slug", "name")),
        "environments": list(
            Environment.objects.order_by("order", "name").values_list("slug", "name")
        ),
        "paging": paging,
        "previous_query": filters.query(page=filters.page - 1) if filters.page > 1 else None,
        "next_query": filters.query(page=filters.page + 1) if filters.page < paging.pages else None,
        "filtered": filtered,
        "groups": groups,
        "rows": rows,
        "planned": planned_rows,
        "finished": finished,
        "waiting": [r for r in rows + planned_rows if r.waiting_for_me],
        "summary": summary,
        "incidents_installed": incidents.installed(),
        "open_incidents": incidents.open_total(),
        "finished_within_days": FINISHED_WITHIN.days,
        # Beat or the workers stopped, or a job crashes every time: nothing on this page would
        # move (no checks, no auto-advance, no pages) without saying why.
        "stale_jobs": heartbeat.stale_jobs(now),
    }


def _summary(active: QuerySet[Release], now: datetime) -> tuple[dict[str, int], int]:
    """The whole fleet's counts, whatever the filters, and how many kept verdicts are missing or
    due: one query over the kept states."""
    rows = (
        active.order_by()
        .values("status", "kept_verdict__state")
        .annotate(n=Count("pk"), stale=Count("pk", filter=_stale(now)))
    )
    counts: dict[tuple[str, str | None], int] = {}
    stale = 0
    for row in rows:
        counts[(row["status"], row["kept_verdict__state"])] = row["n"]
        stale += row["stale"]

    def total(status: str | None = None, state: str | None = None) -> int:
        return sum(
            n
            for (status_, state_), n in counts.items()
            if status in (None, status_) and state in (None, state_)
        )

    summary = {
        "running": total(status=ReleaseStatus.IN_PROGRESS),
        "paused": total(status=ReleaseStatus.PAUSED),
        "red": total(state=GateState.RED),
        "amber": total(state=GateState.AMBER),
        "green": total(state=GateState.GREEN),
    }
    return summary, stale
