"""apps.core.scope: the one rule for which release, incident or checklist an actor may have."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.http import Http404

from apps.checklists.models import Checklist
from apps.core.actors import Actor
from apps.core.scope import Refused, get_for
from apps.incidents import lifecycle
from apps.incidents.models import Incident
from apps.releases.models import Release
from tests.factories import make_release

VIEW = "releases.view_release"
OPERATE = "releases.operate_release"


def _token(*services) -> Actor:
    return Actor.for_token(1, "ci", frozenset(s.pk for s in services))


@pytest.fixture
def release(db, service, production) -> Release:
    return make_release(service=service, environment=production)


def test_a_token_gets_its_own_services_release_and_403_for_another(release, service, other_service):
    assert get_for(_token(service), Release.objects.all(), pk=release.pk) == release
    with pytest.raises(Refused) as refused:
        get_for(_token(other_service), Release.objects.all(), pk=release.pk)
    assert refused.value.message == "This token may not act on this service's releases."


def test_a_token_holds_no_permission_it_is_scoped_by_service_alone(release, service):
    # A person's role does not bind a token: its service decides (and the domain, after).
    assert get_for(_token(service), Release.objects.all(), perm=OPERATE, pk=release.pk)


def test_a_person_needs_the_permission_named(release, victor, rita):
    assert get_for(Actor.for_user(victor), Release.objects.all(), perm=VIEW, pk=release.pk)
    with pytest.raises(Refused) as refused:
        get_for(Actor.for_user(victor), Release.objects.all(), perm=OPERATE, pk=release.pk,
                refusal="Only release managers may operate releases.")  # fmt: skip
    assert refused.value.message == "Only release managers may operate releases."
    assert get_for(Actor.for_user(rita), Release.objects.all(), perm=OPERATE, pk=release.pk)


def test_no_such_object_is_404_but_a_person_without_the_role_learns_nothing(db, victor):
    nobody = get_user_model().objects.create_user("nobody", "nobody@example.com", "pw-1-nobody")
    with pytest.raises(Http404):
        get_for(Actor.for_user(victor), Release.objects.all(), perm=VIEW, pk=999_999)
    # Refused before the read: the answer is the same whether the release exists or not.
    with pytest.raises(Refused):
        get_for(Actor.for_user(nobody), Release.objects.all(), perm=VIEW, pk=999_999)


def test_incidents_and_checklists_are_scoped_by_their_service(db, service, other_service):
    incident = lifecycle.open_incident(service=service, title="Errors", actor=Actor.system())
    assert get_for(_token(service), Incident.objects.all(), pk=incident.pk) == incident
    with pytest.raises(Refused, match="this service's incidents"):
        get_for(_token(other_service), Incident.objects.all(), pk=incident.pk)
    release = make_release(service=service)
    checklist = Checklist.objects.create(release=release, name="Pre-deployment")
    field = "release__service_id"
    assert get_for(_token(service), Checklist.objects.all(), service_field=field, pk=checklist.pk)
    with pytest.raises(Refused, match="this service's checklists"):
        get_for(_token(other_service), Checklist.objects.all(), service_field=field,
                pk=checklist.pk)  # fmt: skip


@pytest.mark.parametrize("pk", ["null,null", "abc", "1.5", None])
def test_an_id_that_is_no_id_is_404_not_a_server_error(release, service, pk):
    # Schemathesis sent /api/v1/releases/null,null/: the lookup raised ValueError (a 500).
    with pytest.raises(Http404):
        get_for(_token(service), Release.objects.all(), pk=pk)


def test_an_api_path_with_an_id_that_is_no_id_is_a_json_404(release, service, client):
    from apps.api.models import ApiToken

    _, key = ApiToken.issue("ci", [service])
    answer = client.get("/api/v1/releases/null,null/", HTTP_AUTHORIZATION=f"Token {key}")
    assert answer.status_code == 404
    assert "detail" in answer.json()
