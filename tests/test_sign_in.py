"""Signing in and out lands somewhere that exists: the dashboard, the admin, the sign-in page."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-enough-password-42"


@pytest.fixture
def person(rita):
    """A release manager who signs in with a password (the named users have none)."""
    rita.set_password(PASSWORD)
    rita.save()
    return rita


def test_signing_in_without_next_lands_on_the_dashboard(person) -> None:
    client = Client()
    response = client.post("/accounts/login/", {"username": "rita", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    dashboard = client.get(response["Location"])
    assert dashboard.status_code == 200
    assert "<h1>Rollouts</h1>" in dashboard.content.decode()


def test_signing_in_with_next_still_goes_there(person) -> None:
    response = Client().post(
        "/accounts/login/?next=/incidents/", {"username": "rita", "password": PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == "/incidents/"


def test_the_admin_sign_in_lands_on_a_page_that_exists(person) -> None:
    person.is_staff = True
    person.save()
    client = Client()
    # The admin's own form carries next=/admin/; a post without it lands on the dashboard.
    assert 'name="next" value="/admin/"' in client.get("/admin/login/").content.decode()
    response = client.post("/admin/login/", {"username": "rita", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get(response["Location"]).status_code == 200


def test_signing_out_lands_on_the_sign_in_page(person) -> None:
    client = Client()
    client.force_login(person)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert client.get(response["Location"]).status_code == 200
