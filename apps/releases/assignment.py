"""Which release splits a service's traffic in an environment: the one a unit is bucketed by.

A release holds traffic while it is in progress or paused (ReleaseStatus.active()), in the
environment its current stage runs in (Stage.environment: a plan may go staging, then
production); its stage's percentage of units get the new version (Release.bucket, the one
assignment). A release still in its staging stages splits staging's traffic, not production's.
Once promoted past staging (every staging stage passed) it serves all of staging's units, as
`traffic/?environment=staging` says (Release.percentage_in), unless another release of the
service now runs its own stages in staging: that one splits staging's traffic.
When no release of the service holds traffic there, nothing is being rolled out: every unit gets
the version that serves everyone (control). Two releases hold traffic at once only when a start
was forced past the one-running-release gate; the one started last is then the one units are
bucketed by, as it is the rollout the release manager chose to run.

Read by the OpenFeature (OFREP) endpoints, which know a service and an environment, not a release.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, Value, When

from apps.core.compiled import Compiled

from .choices import ReleaseStatus, StageStatus
from .models import Environment, Release, Stage


def _holding_traffic(**environment: Any) -> QuerySet[Release]:
    """Releases holding traffic in the environment matched by `environment` (a lookup on an
    environment): running a stage there, or promoted past it. Each carries `percentage_here`,
    the percentage it serves there. The promoted ones first, then by start: the last one per
    service is the one its units are bucketed by."""
    here = Q(**{f"current_stage__environment__{name}": v for name, v in environment.items()})
    stages_there = Stage.objects.filter(
        release=OuterRef("pk"), **{f"environment__{name}": v for name, v in environment.items()}
    )
    promoted = Exists(stages_there) & ~Exists(stages_there.exclude(status=StageStatus.PASSED))
    return (
        Release.objects.filter(status__in=ReleaseStatus.active())
        .filter(here | promoted)
        .annotate(
            current_here=Case(When(here, then=Value(True)), default=Value(False)),
            percentage_here=Case(
                When(here, then=F("current_stage__traffic_percentage")), default=Value(100)
            ),
        )
        .select_related("current_stage")
        .order_by("service_id", "current_here", "started_at", "pk")
    )


def splitting(service_ids: Iterable[int], environment: Environment) -> dict[int, Release]:
    """For each service (by id) with a release holding traffic in `environment`, that release
    (current stage loaded); services with none are absent. One query whatever the count."""
    releases = _holding_traffic(pk=environment.pk).filter(service_id__in=list(service_ids))
    return {release.service_id: release for release in releases}


_RELEASE_FIELDS = [f.attname for f in Release._meta.concrete_fields]
_STAGE_FIELDS = [f.attname for f in Stage._meta.concrete_fields]
# OFREP asks this on an application's request path: the query is compiled once by the ORM from
# _holding_traffic (its status list is a constant parameter), then run with the two slugs.
_SPLITTING_ONE = Compiled(
    lambda service_slug, environment_slug: (
        _holding_traffic(slug=environment_slug)
        .filter(service__slug=service_slug)
        .reverse()[:1]  # .last(): the one started last
        .values_list(
            *_RELEASE_FIELDS,
            *(f"current_stage__{name}" for name in _STAGE_FIELDS),
            "percentage_here",
            "current_here",
        )
    ),
    arity=2,
    exact=False,
)


def splitting_one(service_slug: str, environment_slug: str) -> Release | None:
    """The release splitting one service's traffic in one environment, both by slug, or None
    (also for a slug that names nothing: the caller tells those apart only then), its current
    stage loaded and `percentage_here` and `current_here` set (as `splitting`'s). One query."""
    rows = _SPLITTING_ONE.rows(service_slug, environment_slug)
    if not rows:
        return None
    db = Release.objects.db
    row = rows[0]
    stage_end = len(_RELEASE_FIELDS) + len(_STAGE_FIELDS)
    release = Release.from_db(db, _RELEASE_FIELDS, row[: len(_RELEASE_FIELDS)])
    stage = Stage.from_db(db, _STAGE_FIELDS, row[len(_RELEASE_FIELDS) : stage_end])
    Release.current_stage.field.set_cached_value(release, stage)
    release.percentage_here, release.current_here = row[stage_end], row[stage_end + 1]
    return release
