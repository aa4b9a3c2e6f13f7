"""The rollout configuration of the database as one document (docs/configuration.md).

Secrets stay out: a source's URL loses its user and password (apply keeps the stored ones when
the rest of the URL is unchanged), SQL sources name a database of CHECKS_SQL_DATABASES whose
credentials live in the environment, and a service's incident webhook URL is not written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.db.models import F, Q

from apps.checklists.models import ChecklistTemplate, PlanChecklist
from apps.checks.models import MetricCriterion, MetricDefinition, MetricSource
from apps.incidents.models import EscalationPolicy, IncidentRouting, RoutingRule
from apps.releases.models import Environment, RolloutPlan, Service
from apps.signoffs.models import FreezeWindow, SignOffRule

from .fields import row

VERSION = 1


class ExportError(ValueError):
    """The database holds something the file cannot say unambiguously."""


def without_credentials(url: str) -> str:
    """The URL without its user and password."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def environment(env: Environment) -> dict[str, Any]:
    return {"slug": env.slug, **row(env)}


def metric(definition: MetricDefinition) -> dict[str, Any]:
    return {"key": definition.key, **row(definition)}


def source(src: MetricSource) -> dict[str, Any]:
    data = {"metric": src.metric.key, "service": src.service.slug if src.service else None}
    data.update(row(src))
    data["base_url"] = without_credentials(src.base_url)
    return data


def checklist_template(template: ChecklistTemplate) -> dict[str, Any]:
    sections = []
    for section in template.sections.order_by("position"):
        items = [
            {"text": item.text, "required": item.required, "key": item.key}
            for item in section.items.order_by("position")
        ]
        sections.append({"name": section.name, "items": items})
    return {"name": template.name, **row(template), "sections": sections}


def plan(p: RolloutPlan) -> dict[str, Any]:
    stages = list(p.stages.select_related("environment").order_by("position"))
    names = {s.pk: s.name for s in stages}
    criteria = MetricCriterion.objects.filter(Q(plan=p) | Q(stage_template__plan=p))
    checklists = PlanChecklist.objects.filter(plan=p).select_related("template")
    rules = SignOffRule.objects.filter(plan=p).prefetch_related("groups")
    return {
        "slug": p.slug,
        **row(p),
        "stages": [
            {
                "name": s.name,
                **{k: v for k, v in row(s).items() if k != "name"},
                "environment": s.environment.slug if s.environment else None,
            }
            for s in stages
        ],
        "criteria": [
            {
                "metric": c.metric.key,
                "stage": names.get(c.stage_template_id),
                **row(c),
            }
            # Plan-wide ones first on every database (nulls sort differently by vendor).
            for c in criteria.select_related("metric").order_by(
                F("stage_template__position").asc(nulls_first=True), "metric__key", "id"
            )
        ],
        "checklists": [
            {"template": link.template.name, "stage": names.get(link.stage_template_id)}
            for link in checklists.order_by(
                "template__name", F("stage_template__position").asc(nulls_first=True)
            )
        ],
        "signoff_rules": [
            {
                "stage": names.get(rule.stage_template_id),
                "groups": sorted(g.name for g in rule.groups.all()),
                **row(rule),
            }
            for rule in sorted(
                rules,
                key=lambda r: -1 if r.stage_template_id is None else r.stage_template.position,
            )
        ],
    }


def service(s: Service, policies: dict[int, str]) -> dict[str, Any]:
    return {
        "slug": s.slug,
        **row(s),
        "default_plan": s.default_plan.slug if s.default_plan else None,
        "escalation_policy": policies.get(s.pk),
    }


def freeze_window(window: FreezeWindow) -> dict[str, Any]:
    return {
        "name": window.name,
        **row(window),
        "services": sorted(s.slug for s in window.services.all()),
        "environments": sorted(e.slug for e in window.environments.all()),
    }


def escalation_policy(policy: EscalationPolicy) -> dict[str, Any]:
    levels = []
    for level in policy.levels.order_by("position").prefetch_related("contacts"):
        levels.append(
            {
                **row(level),
                "contacts": sorted(c.email for c in level.contacts.all()),
                "rotation": level.rotation.name if level.rotation else None,
            }
        )
    return {"name": policy.name, **row(policy), "levels": levels}


def routing_rule(rule: RoutingRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        **row(rule),
        "service": rule.service.slug if rule.service else None,
        "policy": rule.policy.name,
    }


def _unique_names(windows: Iterable[FreezeWindow]) -> list[FreezeWindow]:
    windows = list(windows)
    names = [w.name for w in windows]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ExportError(
            "Freeze windows are named in the file by their names; rename the ones sharing "
            f"a name first: {', '.join(twice)}."
        )
    return windows


def export(service_slug: str | None = None) -> dict[str, Any]:
    """The whole configuration, or what one service's rollouts use (`service_slug`)."""
    services = Service.objects.select_related("default_plan").order_by("slug")
    if service_slug is not None:
        services = services.filter(slug=service_slug)
        if not services.exists():
            raise ExportError(f"No service {service_slug!r}.")
    services = list(services)
    plans = RolloutPlan.objects.order_by("slug")
    sources = MetricSource.objects.select_related("metric", "service")
    windows = FreezeWindow.objects.prefetch_related("services", "environments").order_by("name")
    routings = IncidentRouting.objects.filter(policy__isnull=False).select_related("policy")
    policies = EscalationPolicy.objects.order_by("name")
    rules = RoutingRule.objects.select_related("service", "policy").order_by("position", "name")
    if service_slug is not None:
        ids = [s.pk for s in services]
        plans = plans.filter(pk__in=[s.default_plan_id for s in services if s.default_plan_id])
        sources = sources.filter(Q(service__in=ids) | Q(service__isnull=True))
        windows = windows.filter(Q(services__in=ids) | Q(services__isnull=True)).distinct()
        routings = routings.filter(service__in=ids)
        rules = rules.filter(Q(service__in=ids) | Q(service__isnull=True))
        policies = policies.filter(
            Q(pk__in=[r.policy_id for r in routings]) | Q(pk__in=[r.policy_id for r in rules])
        )
    plans = list(plans)
    routed = {r.service_id: r.policy.name for r in routings}
    templates = ChecklistTemplate.objects.filter(is_current=True).order_by("name")
    metrics = MetricDefinition.objects.order_by("key")
    environments = Environment.objects.order_by("order", "slug")
    if service_slug is not None:
        templates = templates.filter(plan_links__plan__in=plans).distinct()
        used = set(
            MetricCriterion.objects.filter(
                Q(plan__in=plans) | Q(stage_template__plan__in=plans)
            ).values_list("metric_id", flat=True)
        ) | set(sources.values_list("metric_id", flat=True))
        metrics = metrics.filter(pk__in=used)
    return {
        "version": VERSION,
        "environments": [environment(e) for e in environments],
        "metrics": [metric(m) for m in metrics],
        "sources": [
            source(s)
            for s in sources.order_by("metric__key", F("service__slug").asc(nulls_first=True))
            if s.service_id is None or service_slug is None or s.service in services
        ],
        "checklist_templates": [checklist_template(t) for t in templates],
        "escalation_policies": [escalation_policy(p) for p in policies],
        "plans": [plan(p) for p in plans],
        "services": [service(s, routed) for s in services],
        "freeze_windows": [freeze_window(w) for w in _unique_names(windows)],
        "routing_rules": [routing_rule(r) for r in rules],
    }
