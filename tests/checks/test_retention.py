"""Samples older than the retention are purged by the hourly task, a batch at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from apps.checks.models import Sample
from apps.checks.tasks import purge_old_samples, purge_samples
from tests.checks.conftest import push
from tests.factories import make_release

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def test_purge_removes_only_samples_past_the_retention(error_rate, settings):
    settings.CHECKS_SAMPLE_RETENTION = 30
    release = make_release()
    push(release, error_rate, [0.01] * 5, end=NOW - timedelta(days=30), per_minute=1)  # too old
    push(release, error_rate, [0.01] * 3, end=NOW - timedelta(days=29), per_minute=1)  # kept

    with time_machine.travel(NOW, tick=False):
        deleted = purge_old_samples(batch=2)  # three batches of two, and the rest
        assert purge_samples() == 0  # the scheduled task: nothing left to do

    assert deleted == 5
    assert Sample.objects.count() == 3
    assert all(s.at > NOW - timedelta(days=30) for s in Sample.objects.all())
