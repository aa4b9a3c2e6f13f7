"""CI polling the gate cheaply: the kept verdict read in one query, ETag / If-None-Match → 304,
Cache-Control: no-cache, and the bounded long poll (?wait=N) against a live server."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import requests

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.rollouts import transitions
from apps.rollouts.models import KeptVerdict
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release

SYSTEM = Actor.system("tests")


@pytest.fixture
def release(service, production, run):
    plan = PlanFactory(
        slug="two", stages=[("canary", 5, timedelta(0), False), ("all", 100, timedelta(0), False)]
    )
    return run(make_release, service=service, environment=production, plan=plan)


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ["gate", "traffic"])
def test_a_poller_sending_the_etag_back_gets_304_until_the_answer_changes(
    api, release, run, endpoint, django_assert_max_num_queries
):
    url = f"/api/v1/releases/{release.pk}/{endpoint}/"
    first = api.get(url)
    assert first.status_code == 200
    etag = first["ETag"]
    assert etag == KeptVerdict.objects.get(pk=release.pk).etag
    assert first["Cache-Control"] == "no-cache"
    # The token, its scope and the kept row in one query (apps/api/reads.py), none from the
    # copies where the cache is Redis: no gate evaluation.
    with django_assert_max_num_queries(1):
        again = api.get(url, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == etag and again["Cache-Control"] == "no-cache"
    assert api.get(url, HTTP_IF_NONE_MATCH=f"W/{etag}").status_code == 304  # weak form too
    assert api.get(url, HTTP_IF_NONE_MATCH='"other-1"').status_code == 200

    run(transitions.start, release, actor=SYSTEM)
    changed = api.get(url, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    if endpoint == "gate":
        assert changed.json()["step"] == "advance" and changed.json()["version"] == 2
    else:
        assert changed.json() == {"percentage": 5, "status": "in_progress", "stage": "canary"}


@pytest.mark.django_db
def test_a_change_not_yet_recomputed_is_never_answered_stale(api, release):
    # No on-commit recompute ran (the test's transaction never commits): the row is due, and
    # the reader recomputes it rather than answer what the gate said before the start.
    etag = api.get(f"/api/v1/releases/{release.pk}/gate/")["ETag"]
    transitions.start(release, actor=SYSTEM)
    answer = api.get(f"/api/v1/releases/{release.pk}/gate/", HTTP_IF_NONE_MATCH=etag)
    assert answer.status_code == 200 and answer.json()["step"] == "advance"


@pytest.mark.django_db
def test_wait_is_bounded_and_a_full_house_answers_at_once(api, release, settings):
    url = f"/api/v1/releases/{release.pk}/gate/"
    too_long = api.get(url, {"wait": settings.GATE_LONG_POLL_MAX_SECONDS + 1})
    assert too_long.status_code == 400 and "wait" in too_long.json()
    assert api.get(url, {"wait": "soon"}).status_code == 400
    settings.GATE_LONG_POLL_WAITERS = 0  # the default: sync workers never hold a request
    started = time.monotonic()
    answer = api.get(url, {"wait": 30})
    assert answer.status_code == 200 and answer["X-Gate-Wait"] == "unavailable"
    assert time.monotonic() - started < 2


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_returns_as_soon_as_the_verdict_changes(live_server, settings):
    settings.GATE_LONG_POLL_WAITERS = 2
    settings.GATE_LONG_POLL_INTERVAL = 0.05
    service = ServiceFactory(name="AI Orchestra", slug="ai-orchestra")
    _, key = ApiToken.issue("ci", [service])
    release = make_release(service=service, environment=EnvironmentFactory())
    session = requests.Session()
    session.headers["Authorization"] = f"Token {key}"
    url = f"{live_server.url}/api/v1/releases/{release.pk}/gate/"
    etag = session.get(url, timeout=10).headers["ETag"]

    # Nothing changes: the poll holds for its whole wait, then answers 304.
    started = time.monotonic()
    idle = session.get(url, params={"wait": 1}, headers={"If-None-Match": etag}, timeout=10)
    assert idle.status_code == 304 and idle.headers["X-Gate-Wait"] == "waited"
    assert 1 <= time.monotonic() - started < 3

    # A start 0.5 s into a 20 s wait: the answer comes right after it, not at the end.
    timer = threading.Timer(0.5, transitions.start, args=[release], kwargs={"actor": SYSTEM})
    timer.start()
    started = time.monotonic()
    woke = session.get(url, params={"wait": 20}, headers={"If-None-Match": etag}, timeout=30)
    elapsed = time.monotonic() - started
    timer.join()
    assert woke.status_code == 200 and woke.json()["step"] == "advance"
    assert woke.headers["ETag"] != etag
    assert 0.4 < elapsed < 5, elapsed
