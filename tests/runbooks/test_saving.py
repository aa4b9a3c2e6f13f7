"""Saving a reviewed draft: plan, criteria, sources, escalation and checklists for one service in
one transaction, or nothing, with refusals that name the item and what is wrong."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from apps.checklists.models import ChecklistTemplate, PlanChecklist
from apps.checks.models import MetricCriterion, MetricDefinition, MetricSource
from apps.core.actors import Actor
from apps.incidents.models import Contact, EscalationLevel, EscalationPolicy, IncidentRouting
from apps.releases.models import Environment, RolloutPlan, StageTemplate
from apps.runbooks.models import RunbookImport
from apps.runbooks.parsing import parse
from apps.runbooks.saving import ImportRefused, SaveOptions, save_draft
from tests.factories import EnvironmentFactory, ServiceFactory

from .keys import RUNBOOKS

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")
MODELS = [
    RolloutPlan,
    StageTemplate,
    MetricDefinition,
    MetricSource,
    MetricCriterion,
    EscalationPolicy,
    EscalationLevel,
    IncidentRouting,
    ChecklistTemplate,
    PlanChecklist,
    RunbookImport,
]


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def draft_of(name: str):  # noqa: ANN201 - a Draft
    return parse((RUNBOOKS / name).read_bytes(), source=name)


@pytest.fixture
def environments() -> tuple[Environment, Environment]:
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    return staging, EnvironmentFactory()


def test_the_dci_runbook_saves_as_one_configuration_for_the_service(environments) -> None:
    staging, production = environments
    service = ServiceFactory(slug="dci")
    lead = Contact.objects.create(name="Sam", role="Senior engineer", email="sam@example.com")
    saved = save_draft(
        draft_of("dci-orchestrator-deployment-guide.md"), service=service, actor=SYSTEM
    )

    service.refresh_from_db()
    plan = service.default_plan
    assert plan == saved.plan
    assert [
        (s.traffic_percentage, s.min_soak, s.environment) for s in plan.stages.order_by("position")
    ] == [
        (0, timedelta(0), staging),
        (5, timedelta(hours=24), production),
        (10, timedelta(hours=24), production),
        (25, timedelta(hours=24), production),
        (50, timedelta(hours=24), production),
        (100, timedelta(hours=24), production),
    ]
    rollback = MetricCriterion.objects.get(plan=plan, metric__key="quality_score", comparator="<")
    assert (rollback.critical_threshold, rollback.on_critical, rollback.incident_severity) == (
        2.0,
        "rollback",
        "sev1",
    )
    # "Error rate exceeds 10 % for 5 minutes" (rollback) and ">10% for 5 minutes" (critical
    # alert) are one critical threshold; ">5% for 15 minutes" is its warning.
    error = MetricCriterion.objects.get(plan=plan, metric__key="error_rate", comparator=">")
    assert (error.warning_threshold, error.critical_threshold) == (5.0, 10.0)
    assert error.for_window == timedelta(minutes=15)
    routing = IncidentRouting.objects.get(service=service)
    levels = list(routing.policy.levels.order_by("position"))
    assert [lv.after_minutes for lv in levels] == [0, 15, 30]
    assert list(levels[1].contacts.all()) == [lead]
    assert "L1 Engineering team" in saved.unfilled
    exit_link = PlanChecklist.objects.get(plan=plan, template__kind="stage_exit")
    assert exit_link.stage_template.traffic_percentage == 50  # the step to full rollout
    assert PlanChecklist.objects.filter(plan=plan, template__kind="pre_deployment").exists()
    record = RunbookImport.objects.get()
    assert (record.service, record.plan, record.policy) == (service, plan, routing.policy)
    assert record.draft["plan"]["stages"][0]["line"] == 102


def test_reimporting_makes_a_new_plan_and_policy_and_moves_the_service(environments) -> None:
    service = ServiceFactory(slug="dci")
    first = save_draft(draft_of("payments-tables-runbook.md"), service=service, actor=SYSTEM)
    second = save_draft(draft_of("payments-tables-runbook.md"), service=service, actor=SYSTEM)
    assert second.plan.name == f"{first.plan.name} v2"
    assert second.policy.name == f"{first.policy.name} v2"
    service.refresh_from_db()
    assert service.default_plan == second.plan
    assert IncidentRouting.objects.get(service=service).policy == second.policy
    assert first.plan.stages.count() == 4  # left as it was, for the releases that use it


def test_a_refused_draft_writes_nothing_and_names_every_problem(environments) -> None:
    service = ServiceFactory(slug="ingest")
    before = counts()
    draft = draft_of("ingest-yaml-runbook.md")
    draft.plan.stages[1].environment = "canary-cluster"
    with pytest.raises(ImportRefused) as caught:
        save_draft(draft, service=service, actor=SYSTEM)
    messages = caught.value.messages
    assert any("stage 'canary' (line 20): no environment 'canary-cluster'" in m for m in messages)
    assert any("Prometheus alert rules need the server's base URL" in m for m in messages)
    assert any("SQL queries need a read-only database" in m for m in messages)
    assert counts() == before


@override_settings(CHECKS_SQL_DATABASES={"analytics": "sqlite://"})
def test_prometheus_and_sql_criteria_get_their_sources(environments) -> None:
    service = ServiceFactory(slug="ingest")
    save_draft(
        draft_of("ingest-yaml-runbook.md"),
        service=service,
        actor=SYSTEM,
        options=SaveOptions(prometheus_url="http://prometheus.internal:9090"),
    )
    lag = MetricSource.objects.get(metric__key="ingest_lag_high", service=service)
    assert (lag.kind, lag.base_url) == ("prometheus", "http://prometheus.internal:9090")
    assert lag.query == 'max(kafka_consumer_lag{group="ingest"})'
    duplicates = MetricSource.objects.get(metric__key="duplicate_events", service=service)
    assert (duplicates.kind, duplicates.database) == ("sql", "analytics")
    assert "AS value" in duplicates.query
    criterion = MetricCriterion.objects.get(metric__key="ingest_lag_high")
    assert (criterion.critical_threshold, criterion.for_window) == (50000.0, timedelta(minutes=10))


def test_the_command_saves_for_a_service_and_refuses_clearly(environments) -> None:
    ServiceFactory(slug="payments")
    out = StringIO()
    path = str(RUNBOOKS / "payments-tables-runbook.md")
    call_command("import_runbook", path, "--service", "payments", stdout=out)
    assert "Plan 'Payments API Release Runbook': 4 stage(s)." in out.getvalue()
    with pytest.raises(CommandError, match="No service with the slug 'nope'"):
        call_command("import_runbook", path, "--service", "nope", stdout=StringIO())
