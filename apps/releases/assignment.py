"""Which release splits a service's traffic in an environment: the one a unit is bucketed by.

A release holds traffic while it is in progress or paused (ReleaseStatus.active()), in the
environment its current stage runs in (Stage.environment: a plan may go staging, then
production); its stage's percentage of units get the new version (Release.bucket, the one
assignment). A release still in its staging stages splits staging's traffic, not production's.
When no release of the service holds traffic there, nothing is being rolled out: every unit gets
the version that serves everyone (control). Two releases hold traffic at once only when a start
was forced past the one-running-release gate; the one started last is then the one units are
bucketed by, as it is the rollout the release manager chose to run.

Read by the OpenFeature (OFREP) endpoints, which know a service and an environment, not a release.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet

from apps.core.compiled import Compiled

from .choices import ReleaseStatus
from .models import Environment, Release, Stage


def _holding_traffic(**environment: Any) -> QuerySet[Release]:
    """Releases holding traffic in the environment matched by `environment` (a lookup on their
    current stage's), oldest start first: the last one per service is the one its units are
    bucketed by."""
    lookup = {f"current_stage__environment__{name}": value for name, value in environment.items()}
    return (
        Release.objects.filter(status__in=ReleaseStatus.active(), **lookup)
        .select_related("current_stage")
        .order_by("service_id", "started_at", "pk")
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
        .values_list(*_RELEASE_FIELDS, *(f"current_stage__{name}" for name in _STAGE_FIELDS))
    ),
    arity=2,
    exact=False,
)


def splitting_one(service_slug: str, environment_slug: str) -> Release | None:
    """The release splitting one service's traffic in one environment, both by slug, or None
    (also for a slug that names nothing: the caller tells those apart only then), its current
    stage loaded. One query."""
    rows = _SPLITTING_ONE.rows(service_slug, environment_slug)
    if not rows:
        return None
    db = Release.objects.db
    release = Release.from_db(db, _RELEASE_FIELDS, rows[0][: len(_RELEASE_FIELDS)])
    stage = Stage.from_db(db, _STAGE_FIELDS, rows[0][len(_RELEASE_FIELDS) :])
    Release.current_stage.field.set_cached_value(release, stage)
    return release
