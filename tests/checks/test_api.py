"""The metric-check API: pushing samples, reading the latest verdicts, criteria on plans."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from apps.checks.models import Sample
from apps.core.actors import Actor
from apps.rollouts import transitions
from apps.rollouts.breach_response import run_checks
from tests.checks.conftest import criterion
from tests.factories import PlanFactory, make_release

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 12, 0, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def release(service, production):
    return make_release(service=service, environment=production, version="2.4.0")


def post(api: APIClient, body: object):
    return api.post("/api/v1/samples/", json.dumps(body), content_type="application/json")


def test_push_stores_a_batch_and_an_exact_duplicate_once(api, release, error_rate, latency):
    body = [
        {
            "release": release.pk,
            "metric": "error_rate",
            "value": 0.01,
            "count": 1200,
            "at": "2026-11-02T11:59:00Z",
        },
        {
            "release": release.pk,
            "metric": "error_rate",
            "value": 0.02,
            "variant": "control",
            "count": 9000,
            "at": "2026-11-02T11:59:00Z",
        },
        {"release": release.pk, "metric": "p95_latency_seconds", "value": 1.8},
    ]

    first = post(api, body)
    again = post(api, body[:1])

    assert first.status_code == 201, first.json()
    assert first.json() == {"accepted": 3, "duplicates": 0}
    assert again.status_code == 201
    assert again.json() == {"accepted": 1, "duplicates": 1}
    assert Sample.objects.count() == 3
    latest = Sample.objects.get(metric=latency)
    assert (latest.at, latest.variant, latest.count) == (NOW, "treatment", None)
    control = Sample.objects.get(variant="control")
    assert (control.value, control.count) == (0.02, 9000)


def test_one_bad_item_rejects_the_whole_batch_with_per_item_errors(
    api, release, other_service, production, error_rate
):
    foreign = make_release(service=other_service, environment=production, version="9.9.9")
    good = {"release": release.pk, "metric": "error_rate", "value": 0.01}
    body = [
        good,
        {"release": release.pk, "metric": "error_rate", "value": float("nan")},
        {"release": release.pk, "metric": "error_rate", "value": float("inf")},
        {"release": release.pk, "metric": "no_such_metric", "value": 1},
        {"release": foreign.pk, "metric": "error_rate", "value": 0.01},
        {
            "release": release.pk,
            "metric": "error_rate",
            "value": 0.01,
            "at": "2026-11-04T12:00:00Z",
        },
        {"release": release.pk, "metric": "error_rate", "value": 0.01, "variant": "canary"},
        {"release": release.pk, "metric": "error_rate", "value": "0.5"},
        {"release": release.pk, "metric": "error_rate", "value": 1.5},
        {"release": 999999, "metric": "error_rate", "value": 0.01, "count": -3},
        "not an object",
    ]
    raw = json.dumps(body)  # Python writes NaN and Infinity, as some clients do

    response = api.post("/api/v1/samples/", raw, content_type="application/json")

    assert response.status_code == 400
    document = response.json()
    assert document["detail"] == "10 of 11 samples are invalid; nothing was stored."
    errors = {(e["index"], e["field"]): e["message"] for e in document["errors"]}
    assert errors[(1, "value")] == "NaN is not a measurement."
    assert errors[(2, "value")] == "Infinity is not a measurement."
    assert errors[(3, "metric")].startswith("Unknown metric 'no_such_metric'")
    assert errors[(4, "release")] == (
        f"Release {foreign.pk} belongs to service 'billing'; "
        "this token may not push samples for it."
    )
    assert errors[(5, "at")] == "2026-11-04T12:00:00Z is more than a day in the future."
    assert errors[(6, "variant")] == "'canary' is not one of treatment, control, baseline."
    assert errors[(7, "value")] == "'0.5' is not a number."
    assert errors[(8, "value")] == "error_rate is a ratio from 0 to 1; got 1.5."
    assert errors[(9, "release")] == "No release 999999."
    assert errors[(9, "count")] == "-3 is not a whole number ≥ 0."
    assert errors[(10, "")] == "Each sample must be a JSON object."
    assert 0 not in {e["index"] for e in document["errors"]}
    assert not Sample.objects.exists()


def test_batch_limits(api, release, error_rate, settings):
    item = {"release": release.pk, "metric": "error_rate", "value": 0.01}
    too_many = post(api, [item] * 10_001)
    empty = post(api, [])
    not_a_list = post(api, {"samples": [item]})
    settings.CHECKS_SAMPLES_MAX_BYTES = 1000
    too_big = post(api, [item] * 40)

    assert too_many.status_code == 400
    assert too_many.json()["detail"] == (
        "10,001 samples in one request; the limit is 10,000. Split the batch."
    )
    assert empty.json()["detail"] == "The list is empty: send at least one sample."
    assert not_a_list.json()["detail"] == "The body must be a JSON list of samples."
    assert too_big.status_code == 413
    assert "the limit is 1,000" in too_big.json()["detail"]
    assert not Sample.objects.exists()


def test_ten_thousand_samples_in_one_batch(api, release, error_rate):
    body = [
        {
            "release": release.pk,
            "metric": "error_rate",
            "value": 0.01,
            "at": (NOW - timedelta(seconds=i)).isoformat(),
        }
        for i in range(10_000)
    ]

    response = post(api, body)

    assert response.status_code == 201
    assert Sample.objects.count() == 10_000


def test_people_need_the_add_sample_permission(release, error_rate, rita):
    client = APIClient()
    client.force_authenticate(rita)
    body = [{"release": release.pk, "metric": "error_rate", "value": 0.01}]

    assert post(client, body).status_code == 403
    rita.user_permissions.add(Permission.objects.get(codename="add_sample"))
    rita = type(rita).objects.get(pk=rita.pk)
    client.force_authenticate(rita)
    assert post(client, body).status_code == 201


def test_latest_checks_show_each_criterion_verdict_and_value(api, release, error_rate, latency):
    criterion(release.plan, error_rate, warning_threshold=0.02)
    criterion(release.plan, latency, critical_threshold=5, dry_run=True)
    transitions.start(release, actor=Actor.system("tests"))
    post(
        api,
        [
            {
                "release": release.pk,
                "metric": "error_rate",
                "value": 0.03,
                "at": "2026-11-02T12:00:00Z",
            }
        ],
    )

    run_checks()
    response = api.get(f"/api/v1/releases/{release.pk}/checks/latest/")

    assert response.status_code == 200
    document = response.json()
    assert (document["release"], document["status"], document["stage"]) == (
        release.pk,
        "in_progress",
        "canary",
    )
    rows = {row["metric"]: row for row in document["criteria"]}
    assert rows["error_rate"]["verdict"] == "warn"
    assert rows["error_rate"]["value"] == pytest.approx(0.03)
    assert rows["error_rate"]["value_display"] == "3 %"
    assert rows["error_rate"]["threshold"] == 0.02
    assert rows["p95_latency_seconds"]["verdict"] == "inconclusive"
    assert rows["p95_latency_seconds"]["dry_run"] is True


def test_latest_checks_of_another_service_are_refused(other_service, production, api):
    foreign = make_release(service=other_service, environment=production)

    assert api.get(f"/api/v1/releases/{foreign.pk}/checks/latest/").status_code == 403


def test_plans_list_criteria_with_a_fixed_number_of_queries(
    api, error_rate, latency, django_assert_num_queries
):
    for n in range(3):
        plan = PlanFactory(slug=f"p{n}")
        criterion(plan, error_rate, warning_threshold=0.02, for_window=timedelta(minutes=5))
        criterion(
            None,
            latency,
            stage_template=plan.stages.first(),
            critical_threshold=5,
            on_critical="rollback",
        )
        criterion(plan, latency, critical_threshold=9, enabled=False)

    # token with its services, its last use; count, plans, stages, plan criteria, stage criteria
    with django_assert_num_queries(7):
        response = api.get("/api/v1/plans/")

    plan = next(p for p in response.json()["results"] if p["slug"] == "p0")
    assert plan["criteria"] == [
        {
            "id": plan["criteria"][0]["id"],
            "metric": "error_rate",
            "unit": "ratio",
            "label": "error_rate > 5 %",
            "comparator": ">",
            "warning_threshold": 0.02,
            "critical_threshold": 0.05,
            "reference": "absolute",
            "tolerance": "relative",
            "significance_test": "none",
            "method": "sequential",
            "p_value": 0.05,
            "minimum_effect": None,
            "success": False,
            "for_seconds": 300,
            "interval_seconds": 60,
            "consecutive": 1,
            "min_samples": 1,
            "on_warning": "notify",
            "on_critical": "pause",
            "incident_severity": "",
            "dry_run": False,
        }
    ]
    canary = plan["stages"][0]
    assert [c["label"] for c in canary["criteria"]] == ["p95_latency_seconds > 5 s"]
    assert canary["criteria"][0]["on_critical"] == "rollback"
    assert canary["min_requests"] == 0
    assert plan["stages"][1]["criteria"] == []


def test_people_push_nothing_without_login(release, error_rate):
    response = post(APIClient(), [{"release": release.pk, "metric": "error_rate", "value": 0}])

    assert response.status_code in (401, 403)
