"""apps.signoffs.services.sign_refusal: the one rule of who may sign, whoever asks."""

from __future__ import annotations

import pytest

from apps.signoffs.choices import Decision
from apps.signoffs.services import sign_refusal
from tests.factories import make_release

GO, NO_GO = Decision.GO, Decision.NO_GO


@pytest.fixture
def release(db, alice):
    return make_release(author=alice)


def test_the_author_may_not_approve_unless_the_rule_says_so(release, alice):
    barred = sign_refusal(release, alice, GO, in_groups=True, author_may_approve=False)
    assert "author" in barred
    assert sign_refusal(release, alice, NO_GO, in_groups=True, author_may_approve=False) == ""
    assert sign_refusal(release, alice, GO, in_groups=True, author_may_approve=True) == ""


def test_someone_else_in_the_groups_may_sign_and_outside_them_may_not(release, victor):
    assert sign_refusal(release, victor, GO, in_groups=True, author_may_approve=False) == ""
    outside = sign_refusal(
        release, victor, GO, in_groups=False, author_may_approve=False, group_names=["QA"]
    )
    assert outside.startswith("You are not in any group this gate asks to sign (QA)")


def test_an_inactive_account_signs_nothing(release, victor):
    victor.is_active = False
    assert sign_refusal(release, victor, NO_GO, in_groups=True, author_may_approve=True) == (
        "Your account is inactive."
    )
