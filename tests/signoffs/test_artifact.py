"""A new artifact (commit SHA from CI) lapses every sign-off, with an Event saying whose and why."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.releases.choices import EventVerb
from apps.rollouts import gate, transitions
from apps.signoffs import services
from apps.signoffs.choices import Decision
from apps.signoffs.models import SignOff
from tests.factories import make_release

from .conftest import EM, PRODUCT, add_rule

pytestmark = pytest.mark.django_db

OLD, NEW = "a1b2c3d4e5f6", "0f9e8d7c6b5a"


@pytest.fixture
def signed(plan, groups, service, production, erin, paul):
    """Erin and Paul signed the canary's exit on commit OLD; the gate is green."""
    add_rule(plan, "canary", [groups[EM], groups[PRODUCT]])
    release = make_release(service=service, environment=production, plan=plan, commit_sha=OLD)
    transitions.start(release, actor=Actor.system("tests"))
    services.sign(release, user=erin, decision=Decision.GO)
    services.sign(release, user=paul, decision=Decision.NO_GO, comment="one more fix")
    services.sign(release, user=paul, decision=Decision.GO, comment="fixed")
    return release


def test_a_new_commit_lapses_every_sign_off_and_says_whose(signed, rita_actor):
    release, lapsed = services.change_commit(signed, commit_sha=NEW, actor=rita_actor)
    assert release.commit_sha == NEW
    assert sorted(s.signer.username for s in lapsed) == ["erin", "paul"]
    assert SignOff.objects.standing().count() == 0
    assert (
        SignOff.objects.filter(lapse_reason=f"The artifact changed from {OLD} to {NEW}.").count()
        == 2
    )

    event = release.events.get(verb=EventVerb.SIGNOFFS_LAPSED)
    assert event.reason.startswith(f"The artifact changed from {OLD} to {NEW}.")
    assert sorted((s["signer"], s["decision"]) for s in event.data["signers"]) == [
        ("erin", Decision.GO),
        ("paul", Decision.GO),
    ]
    assert release.events.filter(verb=EventVerb.ARTIFACT_CHANGED).get().data == {
        "from": OLD,
        "to": NEW,
    }
    assert "a go from Engineering managers, Product" in gate.evaluate(release).summary


def test_the_same_commit_again_changes_nothing(signed, rita_actor):
    before = signed.events.count()
    _, lapsed = services.change_commit(signed, commit_sha=OLD.upper(), actor=rita_actor)
    assert lapsed == [] and signed.events.count() == before
    assert gate.evaluate(signed).can_advance


def test_bad_input_is_named_and_nothing_is_written(signed, rita_actor):
    with pytest.raises(ValidationError) as refused:
        services.change_commit(signed, commit_sha="not-a-sha", actor=rita_actor)
    assert refused.value.messages == ["A commit SHA is 7 to 64 hex digits."]
    transitions.rollback(signed, actor=rita_actor, reason="bad")
    with pytest.raises(ValidationError) as refused:
        services.change_commit(signed, commit_sha=NEW, actor=rita_actor)
    assert "can no longer change" in refused.value.message_dict["commit_sha"][0]
    signed.refresh_from_db()
    assert signed.commit_sha == OLD
    assert not signed.events.filter(verb=EventVerb.SIGNOFFS_LAPSED).exists()


def test_ci_updates_the_commit_through_the_api(signed, api):
    response = api.post(
        f"/api/v1/releases/{signed.pk}/artifact/",
        {"commit_sha": NEW, "reason": "rebuilt with the security patch"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["commit_sha"] == NEW
    assert sorted(x["signer"] for x in body["lapsed"]) == ["erin", "paul"]
    event = signed.events.get(verb=EventVerb.SIGNOFFS_LAPSED)
    assert event.actor_name == "token:ci"


def test_the_artifact_endpoint_refuses_bad_input_and_foreign_tokens(
    signed, api, other_service, victor
):
    response = api.post(f"/api/v1/releases/{signed.pk}/artifact/", {"commit_sha": "xyz"})
    assert response.status_code == 400
    assert "commit_sha" in response.json()

    _, key = ApiToken.issue("billing-ci", [other_service])
    foreign = APIClient()
    foreign.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = foreign.post(f"/api/v1/releases/{signed.pk}/artifact/", {"commit_sha": NEW})
    assert response.status_code == 403

    viewer = APIClient()
    viewer.force_authenticate(victor)
    response = viewer.post(f"/api/v1/releases/{signed.pk}/artifact/", {"commit_sha": NEW})
    assert response.status_code == 403
    signed.refresh_from_db()
    assert signed.commit_sha == OLD


def test_after_a_new_commit_people_are_asked_again(
    signed, erin, paul, mailoutbox, django_capture_on_commit_callbacks
):
    from apps.rollouts import tasks

    services.change_commit(signed, commit_sha=NEW, actor=Actor.system("tests"))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.signoffs_sweep()
    assert sorted(m.to[0] for m in mailoutbox) == ["erin@example.com", "paul@example.com"]


def test_editing_the_commit_in_the_release_admin_lapses_sign_offs_too(signed, rita):
    from django.test import Client
    from django.urls import reverse

    from .test_admin import form_data

    client = Client()
    client.force_login(rita)
    url = reverse("admin:releases_release_change", args=[signed.pk])
    data = form_data(client.get(url))
    data["commit_sha"] = NEW
    response = client.post(url, data)
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    signed.refresh_from_db()
    assert signed.commit_sha == NEW
    assert SignOff.objects.standing().count() == 0
    lapsed = signed.events.get(verb=EventVerb.SIGNOFFS_LAPSED)
    assert lapsed.actor_name == "rita"
