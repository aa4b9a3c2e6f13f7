"""A real OpenID provider on loopback and rolloutdesk configured for it, as a deploy would be."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from django.http import HttpResponse
from django.test import Client

from apps.sso import config
from apps.sso.group_map import parse_group_map
from tests.sso.provider import Person, Provider, running_provider

CLIENT_ID = "rolloutdesk"
CLIENT_SECRET = "s3cret-of-the-client"
CALLBACK = "http://testserver/oidc/callback/"
GROUP_MAP = (
    "rd-release-managers=Release managers;rd-approvers=Approvers;rd-viewers=Viewers;"
    "product-leads=Product"
)


@pytest.fixture
def idp(settings) -> Iterator[Provider]:
    """The provider, and settings as the environment would give them (OIDC_ISSUER etc.)."""
    with running_provider() as provider:
        provider.add_client(CLIENT_ID, CLIENT_SECRET, CALLBACK)
        settings.OIDC_ISSUER = provider.issuer
        settings.OIDC_RP_CLIENT_ID = CLIENT_ID
        settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
        settings.OIDC_RP_SCOPES = "openid email profile groups"
        settings.OIDC_GROUP_MAP = parse_group_map(GROUP_MAP)
        settings.OIDC_PROVIDER_NAME = "Acme ID"
        settings.AUTHENTICATION_BACKENDS = [
            "apps.sso.backend.Backend",
            "django.contrib.auth.backends.ModelBackend",
        ]
        config.forget()
        yield provider
        config.forget()


@pytest.fixture
def carol(idp: Provider) -> Person:
    """Carol, known to the IdP only: a release manager there, and a product lead."""
    return idp.add_person(
        Person(
            sub="c-0001",
            email="Carol@Example.com",
            name="Carol Danvers",
            preferred_username="carol",
            groups=["rd-release-managers", "product-leads", "unrelated-group"],
        )
    )


def sign_in(client: Client, idp: Provider, sub: str, next_url: str = "") -> HttpResponse:
    """What a browser does: our sign-in link, the IdP's page (signed in there as `sub`), and
    back to our callback with the code. Returns our callback's answer."""
    start = client.get("/oidc/authenticate/" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302, start.content
    idp.signed_in_as = sub
    at_idp = requests.get(start["Location"], allow_redirects=False, timeout=5)
    assert at_idp.status_code == 302, at_idp.text
    back = urlsplit(at_idp.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return client.get(f"{back.path}?{back.query}")
