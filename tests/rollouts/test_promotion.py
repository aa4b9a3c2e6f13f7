"""One plan from dev through staging to production: the gate guards each step into another
environment, and a new artifact sends the release back through the evidence it invalidates."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client

from apps.checks.providers import placeholders
from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus, StageStatus
from apps.releases.models import Release
from apps.rollouts import gate, transitions
from apps.rollouts.promotion import change_artifact
from apps.signoffs import services as signoffs
from apps.signoffs.choices import Decision, FreezeRecurrence
from apps.signoffs.models import FreezeWindow
from tests.factories import EnvironmentFactory, PlanFactory, UserFactory, make_release
from tests.signoffs.conftest import add_rule

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")
OLD, NEW = "a1b2c3d4e5f6", "0f9e8d7c6b5a"


@pytest.fixture
def dev(db):
    return EnvironmentFactory(slug="dev", name="Dev", is_production=False, order=0)


@pytest.fixture
def staging(db):
    return EnvironmentFactory(slug="staging", name="Staging", is_production=False, order=10)


@pytest.fixture
def three_envs(dev, staging):
    """dev 100 % → staging 20 % → staging 100 % → production 5 % → 50 % → 100 %."""
    zero = timedelta(0)
    return PlanFactory(
        slug="dev-staging-production",
        stages=[
            ("dev", 100, zero, False, dev),
            ("staging 20%", 20, zero, False, staging),
            ("staging 100%", 100, zero, False, staging),
            ("5%", 5, zero, False),
            ("50%", 50, zero, False),
            ("100%", 100, zero, False),
        ],
    )


@pytest.fixture
def release(service, production, three_envs) -> Release:
    return make_release(
        service=service, environment=production, plan=three_envs, commit_sha=OLD, version="3.0.0"
    )


def at(release: Release, stage_name: str) -> Release:
    """Start the release and advance it (gate honoured) until it runs `stage_name`."""
    if release.status == ReleaseStatus.PLANNED:
        transitions.start(release, actor=SYSTEM)
    while release.current_stage.name != stage_name:
        transitions.advance(release, actor=SYSTEM)
    return release


def kinds(release: Release) -> list[str]:
    return [b.kind for b in gate.evaluate(release).blockers]


def test_stages_run_where_their_template_says_and_the_release_is_where_its_stage_is(
    release, dev, staging, production
):
    assert [s.environment.slug for s in release.stages.order_by("position")] == [
        "dev",
        "staging",
        "staging",
        "production",
        "production",
        "production",
    ]
    assert release.current_environment == dev  # planned: its first stage's
    at(release, "staging 20%")
    assert release.current_environment == staging
    assert release.environment == production  # where the plan ends up, unchanged
    assert release.stages.get(name="dev").commit_sha == OLD


def test_what_people_read_after_the_arrow_says_where_the_release_runs_now(release, run):
    assert release.destination == "Production"  # planned
    at(release, "staging 20%")
    assert release.destination == "Production (now in Staging)"
    at(release, "5%")
    assert release.destination == "Production"
    transitions.rollback(release, actor=SYSTEM, reason="bad")
    assert release.destination == "Production"
    # The emails name it so: a breach in staging does not read as one in production.
    release.service.notification_emails = "release-team@example.com"
    release.service.save()
    staged = make_release(
        service=release.service, environment=release.environment, plan=release.plan,
        commit_sha=OLD, version="3.0.1",
    )  # fmt: skip
    at(staged, "staging 20%")
    mail.outbox.clear()
    run(transitions.pause, staged, actor=SYSTEM, reason="error rate")
    subjects = [m.subject for m in mail.outbox]
    assert subjects and all("3.0.1 → Production (now in Staging)" in s for s in subjects)


def test_production_cannot_be_entered_before_staging_passed(release):
    at(release, "staging 100%")
    assert kinds(release) == []  # the current stage passes as it is left
    # Staging's first stage never passed (as when a step was skipped).
    release.stages.filter(name="staging 20%").update(status=StageStatus.SKIPPED)
    verdict = gate.evaluate(release)
    assert [b.kind for b in verdict.blockers] == ["promotion"]
    assert "Stage 5% is in Production" in verdict.blockers[0].detail
    assert "staging 20% (Staging) has not passed" in verdict.blockers[0].detail
    with pytest.raises(transitions.TransitionError) as refused:
        transitions.advance(release, actor=SYSTEM)
    assert refused.value.blockers[0].kind == "promotion"
    release.refresh_from_db()
    assert release.current_stage.name == "staging 100%"


def test_over_the_api_the_step_into_production_is_a_409_naming_the_blocker(release, api):
    at(release, "staging 100%")
    # The stage before ran another artifact (say it was forced through on an old build).
    release.stages.filter(name="staging 20%").update(commit_sha="deadbeef00")
    response = api.post(f"/api/v1/releases/{release.pk}/advance/", {}, format="json")
    assert response.status_code == 409, response.json()
    blocker = response.json()["blockers"][0]
    assert blocker["kind"] == "promotion"
    assert "staging 20% (Staging) ran deadbeef00" in blocker["detail"]
    gate_answer = api.get(f"/api/v1/releases/{release.pk}/gate/").json()
    assert gate_answer["can_advance"] is False


def test_a_release_goes_all_the_way_through_on_one_artifact(release, service):
    at(release, "100%")
    transitions.advance(release, actor=SYSTEM)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.COMPLETED
    assert set(release.stages.values_list("commit_sha", flat=True)) == {OLD}
    assert set(release.stages.values_list("status", flat=True)) == {StageStatus.PASSED}


@pytest.fixture
def two_envs(staging):
    zero = timedelta(0)
    return PlanFactory(
        slug="staging-then-production",
        stages=[
            ("staging 20%", 20, zero, False, staging),
            ("staging 100%", 100, zero, False, staging),
            ("A/B", 50, zero, False),
            ("full", 100, zero, False),
        ],
    )


@pytest.fixture
def in_production(service, production, two_envs) -> Release:
    """A staging → production release at A/B (50 % of production) on commit OLD."""
    release = make_release(
        service=service, environment=production, plan=two_envs, commit_sha=OLD, version="4.0.0"
    )
    return at(release, "A/B")


def test_an_artifact_change_mid_production_goes_back_to_staging(
    service, production, two_envs, rita_actor, run
):
    managers, _ = Group.objects.get_or_create(name="Engineering managers")
    add_rule(two_envs, "A/B", [managers])
    erin = UserFactory(username="erin")
    erin.groups.add(managers)
    release = make_release(
        service=service, environment=production, plan=two_envs, commit_sha=OLD, version="4.0.0"
    )
    at(release, "A/B")
    signoffs.sign(release, user=erin, decision=Decision.GO)

    release, lapsed = run(
        change_artifact,
        release,
        commit_sha=NEW,
        actor=rita_actor,
        reason="security patch",
    )
    assert [s.signer.username for s in lapsed] == ["erin"]
    assert release.status == ReleaseStatus.IN_PROGRESS
    assert release.current_stage.name == "staging 20%"
    assert release.current_stage.commit_sha == NEW
    statuses = dict(release.stages.values_list("name", "status"))
    assert statuses == {
        "staging 20%": StageStatus.ACTIVE,
        "staging 100%": StageStatus.PENDING,
        "A/B": StageStatus.PENDING,
        "full": StageStatus.PENDING,
    }
    event = release.events.get(verb=EventVerb.SENT_BACK)
    assert event.data == {
        "from_stage": "A/B",
        "to_stage": "staging 20%",
        "from_environment": "production",
        "to_environment": "staging",
        "from_commit": OLD,
        "to_commit": NEW,
        "traffic_percentage": 20,
    }
    assert "security patch" in event.reason
    # The artifact's change is told before where it sent the release.
    verbs = list(release.events.order_by("id").values_list("verb", flat=True))
    assert verbs[-3:] == [
        EventVerb.ARTIFACT_CHANGED,
        EventVerb.SIGNOFFS_LAPSED,
        EventVerb.SENT_BACK,
    ]
    # Staging is earned again on the new commit, then production opens.
    transitions.advance(release, actor=SYSTEM)
    assert "promotion" not in kinds(release)
    transitions.advance(release, actor=SYSTEM)
    release.refresh_from_db()
    assert release.current_stage.name == "A/B"


def test_over_the_api_an_artifact_change_sends_the_release_back_and_traffic_follows(
    in_production, api
):
    base = f"/api/v1/releases/{in_production.pk}"
    assert api.get(f"{base}/traffic/?environment=production").json()["percentage"] == 50
    assert api.get(f"{base}/traffic/?environment=staging").json()["percentage"] == 100
    response = api.post(
        f"{base}/artifact/", {"commit_sha": NEW, "reason": "rebuilt"}, format="json"
    )
    assert response.status_code == 200, response.json()
    production = api.get(f"{base}/traffic/?environment=production").json()
    staging = api.get(f"{base}/traffic/?environment=staging").json()
    assert production == {
        "percentage": 0,
        "status": "in_progress",
        "stage": None,
        "environment": "production",
    }
    assert staging == {
        "percentage": 20,
        "status": "in_progress",
        "stage": "staging 20%",
        "environment": "staging",
    }
    # Without the parameter: the current stage's, as ever.
    assert api.get(f"{base}/traffic/").json() == {
        "percentage": 20,
        "status": "in_progress",
        "stage": "staging 20%",
    }
    assert in_production.events.filter(verb=EventVerb.SENT_BACK).count() == 1


def test_a_plan_in_one_environment_only_loses_its_sign_offs(service, production, rita_actor):
    release = make_release(service=service, environment=production, commit_sha=OLD)
    at(release, "half")
    release, _ = change_artifact(release, commit_sha=NEW, actor=rita_actor)
    assert release.current_stage.name == "half"
    assert not release.events.filter(verb=EventVerb.SENT_BACK).exists()
    assert release.events.filter(verb=EventVerb.ARTIFACT_CHANGED).exists()


def test_a_change_in_the_first_environment_starts_it_over(release, rita_actor):
    at(release, "staging 100%")
    release, _ = change_artifact(release, commit_sha=NEW, actor=rita_actor)
    # dev ran the old commit too: the earliest environment whose evidence it invalidates.
    assert release.current_stage.name == "dev"
    assert release.events.get(verb=EventVerb.SENT_BACK).data["to_environment"] == "dev"


def test_a_paused_release_sent_back_stays_paused(in_production, rita_actor):
    transitions.pause(in_production, actor=SYSTEM)
    release, _ = change_artifact(in_production, commit_sha=NEW, actor=rita_actor)
    assert release.status == ReleaseStatus.PAUSED
    assert release.current_stage.name == "staging 20%"
    # Its soak at the earlier stage counts from the resume, not from the send-back.
    assert release.paused_at == release.current_stage.entered_at
    assert release.current_stage.paused_for == timedelta(0)


# --- traffic and bucket per environment -----------------------------------------------------


def test_traffic_per_environment(release, api, staging):
    base = f"/api/v1/releases/{release.pk}/traffic/"
    assert api.get(base, {"environment": "staging"}).json()["percentage"] == 0  # not reached
    at(release, "staging 20%")
    answers = {
        slug: api.get(base, {"environment": slug}).json()["percentage"]
        for slug in ("dev", "staging", "production")
    }
    assert answers == {"dev": 100, "staging": 20, "production": 0}
    at(release, "5%")
    answers = {
        slug: api.get(base, {"environment": slug}).json()["percentage"]
        for slug in ("dev", "staging", "production")
    }
    assert answers == {"dev": 100, "staging": 100, "production": 5}
    promoted = api.get(base, {"environment": "staging"}).json()
    assert promoted["stage"] == "staging 100%"
    transitions.rollback(release, actor=SYSTEM)
    answers = {
        slug: api.get(base, {"environment": slug}).json()["percentage"]
        for slug in ("dev", "staging", "production")
    }
    assert answers == {"dev": 0, "staging": 0, "production": 0}


def test_traffic_per_environment_has_its_own_etag(release, api):
    at(release, "staging 20%")
    base = f"/api/v1/releases/{release.pk}/traffic/"
    staging = api.get(base, {"environment": "staging"})
    dev = api.get(base, {"environment": "dev"})
    assert staging["ETag"] != dev["ETag"]
    again = api.get(base, {"environment": "staging"}, HTTP_IF_NONE_MATCH=staging["ETag"])
    assert again.status_code == 304
    other = api.get(base, {"environment": "dev"}, HTTP_IF_NONE_MATCH=staging["ETag"])
    assert other.status_code == 200


def test_an_unknown_environment_or_one_never_entered_is_a_400_naming_it(service, production, api):
    EnvironmentFactory(slug="qa", name="QA", is_production=False)
    release = make_release(service=service, environment=production)
    for path in ("traffic/", "bucket/?unit=u-1&"):
        joiner = "?" if "?" not in path else ""
        unknown = api.get(f"/api/v1/releases/{release.pk}/{path}{joiner}environment=nowhere")
        assert unknown.status_code == 400
        assert "'nowhere' is no environment here" in unknown.json()["environment"][0]
        never = api.get(f"/api/v1/releases/{release.pk}/{path}{joiner}environment=qa")
        assert never.status_code == 400
        assert "never runs in 'qa'" in never.json()["environment"][0]


def test_bucket_per_environment_uses_that_environments_percentage(release, api):
    at(release, "staging 20%")
    base = f"/api/v1/releases/{release.pk}/bucket/"
    units = [f"user-{n}" for n in range(20)]
    staging = [api.get(base, {"unit": u, "environment": "staging"}).json() for u in units]
    production = [api.get(base, {"unit": u, "environment": "production"}).json() for u in units]
    assert {b["percentage"] for b in staging} == {20}
    assert {b["variant"] for b in production} == {"control"}
    # The same point as the release's own assignment at that percentage.
    assert [b["variant"] for b in staging] == [release.bucket(u, 20)[0] for u in units]
    dev = api.get(base, {"unit": "user-1", "environment": "dev"}).json()
    assert dev == {"variant": "treatment", "percentage": 100, "unit": "user-1"}


def test_the_list_filters_by_current_environment(release, service, production, api):
    single = make_release(service=service, environment=production, version="2.0.0")
    listed = lambda slug: sorted(  # noqa: E731
        r["version"] for r in api.get("/api/v1/releases/", {"environment": slug}).json()["results"]
    )
    assert listed("dev") == ["3.0.0"]  # planned: where its first stage runs
    planned = api.get("/api/v1/releases/", {"environment": "dev"}).json()["results"][0]
    assert (planned["environment"], planned["current_environment"]) == ("production", "dev")
    assert listed("production") == ["2.0.0"]
    at(release, "staging 20%")
    assert listed("staging") == ["3.0.0"]
    assert listed("dev") == []
    at(release, "5%")
    assert listed("production") == ["2.0.0", "3.0.0"]
    assert single.environment == production
    rows = api.get("/api/v1/releases/", {"environment": "production"}).json()["results"]
    assert {r["version"]: r["current_environment"] for r in rows} == {
        "2.0.0": "production",
        "3.0.0": "production",
    }
    detail = api.get(f"/api/v1/releases/{release.pk}/").json()
    assert (detail["environment"], detail["current_environment"]) == ("production", "production")


# --- one running release per service and current environment --------------------------------


def test_a_second_release_may_run_in_staging_but_not_enter_production_while_another_is_there(
    in_production, service, production, two_envs, rita_actor
):
    second = make_release(
        service=service, environment=production, plan=two_envs, commit_sha=NEW, version="4.1.0"
    )
    transitions.start(second, actor=SYSTEM)  # staging is free: the other is in production
    transitions.advance(second, actor=SYSTEM)
    verdict = gate.evaluate(second)
    running = [b for b in verdict.blockers if b.kind == "running_release"]
    assert len(running) == 1
    assert "is running in Production: 4.0.0" in running[0].detail
    assert "before this one enters Production" in running[0].detail
    assert running[0].release["id"] == in_production.pk
    with pytest.raises(transitions.TransitionError):
        transitions.advance(second, actor=SYSTEM)
    transitions.advance(second, actor=rita_actor, force=True, reason="hotfix wins")
    second.refresh_from_db()
    assert second.current_stage.name == "A/B"
    overridden = second.events.get(verb=EventVerb.GATE_OVERRIDDEN)
    assert overridden.data["blockers"][0]["release"]["id"] == in_production.pk


def test_a_start_in_staging_is_refused_while_another_release_runs_in_staging(
    service, production, two_envs
):
    first = make_release(service=service, environment=production, plan=two_envs, version="5.0")
    transitions.start(first, actor=SYSTEM)
    second = make_release(service=service, environment=production, plan=two_envs, version="5.1")
    assert "running_release" in kinds(second)
    with pytest.raises(transitions.TransitionError):
        transitions.start(second, actor=SYSTEM)


def test_the_send_back_email_says_from_where_to_where(in_production, service, rita_actor, run):
    service.notification_emails = "release-team@example.com"
    service.save()
    mail.outbox.clear()
    run(change_artifact, in_production, commit_sha=NEW, actor=rita_actor)
    sent_back = [m for m in mail.outbox if "sent back" in m.subject.lower()]
    assert len(sent_back) == 1, [m.subject for m in mail.outbox]
    message = sent_back[0]
    # Where it runs now follows the arrow: the subject does not read as a production event.
    assert message.subject == (
        "[AI Orchestra] 4.0.0 → Production (now in Staging): sent back to an earlier "
        "environment (staging 20%)"
    )
    line = (
        "Sent back from A/B (production) to staging 20% (staging): the new commit "
        f"{NEW} goes through staging again before it may serve production."
    )
    assert line in message.body
    html = message.alternatives[0][0]
    assert "Sent back from <strong>A/B</strong> (production)" in html


def test_metric_queries_name_the_environment_the_release_is_in(release):
    at(release, "staging 20%")
    assert placeholders(release, "treatment")["environment"] == "staging"
    at(release, "5%")
    assert placeholders(release, "treatment")["environment"] == "production"


def test_openfeature_buckets_each_environment_at_its_own_percentage(release, token_key):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token_key}")

    def flag(environment: str) -> dict:
        body = {"context": {"targetingKey": "user-7", "environment": environment}}
        response = client.post(
            "/ofrep/v1/evaluate/flags/ai-orchestra", body, content_type="application/json"
        )
        assert response.status_code == 200, response.content
        return response.json()

    at(release, "staging 20%")
    assert flag("staging")["metadata"]["percentage"] == 20
    assert flag("production")["reason"] == "STATIC"
    at(release, "5%")
    promoted = flag("staging")  # promoted past staging: every unit gets the new version
    assert (promoted["reason"], promoted["variant"]) == ("SPLIT", "treatment")
    assert promoted["metadata"]["percentage"] == 100
    assert "stage" not in promoted["metadata"]
    assert flag("production")["metadata"] == {
        "environment": "production",
        "release": release.pk,
        "version": "3.0.0",
        "percentage": 5,
        "stage": "5%",
    }
    # Another release now running its own staging stages splits staging's traffic instead.
    second = make_release(
        service=release.service,
        environment=release.environment,
        plan=release.plan,
        commit_sha=NEW,
        version="3.1.0",
    )
    transitions.start(second, actor=SYSTEM)
    transitions.advance(second, actor=SYSTEM)
    assert flag("staging")["metadata"]["release"] == second.pk
    assert flag("staging")["metadata"]["percentage"] == 20


def test_a_production_freeze_holds_the_step_into_production_not_the_staging_stages(
    release, production
):
    window = FreezeWindow.objects.create(
        name="Black Friday",
        recurrence=FreezeRecurrence.ONE_OFF,
        starts_at=datetime.fromisoformat("2026-11-27 00:00:00+00:00"),
        ends_at=datetime.fromisoformat("2026-11-30 06:00:00+00:00"),
    )
    window.environments.add(production)
    with time_machine.travel("2026-11-28 12:00:00+00:00", tick=False):
        assert "freeze" not in kinds(release)  # the start enters dev
        at(release, "staging 20%")
        assert "freeze" not in kinds(release)  # staging 20 % → staging 100 %
        transitions.advance(release, actor=SYSTEM)
        assert kinds(release) == ["freeze"]  # staging 100 % → production 5 %


def test_the_release_shows_where_each_stage_runs_and_the_commit_it_ran(release, api):
    at(release, "staging 20%")
    stages = api.get(f"/api/v1/releases/{release.pk}/").json()["stages"]
    assert [(s["name"], s["environment"], s["commit_sha"]) for s in stages[:3]] == [
        ("dev", "dev", OLD),
        ("staging 20%", "staging", OLD),
        ("staging 100%", "staging", ""),
    ]


def test_the_release_page_says_which_environment_the_traffic_is_in(release, rita):
    page = Client()
    page.force_login(rita)
    url = f"/releases/{release.pk}/"
    at(release, "staging 20%")
    text = page.get(url).content.decode()
    assert "→ Production (now in Staging)</h1>" in text  # where it ends up, where it runs
    assert 'Traffic <strong>20 %</strong> in <strong id="traffic-environment">Staging' in text
    at(release, "5%")
    text = page.get(url).content.decode()
    assert "→ Production</h1>" in text
    assert "Traffic <strong>5 %</strong></span>" in text  # in its own environment: said once


def test_the_dashboard_says_where_the_release_ends_up_and_where_it_runs(release, rita):
    page = Client()
    page.force_login(rita)
    at(release, "staging 20%")
    text = page.get("/").content.decode()
    card = re.search(r'<li class="card[^"]*">.*?</li>', text, re.S)[0]
    assert f">{release.version}</a>" in card
    assert '<span class="muted">→ Production (now in Staging)</span>' in card
    at(release, "5%")
    text = page.get("/").content.decode()
    assert '<span class="muted">→ Production</span>' in text
