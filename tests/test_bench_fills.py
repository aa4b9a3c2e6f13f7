"""The benchmarks' bulk fills still write rows the product accepts.

bench/*.py fill their databases with hand-written SQL, not through the product; a migration
that adds a required column breaks them silently until someone runs one (the promotion
migration's Stage.commit_sha did). Small fills here, then the product reads what they wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.utils import timezone

pytestmark = [pytest.mark.django_db(transaction=True)]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))


def test_the_api_and_pages_benches_fill(postgres) -> None:
    import common

    from apps.releases.models import Release
    from apps.rollouts import gate, verdicts

    data = common.fill(releases=30, running=5, samples=500, services=3)
    running = list(Release.objects.in_progress().with_related())
    assert len(running) == 5 and data["token"]
    for release in running:
        assert release.current_stage.commit_sha == release.commit_sha
        gate.evaluate(release)  # reads every input the fill wrote
    verdicts.refresh([], service_ids=None)


def test_the_report_bench_fills(postgres) -> None:
    import report

    from apps.releases.models import Release

    report.fill(releases=40, small=10, samples=500, services=2, now=timezone.now())
    assert Release.objects.count() == 40 + 10  # the period measured, and the baseline week
