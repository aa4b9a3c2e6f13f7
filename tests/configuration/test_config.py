"""Configuration as code: the export of a database applied to itself changes nothing; a changed
file shows its diff (dry run: and applies nothing), applies in one transaction, and bad files
are refused whole with every problem named; secrets never leave; releases keep their stages;
the same through POST /api/v1/config/apply for a release manager's token; the JSON Schema."""

from __future__ import annotations

import io
from datetime import time, timedelta

import jsonschema
import pytest
import yaml
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.checklists.choices import ChecklistKind
from apps.checklists.models import ChecklistTemplate, PlanChecklist, TemplateItem
from apps.checklists.runbook import DetectedChecklist, DetectedItem, DetectedSection
from apps.checklists.services import save_template_version
from apps.checks.choices import BadDirection, MetricKind, SourceKind
from apps.checks.models import MetricCriterion, MetricDefinition, MetricSource
from apps.configuration.apply import ConfigError, apply
from apps.configuration.documents import dump, load
from apps.configuration.export import export
from apps.core.actors import Actor
from apps.incidents.models import (
    Contact,
    EscalationLevel,
    EscalationPolicy,
    IncidentRouting,
    OnCallRotation,
    RoutingRule,
)
from apps.releases.models import Environment, RolloutPlan, StageTemplate
from apps.releases.roles import APPROVERS, RELEASE_MANAGERS
from apps.signoffs.choices import FreezeRecurrence, QuorumMode
from apps.signoffs.models import FreezeWindow, SignOffRule
from tests.factories import PlanFactory, ServiceFactory, UserFactory, make_release

ACTOR = Actor.system("tests")
SECRET = "s3cr3t-pass"
WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"


@pytest.fixture
def world(db):
    """A configuration touching every section of the document."""
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    production = Environment.objects.create(
        name="Production", slug="production", order=2, is_production=True
    )
    plan = PlanFactory(
        slug="checkout",
        name="Checkout",
        stages=[
            ("staging", 100, timedelta(minutes=30), True, staging),
            ("canary", 5, timedelta(hours=1), False, production),
            ("full", 100, timedelta(0), False, production),
        ],
    )
    canary = plan.stages.get(name="canary")
    errors = MetricDefinition.objects.create(
        key="error_rate", name="Error rate", kind=MetricKind.RATIO
    )
    latency = MetricDefinition.objects.create(
        key="p95_latency", name="p95 latency", unit="ms", bad_direction=BadDirection.HIGHER
    )
    MetricCriterion.objects.create(plan=plan, metric=errors, critical_threshold=0.05)
    MetricCriterion.objects.create(
        stage_template=canary,
        metric=latency,
        warning_threshold=300,
        critical_threshold=500,
        for_window=timedelta(minutes=5),
    )
    service = ServiceFactory(slug="shop", name="Shop", default_plan=plan, owner_team="Payments")
    MetricSource.objects.create(
        metric=errors,
        service=None,
        kind=SourceKind.PROMETHEUS,
        base_url=f"https://reader:{SECRET}@prometheus.internal:9090",
        query='sum(rate(errors{service="{service}"}[5m]))',
    )
    MetricSource.objects.create(metric=latency, service=service, kind=SourceKind.PUSH)
    save_template_version(
        DetectedChecklist(
            name="Pre-deploy",
            heading="Pre-deploy",
            kind=ChecklistKind.PRE_DEPLOYMENT,
            sections=[
                DetectedSection(
                    "Code", [DetectedItem("Tests pass", key="tests"), DetectedItem("Reviewed")]
                )
            ],
        ),
        actor=ACTOR,
    )
    PlanChecklist.objects.create(
        plan=plan, template=ChecklistTemplate.objects.get(name="Pre-deploy", is_current=True)
    )
    rule = SignOffRule.objects.create(
        plan=plan,
        stage_template=canary,
        quorum=QuorumMode.EACH_GROUP,
        valid_for=timedelta(days=2),
    )
    rule.groups.set([Group.objects.get(name=APPROVERS)])
    window = FreezeWindow.objects.create(
        name="Weekend",
        recurrence=FreezeRecurrence.WEEKLY,
        weekly_start_day=4,
        weekly_start_time=time(18, 0),
        weekly_end_day=0,
        weekly_end_time=time(8, 0),
        time_zone="Europe/Berlin",
    )
    window.environments.set([production])
    FreezeWindow.objects.create(
        name="Year end",
        starts_at=timezone.now() + timedelta(days=20),
        ends_at=timezone.now() + timedelta(days=22),
    )
    sam = Contact.objects.create(name="Sam", email="sam@example.com")
    rotation = OnCallRotation.objects.create(name="Payments on call")
    policy = EscalationPolicy.objects.create(name="Payments", repeat_times=2)
    first = EscalationLevel.objects.create(policy=policy, position=1, after_minutes=0)
    first.contacts.set([sam])
    EscalationLevel.objects.create(
        policy=policy, position=2, after_minutes=15, rotation=rotation, min_severity="sev2"
    )
    IncidentRouting.objects.create(service=service, policy=policy, webhook_url=WEBHOOK)
    RoutingRule.objects.create(
        name="security", position=5, matchers='team="security"', policy=policy, service=None
    )
    return {"plan": plan, "service": service, "production": production}


def exported(service: str | None = None) -> str:
    out = io.StringIO()
    call_command("export_config", *(["--service", service] if service else []), stdout=out)
    return out.getvalue()


def run_apply(path, *extra: str) -> str:
    out = io.StringIO()
    call_command("apply_config", str(path), *extra, stdout=out)
    return out.getvalue()


def test_the_export_applied_to_itself_changes_nothing(world, tmp_path):
    text = exported()
    document = yaml.safe_load(text)
    # Every section is there, stages with their environments, criteria on a plan and a stage.
    plan = document["plans"][0]
    assert [s["environment"] for s in plan["stages"]] == ["staging", "production", "production"]
    assert plan["stages"][0]["min_soak"] == "30m"
    assert {c["stage"] for c in plan["criteria"]} == {None, "canary"}
    assert plan["signoff_rules"][0] == {
        "stage": "canary",
        "groups": [APPROVERS],
        "quorum": "each_group",
        "approvals_needed": 1,
        "valid_for": "2d",
        "author_may_approve": False,
    }
    assert document["services"][0]["escalation_policy"] == "Payments"
    assert [w["name"] for w in document["freeze_windows"]] == ["Weekend", "Year end"]
    assert document["escalation_policies"][0]["levels"][1]["rotation"] == "Payments on call"
    assert document["routing_rules"] == [
        {
            "name": "security",
            "position": 5,
            "enabled": True,
            "source": "",
            "min_severity": "",
            "matchers": 'team="security"',
            "service": None,
            "policy": "Payments",
        }
    ]
    path = tmp_path / "rollout.yaml"
    path.write_text(text)
    assert run_apply(path).strip() == "No changes: the database already matches the file."
    assert exported() == text
    # One service's part of it applies to itself unchanged too.
    path.write_text(exported("shop"))
    assert "No changes" in run_apply(path)


def test_secrets_stay_out_and_stay_stored(world, tmp_path):
    text = exported()
    assert SECRET not in text and "XXXXSECRET" not in text
    assert "https://prometheus.internal:9090" in text
    path = tmp_path / "rollout.yaml"
    path.write_text(text.replace("timeout_seconds: 5.0", "timeout_seconds: 7.0"))
    assert "~ source of error_rate for every service: timeout_seconds 5.0 → 7.0" in run_apply(path)
    source = MetricSource.objects.get(service=None)
    assert source.base_url == f"https://reader:{SECRET}@prometheus.internal:9090"
    assert IncidentRouting.objects.get().webhook_url == WEBHOOK


def test_a_changed_file_shows_its_diff_and_applies_in_one_go(world, tmp_path):
    release = make_release(service=world["service"], environment=world["production"])
    kept = MetricCriterion.objects.get(stage_template__name="canary").pk
    copied = list(release.stages.values_list("name", "traffic_percentage"))
    document = export()
    plan = document["plans"][0]
    plan["stages"][1]["traffic_percentage"] = 10
    plan["stages"].insert(
        2, {"name": "half", "traffic_percentage": 50, "environment": "production"}
    )
    plan["criteria"][0]["critical_threshold"] = 0.02
    plan["signoff_rules"] = []
    document["checklist_templates"][0]["sections"][0]["items"].append({"text": "Docs updated"})
    document["services"].append({"slug": "search", "name": "Search", "default_plan": "checkout"})
    path = tmp_path / "rollout.yaml"
    path.write_text(dump(document))

    shown = run_apply(path, "--dry-run")
    expected = [
        "~ plan checkout / stage 2 (canary): traffic_percentage 5 → 10",
        "~ plan checkout / stage 3 (half): name 'full' → 'half', traffic_percentage 100 → 50",
        "+ plan checkout / stage 4 (full)",
        "- plan checkout / sign-off on leaving canary",
        "+ service search",
        "~ checklist template Pre-deploy: v2, 3 items",
    ]
    for line in expected:
        assert line in shown, shown
    assert (
        "~ plan checkout / criterion error_rate on every stage: critical_threshold 0.05 → 0.02"
        in shown
    )
    assert "Dry run: 7 change(s) would be applied; nothing was." in shown
    # Nothing applied by the dry run.
    assert StageTemplate.objects.filter(plan=world["plan"]).count() == 3
    assert SignOffRule.objects.count() == 1
    assert ChecklistTemplate.objects.filter(name="Pre-deploy").count() == 1

    applied = run_apply(path)
    assert applied.replace("Applied", "Dry run:") != applied
    assert applied.splitlines()[:-1] == shown.splitlines()[:-1]
    assert list(world["plan"].stages.values_list("name", "traffic_percentage")) == [
        ("staging", 100),
        ("canary", 10),
        ("half", 50),
        ("full", 100),
    ]
    assert MetricCriterion.objects.get(plan=world["plan"]).critical_threshold == 0.02
    # The unchanged criterion is the same row (its results stay attached).
    assert MetricCriterion.objects.get(stage_template__name="canary").pk == kept
    assert not SignOffRule.objects.exists()
    current = ChecklistTemplate.objects.get(name="Pre-deploy", is_current=True)
    assert current.version == 2 and PlanChecklist.objects.get().template == current
    assert TemplateItem.objects.filter(template=current).count() == 3
    # The running release keeps the stages it copied at registration.
    assert list(release.stages.values_list("name", "traffic_percentage")) == copied
    # Applying the same file again changes nothing.
    assert "No changes" in run_apply(path)


def test_a_bad_file_is_refused_whole_naming_every_problem(world, tmp_path):
    document = export()
    document["plans"][0]["stages"][1]["traffic_percentage"] = 10  # fine on its own
    document["plans"][0]["criteria"][1]["metric"] = "no_such_metric"
    document["plans"][0]["stages"][0]["environment"] = "moon"
    document["plans"][0]["signoff_rules"][0]["groups"] = ["Nobody"]
    document["routing_rules"][0]["matchers"] = "team==security"  # not a matcher
    path = tmp_path / "rollout.yaml"
    path.write_text(dump(document))
    with pytest.raises(CommandError) as refused:
        run_apply(path)
    message = str(refused.value)
    assert "nothing applied, 4 problem(s)" in message
    assert "routing_rules[0].matchers: " in message
    assert "plans[0].stages[0].environment: no environment with slug='moon'." in message
    assert "plans[0].criteria[1].metric: no metric with key='no_such_metric'." in message
    assert "plans[0].signoff_rules[0].groups[0]: no group with name='Nobody'." in message
    assert world["plan"].stages.get(position=1).traffic_percentage == 5  # rolled back

    # Out of the schema: a typo, a wrong type, a value out of range; all named, none applied.
    document = export()
    document["plans"][0]["stages"][1]["trafic_percentage"] = 10
    document["plans"][0]["stages"][0]["auto_advance"] = "sometimes"
    document["plans"][0]["stages"][2]["traffic_percentage"] = 150
    with pytest.raises(ConfigError) as invalid:
        apply(document, actor=ACTOR)
    assert invalid.value.errors == [
        "plans[0].stages[0].auto_advance: 'sometimes' is not of type 'boolean'",
        "plans[0].stages[1]: Additional properties are not allowed "
        "('trafic_percentage' was unexpected)",
        "plans[0].stages[2].traffic_percentage: 150 is greater than the maximum of 100",
    ]
    # What only the model's own rules know (one place for each rule): named the same way.
    document = export()
    document["plans"][0]["criteria"][0]["interval"] = "90s"
    with pytest.raises(ConfigError) as invalid:
        apply(document, actor=ACTOR)
    assert invalid.value.errors == [
        "plans[0].criteria[0].interval: The interval is a whole number of minutes, at least one."
    ]
    with pytest.raises(ConfigError, match="line 2, column 8: not valid YAML"):
        load("version: 1\n  plans: [\n")
    with pytest.raises(ConfigError, match="aliases"):
        load("version: 1\nplans: &a []\nservices: *a\n")


def test_the_schema_describes_the_export(world, client):
    answer = client.get("/api/v1/config/schema.json")
    assert answer.status_code == 200
    schema = answer.json()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(exported()), schema)
    stage = schema["properties"]["plans"]["items"]["properties"]["stages"]["items"]
    assert stage["properties"]["traffic_percentage"]["type"] == "integer"
    criterion = schema["properties"]["plans"]["items"]["properties"]["criteria"]["items"]
    assert set(criterion["properties"]["comparator"]["enum"]) == {">", ">=", "<", "<="}


@pytest.fixture
def manager_token(db):
    manager = UserFactory(username="rm")
    manager.groups.add(Group.objects.get(name=RELEASE_MANAGERS))
    _, key = ApiToken.issue("config pipeline", [], created_by=manager)
    return key


def test_the_api_applies_for_a_release_managers_token(world, manager_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {manager_token}")
    body = exported().replace("traffic_percentage: 5\n", "traffic_percentage: 10\n")
    dry = client.post("/api/v1/config/apply?dry_run=1", data=body, content_type="application/yaml")
    assert dry.status_code == 200, dry.content
    assert dry.json()["applied"] is False
    assert [c["line"] for c in dry.json()["changes"]] == [
        "~ plan checkout / stage 2 (canary): traffic_percentage 5 → 10"
    ]
    assert world["plan"].stages.get(position=1).traffic_percentage == 5
    done = client.post("/api/v1/config/apply", data=body, content_type="application/yaml")
    assert done.json()["applied"] is True
    assert world["plan"].stages.get(position=1).traffic_percentage == 10
    # JSON works too, and the same document again changes nothing.
    again = client.post("/api/v1/config/apply", data=load(body), format="json")
    assert again.status_code == 200 and again.json() == {
        "applied": False,
        "changed": False,
        "changes": [],
    }
    bad = client.post(
        "/api/v1/config/apply", data={"version": 1, "plans": [{"slug": "x"}]}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["errors"] == [
        "plans[0]: 'name' is a required property",
        "plans[0]: 'stages' is a required property",
    ]


def test_the_api_refuses_others(world, service, token_key):
    body = {"version": 1, "environments": [{"slug": "qa", "name": "QA"}]}
    anonymous = APIClient().post("/api/v1/config/apply", data=body, format="json")
    assert anonymous.status_code in (401, 403)
    ci = APIClient()
    ci.credentials(HTTP_AUTHORIZATION=f"Token {token_key}")  # a CI token nobody manages
    refused = ci.post("/api/v1/config/apply", data=body, format="json")
    assert refused.status_code == 403
    assert "release manager" in refused.json()["detail"]
    approver = UserFactory(username="ann")
    approver.groups.add(Group.objects.get(name=APPROVERS))
    _, key = ApiToken.issue("ann's", [service], created_by=approver)
    ci.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert ci.post("/api/v1/config/apply", data=body, format="json").status_code == 403
    assert not Environment.objects.filter(slug="qa").exists()


def test_sql_sources_change_only_for_a_superuser(world, manager_token, settings):
    settings.CHECKS_SQL_DATABASES = {"warehouse": {}}
    document = export()
    document["sources"].append(
        {
            "metric": "p95_latency",
            "service": None,
            "kind": "sql",
            "database": "warehouse",
            "query": "SELECT now() AS at, 1 AS value",
        }
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {manager_token}")
    refused = client.post("/api/v1/config/apply", data=document, format="json")
    assert refused.status_code == 400
    assert "only a superuser" in refused.json()["errors"][0]
    assert not MetricSource.objects.filter(kind=SourceKind.SQL).exists()
    result = apply(document, actor=ACTOR, allow_sql=True)  # manage.py apply_config
    assert [c.line() for c in result.changes] == ["+ source of p95_latency for every service"]


def test_unknown_service_for_export(db):
    with pytest.raises(CommandError, match="No service 'nope'"):
        exported("nope")
    assert RolloutPlan.objects.count() == 0


def test_unique_names_and_an_empty_plan_are_refused_not_crashed(world):
    document = export()
    document["environments"].append({"slug": "prod2", "name": "Production"})
    with pytest.raises(ConfigError) as refused:
        apply(document, actor=ACTOR)
    assert refused.value.errors == [
        "environments[2].name: Environment with this Name already exists."
    ]
    document = export()
    document["plans"][0]["stages"] = []
    with pytest.raises(ConfigError) as refused:
        apply(document, actor=ACTOR)
    assert refused.value.errors == ["plans[0].stages: [] should be non-empty"]
    assert not Environment.objects.filter(slug="prod2").exists()
