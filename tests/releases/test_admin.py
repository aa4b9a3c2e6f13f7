"""The admin: changelist cost, transition actions with their reason page, events, tokens."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import AbstractUser, Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.api.models import ApiToken, hash_key
from apps.core.actors import Actor
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Release
from apps.rollouts import transitions
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release

CHANGELIST = reverse("admin:releases_release_changelist")
SYSTEM = Actor.system("tests")


def staff_client(user: AbstractUser) -> Client:
    """A client logged in as the user, who is given admin access (is_staff) first."""
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def rita_client(rita) -> Client:
    return staff_client(rita)


@pytest.fixture
def soaking_plan(db):
    """Stages that must soak an hour: advancing right after starting is refused by the gate."""
    return PlanFactory(
        slug="soaking",
        stages=[
            ("canary", 5, timedelta(hours=1), False),
            ("full", 100, timedelta(hours=1), False),
        ],
    )


def post_action(client: Client, action: str, releases: list[Release], **extra: str):
    data = {"action": action, "_selected_action": [r.pk for r in releases], **extra}
    return client.post(CHANGELIST, data, follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def in_state(status: str, **kwargs: object) -> Release:
    """A release brought to the given status through the transitions module."""
    release = make_release(**kwargs)
    if status != ReleaseStatus.PLANNED:
        transitions.start(release, actor=SYSTEM)
    if status == ReleaseStatus.PAUSED:
        transitions.pause(release, actor=SYSTEM)
    return release


# --- the changelist ---------------------------------------------------------------------------


def test_release_changelist_query_count_does_not_grow_with_rows(
    rita_client, production, django_assert_num_queries
) -> None:
    services = [ServiceFactory(slug=f"svc-{i}") for i in range(3)]

    def add_releases(count: int) -> None:
        for i in range(count):
            # Running releases have a current stage, the column that could cost a query each;
            # each runs in an environment of its own (one running release per service and
            # environment).
            running = bool(i % 2)
            environment = production
            if running:
                n = Release.objects.count()
                environment = EnvironmentFactory(name=f"Region {n}", slug=f"region-{n}")
            release = make_release(service=services[i % 3], environment=environment)
            if running:
                transitions.start(release, actor=SYSTEM)

    add_releases(5)
    with CaptureQueriesContext(connection) as five:
        response = rita_client.get(CHANGELIST)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 5

    add_releases(45)
    with django_assert_num_queries(len(five)):
        response = rita_client.get(CHANGELIST)
    assert response.context["cl"].result_count == 50
    assert len(response.context["cl"].result_list) == 50


def test_changelist_shows_stage_and_traffic(rita_client, service, production) -> None:
    release = in_state(ReleaseStatus.IN_PROGRESS, service=service, environment=production)

    response = rita_client.get(CHANGELIST)

    row = re.search(rf'<tr>.*?href="[^"]*/{release.pk}/change/.*?</tr>', response.text, re.S)
    assert row is not None
    assert "canary" in row.group(0)
    assert "5%" in row.group(0)
    assert "In progress" in row.group(0)


# --- transition actions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "before", "after", "verb", "reason"),
    [
        ("start_releases", ReleaseStatus.PLANNED, ReleaseStatus.IN_PROGRESS, EventVerb.STARTED, ""),
        (
            "advance_releases",
            ReleaseStatus.IN_PROGRESS,
            ReleaseStatus.IN_PROGRESS,
            EventVerb.ADVANCED,
            "",
        ),
        (
            "pause_releases",
            ReleaseStatus.IN_PROGRESS,
            ReleaseStatus.PAUSED,
            EventVerb.PAUSED,
            "Latency",
        ),
        ("resume_releases", ReleaseStatus.PAUSED, ReleaseStatus.IN_PROGRESS, EventVerb.RESUMED, ""),
        (
            "rollback_releases",
            ReleaseStatus.IN_PROGRESS,
            ReleaseStatus.ROLLED_BACK,
            EventVerb.ROLLED_BACK,
            "Errors up",
        ),
        (
            "abort_releases",
            ReleaseStatus.PLANNED,
            ReleaseStatus.ABORTED,
            EventVerb.ABORTED,
            "Wrong build",
        ),
    ],
)
def test_transition_action_asks_a_reason_then_moves_the_release(
    rita, rita_client, action, before, after, verb, reason
) -> None:
    release = in_state(before)
    stage_before = release.current_stage_id
    events_before = release.events.count()

    page = post_action(rita_client, action, [release])

    assert page.status_code == 200
    assert page.templates[0].name == "admin/releases/release/transition_reason.html"
    assert 'name="reason"' in page.text
    release.refresh_from_db()
    assert release.status == before

    done = post_action(rita_client, action, [release], apply="1", reason=reason)

    release.refresh_from_db()
    assert release.status == after
    new_events = list(release.events.order_by("id")[events_before:])
    assert [e.verb for e in new_events] == [verb]
    assert new_events[0].actor_user == rita
    assert new_events[0].actor_name == "rita"
    assert new_events[0].reason == reason
    if action == "advance_releases":
        assert release.current_stage_id != stage_before
        assert release.current_stage.name == "quarter"
    assert any("1 of 1 release(s)" in m and str(release) in m for m in messages_of(done))


def test_refused_advance_reports_the_gate_and_changes_nothing(
    rita_client, soaking_plan, service
) -> None:
    release = in_state(ReleaseStatus.IN_PROGRESS, service=service, plan=soaking_plan)
    events_before = release.events.count()

    response = post_action(rita_client, "advance_releases", [release], apply="1", reason="")

    release.refresh_from_db()
    assert release.status == ReleaseStatus.IN_PROGRESS
    assert release.current_stage.name == "canary"
    assert release.events.count() == events_before
    [message] = messages_of(response)
    assert message.startswith(f"Could not advance {release}")
    assert "The gate is red" in message
    assert "remaining" in message  # the soak blocker itself


def test_one_refusal_does_not_stop_the_others(rita_client, service, soaking_plan) -> None:
    ready = in_state(ReleaseStatus.IN_PROGRESS, service=service)
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    soaking = in_state(
        ReleaseStatus.IN_PROGRESS, service=service, plan=soaking_plan, environment=staging
    )

    response = post_action(rita_client, "advance_releases", [ready, soaking], apply="1")

    ready.refresh_from_db()
    soaking.refresh_from_db()
    assert ready.current_stage.name == "quarter"
    assert soaking.current_stage.name == "canary"
    text = " ".join(messages_of(response))
    assert "Advanced 1 of 2 release(s)" in text
    assert f"Could not advance {soaking}" in text


@pytest.mark.parametrize("action", ["force_advance_releases", "rollback_releases"])
def test_reason_is_required_for_force_and_rollback(
    rita_client, soaking_plan, service, action
) -> None:
    release = in_state(ReleaseStatus.IN_PROGRESS, service=service, plan=soaking_plan)
    events_before = release.events.count()

    response = post_action(rita_client, action, [release], apply="1", reason="  ")

    assert response.templates[0].name == "admin/releases/release/transition_reason.html"
    assert "This field is required." in response.text
    release.refresh_from_db()
    assert release.status == ReleaseStatus.IN_PROGRESS
    assert release.current_stage.name == "canary"
    assert release.events.count() == events_before


def test_force_advance_with_a_reason_records_the_override(
    rita, rita_client, soaking_plan, service
) -> None:
    release = in_state(ReleaseStatus.IN_PROGRESS, service=service, plan=soaking_plan)
    events_before = release.events.count()

    post_action(
        rita_client, "force_advance_releases", [release], apply="1", reason="Hotfix for outage"
    )

    release.refresh_from_db()
    assert release.current_stage.name == "full"
    new_events = list(release.events.order_by("id")[events_before:])
    assert [e.verb for e in new_events] == [EventVerb.GATE_OVERRIDDEN, EventVerb.ADVANCED]
    assert {e.actor_user for e in new_events} == {rita}
    assert {e.reason for e in new_events} == {"Hotfix for outage"}
    assert new_events[0].data["blockers"][0]["kind"] == "soak"


def test_viewer_sees_no_actions_and_cannot_post_one(victor, service) -> None:
    client = staff_client(victor)
    release = in_state(ReleaseStatus.PLANNED, service=service)

    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert page.context["action_form"] is None
    assert "start_releases" not in page.text

    response = post_action(client, "start_releases", [release], apply="1")

    assert response.status_code == 200
    release.refresh_from_db()
    assert release.status == ReleaseStatus.PLANNED
    assert release.events.count() == 1  # only "created"


def test_force_action_is_offered_only_with_the_force_permission(rita, service) -> None:
    rita.user_permissions.add(
        *Permission.objects.filter(codename__in=["operate_release", "view_release"])
    )
    rita.groups.clear()
    client = staff_client(rita)
    in_state(ReleaseStatus.PLANNED, service=service)

    choices = [
        name for name, _ in client.get(CHANGELIST).context["action_form"].fields["action"].choices
    ]

    assert "advance_releases" in choices
    assert "force_advance_releases" not in choices


# --- the release page -------------------------------------------------------------------------


def test_release_page_shows_gate_blockers_and_status_is_not_editable(
    rita_client, soaking_plan, service
) -> None:
    release = in_state(ReleaseStatus.IN_PROGRESS, service=service, plan=soaking_plan)

    response = rita_client.get(reverse("admin:releases_release_change", args=[release.pk]))

    assert response.status_code == 200
    assert "Red for advance" in response.text
    assert "remaining" in response.text
    assert "status" not in response.context["adminform"].form.fields
    assert "current_stage" not in response.context["adminform"].form.fields


def test_editing_a_release_records_an_update_and_keeps_its_status(
    rita, rita_client, service
) -> None:
    release = in_state(ReleaseStatus.IN_PROGRESS, service=service)
    url = reverse("admin:releases_release_change", args=[release.pk])

    response = rita_client.post(
        url,
        {
            "commit_sha": "abcdef1",
            "commit_time_0": "",
            "commit_time_1": "",
            "changelog_url": "",
            "author": "",
            "author_name": "ci",
            # read-only inline formsets still post their management forms
            "stages-TOTAL_FORMS": "0",
            "stages-INITIAL_FORMS": "0",
            "events-TOTAL_FORMS": "0",
            "events-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.context and response.context["errors"]
    release.refresh_from_db()
    assert release.commit_sha == "abcdef1"
    assert release.status == ReleaseStatus.IN_PROGRESS
    update = release.events.get(verb=EventVerb.UPDATED)
    assert update.actor_user == rita
    assert "commit_sha" in update.data["fields"]


def test_adding_a_release_goes_through_create_release(rita, rita_client, service) -> None:
    environment = EnvironmentFactory()

    response = rita_client.post(
        reverse("admin:releases_release_add"),
        {
            "service": service.pk,
            "environment": environment.pk,
            "version": "3.0.0",
            "plan": "",
            "commit_sha": "",
            "commit_time_0": "",
            "commit_time_1": "",
            "changelog_url": "",
            "author": rita.pk,
            "author_name": "",
            "_continue": "1",
        },
    )

    release = Release.objects.get(version="3.0.0")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:releases_release_change", args=[release.pk])
    assert release.status == ReleaseStatus.PLANNED
    assert release.plan == service.default_plan
    assert [s.name for s in release.stages.order_by("position")] == [
        t.name for t in service.default_plan.stages.order_by("position")
    ]
    created = release.events.get()
    assert created.verb == EventVerb.CREATED
    assert created.actor_user == rita


def test_adding_the_same_version_twice_is_a_form_error(rita_client, service, production) -> None:
    make_release(service=service, environment=production, version="3.0.0")
    data = {
        "service": service.pk,
        "environment": production.pk,
        "version": "3.0.0",
        "commit_time_0": "",
        "commit_time_1": "",
    }

    response = rita_client.post(reverse("admin:releases_release_add"), data)

    assert response.status_code == 200
    assert "already exists" in response.text
    assert Release.objects.filter(version="3.0.0").count() == 1


# --- events -----------------------------------------------------------------------------------


def test_events_cannot_be_added_changed_or_deleted_even_by_a_superuser(
    admin_client, service
) -> None:
    release = make_release(service=service)
    event = release.events.get()

    assert admin_client.get(reverse("admin:releases_event_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:releases_event_delete", args=[event.pk])).status_code
        == 403
    )
    page = admin_client.get(reverse("admin:releases_event_change", args=[event.pk]))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    admin_client.post(
        reverse("admin:releases_event_change", args=[event.pk]), {"reason": "rewritten"}
    )
    event.refresh_from_db()
    assert event.reason == ""
    listing = admin_client.get(reverse("admin:releases_event_changelist"))
    assert listing.context["action_form"] is None


def test_release_links_to_its_events(rita_client, service) -> None:
    release = in_state(ReleaseStatus.IN_PROGRESS, service=service)
    other = make_release(service=service)

    url = reverse("admin:releases_event_changelist") + f"?release__id__exact={release.pk}"
    response = rita_client.get(url)

    assert response.status_code == 200
    listed = {e.release_id for e in response.context["cl"].result_list}
    assert listed == {release.pk}
    assert other.pk not in listed


# --- API tokens -------------------------------------------------------------------------------


def test_token_key_is_shown_once_and_only_its_hash_is_stored(rita, rita_client, service) -> None:
    response = rita_client.post(
        reverse("admin:api_apitoken_add"), {"name": "deploy-bot", "services": [service.pk]}
    )

    assert response.status_code == 200
    key = re.search(r"rd_[\w-]{20,}", response.text).group(0)
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(name="deploy-bot")
    assert token.key_hash == hash_key(key)
    assert token.created_by == rita
    assert list(token.services.all()) == [service]
    assert key not in {token.key_hash, token.key_hint, token.name}
    assert key.startswith(token.key_hint)

    change = rita_client.get(reverse("admin:api_apitoken_change", args=[token.pk]))
    listing = rita_client.get(reverse("admin:api_apitoken_changelist"))
    assert key not in change.text
    assert key not in listing.text
    assert token.key_hint in listing.text


def test_revoke_action_sets_revoked_at(rita_client, service) -> None:
    token, _ = ApiToken.issue("ci", [service])

    response = rita_client.post(
        reverse("admin:api_apitoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [token.pk]},
        follow=True,
    )

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert ApiToken.objects.usable().count() == 0
    assert "Revoked 1 token(s)." in messages_of(response)


def test_token_changelist_query_count_does_not_grow(
    rita_client, service, other_service, django_assert_num_queries
) -> None:
    ApiToken.issue("one", [service])
    with CaptureQueriesContext(connection) as few:
        rita_client.get(reverse("admin:api_apitoken_changelist"))
    for i in range(10):
        ApiToken.issue(f"more-{i}", [service, other_service])

    with django_assert_num_queries(len(few)):
        response = rita_client.get(reverse("admin:api_apitoken_changelist"))

    assert response.context["cl"].result_count == 11
