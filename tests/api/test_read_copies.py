"""The lean reads' copies (apps/api/reads.py, apps/core/stamps.py): a poll answered from the web
process's copy of the token and the kept verdict costs no query and one Redis round trip, and
every change of what a copy holds is seen at the next poll, including a change committed while
a reader kept a copy, and two writers interleaving."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api import reads, throttling
from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.rollouts import transitions
from apps.rollouts.models import KeptVerdict
from tests.api.conftest import assert_same, round_trips
from tests.factories import PlanFactory, make_release

SYSTEM = Actor.system("tests")
ENDPOINTS = ["gate", "traffic"]


def two_stages():
    return PlanFactory(
        stages=[("canary", 5, timedelta(0), False), ("all", 100, timedelta(0), False)]
    )


@pytest.fixture
def release(service, production, run):
    return run(make_release, service=service, environment=production, plan=two_stages())


def from_copies(client: APIClient, url: str, django_assert_num_queries, **extra):
    """A poll that the copies answer (it would fail the count if it reached the database)."""
    with django_assert_num_queries(0):
        return client.get(url, **extra)


def drf(settings, client: APIClient, url: str, **extra):
    settings.API_LEAN_READS = False
    try:
        return client.get(url, **extra)
    finally:
        settings.API_LEAN_READS = True


@pytest.mark.usefixtures("one_window")
@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_poll_from_the_copies_costs_no_query_and_one_redis_round_trip(
    api, release, endpoint, redis_cache, settings, django_assert_num_queries
):
    url = f"/api/v1/releases/{release.pk}/{endpoint}/"
    assert api.get(url).status_code == 200  # reads the database, keeps the copies
    taken = round_trips(redis_cache)
    for _ in range(3):
        copied = from_copies(api, url, django_assert_num_queries)
    # Block check, rate count and both stamps, together.
    assert len(taken) == 3
    assert_same(copied, drf(settings, api, url))
    etag = copied["ETag"]
    not_modified = from_copies(api, url, django_assert_num_queries, HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304
    assert_same(not_modified, drf(settings, api, url, HTTP_IF_NONE_MATCH=etag))
    # Every poll counted once, the DRF ones included (4 lean, 2 DRF, plus the first).
    caller = throttling.token_caller(ApiToken.objects.get().pk)
    assert redis_cache.get(throttling.ApiRateThrottle().key(caller)) == 7


def _revoke(**_: object) -> None:
    ApiToken.objects.revoke()


def _delete_token(**_: object) -> None:
    ApiToken.objects.get().delete()


def _token_leaves_service(service, **_: object) -> None:
    ApiToken.objects.get().services.remove(service)


def _token_set_elsewhere(other_service, **_: object) -> None:
    ApiToken.objects.get().services.set([other_service])


def _service_drops_token(service, **_: object) -> None:
    service.api_tokens.remove(ApiToken.objects.get())


def _service_clears_tokens(service, **_: object) -> None:
    service.api_tokens.clear()


def _start_and_recompute(release, run, **_: object) -> None:
    run(transitions.start, release, actor=SYSTEM)


def _start_not_yet_recomputed(release, **_: object) -> None:
    transitions.start(release, actor=SYSTEM)  # no commit in the test: the row is only due


def _delete_release(release, **_: object) -> None:
    release.delete()


CHANGES: list[tuple[Callable[..., None], int]] = [
    (_revoke, 401),
    (_delete_token, 401),
    (_token_leaves_service, 403),
    (_token_set_elsewhere, 403),
    (_service_drops_token, 403),
    (_service_clears_tokens, 403),
    (_start_and_recompute, 200),
    (_start_not_yet_recomputed, 200),
    (_delete_release, 404),
]


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(("change", "status"), CHANGES, ids=[c.__name__ for c, _ in CHANGES])
def test_every_change_a_copy_holds_is_seen_at_the_next_poll(
    api, release, endpoint, change, status, redis_cache, settings, service, other_service, run,
    django_assert_num_queries,
):  # fmt: skip
    url = f"/api/v1/releases/{release.pk}/{endpoint}/"
    api.get(url)
    before = from_copies(api, url, django_assert_num_queries)
    change(release=release, service=service, other_service=other_service, run=run)
    after = api.get(url)
    assert after.status_code == status, after.content
    assert_same(after, drf(settings, api, url))
    if status == 200:  # the release started: the answer is the new one
        assert after["ETag"] != before["ETag"]
        assert after.json() != before.json()


def _in_thread(work: Callable[[], None]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class Writer:
    """A change made in its own transaction on another thread, committed when told to."""

    def __init__(self, change: Callable[[], None]) -> None:
        self.changed = threading.Event()
        self.commit = threading.Event()
        self.errors: list[BaseException] = []

        def work() -> None:
            try:
                with transaction.atomic():
                    change()
                    self.changed.set()
                    assert self.commit.wait(30)
            except BaseException as exc:  # shown by done()
                self.errors.append(exc)
                self.changed.set()

        self.thread = _in_thread(work)
        assert self.changed.wait(30)

    def done(self) -> None:
        self.commit.set()
        self.thread.join(30)
        assert not self.thread.is_alive() and not self.errors, self.errors


@pytest.mark.django_db(transaction=True)
def test_a_copy_read_while_a_change_is_uncommitted_is_dropped_once_it_commits(
    service, production, token_key, redis_cache, django_assert_num_queries
):
    release = make_release(service=service, environment=production, plan=two_stages())
    api = APIClient(HTTP_AUTHORIZATION=f"Token {token_key}")
    url = f"/api/v1/releases/{release.pk}/gate/"
    assert api.get(url).status_code == 200
    writer = Writer(lambda: ApiToken.objects.get().services.remove(service))
    # Its stamp was replaced as it changed; what the database shows is still the old scope, and
    # the copy kept now holds it under that stamp.
    assert api.get(url).status_code == 200
    assert from_copies(api, url, django_assert_num_queries).status_code == 200
    writer.done()
    assert api.get(url).status_code == 403  # the stamp replaced again once it committed


@pytest.mark.django_db(transaction=True)
def test_two_writers_interleaving_are_both_seen(
    service, other_service, production, token_key, redis_cache
):
    release = make_release(service=service, environment=production, plan=two_stages())
    other = make_release(service=other_service, environment=production, plan=two_stages())
    api = APIClient(HTTP_AUTHORIZATION=f"Token {token_key}")
    mine, theirs = (f"/api/v1/releases/{r.pk}/gate/" for r in (release, other))
    assert (api.get(mine).status_code, api.get(theirs).status_code) == (200, 403)
    # A gives the token the other service; B takes its own away. Both open, A commits first.
    a = Writer(lambda: ApiToken.objects.get().services.add(other_service))
    b = Writer(lambda: ApiToken.objects.get().services.remove(service))
    assert (api.get(mine).status_code, api.get(theirs).status_code) == (200, 403)
    a.done()
    # A's change is seen; B's is not committed, and a copy kept now holds the old scope.
    assert (api.get(theirs).status_code, api.get(mine).status_code) == (200, 200)
    assert (api.get(theirs).status_code, api.get(mine).status_code) == (200, 200)
    b.done()
    assert (api.get(theirs).status_code, api.get(mine).status_code) == (200, 403)


@pytest.mark.django_db
def test_a_change_behind_the_stamps_back_lasts_no_longer_than_the_copies_age(
    api, release, redis_cache, settings, monkeypatch, django_assert_num_queries
):
    url = f"/api/v1/releases/{release.pk}/gate/"
    api.get(url)
    # A bulk UPDATE passes the signals by (ApiTokenQuerySet.revoke() replaces the stamps).
    ApiToken.objects.update(revoked_at=timezone.now())
    assert from_copies(api, url, django_assert_num_queries).status_code == 200
    later = reads.time.monotonic() + settings.API_READ_CACHE_SECONDS + 1
    monkeypatch.setattr(reads.time, "monotonic", lambda: later)
    assert api.get(url).status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["in process", "turned off"])
def test_copies_are_kept_only_on_a_shared_redis_cache(
    api, release, where, settings, request, django_assert_num_queries
):
    if where == "in process":
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    else:
        request.getfixturevalue("redis_cache")
        settings.API_READ_CACHE_SECONDS = 0
    url = f"/api/v1/releases/{release.pk}/gate/"
    api.get(url)
    for _ in range(2):
        with django_assert_num_queries(1):
            assert api.get(url).status_code == 200
    assert not reads._tokens and not reads._kept


@pytest.mark.django_db
def test_redis_out_of_reach_answers_from_the_database(
    api, release, redis_cache, monkeypatch, django_assert_num_queries, caplog
):
    url = f"/api/v1/releases/{release.pk}/gate/"
    api.get(url)

    def down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(type(redis_cache), "admit", down)
    monkeypatch.setattr(type(redis_cache), "count", down)
    for _ in range(2):
        with django_assert_num_queries(1):
            assert api.get(url).status_code == 200
    assert "Rate-limit cache unavailable" in caplog.text


@pytest.mark.usefixtures("one_window")
@pytest.mark.django_db
def test_a_poll_the_copies_give_up_on_is_counted_once(
    api, release, redis_cache, django_assert_num_queries
):
    url = f"/api/v1/releases/{release.pk}/gate/"
    api.get(url)
    from_copies(api, url, django_assert_num_queries)  # counted with the copies' stamps
    transitions.start(release, actor=SYSTEM)  # the kept row is due: DRF recomputes it
    assert api.get(url).json()["step"] == "advance"
    caller = throttling.token_caller(ApiToken.objects.get().pk)
    assert redis_cache.get(throttling.ApiRateThrottle().key(caller)) == 3


@pytest.mark.usefixtures("one_window")
@pytest.mark.django_db
def test_a_poll_over_the_rate_without_copies_is_counted_once(api, release, redis_cache, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api": "2/minute"},
    }
    url = f"/api/v1/releases/{release.pk}/gate/"
    assert [api.get(url).status_code for _ in range(2)] == [200, 200]
    reads.forget()  # another worker: no copy of the token, so it is counted after the query
    refused = api.get(url)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    caller = throttling.token_caller(ApiToken.objects.get().pk)
    assert redis_cache.get(throttling.ApiRateThrottle().key(caller)) == 3


@pytest.mark.django_db
def test_the_copies_are_bounded(service, production, api, run, redis_cache, monkeypatch):
    monkeypatch.setattr(reads, "MAX_KEPT", 2)
    releases = [
        run(make_release, service=service, environment=production, plan=two_stages())
        for _ in range(3)
    ]
    for release in releases:
        assert api.get(f"/api/v1/releases/{release.pk}/traffic/").status_code == 200
    assert len(reads._kept) <= 2
    assert set(reads._kept) <= {r.pk for r in releases}
    assert KeptVerdict.objects.filter(pk__in=[r.pk for r in releases]).count() == 3
