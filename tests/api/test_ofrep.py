"""OFREP core at /ofrep/v1/: a service's rollout as a flag, the same assignment as bucket/."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client

from apps.api import throttling
from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.releases.choices import ReleaseStatus
from apps.releases.models import Release
from apps.rollouts import transitions
from tests.api.conftest import round_trips
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release

pytestmark = pytest.mark.django_db

SINGLE = "/ofrep/v1/evaluate/flags/{key}"
BULK = "/ofrep/v1/evaluate/flags"
SYSTEM = Actor.system("tests")


@pytest.fixture
def client(token_key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token_key}")


def post(client: Client, path: str, body: object, **headers: str):
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(path, raw, content_type="application/json", **headers)


def evaluate(client: Client, unit: str, key: str = "ai-orchestra", **attributes: str):
    return post(client, SINGLE.format(key=key), {"context": {"targetingKey": unit, **attributes}})


def started(release: Release) -> Release:
    return transitions.start(release, actor=SYSTEM)


def advanced(release: Release) -> Release:
    return transitions.advance(release, actor=SYSTEM)


def documented_point(release_id: int, unit: str) -> int:
    """The hash docs/ci.md gives apps that bucket locally from traffic/, written out here."""
    digest = hashlib.sha256(f"{release_id}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


UNITS = [f"user-{n}" for n in range(300)]


def test_single_evaluation_is_the_bucket_endpoints_assignment(
    client, token_key, service, production
):
    release = started(make_release(service=service, environment=production))  # canary, 5 %
    release = advanced(release)  # quarter, 25 %
    api = Client(HTTP_AUTHORIZATION=f"Token {token_key}")
    treated = 0
    for unit in UNITS:
        answer = evaluate(client, unit)
        assert answer.status_code == 200, answer.content
        body = answer.json()
        bucket = api.get(f"/api/v1/releases/{release.pk}/bucket/", {"unit": unit}).json()
        assert body["variant"] == bucket["variant"], unit
        assert body["value"] is (bucket["variant"] == "treatment")
        assert body["variant"] == (
            "treatment" if documented_point(release.pk, unit) < 25 * 100 else "control"
        )
        treated += body["value"]
    assert 0.17 < treated / len(UNITS) < 0.33
    assert body["key"] == "ai-orchestra"
    assert body["reason"] == "SPLIT"
    assert body["metadata"] == {
        "environment": "production",
        "release": release.pk,
        "version": release.version,
        "percentage": 25,
        "stage": "quarter",
    }


def test_a_unit_in_the_treatment_stays_in_it_as_traffic_grows(client, service, production):
    release = started(make_release(service=service, environment=production))

    def treatment() -> set[str]:
        return {u for u in UNITS if evaluate(client, u).json()["value"]}

    at_5 = treatment()
    advanced(release)
    at_25 = treatment()
    assert at_5 and at_5 < at_25


def test_nothing_rolling_out_is_control_for_everyone(client, service, production):
    assert evaluate(client, "user-1").json() == {
        "key": "ai-orchestra",
        "value": False,
        "variant": "control",
        "reason": "STATIC",
        "metadata": {"environment": "production", "percentage": 0},
    }
    release = make_release(service=service, environment=production)  # planned: no traffic
    assert evaluate(client, "user-1").json()["reason"] == "STATIC"
    release = started(release)
    transitions.rollback(release, actor=SYSTEM, reason="bad")
    assert {evaluate(client, u).json()["variant"] for u in UNITS[:50]} == {"control"}


def test_a_paused_release_keeps_its_split(client, service, production):
    release = advanced(started(make_release(service=service, environment=production)))
    before = {u: evaluate(client, u).json()["value"] for u in UNITS[:100]}
    transitions.pause(release, actor=SYSTEM, reason="looking")
    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.PAUSED
    assert {u: evaluate(client, u).json()["value"] for u in UNITS[:100]} == before
    assert evaluate(client, "user-1").json()["reason"] == "SPLIT"


def test_the_environment_attribute_picks_the_environment(client, service, production):
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    in_staging = advanced(started(make_release(service=service, environment=staging)))
    body = evaluate(client, "user-7", environment="staging").json()
    assert body["reason"] == "SPLIT"
    assert body["metadata"]["release"] == in_staging.pk
    assert body["metadata"]["environment"] == "staging"
    # Production (the default) has nothing rolling out.
    assert evaluate(client, "user-7").json()["reason"] == "STATIC"
    assert evaluate(client, "user-7", environment="production").json()["reason"] == "STATIC"


def test_a_forced_second_release_is_the_one_units_follow(client, service, production, rita):
    first = started(make_release(service=service, environment=production))
    second = make_release(service=service, environment=production)
    transitions.start(second, actor=Actor.for_user(rita), force=True, reason="hotfix over it")
    assert evaluate(client, "user-1").json()["metadata"]["release"] == second.pk
    assert first.pk != second.pk


def test_errors_are_ofreps(client, service, other_service, production):
    missing = evaluate(client, "user-1", key="no-such-service")
    assert missing.status_code == 404
    assert missing.json() == {
        "key": "no-such-service",
        "errorCode": "FLAG_NOT_FOUND",
        "errorDetails": "No flag 'no-such-service': no such service.",
    }
    # Another service's flag: 403, whether or not it is rolling out.
    assert evaluate(client, "user-1", key="billing").status_code == 403
    started(make_release(service=other_service, environment=production))
    foreign = evaluate(client, "user-1", key="billing")
    assert foreign.status_code == 403
    assert "another service" in foreign.json()["errorDetails"]

    def error(body: object) -> tuple[int, str]:
        answer = post(client, SINGLE.format(key="ai-orchestra"), body)
        assert answer.json()["key"] == "ai-orchestra"
        return answer.status_code, answer.json()["errorCode"]

    assert error(b"{not json") == (400, "PARSE_ERROR")
    assert error([1, 2]) == (400, "PARSE_ERROR")
    assert error('{"context": {"targetingKey": "a\\u0000b"}}') == (400, "PARSE_ERROR")
    assert error({}) == (400, "TARGETING_KEY_MISSING")  # the Python provider, no context given
    assert error({"context": {}}) == (400, "TARGETING_KEY_MISSING")
    assert error({"context": {"targetingKey": ""}}) == (400, "TARGETING_KEY_MISSING")
    assert error({"context": "user-1"}) == (400, "INVALID_CONTEXT")
    assert error({"context": {"targetingKey": 42}}) == (400, "INVALID_CONTEXT")
    assert error({"context": {"targetingKey": "u" * 201}}) == (400, "INVALID_CONTEXT")
    assert error({"context": {"targetingKey": "u", "environment": 3}}) == (400, "INVALID_CONTEXT")
    unknown = evaluate(client, "user-1", environment="moon")
    assert unknown.status_code == 400
    assert unknown.json()["errorCode"] == "INVALID_CONTEXT"
    assert "'moon'" in unknown.json()["errorDetails"]
    assert "production" in unknown.json()["errorDetails"]  # names the ones that exist
    # Other attributes are the application's business: allowed, ignored.
    assert evaluate(client, "user-1", email="a@example.com", plan="pro").status_code == 200


def test_only_post(client, service):
    assert client.get(SINGLE.format(key="ai-orchestra")).status_code == 405
    assert client.get(BULK).status_code == 405


def test_tokens_in_every_header_ofrep_providers_send(token_key, service, production):
    for headers in (
        {"HTTP_AUTHORIZATION": f"Bearer {token_key}"},
        {"HTTP_AUTHORIZATION": f"bearer {token_key}"},
        {"HTTP_AUTHORIZATION": f"Token {token_key}"},
        {"HTTP_X_API_KEY": token_key},
    ):
        assert evaluate(Client(**headers), "user-1").status_code == 200, headers
    for headers in (
        {},
        {"HTTP_AUTHORIZATION": "Bearer rd_not-a-key"},
        {"HTTP_AUTHORIZATION": f"Basic {token_key}"},
        {"HTTP_AUTHORIZATION": "Bearer"},
        {"HTTP_X_API_KEY": "rd_not-a-key"},
    ):
        answer = evaluate(Client(**headers), "user-1")
        assert answer.status_code == 401, headers
        assert answer["WWW-Authenticate"].startswith("Bearer")
        assert answer.json()["errorDetails"]
        assert answer.json()["errorCode"] == "GENERAL"
        assert post(Client(**headers), BULK, {"context": {"targetingKey": "u"}}).status_code == 401
    ApiToken.objects.update(revoked_at="2026-11-01T00:00:00Z")
    assert evaluate(Client(HTTP_X_API_KEY=token_key), "user-1").status_code == 401


@pytest.mark.usefixtures("one_window")
def test_guessing_tokens_is_throttled_here_too(settings, service, production):
    settings.HARDENING_FAILED_TOKEN_LIMIT = 3
    guesser = Client(HTTP_X_API_KEY="rd_guess")
    codes = [evaluate(guesser, "user-1").status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    refused = evaluate(guesser, "user-1")
    assert refused.json()["errorCode"] == "GENERAL"
    assert int(refused["Retry-After"]) > 0
    # The right key from the blocked address waits too, and is not counted against its token.
    _, right = ApiToken.issue("app", [service])
    for path in (SINGLE.format(key="ai-orchestra"), BULK):
        answer = post(Client(HTTP_X_API_KEY=right), path, {"context": {"targetingKey": "u"}})
        assert answer.status_code == 429
        assert "Too many invalid API tokens" in answer.json()["errorDetails"]
    token = ApiToken.objects.get(name="app")
    assert cache.get(throttling.ApiRateThrottle().key(throttling.token_caller(token.pk))) is None
    assert token.last_used_at is None


@pytest.mark.parametrize("path", [SINGLE.format(key="ai-orchestra"), BULK])
def test_an_evaluation_is_one_redis_round_trip(client, service, production, redis_cache, path):
    started(make_release(service=service, environment=production))
    assert post(client, path, {"context": {"targetingKey": "u"}}).status_code == 200
    taken = round_trips(redis_cache)
    for n in range(3):
        assert post(client, path, {"context": {"targetingKey": f"u{n}"}}).status_code == 200
    # The address's bad-token block and the token's rate count, together (they were two).
    assert len(taken) == 3


@pytest.mark.usefixtures("one_window")
def test_the_api_rate_limit_applies(settings, client, service, production):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api": "3/minute"},
    }
    codes = [evaluate(client, "user-1").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_bulk_evaluates_every_service_of_the_token(service, other_service, production):
    third = ServiceFactory(name="Search", slug="search")
    _, key = ApiToken.issue("app", [service, third])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    release = advanced(started(make_release(service=service, environment=production)))
    started(make_release(service=other_service, environment=production))  # not this token's
    answer = post(client, BULK, {"context": {"targetingKey": "user-3"}})
    assert answer.status_code == 200
    flags = answer.json()["flags"]
    assert [f["key"] for f in flags] == ["ai-orchestra", "search"]
    single = evaluate(client, "user-3").json()
    assert flags[0] == single
    assert flags[0]["metadata"]["release"] == release.pk
    assert flags[1]["reason"] == "STATIC"


def test_bulk_etag_gives_304_until_the_assignment_changes(client, service, production):
    release = started(make_release(service=service, environment=production))
    body = {"context": {"targetingKey": "user-11"}}
    first = post(client, BULK, body)
    tag = first["ETag"]
    assert tag.startswith('"') and first["Cache-Control"] == "no-cache"
    again = post(client, BULK, body, HTTP_IF_NONE_MATCH=tag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == tag
    assert post(client, BULK, body, HTTP_IF_NONE_MATCH=f"W/{tag}").status_code == 304
    assert post(client, BULK, body, HTTP_IF_NONE_MATCH=f'"other", {tag}').status_code == 304
    assert post(client, BULK, body, HTTP_IF_NONE_MATCH='"other"').status_code == 200
    # Another unit, another answer (its own tag).
    other = post(client, BULK, {"context": {"targetingKey": "user-12"}}, HTTP_IF_NONE_MATCH=tag)
    assert other.status_code == 200
    # The percentage moves: the same unit's answer changes, and so does the tag.
    advanced(release)
    moved = post(client, BULK, body, HTTP_IF_NONE_MATCH=tag)
    assert moved.status_code == 200
    assert moved["ETag"] != tag
    assert moved.json()["flags"][0]["metadata"]["percentage"] == 25


def test_bulk_errors(client, service, production):
    answer = post(client, BULK, {"context": {"targetingKey": "u", "environment": "moon"}})
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == "INVALID_CONTEXT"
    assert "key" not in answer.json()
    assert post(client, BULK, b"nope").json()["errorCode"] == "PARSE_ERROR"
    assert post(client, BULK, {}).json()["errorCode"] == "TARGETING_KEY_MISSING"


def test_query_counts_are_fixed(client, service, production, django_assert_num_queries):
    release = started(make_release(service=service, environment=production))
    evaluate(client, "warm")  # the token's last_used_at is written once a minute, not here
    # The token, then the release splitting the traffic.
    with django_assert_num_queries(2):
        assert evaluate(client, "user-1").json()["reason"] == "SPLIT"
    transitions.rollback(release, actor=SYSTEM, reason="bad")
    # Nothing rolling out: the service and the environment are looked up to tell it apart
    # from a wrong name.
    with django_assert_num_queries(4):
        assert evaluate(client, "user-1").json()["reason"] == "STATIC"
    services = [ServiceFactory() for _ in range(12)]
    token, key = ApiToken.issue("many", [service, *services])
    for other in services[:6]:
        started(make_release(service=other, environment=production))
    many = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    post(many, BULK, {"context": {"targetingKey": "warm"}})
    # The token, the environment, the services, their releases: whatever the number of flags.
    with django_assert_num_queries(4):
        flags = post(many, BULK, {"context": {"targetingKey": "user-1"}}).json()["flags"]
    assert len(flags) == 13
    assert sum(f["reason"] == "SPLIT" for f in flags) == 6


def test_a_plan_crossing_environments_splits_where_its_current_stage_runs(
    client, service, production
):
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    plan = PlanFactory(
        slug="staging-then-prod",
        stages=[
            ("staging", 20, timedelta(0), False, staging),
            ("canary", 10, timedelta(0), False, production),
        ],
    )
    release = started(make_release(service=service, environment=production, plan=plan))
    # In its staging stage: staging's units are split, production has nothing rolling out yet.
    in_staging = evaluate(client, "user-1", environment="staging").json()
    assert (in_staging["reason"], in_staging["metadata"]["percentage"]) == ("SPLIT", 20)
    assert evaluate(client, "user-1").json()["reason"] == "STATIC"
    advanced(release)
    in_production = evaluate(client, "user-1").json()
    assert (in_production["reason"], in_production["metadata"]["percentage"]) == ("SPLIT", 10)
    assert in_production["metadata"]["stage"] == "canary"
