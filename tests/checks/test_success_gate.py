"""A success criterion holds the gate until the release is significantly better; after its
decision window an inconclusive one asks a release manager, who decides with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.test import Client

from apps.checks import success
from apps.checks.choices import Variant
from apps.checks.models import Sample, SuccessResolution
from apps.core.actors import Actor
from apps.releases.choices import BlockerKind, EventVerb
from apps.releases.models import Event
from apps.rollouts import gate, transitions, verdicts
from apps.rollouts.breach_response import run_checks
from tests.checks.conftest import criterion
from tests.factories import PlanFactory, make_release

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 2, 9, 0, 30, tzinfo=UTC)
SYSTEM = Actor.system("tests")
MINUTE = timedelta(minutes=1)


@pytest.fixture
def clock():
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def ab_release(production, error_rate, **fields):
    plan = PlanFactory(
        slug="ab", stages=[("a/b", 50, timedelta(0), False), ("full", 100, timedelta(0), False)]
    )
    made = criterion(
        plan,
        error_rate,
        reference="control",
        success=True,
        minimum_effect=20,
        critical_threshold=None,
        decision_window=timedelta(hours=6),
        **fields,
    )
    release = make_release(plan=plan, environment=production)
    transitions.start(release, actor=SYSTEM)
    return made, release


def push_minutes(release, metric, start: datetime, minutes: int, rates: dict, seed: int) -> None:
    """Per minute and variant, 200 requests with errors drawn at the variant's rate."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(minutes):
        for variant, rate in rates.items():
            errors = rng.binomial(200, rate)
            rows.append(
                Sample(
                    release=release,
                    metric=metric,
                    variant=variant,
                    at=start + m * MINUTE + timedelta(seconds=10),
                    value=errors / 200,
                    count=200,
                )
            )
    Sample.objects.bulk_create(rows)


def blockers(release) -> list:
    release.refresh_from_db()
    return [b for b in gate.evaluate(release).blockers if b.kind not in ("soak",)]


def test_an_inconclusive_a_b_holds_the_gate_and_a_real_improvement_releases_it(
    clock, production, error_rate
):
    made, release = ab_release(production, error_rate)
    same = {Variant.TREATMENT: 0.02, Variant.CONTROL: 0.02}
    push_minutes(release, error_rate, START, 60, same, seed=1)
    clock.shift(timedelta(minutes=60))
    run_checks()

    [held] = blockers(release)
    assert held.kind == BlockerKind.METRICS_PENDING
    assert held.detail.startswith(
        f"Metric check {made.label}: not yet significant: 12,000 requests, p = "
    )
    assert "more requests needed at today's traffic, about " in held.detail
    assert "left: " in held.detail  # and whether the decision window is long enough
    assert not gate.evaluate(release).can_advance

    # The release turns out better: errors 40 % down. The same criterion lets it go.
    better = {Variant.TREATMENT: 0.012, Variant.CONTROL: 0.02}
    for hour in range(1, 6):
        push_minutes(release, error_rate, START + hour * 60 * MINUTE, 60, better, seed=hour)
        clock.shift(timedelta(minutes=60))
        run_checks()
        if not blockers(release):
            break
    assert blockers(release) == []
    assert gate.evaluate(release).can_advance


def test_after_its_window_an_inconclusive_criterion_asks_a_release_manager(
    clock, production, error_rate, rita
):
    made, release = ab_release(production, error_rate)
    same = {Variant.TREATMENT: 0.02, Variant.CONTROL: 0.02}
    push_minutes(release, error_rate, START, 60, same, seed=2)
    clock.shift(timedelta(minutes=60))
    run_checks()
    with pytest.raises(ValidationError, match="not past its decision window"):
        success.resolve(release, made, actor=Actor.for_user(rita), reason="ship it")

    kept = verdicts.read(release.pk)
    assert kept.top_kind == BlockerKind.METRICS_PENDING
    assert kept.next_change_at <= START + timedelta(hours=6)  # the decision window's end

    clock.shift(timedelta(hours=6))
    assert verdicts.read(release.pk).top_kind == BlockerKind.SUCCESS_UNDECIDED
    [asked] = blockers(release)
    assert asked.kind == BlockerKind.SUCCESS_UNDECIDED
    assert "still inconclusive after its 6h 00m decision window" in asked.detail
    assert "A release manager decides, with a reason" in asked.detail

    client = Client()
    client.force_login(rita)
    url = "/admin/checks/successresolution/add/"
    page = client.get(f"/releases/{release.pk}/").content.decode()
    assert f'href="{url}?release={release.pk}">decide, with a reason</a>' in page
    assert client.get(f"{url}?release={release.pk}").status_code == 200
    refused = client.post(url, {"release": release.pk, "criterion": made.pk, "reason": " "})
    assert refused.status_code == 200  # the form again: the reason is required
    assert not SuccessResolution.objects.exists()

    done = client.post(
        url,
        {"release": release.pk, "criterion": made.pk, "reason": "Neutral is fine: cost win"},
    )
    assert done.status_code == 302, done.content.decode()[:2000]
    decided = SuccessResolution.objects.get()
    assert (decided.actor, decided.reason, decided.stage_id) == (
        "rita",
        "Neutral is fine: cost win",
        release.current_stage_id,
    )
    assert decided.evidence.startswith("Not yet significant")
    event = Event.objects.get(release=release, verb=EventVerb.GATE_OVERRIDDEN)
    assert (event.reason, event.data["success_criterion"]) == ("Neutral is fine: cost win", made.pk)
    assert blockers(release) == []
    assert verdicts.read(release.pk).top_kind != BlockerKind.SUCCESS_UNDECIDED
    with pytest.raises(ValidationError, match="decided already"):
        success.resolve(release, made, actor=Actor.for_user(rita), reason="again")


def test_a_guardrail_says_on_the_page_and_the_gate_whether_the_soak_can_tell(
    clock, production, error_rate, rita
):
    """A sequential guardrail at low traffic: a 20 % regression would need far more requests
    than a one-hour soak brings; the gate (while soaking) and the release page say so."""
    plan = PlanFactory(
        slug="guard",
        stages=[("canary", 50, timedelta(hours=1), False), ("full", 100, timedelta(0), False)],
    )
    made = criterion(
        plan,
        error_rate,
        reference="control",
        significance_test="z-test",
        critical_threshold=20,
        minimum_effect=20,
    )
    release = make_release(plan=plan, environment=production)
    transitions.start(release, actor=SYSTEM)
    same = {Variant.TREATMENT: 0.01, Variant.CONTROL: 0.01}
    push_minutes(release, error_rate, START, 10, same, seed=4)
    clock.shift(timedelta(minutes=10))
    run_checks()

    power = [b.detail for b in blockers(release) if b.kind == BlockerKind.METRICS_PENDING]
    assert len(power) == 1
    assert power[0].startswith(
        f"Metric check {made.label}: no significant regression so far; to detect its minimum "
        "effect, about "
    )
    assert power[0].endswith("50m left: not long enough.")

    client = Client()
    client.force_login(rita)
    page = client.get(f"/releases/{release.pk}/").content.decode()
    assert f'data-outlook="{made.pk}">To decide on the minimum effect: about ' in page
    assert "50m left: not long enough." in page
