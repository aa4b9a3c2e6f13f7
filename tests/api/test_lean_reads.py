"""The lean read path (apps/api/reads.py): CI's plain polls of gate/ and traffic/ answered in one
query (or from copies: test_read_copies.py), byte for byte what the DRF action answers; every
other request goes to DRF unchanged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api import reads, throttling
from apps.api.models import ApiToken
from apps.core import stamps
from apps.rollouts.models import KeptVerdict
from tests.api.conftest import assert_same, round_trips
from tests.factories import PlanFactory, UserFactory, make_release

ENDPOINTS = ["gate", "traffic"]


@pytest.fixture
def release(service, production, run):
    plan = PlanFactory(
        slug="two", stages=[("canary", 5, timedelta(0), False), ("all", 100, timedelta(0), False)]
    )
    return run(make_release, service=service, environment=production, plan=plan)


def both(settings, call) -> tuple:
    """The answer with the lean path on, then with every request through DRF."""
    settings.API_LEAN_READS = True
    lean = call()
    settings.API_LEAN_READS = False
    drf = call()
    settings.API_LEAN_READS = True
    return lean, drf


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_plain_poll_is_one_query_and_byte_identical_to_drf(
    api, release, endpoint, settings, django_assert_num_queries
):
    settings.API_READ_CACHE_SECONDS = 0  # the query path (the copies: test_read_copies.py)
    url = f"/api/v1/releases/{release.pk}/{endpoint}/"
    api.get(url)  # the token's last use is written once a minute: not in the counts below
    with django_assert_num_queries(1):
        lean = api.get(url)
    settings.API_LEAN_READS = False
    with django_assert_num_queries(2):  # through DRF: the token, then the release and its row
        drf = api.get(url)
    assert lean.status_code == 200
    assert_same(lean, drf)
    etag = lean["ETag"]
    for seen in (etag, f"W/{etag}", f'"x", {etag}', "*", '"other-1"'):
        settings.API_LEAN_READS = True
        with django_assert_num_queries(1):
            lean = api.get(url, HTTP_IF_NONE_MATCH=seen)
        settings.API_LEAN_READS = False
        drf = api.get(url, HTTP_IF_NONE_MATCH=seen)
        assert lean.status_code == (200 if seen == '"other-1"' else 304)
        assert_same(lean, drf)


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_refusals_and_other_requests_answer_as_drf(
    api, release, endpoint, settings, service, other_service, production, victor, run
):
    url = f"/api/v1/releases/{release.pk}/{endpoint}/"
    _, other_key = ApiToken.issue("other", [other_service])
    no_role = UserFactory(username="nobody")
    people = {"victor": victor, "nobody": no_role}

    def session(name: str) -> APIClient:
        client = APIClient()
        client.force_login(people[name])
        return client

    cases = [
        (token_client(other_key), url, {}, 403),  # another service's token
        (api, f"/api/v1/releases/{release.pk + 1000}/{endpoint}/", {}, 404),
        (api, f"/api/v1/releases/9999999999999/{endpoint}/", {}, 404),  # past an integer
        (token_client("rd_wrong"), url, {}, 401),
        (APIClient(HTTP_AUTHORIZATION="Token a b"), url, {}, 401),
        (APIClient(HTTP_AUTHORIZATION="Bearer x"), url, {}, 401),
        (APIClient(), url, {}, 401),
        (session("victor"), url, {}, 200),  # a person with the view permission
        (session("nobody"), url, {}, 403),  # signed in, no role
        (api, url, {"HTTP_ACCEPT": "text/html"}, 200),  # the browsable API
        (api, url + "?format=json", {}, 200),
        (api, url + "?wait=0", {}, 200),  # a long poll's parameter
    ]
    for client, path, extra, status in cases:
        lean, drf = both(settings, lambda c=client, p=path, e=extra: c.get(p, **e))
        assert lean.status_code == status, (path, extra, lean.content)
        if "HTTP_ACCEPT" in extra:  # DRF's HTML page holds a fresh CSRF token each time
            assert lean["Content-Type"] == drf["Content-Type"] == "text/html; charset=utf-8"
        else:
            assert_same(lean, drf)


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_revoked_token_is_refused_at_once(api, release, endpoint, settings):
    url = f"/api/v1/releases/{release.pk}/{endpoint}/"
    assert api.get(url).status_code == 200
    assert api.get(url).status_code == 200  # from the copies where the cache is Redis
    ApiToken.objects.revoke()
    lean, drf = both(settings, lambda: api.get(url))
    assert lean.status_code == 401
    assert_same(lean, drf)


@pytest.mark.django_db
def test_the_token_filter_is_the_usable_querysets():
    # reads.QUERY spells ApiToken.objects.usable() in SQL: a change to one must reach the other.
    sql = str(ApiToken.objects.usable().query)
    assert sql.split(" WHERE ", 1)[1].split(" ORDER BY")[0] == f'"api_apitoken".{reads.USABLE}'


@pytest.mark.usefixtures("one_window")
@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_rate_limit_counts_lean_and_drf_answers_alike(api, release, endpoint, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api": "3/minute"},
    }
    url = f"/api/v1/releases/{release.pk}/{endpoint}/"
    settings.API_LEAN_READS = True
    lean = [api.get(url) for _ in range(4)]
    cache.clear()
    settings.API_LEAN_READS = False
    drf = [api.get(url) for _ in range(4)]
    assert [r.status_code for r in lean] == [200, 200, 200, 429]
    for one, other in zip(lean, drf, strict=True):
        assert_same(one, other)
    assert int(lean[-1]["Retry-After"]) > 0
    cache.clear()
    # Lean answers and DRF answers share one counter per token.
    settings.API_LEAN_READS = True
    assert [api.get(url).status_code for _ in range(2)] == [200, 200]
    settings.API_LEAN_READS = False
    assert [api.get(url).status_code for _ in range(2)] == [200, 429]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_due_or_missing_kept_row_goes_to_drf_which_recomputes_it(api, release, endpoint):
    url = f"/api/v1/releases/{release.pk}/{endpoint}/"
    first = api.get(url)
    KeptVerdict.objects.filter(pk=release.pk).update(
        next_change_at=timezone.now() - timedelta(seconds=1), version=7
    )
    stamps.changed(stamps.KEPT, [release.pk])  # as every writer of kept rows does
    lean = api.get(url, HTTP_IF_NONE_MATCH='"other"')
    assert lean.status_code == 200
    row = KeptVerdict.objects.get(pk=release.pk)
    assert row.next_change_at is None or row.next_change_at > timezone.now()
    assert lean["ETag"] == row.etag
    KeptVerdict.objects.filter(pk=release.pk).delete()
    again = api.get(url)
    assert again.status_code == 200 and again.json().keys() == first.json().keys()
    assert KeptVerdict.objects.filter(pk=release.pk).exists()


# The embedded mode (`make run`: SQLite) hands the row's datetimes over as naive text; the lean
# path once compared them with an aware `now` and answered 500 there. Its own process: the
# suite's database is PostgreSQL.
EMBEDDED_POLL = """
import django, json
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.test import Client
from django.test.utils import override_settings
from apps.api.models import ApiToken
from apps.core import stamps
from apps.rollouts import verdicts
from tests.factories import make_release
override_settings(ALLOWED_HOSTS=["testserver"]).enable()
release = make_release()
verdicts.read(release.pk)
_, key = ApiToken.issue("ci", [release.service])
client = Client(HTTP_AUTHORIZATION=f"Token {key}")
answers = {}
for lean in (True, False):
    with override_settings(API_LEAN_READS=lean):
        for endpoint in ("gate", "traffic"):
            response = client.get(f"/api/v1/releases/{release.pk}/{endpoint}/")
            answers[f"{endpoint} {lean}"] = [response.status_code, response.content.decode()]
print(json.dumps(answers))
"""


def test_the_lean_path_answers_in_the_embedded_mode_too(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")},
        "DEBUG": "true",
        "DJANGO_SETTINGS_MODULE": "rolloutdesk.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
        "ROLLOUTDESK_VAR_DIR": str(tmp_path),
        "CELERY_TASK_ALWAYS_EAGER": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", EMBEDDED_POLL],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    for endpoint in ("gate", "traffic"):
        lean, drf = answers[f"{endpoint} True"], answers[f"{endpoint} False"]
        assert lean[0] == 200, lean
        assert lean == drf


@pytest.mark.usefixtures("one_window")
@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_lean_answer_is_one_redis_round_trip(api, release, endpoint, redis_cache):
    url = f"/api/v1/releases/{release.pk}/{endpoint}/"
    assert api.get(url).status_code == 200  # loads the script, marks the token used
    taken = round_trips(redis_cache)
    for _ in range(3):
        assert api.get(url).status_code == 200
    # The address's bad-token block and the token's rate count, together (they were two).
    assert len(taken) == 3
    caller = throttling.token_caller(ApiToken.objects.get().pk)
    assert redis_cache.get(throttling.ApiRateThrottle().key(caller)) == 4


@pytest.mark.usefixtures("one_window")
@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("cache_kind", ["redis", "local"])
def test_a_blocked_address_is_refused_by_the_lean_path_as_by_drf(
    api, release, endpoint, cache_kind, request, settings
):
    if cache_kind == "redis":
        request.getfixturevalue("redis_cache")
    settings.HARDENING_FAILED_TOKEN_LIMIT = 3
    url = f"/api/v1/releases/{release.pk}/{endpoint}/"
    token = ApiToken.objects.get()
    caller = throttling.token_caller(token.pk)
    window = throttling.token_window()

    def block_and_poll() -> object:
        cache.clear()
        for n in range(3):
            assert token_client(f"rd_guess{n}").get(url).status_code == 401
        return api.get(url)  # the right token, from the blocked address

    lean, drf = both(settings, block_and_poll)
    assert lean.status_code == 429
    assert "Too many invalid API tokens" in lean.json()["detail"]
    assert_same(lean, drf)
    # Refused before anything was counted or noted against the token.
    assert cache.get(throttling.ApiRateThrottle().key(caller)) is None
    assert cache.get(window.key("127.0.0.1")) == 3
    token.refresh_from_db()
    assert token.last_used_at is None
    # A bad token from the blocked address is refused too (the lean path hands it to DRF).
    settings.API_LEAN_READS = True
    assert token_client("rd_guess9").get(url).status_code == 429
