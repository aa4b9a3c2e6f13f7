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


def splitting_one(service_slug: str, environment_slug: str) -> Release | None:
    """The release splitting one service's traffic in one environment, both by slug, or None
    (also for a slug that names nothing: the caller tells those apart only then). One query."""
    return _holding_traffic(slug=environment_slug).filter(service__slug=service_slug).last()
