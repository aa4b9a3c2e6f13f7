"""Compiled querysets (apps/core/compiled.py): the ORM's SQL built once, run with new values."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.api.models import ApiToken
from apps.core.compiled import Compiled
from apps.releases.models import Release

BY_VERSION = Compiled(
    lambda version: (
        Release.objects.filter(version=version)
        .order_by("pk")
        .values_list("pk", "version", "created_at")
    ),
    arity=1,
)


@pytest.mark.django_db
def test_rows_are_the_querysets_rows_for_each_value(service, production, django_assert_num_queries):
    from tests.factories import make_release

    first = make_release(service=service, environment=production, version="1.0")
    make_release(service=service, environment=production, version="2.0")
    for version in ("1.0", "2.0", "nope", "1.0"):
        expected = list(
            Release.objects.filter(version=version)
            .order_by("pk")
            .values_list("pk", "version", "created_at")
        )
        with django_assert_num_queries(1):
            assert BY_VERSION.rows(version) == expected
    assert BY_VERSION.rows("1.0")[0][0] == first.pk


@pytest.mark.django_db
def test_a_parameter_other_than_the_placeholders_is_refused_unless_declared_constant():
    moment = Compiled(
        lambda name: ApiToken.objects.filter(name=name, created_at__lte=timezone.now()), arity=1
    )
    with pytest.raises(ValueError, match="besides its placeholders"):
        moment.rows("ci")
    constant = Compiled(lambda name: ApiToken.objects.filter(name=name, pk__gt=0), 1, exact=False)
    assert constant.rows("ci") == []
    missing = Compiled(lambda name: ApiToken.objects.filter(pk__gt=0), arity=1)
    with pytest.raises(ValueError, match="must appear"):
        missing.rows("ci")


@pytest.mark.django_db
def test_a_value_used_twice_is_bound_at_each_place(service, production):
    from tests.factories import make_release

    made = make_release(service=service, environment=production, version="1.0")
    twice = Compiled(
        lambda version: (
            Release.objects.filter(version=version).exclude(author_name=version).values_list("pk")
        ),
        arity=1,
    )
    assert twice.rows("1.0") == [(made.pk,)]
    assert twice.rows("2.0") == []


@pytest.mark.django_db
def test_the_token_query_follows_usable_and_a_revocation_at_once(api, token_key):
    assert api.get("/api/v1/releases/").status_code == 200
    ApiToken.objects.update(revoked_at=timezone.now() - timedelta(seconds=1))
    assert api.get("/api/v1/releases/").status_code == 401
