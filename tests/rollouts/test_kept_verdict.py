"""The kept gate verdict: recomputed by every change of an input and by the tick, never stale.

The property test drives a service's releases through random sequences of every kind of change
(transitions, checklist ticks, sign-offs and their withdrawal, a new artifact, incidents, metric
samples checked by the tick, time passing: soaks ending, a freeze starting and ending, sign-offs
lapsing) and after each step compares every release's kept row with `gate.evaluate` asked
afresh at the same moment. Only the sentences that count a duration from now (the soak's
"remaining", the traffic ETA) may have aged since they were kept; their kinds must match.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.checklists.choices import ChecklistKind, ItemState
from apps.checklists.models import ChecklistItem
from apps.checklists.services import ChecklistError, set_item_state
from apps.checks.choices import BadDirection, MetricKind, Variant
from apps.checks.models import MetricCriterion, MetricDefinition, Sample
from apps.configuration.apply import apply
from apps.configuration.export import export
from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import IncidentStatus, Severity
from apps.incidents.models import Incident
from apps.releases.choices import BlockerKind
from apps.releases.models import Release
from apps.rollouts import gate, transitions, verdicts
from apps.rollouts.breach_response import run_checks
from apps.rollouts.models import GateState, KeptVerdict
from apps.rollouts.tasks import tick
from apps.signoffs import services as signoffs
from apps.signoffs.choices import FreezeRecurrence, QuorumMode
from apps.signoffs.models import FreezeWindow, SignOffRule
from tests.checklists.helpers import link, make_template
from tests.factories import EnvironmentFactory, PlanFactory, UserFactory, make_release

pytestmark = pytest.mark.django_db

T0 = datetime.fromisoformat("2026-11-02 09:00:00+00:00")
SYSTEM = Actor.system("tests")
# Sentences that count a duration from "now": kept as of computed_at, compared by kind only.
AGEING = {BlockerKind.SOAK, BlockerKind.TRAFFIC}


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    blockers = [
        {"kind": b["kind"], "detail": "" if b["kind"] in AGEING else b["detail"]}
        for b in doc["blockers"]
    ]
    return {**doc, "blockers": blockers}


def assert_kept_equals_fresh(where: str) -> None:
    """Every release's kept row, read as stored (no recompute), equals a fresh evaluation."""
    now = timezone.now()
    releases = Release.objects.select_related("service", "environment", "current_stage")
    kept = {row.release_id: row for row in KeptVerdict.objects.all()}
    for release in releases:
        row = kept.get(release.pk)
        assert row is not None, f"{where}: release {release.pk} has no kept verdict"
        assert not row.is_due(now), f"{where}: release {release.pk} left due"
        fresh = gate.evaluate(release, now=now)
        doc = verdicts.document(fresh)
        assert comparable(row.payload) == comparable(doc), f"{where}: release {release.pk}"
        assert row.traffic == verdicts.traffic_document(release), where
        assert row.state == verdicts.state_of(fresh.step, [b.kind for b in fresh.blockers])


class World:
    """A service with two production releases and one in staging, every kind of gate input."""

    def __init__(self, service: Any, production: Any) -> None:
        self.service = service
        em = Group.objects.create(name="Engineering managers")
        self.erin = UserFactory(username="erin")
        self.erin.groups.add(em)
        self.rita = UserFactory(username="rita", is_superuser=True, is_staff=True)
        self.plan = PlanFactory(
            slug="kept",
            stages=[
                ("canary", 5, timedelta(minutes=30), False),
                ("half", 50, timedelta(0), False),
                ("full", 100, timedelta(0), False),
            ],
        )
        pre_flight = {"Checks": ["Code review completed", "Runbook read"]}
        link(self.plan, make_template("Pre-flight", ChecklistKind.PRE_DEPLOYMENT, pre_flight))
        rule = SignOffRule.objects.create(
            plan=self.plan,
            stage_template=self.plan.stages.get(name="canary"),
            quorum=QuorumMode.EACH_GROUP,
            valid_for=timedelta(hours=1),
        )
        rule.groups.set([em])
        self.metric = MetricDefinition.objects.create(
            key="error_rate",
            name="Error rate",
            unit="ratio",
            kind=MetricKind.RATIO,
            bad_direction=BadDirection.HIGHER,
        )
        criterion = MetricCriterion(
            plan=self.plan,
            metric=self.metric,
            comparator=">",
            warning_threshold=0.02,
            critical_threshold=0.5,
        )
        criterion.full_clean()
        criterion.save()
        freeze = FreezeWindow.objects.create(
            name="Launch week",
            recurrence=FreezeRecurrence.ONE_OFF,
            starts_at=T0 + timedelta(hours=3),
            ends_at=T0 + timedelta(hours=4),
        )
        freeze.services.set([service])
        staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
        self.releases = [
            make_release(service=service, environment=production, plan=self.plan, version="a"),
            make_release(service=service, environment=production, plan=self.plan, version="b"),
            make_release(service=service, environment=staging, plan=self.plan, version="s"),
        ]
        self.shas = iter(f"{n:040x}" for n in range(1, 10_000))
        self.taken: set[str] = set()  # the transitions that happened

    # --- the actions: each the product's own function --------------------------------------

    def transition(self, rng: random.Random) -> None:
        release = rng.choice(self.releases)
        release.refresh_from_db()
        allowed = transitions.allowed_actions(release)
        # Mostly forward: a release that is rolled back at once never meets its later gates.
        weights = {
            "start": 6,
            "advance": 6,
            "pause": 1,
            "resume": 3,
            "step_back": 5,
            "rollback": 1,
            "abort": 0,
        }
        names = [n for n in allowed if weights.get(n, 0)]
        if not names:
            return
        name = rng.choices(names, [weights[n] for n in names])[0]
        if name in ("start", "advance") and rng.random() < 0.5:
            # A release manager forcing the step past a red gate: the checklists and sign-offs
            # would otherwise hold most releases at their start, and the later stages (and a
            # step back from them) would never be reached.
            transitions.ACTIONS[name](
                release, actor=Actor.for_user(self.rita), reason="property test", force=True
            )
        else:
            transitions.ACTIONS[name](release, actor=SYSTEM, reason="property test")
        self.taken.add(name)

    def checklist(self, rng: random.Random) -> None:
        release = rng.choice(self.releases)
        open_items = ChecklistItem.objects.filter(checklist__release=release, state=ItemState.OPEN)
        items = list(open_items)
        done = bool(items) and rng.random() < 0.9
        if not done:
            items = list(ChecklistItem.objects.filter(checklist__release=release))
        set_item_state(rng.choice(items), done=done, actor=Actor.for_user(self.rita))

    def sign(self, rng: random.Random) -> None:
        # The canary's exit asks for a sign-off: sign where one is running, mostly.
        ids = [r.pk for r in self.releases]
        running = list(
            Release.objects.in_progress().filter(pk__in=ids).values_list("pk", flat=True)
        )
        release = Release.objects.get(
            pk=rng.choice(running if running and rng.random() < 0.9 else ids)
        )
        if rng.random() < 0.75:
            decision = "go" if rng.random() < 0.7 else "no_go"
            signoffs.sign(release, user=self.erin, decision=decision, comment="why not")
        else:
            signoffs.withdraw(release, user=self.erin)

    def new_artifact(self, rng: random.Random) -> None:
        release = rng.choice(self.releases)
        signoffs.change_commit(release, commit_sha=next(self.shas), actor=SYSTEM)

    def incident(self, rng: random.Random) -> None:
        open_ones = list(Incident.objects.exclude(status=IncidentStatus.RESOLVED))
        if open_ones and rng.random() < 0.7:
            lifecycle.resolve(rng.choice(open_ones), actor=SYSTEM, reason="fixed")
        else:
            severity = rng.choice([Severity.SEV1, Severity.SEV3, Severity.SEV3])
            lifecycle.open_incident(
                service=self.service, title="Pager", actor=SYSTEM, severity=severity
            )

    def samples(self, rng: random.Random) -> None:
        now = timezone.now()
        value = rng.choice([0.001, 0.001, 0.03])
        for release in self.releases:
            Sample.objects.bulk_create(
                [
                    Sample(
                        release=release,
                        metric=self.metric,
                        variant=Variant.TREATMENT,
                        at=now - timedelta(seconds=5 + 20 * k),
                        value=value,
                        count=100,
                    )
                    for k in range(3)
                ],
                ignore_conflicts=True,  # twice in one frozen minute: the same samples
            )
        run_checks(now=now)

    def time_passes(self, rng: random.Random, clock: Any) -> None:
        clock.shift(timedelta(minutes=rng.choice([1, 7, 20, 31, 45, 61, 95])))
        tick()  # the tick: checks, the verdicts time alone changed, auto-advance


REFUSED = (transitions.TransitionError, ValidationError, PermissionDenied, ChecklistError)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kept_verdicts_equal_fresh_ones_over_random_changes(
    seed, service, production, django_capture_on_commit_callbacks
):
    rng = random.Random(seed)
    with time_machine.travel(T0, tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            world = World(service, production)
        assert_kept_equals_fresh("after setup")
        actions = [
            world.transition,
            world.transition,
            world.transition,
            world.checklist,
            world.checklist,
            world.sign,
            world.sign,
            world.new_artifact,
            world.incident,
            world.samples,
        ]
        seen: set[str] = set()
        for step in range(80):
            if rng.random() < 0.25:
                name = "time_passes"
                with django_capture_on_commit_callbacks(execute=True):
                    world.time_passes(rng, clock)
            else:
                action = rng.choice(actions)
                name = action.__name__
                try:
                    with django_capture_on_commit_callbacks(execute=True):
                        with transaction.atomic():
                            action(rng)
                except REFUSED:
                    name += " (refused)"  # it changed nothing; the kept rows must still hold
            seen.add(name)
            assert_kept_equals_fresh(f"seed {seed} step {step} ({name})")
        # The sequence reached the changes it is about (not only refusals).
        assert {"transition", "sign", "checklist", "time_passes", "incident"} <= seen, seen
        assert "start" in world.taken, world.taken
        if seed == 0:
            # This sequence reaches a later stage and steps back from it (the transition that
            # moves a release to an earlier stage, its soak and sign-offs starting over).
            assert {"advance", "step_back"} <= world.taken, world.taken
        states = set(KeptVerdict.objects.values_list("state", flat=True))
        assert states  # the rows were there all along


def test_a_change_marks_due_at_once_and_recomputes_on_commit(
    service, production, django_capture_on_commit_callbacks
):
    plan = PlanFactory(slug="plain", stages=[("canary", 5, timedelta(0), False)])
    with django_capture_on_commit_callbacks(execute=True):
        release = make_release(service=service, environment=production, plan=plan)
    kept = KeptVerdict.objects.get(pk=release.pk)
    assert (kept.state, kept.version, kept.payload["step"]) == (GateState.GREEN, 1, "start")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        transitions.start(release, actor=SYSTEM)
        # Inside the change's transaction the row is due: a reader recomputes, never serves
        # the answer from before the change.
        assert KeptVerdict.objects.get(pk=release.pk).is_due(timezone.now())
        assert verdicts.read(release.pk).payload["step"] == "complete"
    for callback in callbacks:
        callback()
    kept = KeptVerdict.objects.get(pk=release.pk)
    assert kept.payload["step"] == "complete" and not kept.is_due(timezone.now())
    assert kept.version == 2


def test_a_rolled_back_change_leaves_the_kept_answer(service, production, run):
    plan = PlanFactory(slug="plain", stages=[("canary", 5, timedelta(0), False)])
    release = run(make_release, service=service, environment=production, plan=plan)
    before = KeptVerdict.objects.get(pk=release.pk)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            transitions.start(release, actor=SYSTEM)
            raise RuntimeError("the request failed after the transition")
    after = KeptVerdict.objects.get(pk=release.pk)
    assert (after.version, after.payload, after.next_change_at) == (
        before.version,
        before.payload,
        before.next_change_at,
    )


def test_the_tick_recomputes_only_the_verdicts_time_has_changed(service, production, run):
    plan = PlanFactory(
        slug="soaking",
        stages=[("canary", 5, timedelta(hours=2), False), ("all", 100, timedelta(0), False)],
    )
    other = PlanFactory(slug="plain", stages=[("canary", 5, timedelta(0), False)])
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    with time_machine.travel(T0, tick=False) as clock:
        soaking = run(make_release, service=service, environment=production, plan=plan)
        idle = run(make_release, service=service, environment=staging, plan=other)
        run(transitions.start, soaking, actor=SYSTEM)
        kept = KeptVerdict.objects.get(pk=soaking.pk)
        assert kept.state == GateState.AMBER and kept.top_kind == BlockerKind.SOAK
        assert kept.next_change_at == T0 + timedelta(hours=2)  # the soak's exact end
        assert KeptVerdict.objects.get(pk=idle.pk).next_change_at is None
        clock.shift(timedelta(hours=1))
        assert verdicts.refresh_due() == 0
        clock.shift(timedelta(hours=1))
        assert verdicts.refresh_due() == 1
        kept = KeptVerdict.objects.get(pk=soaking.pk)
        assert kept.state == GateState.GREEN and kept.next_change_at is None


def test_read_many_is_one_query_and_names_the_worst_blocker_first(
    service, production, run, django_assert_num_queries
):
    plan = PlanFactory(slug="slow", stages=[("canary", 5, timedelta(hours=2), False)])
    envs = [EnvironmentFactory(name=f"Env {n}", slug=f"env-{n}") for n in range(5)]
    releases = [run(make_release, service=service, environment=e, plan=plan) for e in envs]
    for release in releases:
        run(transitions.start, release, actor=SYSTEM)
    run(
        lifecycle.open_incident,
        service=service,
        title="Down",
        actor=SYSTEM,
        severity=Severity.SEV1,
    )
    with django_assert_num_queries(1):
        kept = verdicts.read_many([r.pk for r in releases])
    assert set(kept) == {r.pk for r in releases}
    row = kept[releases[0].pk]
    # The gate lists soak before the incident (its check order); the worst comes first here.
    assert [b["kind"] for b in row.payload["blockers"]] == ["soak", "incident"]
    assert [b["kind"] for b in row.blockers_by_severity()] == ["incident", "soak"]
    assert row.top_kind == BlockerKind.INCIDENT and row.state == GateState.RED


def test_a_freeze_saved_in_the_admin_recomputes_every_gate(service, production, run, client):
    plan = PlanFactory(slug="plain", stages=[("canary", 5, timedelta(0), False)])
    release = run(make_release, service=service, environment=production, plan=plan)
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    now = timezone.now()
    form = {
        "name": "Holidays",
        "reason": "",
        "recurrence": FreezeRecurrence.ONE_OFF,
        "starts_at_0": (now - timedelta(hours=1)).strftime("%Y-%m-%d"),
        "starts_at_1": (now - timedelta(hours=1)).strftime("%H:%M:%S"),
        "ends_at_0": (now + timedelta(days=1)).strftime("%Y-%m-%d"),
        "ends_at_1": (now + timedelta(days=1)).strftime("%H:%M:%S"),
        "time_zone": "UTC",
        "enabled": "on",
    }
    response = run(client.post, "/admin/signoffs/freezewindow/add/", form)
    assert response.status_code == 302, response.content[:2000]
    kept = KeptVerdict.objects.get(pk=release.pk)
    assert [b["kind"] for b in kept.payload["blockers"]] == ["freeze"]


def test_a_configuration_applied_recomputes_every_gate(service, production, run):
    plan = PlanFactory(slug="plain", stages=[("canary", 5, timedelta(0), False)])
    release = run(make_release, service=service, environment=production, plan=plan)
    now = timezone.now()
    FreezeWindow.objects.create(
        name="Year end", starts_at=now + timedelta(days=20), ends_at=now + timedelta(days=22)
    )
    document = export()
    (window,) = document["freeze_windows"]
    window["starts_at"] = (now - timedelta(hours=1)).isoformat()
    run(apply, document, actor=SYSTEM)
    kept = KeptVerdict.objects.get(pk=release.pk)
    assert [b["kind"] for b in kept.payload["blockers"]] == ["freeze"]
