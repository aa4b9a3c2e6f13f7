"""The API's one mapping from domain errors to answers: every refusal says a sentence."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.api.errors import exception_handler


def test_a_whole_object_validation_error_is_one_sentence_not_a_list():
    answer = exception_handler(
        ValidationError(["The gate asks for no sign-off.", "Ask later."]), {}
    )
    assert answer.status_code == 400
    assert answer.data == {"detail": "The gate asks for no sign-off. Ask later."}


def test_field_errors_keep_naming_their_fields():
    answer = exception_handler(ValidationError({"decision": ["Say go or no_go."]}), {})
    assert answer.status_code == 400
    assert answer.data == {"decision": ["Say go or no_go."]}


@pytest.mark.django_db
def test_an_id_holding_a_newline_is_the_apis_json_404(client) -> None:
    # Schemathesis found it: the catch-all's "." did not match a newline, and Django's HTML
    # 404 page answered an API path.
    response = client.get("/api/v1/releases/%F2%B1%AA%85%0A/checklists/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "No API endpoint" in response.json()["detail"]
