"""CI reports automated items: POST /api/v1/releases/{id}/checks/; GET .../checklists/."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.checklists.choices import ChecklistKind, ItemState
from apps.checklists.models import ChecklistItem, ChecklistItemChange
from apps.releases.choices import EventVerb, ReleaseStatus
from tests.factories import PlanFactory, make_release

from .helpers import link, make_template

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(db):
    plan = PlanFactory(slug="ci-plan")
    link(
        plan,
        make_template(
            "Pre-deployment",
            sections={
                "Code": [("All tests pass", "tests"), ("Coverage > 80%", "coverage")],
                "People": ["Code review completed"],
            },
        ),
    )
    link(
        plan,
        make_template(
            "Canary exit", ChecklistKind.STAGE_EXIT, {"Canary": [("Load test passes", "tests")]}
        ),
        stage="canary",
    )
    link(
        plan,
        make_template(
            "After", ChecklistKind.POST_DEPLOYMENT, {"A": [("Smoke tests pass", "smoke-tests")]}
        ),
    )
    return plan


@pytest.fixture
def release(plan, service, production):
    return make_release(service=service, environment=production, plan=plan)


def report(client: APIClient, release, **body: object):
    return client.post(f"/api/v1/releases/{release.pk}/checks/", body, format="json")


def item(release, text: str) -> ChecklistItem:
    return ChecklistItem.objects.get(checklist__release=release, text=text)


def test_a_ci_report_ticks_then_unticks_an_automated_item_and_records_both(api, release) -> None:
    response = report(
        api, release, key="tests", passed=True, detail="312 passed", url="https://ci/run/7"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    # The same key in a stage-exit checklist is ticked by the same report.
    assert [(i["checklist"], i["text"], i["state"], i["by"]) for i in body["items"]] == [
        ("Pre-deployment", "All tests pass", "done", "token:ci"),
        ("Canary exit", "Load test passes", "done", "token:ci"),
    ]
    assert body["gate"]["can_advance"] is False  # coverage and the review are still open
    tests = item(release, "All tests pass")
    assert (tests.state, tests.comment, tests.evidence_url) == (
        ItemState.DONE,
        "312 passed",
        "https://ci/run/7",
    )
    assert (tests.actor_kind, tests.actor_token_id) == ("token", ApiToken.objects.get().pk)

    response = report(api, release, key="tests", passed=False, detail="3 failed")
    assert response.status_code == 200
    tests.refresh_from_db()
    assert (tests.state, tests.comment) == (ItemState.OPEN, "3 failed")
    history = list(tests.history.order_by("id"))
    assert [(h.previous_state, h.state, h.passed, h.comment, h.actor_name) for h in history] == [
        ("open", "done", True, "312 passed", "token:ci"),
        ("done", "open", False, "3 failed", "token:ci"),
    ]
    verbs = list(
        release.events.filter(verb__startswith="checklist_item")
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs == [EventVerb.CHECKLIST_ITEM_DONE] * 2 + [EventVerb.CHECKLIST_ITEM_REOPENED] * 2

    # A repeated report changes nothing but is kept.
    report(api, release, key="tests", passed=False, detail="still failing")
    assert tests.history.count() == 3
    assert release.events.filter(verb=EventVerb.CHECKLIST_ITEM_REOPENED).count() == 2


def test_an_unknown_key_answers_400_with_the_keys_the_release_knows(api, release) -> None:
    response = report(api, release, key="tset", passed=True)
    assert response.status_code == 400
    body = response.json()
    assert body["known_keys"] == ["coverage", "smoke-tests", "tests"]
    assert body["key"] == [
        "This release has no automated item with key 'tset'. "
        "Known keys: coverage, smoke-tests, tests."
    ]
    assert ChecklistItemChange.objects.count() == 0


def test_a_token_cannot_tick_a_manual_item(api, release) -> None:
    review = item(release, "Code review completed")
    response = report(api, release, item=review.pk, passed=True)
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "'Code review completed' is a manual item: a person ticks it in rolloutdesk, not a token."
    )
    review.refresh_from_db()
    assert review.state == ItemState.OPEN and review.history.count() == 0
    # An automated item may be addressed by id too.
    coverage = item(release, "Coverage > 80%")
    assert report(api, release, item=coverage.pk, passed=True).status_code == 200


def test_a_token_cannot_report_on_another_services_release(
    api, other_service, production, plan
) -> None:
    theirs = make_release(service=other_service, environment=production, plan=plan)
    response = report(api, theirs, key="tests", passed=True)
    assert response.status_code == 403
    assert response.json()["detail"] == "This token may not act on this service's releases."
    assert api.get(f"/api/v1/releases/{theirs.pk}/checklists/").status_code == 403
    assert ChecklistItemChange.objects.count() == 0


def test_bad_bodies_are_named(api, release) -> None:
    assert report(api, release, key="tests").json() == {"passed": ["This field is required."]}
    both = report(api, release, key="tests", item=1, passed=True)
    assert both.status_code == 400 and "key" in both.json()
    assert report(api, release, passed=True).status_code == 400
    assert report(api, release, key="tests", passed=True, url="not a url").json() == {
        "url": ["Enter an http(s) link, e.g. https://ci.example.com/runs/7."]
    }
    stranger = report(api, release, item=999999, passed=True)
    assert stranger.status_code == 400
    assert stranger.json()["item"] == [f"Release {release.pk} has no checklist item 999999."]
    assert api.post("/api/v1/releases/999999/checks/", {}, format="json").status_code == 404


def test_a_post_deployment_key_waits_for_completion(api, release) -> None:
    response = report(api, release, key="smoke-tests", passed=True)
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "Key 'smoke-tests' belongs to After, which opens when the release completes."
    )


def test_ci_and_a_person_bring_the_release_through_its_gate(api, release, rita, token_key) -> None:
    start = api.post(f"/api/v1/releases/{release.pk}/start/", {}, format="json")
    assert start.status_code == 409
    assert [b["kind"] for b in start.json()["blockers"]] == ["checklist"]

    report(api, release, key="tests", passed=True)
    report(api, release, key="coverage", passed=True)
    assert api.post(f"/api/v1/releases/{release.pk}/start/", {}, format="json").status_code == 409

    person = APIClient()
    person.force_login(rita)
    review = item(release, "Code review completed")
    ticked = report(person, release, item=review.pk, passed=True, detail="LGTM")
    assert ticked.status_code == 200
    assert ticked.json()["items"][0]["by"] == "rita"
    assert ticked.json()["gate"]["can_advance"] is True

    started = api.post(f"/api/v1/releases/{release.pk}/start/", {}, format="json")
    assert started.status_code == 200 and started.json()["status"] == ReleaseStatus.IN_PROGRESS
    # The canary exit was ticked by the first "tests" report already.
    assert api.get(f"/api/v1/releases/{release.pk}/gate/").json()["can_advance"] is True


def test_a_viewer_cannot_tick_through_the_api(victor, release) -> None:
    client = APIClient()
    client.force_login(victor)
    review = item(release, "Code review completed")
    response = report(client, release, item=review.pk, passed=True)
    assert response.status_code == 403
    assert response.json()["detail"] == "victor may not tick checklist items."


def test_checklists_endpoint_lists_progress_in_a_fixed_number_of_queries(
    api, release, plan, service, production, django_assert_num_queries
) -> None:
    report(api, release, key="tests", passed=True, detail="ok")
    url = f"/api/v1/releases/{release.pk}/checklists/"
    body = api.get(url).json()
    assert [(c["name"], c["kind"], c["stage"], c["done"], c["total"]) for c in body] == [
        ("Pre-deployment", "pre_deployment", None, 1, 3),
        ("Canary exit", "stage_exit", "canary", 1, 1),
        ("After", "post_deployment", None, 0, 1),
    ]
    assert body[0]["required_open"] == 2 and body[2]["opened_at"] is None
    assert body[0]["items"][0] | {"changed_at": None} == {
        "id": item(release, "All tests pass").pk,
        "section": "Code",
        "text": "All tests pass",
        "required": True,
        "key": "tests",
        "state": "done",
        "by": "token:ci",
        "changed_at": None,
        "comment": "ok",
        "evidence_url": "",
    }

    with django_assert_num_queries(4):  # token with its services, release, checklists, items
        api.get(url)
    link(plan, make_template("More", sections={"M": ["a", "b", "c"]}))
    bigger = make_release(service=service, environment=production, plan=plan)
    with django_assert_num_queries(4):
        assert len(api.get(f"/api/v1/releases/{bigger.pk}/checklists/").json()) == 4
