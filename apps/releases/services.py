"""Creating releases: the one way a release and its stage copies come into being."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.core.actors import Actor

from .choices import EventVerb
from .models import Environment, Event, Release, RolloutPlan, Service, Stage


def create_release(
    *,
    service: Service,
    environment: Environment,
    version: str,
    actor: Actor,
    plan: RolloutPlan | None = None,
    commit_sha: str = "",
    commit_time: datetime | None = None,
    changelog_url: str = "",
    author: Any = None,
    author_name: str = "",
) -> tuple[Release, bool]:
    """Register a release and copy its plan's stages; the same version twice returns the first.

    Returns (release, created). Stages are copied so that editing the plan later never rewrites
    a release that already exists.
    """
    existing = Release.objects.filter(
        service=service, environment=environment, version=version
    ).first()
    if existing is not None:
        return existing, False

    plan = plan or service.default_plan
    if plan is None:
        raise ValidationError({"plan": f"Service {service.slug!r} has no default plan; name one."})
    templates = list(plan.stages.order_by("position"))
    if not templates:
        raise ValidationError({"plan": f"Plan {plan.slug!r} has no stages."})

    try:
        with transaction.atomic():
            release = Release.objects.create(
                service=service,
                environment=environment,
                version=version,
                plan=plan,
                commit_sha=commit_sha,
                commit_time=commit_time,
                changelog_url=changelog_url,
                author=author,
                author_name=author_name or (author.get_username() if author else ""),
                stage_count=len(templates),
            )
            Stage.objects.bulk_create(
                Stage(
                    release=release,
                    position=index,
                    name=template.name,
                    traffic_percentage=template.traffic_percentage,
                    min_soak=template.min_soak,
                    auto_advance=template.auto_advance,
                    min_requests=template.min_requests,
                    environment_id=template.environment_id or environment.pk,
                    template=template,
                )
                for index, template in enumerate(templates)
            )
            Event.record(
                release,
                EventVerb.CREATED,
                actor,
                data={"plan": plan.slug, "stages": [t.name for t in templates]},
            )
    except IntegrityError:
        # Another request registered the same version between our look-up and our insert.
        return Release.objects.get(service=service, environment=environment, version=version), False
    return release, True
