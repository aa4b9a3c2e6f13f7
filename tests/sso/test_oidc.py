"""Single sign-on end to end against a real OpenID provider on loopback (tests/sso/provider.py):
discovery, the code flow with PKCE, ID token validation, group-to-role mapping at every sign-in,
password sign-in turned off, and sign-out at the provider."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from joserfc.jwk import RSAKey

from apps.releases.roles import APPROVERS, RELEASE_MANAGERS
from tests.sso.conftest import CLIENT_ID, sign_in
from tests.sso.provider import Person, query_of

pytestmark = pytest.mark.django_db

User = get_user_model()


def signed_in_user(client: Client):
    from django.contrib.auth import get_user

    user = get_user(client)
    return user if user.is_authenticated else None


def test_sign_in_page_offers_single_sign_on(idp) -> None:
    page = Client().get("/accounts/login/").content.decode()
    assert "Sign in with Acme ID" in page
    assert 'name="password"' in page  # password sign-in stays on unless turned off


def test_discovery_gives_the_endpoints_and_the_flow_uses_pkce(idp, carol) -> None:
    client = Client()
    start = client.get("/oidc/authenticate/")
    # No endpoint is configured: the authorization endpoint came from the discovery document.
    assert start["Location"].startswith(f"{idp.issuer}/authorize?")
    asked = query_of(start["Location"])
    assert asked["response_type"] == "code" and asked["client_id"] == CLIENT_ID
    assert asked["code_challenge_method"] == "S256" and asked["code_challenge"]
    assert asked["nonce"] and asked["state"]

    idp.signed_in_as = carol.sub
    back = requests.get(start["Location"], allow_redirects=False, timeout=5).headers["Location"]
    answer = client.get(back.removeprefix("http://testserver"))
    assert answer.status_code == 302 and answer["Location"] == "/"

    # The token request carried the verifier whose S256 hash is the challenge sent before.
    (token_request,) = idp.token_requests
    verifier = token_request["code_verifier"]
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == asked["code_challenge"]
    assert signed_in_user(client).email.lower() == "carol@example.com"


def test_a_code_without_its_verifier_is_refused_by_the_provider(idp, carol) -> None:
    # What PKCE buys: a code stolen on its way back is worthless without the verifier.
    client = Client()
    start = client.get("/oidc/authenticate/")
    idp.signed_in_as = carol.sub
    back = requests.get(start["Location"], allow_redirects=False, timeout=5).headers["Location"]
    stolen = query_of(back)["code"]
    answer = requests.post(
        f"{idp.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": stolen,
            "redirect_uri": "http://testserver/oidc/callback/",
            "code_verifier": "x" * 64,
        },
        auth=(CLIENT_ID, "s3cret-of-the-client"),
        timeout=5,
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    # The verifier lives in the session of the browser that started: that one signs in.
    client.get(back.removeprefix("http://testserver"))
    assert signed_in_user(client).username == "carol"


def test_first_sign_in_creates_the_person_with_the_roles_their_groups_map_to(idp, carol) -> None:
    client = Client()
    answer = sign_in(client, idp, carol.sub, next_url="/incidents/")
    assert answer.status_code == 302 and answer["Location"] == "/incidents/"
    user = signed_in_user(client)
    assert user.username == "carol" and user.get_full_name() == ""  # no given/family names
    assert set(user.groups.values_list("name", flat=True)) == {RELEASE_MANAGERS, "Product"}
    assert user.is_staff  # a role holder may open the admin, as people added by hand
    assert user.has_perm("releases.operate_release")
    assert not user.has_usable_password()
    assert client.get("/incidents/").status_code == 200


def test_roles_are_mapped_again_at_every_sign_in(idp, carol) -> None:
    sign_in(Client(), idp, carol.sub)
    user = User.objects.get(email__iexact=carol.email)
    kept_by_hand = Group.objects.create(name="On-call")
    user.groups.add(kept_by_hand)

    # In the IdP, Carol moves from release managers to approvers and leaves product leads.
    carol.groups = ["rd-approvers"]
    client = Client()
    sign_in(client, idp, carol.sub)
    user.refresh_from_db()
    names = set(user.groups.values_list("name", flat=True))
    assert names == {APPROVERS, "On-call"}  # a group the map does not name is left alone
    assert not user.has_perm("releases.operate_release")
    assert signed_in_user(client).pk == user.pk  # the same account, found by email

    # Out of every mapped group: no role, no admin.
    carol.groups = []
    sign_in(Client(), idp, carol.sub)
    user = User.objects.get(pk=user.pk)
    assert set(user.groups.values_list("name", flat=True)) == {"On-call"}
    assert not user.is_staff


def test_an_existing_local_account_is_signed_in_by_its_email(idp, carol) -> None:
    local = User.objects.create_user("cdanvers", email="carol@example.com", password="pw-123456!")
    client = Client()
    sign_in(client, idp, carol.sub)
    assert signed_in_user(client).pk == local.pk
    assert local.groups.filter(name=RELEASE_MANAGERS).exists()


def test_an_inactive_account_is_not_signed_in(idp, carol) -> None:
    User.objects.create_user("carol", email="carol@example.com", is_active=False)
    client = Client()
    answer = sign_in(client, idp, carol.sub)
    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/"
    assert signed_in_user(client) is None
    assert "did not work" in client.get("/accounts/login/").content.decode()


@pytest.mark.parametrize(
    "tamper, resign",
    [
        pytest.param(lambda c: {**c, "aud": ["another-app"]}, False, id="audience"),
        pytest.param(lambda c: {**c, "iss": "https://evil.example"}, False, id="issuer"),
        pytest.param(
            lambda c: {**c, "exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
            False,
            id="expired",
        ),
        pytest.param(lambda c: {**c, "nonce": "not-the-one-sent"}, False, id="nonce"),
        pytest.param(lambda c: c, True, id="signed-by-another-key"),
    ],
)
def test_an_id_token_that_fails_validation_signs_nobody_in(idp, carol, tamper, resign) -> None:
    idp.tamper = tamper
    if resign:
        idp.sign_with = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
    client = Client()
    answer = sign_in(client, idp, carol.sub)
    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/"
    assert signed_in_user(client) is None
    assert not User.objects.filter(email__iexact=carol.email).exists()
    assert (
        "Signing in with single sign-on did not work"
        in client.get("/accounts/login/").content.decode()
    )


def test_a_discovery_document_naming_another_issuer_is_refused(idp, settings) -> None:
    # The same server under another name: the document's issuer no longer matches.
    settings.OIDC_ISSUER = idp.issuer.replace("127.0.0.1", "localhost")
    client = Client()
    answer = client.get("/oidc/authenticate/")
    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/"
    assert "did not work" in client.get("/accounts/login/").content.decode()


def test_sign_out_ends_the_session_here_and_at_the_provider(idp, carol) -> None:
    client = Client()
    sign_in(client, idp, carol.sub)
    id_token = client.session["oidc_id_token"]
    answer = client.post("/accounts/logout/")
    assert answer.status_code == 302
    assert answer["Location"].startswith(f"{idp.issuer}/logout?")
    assert signed_in_user(client) is None
    at_idp = requests.get(answer["Location"], allow_redirects=False, timeout=5)
    (ended,) = idp.end_sessions
    assert ended["id_token_hint"] == id_token
    assert at_idp.headers["Location"] == "http://testserver/accounts/login/"
    assert idp.signed_in_as is None


def test_password_sign_in_can_be_turned_off(idp, settings, rita) -> None:
    settings.SSO_PASSWORD_LOGIN = False
    settings.AUTHENTICATION_BACKENDS = ["apps.sso.backend.Backend"]
    rita.set_password("a-long-enough-password-42")
    rita.save()
    client = Client()
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with Acme ID" in page and 'name="password"' not in page
    # The right password signs nobody in, on the sign-in page or the admin's.
    client.post("/accounts/login/", {"username": "rita", "password": "a-long-enough-password-42"})
    assert signed_in_user(client) is None
    admin = client.get("/admin/login/?next=/admin/")
    assert admin.status_code == 302 and admin["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    client.post("/admin/login/", {"username": "rita", "password": "a-long-enough-password-42"})
    assert signed_in_user(client) is None
    # Single sign-on still signs people in, with the permissions of their roles.
    boss = idp.add_person(Person("b-1", "boss@example.com", ["rd-release-managers"], "", "boss"))
    sign_in(client, idp, boss.sub)
    assert signed_in_user(client).has_perm("releases.operate_release")


def test_off_unless_configured(db) -> None:
    client = Client()
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()
    assert client.get("/admin/login/").status_code == 200  # the admin's own form
