"""What a release manager configures from a runbook, as the journeys set it up: criteria, go /
no-go rules, the escalation table and a weekly report (the plans come from PlanFactory)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Group

from apps.checks.models import MetricCriterion, MetricDefinition
from apps.incidents.choices import EscalateWhile
from apps.incidents.models import (
    Contact,
    EscalationLevel,
    EscalationPolicy,
    IncidentRouting,
    OnCallRotation,
    RotationMember,
)
from apps.releases.models import RolloutPlan, Service
from apps.reports.models import ReportSubscription
from apps.signoffs.models import SignOffRule

APPROVING_GROUPS = ("Engineering managers", "Product")


def watch(plan: RolloutPlan, metric_key: str, **fields: Any) -> MetricCriterion:
    """A criterion on every stage of the plan, evaluated over one-minute intervals."""
    made = MetricCriterion(
        plan=plan,
        metric=MetricDefinition.objects.get(key=metric_key),
        **{"comparator": ">", "interval": timedelta(minutes=1), **fields},
    )
    made.full_clean()
    made.save()
    return made


def go_no_go(plan: RolloutPlan, *stages: str | None) -> None:
    """Engineering and product sign each step: None is the start, a name leaving that stage."""
    groups = [Group.objects.get(name=name) for name in APPROVING_GROUPS]
    for stage in stages:
        rule = SignOffRule.objects.create(
            plan=plan, stage_template=plan.stages.get(name=stage) if stage else None
        )
        rule.groups.set(groups)


def escalation_table(
    service: Service, cast: dict[str, Any], *, on_call: str, later: list[tuple[int, list[str]]]
) -> EscalationPolicy:
    """L1 the on-call rotation (one person), then each (minutes, names) level in turn."""
    names = {on_call, *(name for _, level in later for name in level)}
    contacts = {
        name: Contact.objects.create(
            name=cast[name].first_name, email=cast[name].email, user=cast[name]
        )
        for name in sorted(names)
    }
    rotation = OnCallRotation.objects.create(
        name=f"{service.name} on-call", time_zone="Europe/Berlin"
    )
    RotationMember.objects.create(rotation=rotation, contact=contacts[on_call], position=0)
    policy = EscalationPolicy.objects.create(
        name=service.name, escalate_while=EscalateWhile.UNACKNOWLEDGED
    )
    EscalationLevel.objects.create(policy=policy, position=1, after_minutes=0, rotation=rotation)
    for position, (after, level_names) in enumerate(later, start=2):
        level = EscalationLevel.objects.create(
            policy=policy, position=position, after_minutes=after
        )
        level.contacts.set([contacts[name] for name in level_names])
    IncidentRouting.objects.create(service=service, policy=policy)
    return policy


def weekly_report(user: Any, service: Service | None) -> ReportSubscription:
    """The weekly summary, Mondays at 09:00 in Berlin (None: every service)."""
    subscription = ReportSubscription(
        user=user, service=service, time_zone="Europe/Berlin", weekday=0, hour=9
    )
    subscription.full_clean()
    subscription.save()
    return subscription
