"""The API's one mapping from domain errors to answers: every refusal says a sentence."""

from __future__ import annotations

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
