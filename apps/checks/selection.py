"""Which criteria watch a release, and which source each criterion's metric is read from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.db.models import Q

from apps.releases.models import Release, Stage

from .choices import SourceKind
from .models import MetricCriterion, MetricSource


def criteria_for_plans(plan_ids: Iterable[int]) -> list[MetricCriterion]:
    """Enabled criteria of the given plans, on the plan or on one of its stages: one query."""
    plan_ids = list(plan_ids)
    return list(
        MetricCriterion.objects.filter(
            Q(plan_id__in=plan_ids) | Q(stage_template__plan_id__in=plan_ids), enabled=True
        )
        .select_related("metric", "stage_template")
        .order_by("id")
    )


def criteria_by_release(releases: Sequence[Release]) -> dict[int, list[MetricCriterion]]:
    """The criteria watching each release's current stage."""
    criteria = criteria_for_plans({r.plan_id for r in releases})
    by_plan: dict[int, list[MetricCriterion]] = defaultdict(list)
    for criterion in criteria:
        plan_id = criterion.plan_id or criterion.stage_template.plan_id
        by_plan[plan_id].append(criterion)
    return {
        r.pk: [c for c in by_plan.get(r.plan_id, []) if c.applies_to(r.current_stage)]
        for r in releases
    }


def stage_criteria(release: Release, stage: Stage | None) -> list[MetricCriterion]:
    """The enabled criteria watching one stage of a release."""
    if stage is None:
        return []
    return [c for c in criteria_for_plans([release.plan_id]) if c.applies_to(stage)]


def sources_by_key(
    service_ids: Iterable[int], metric_ids: Iterable[int]
) -> dict[tuple[int | None, int], MetricSource]:
    """Configured sources keyed (service id or None, metric id): one query."""
    rows = MetricSource.objects.filter(
        Q(service_id__in=list(service_ids)) | Q(service__isnull=True),
        metric_id__in=list(metric_ids),
    )
    return {(s.service_id, s.metric_id): s for s in rows}


def source_for(
    sources: dict[tuple[int | None, int], MetricSource], service_id: int, metric_id: int
) -> MetricSource | None:
    """The service's own source of the metric, else the shared one; None means pushed."""
    source = sources.get((service_id, metric_id)) or sources.get((None, metric_id))
    if source is not None and source.kind == SourceKind.PUSH:
        return None
    return source
