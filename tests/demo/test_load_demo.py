"""`manage.py load_demo`: demo data that can be loaded twice, and a login that works."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from apps.api.models import ApiToken, hash_key
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import (
    Environment,
    Event,
    Release,
    RolloutPlan,
    Service,
    Stage,
    StageTemplate,
)
from apps.releases.roles import RELEASE_MANAGERS

MODELS = [Environment, Service, RolloutPlan, StageTemplate, Release, Stage, Event, ApiToken]


@pytest.fixture
def debug(settings) -> None:
    settings.DEBUG = True


def load_demo(*args: str) -> str:
    out = io.StringIO()
    call_command("load_demo", *args, stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in [*MODELS, get_user_model()]}


def admin_password(output: str) -> str:
    return re.search(r"^Admin login: admin / (\S+)$", output, re.M).group(1)


def test_running_twice_creates_nothing_new(db, debug) -> None:
    load_demo()
    first = counts()
    statuses_first = dict(Release.objects.values_list("version", "status"))

    load_demo()

    assert counts() == first
    assert dict(Release.objects.values_list("version", "status")) == statuses_first
    assert first["Service"] == 3
    assert first["Environment"] == 2
    assert first["RolloutPlan"] == 4


def test_demo_content_matches_the_design(db, debug) -> None:
    load_demo()

    assert set(Service.objects.values_list("slug", flat=True)) == {
        "ai-orchestra",
        "dci-orchestrator",
        "billing-api",
    }
    assert all(s.default_plan is not None and s.owner_team for s in Service.objects.all())
    assert set(Environment.objects.values_list("slug", flat=True)) == {"staging", "production"}
    percentages = {
        plan.name: [t.traffic_percentage for t in plan.stages.order_by("position")]
        for plan in RolloutPlan.objects.all()
    }
    assert percentages == {
        "Progressive 5→10→25→50→100": [5, 10, 25, 50, 100],
        "Feature-flag canary": [0, 10, 25, 50, 75, 100],
        "Internal → beta": [1, 10, 25, 50, 100],
        "Staging → A/B → full": [20, 50, 100],
    }
    assert StageTemplate.objects.filter(auto_advance=True).exists()
    assert set(Release.objects.values_list("status", flat=True)) >= {
        ReleaseStatus.PLANNED,
        ReleaseStatus.IN_PROGRESS,
        ReleaseStatus.PAUSED,
        ReleaseStatus.COMPLETED,
        ReleaseStatus.ROLLED_BACK,
    }
    # Every release came from create_release and every move wrote an Event.
    for release in Release.objects.all():
        assert release.stages.count() == release.stage_count > 0
        assert release.events.filter(verb=EventVerb.CREATED).count() == 1
    paused = Release.objects.get(status=ReleaseStatus.PAUSED)
    assert paused.events.get(verb=EventVerb.PAUSED).reason
    # The plans that mirror the runbooks go staging, then production, in one plan.
    where = {
        plan.slug: [t.environment.slug if t.environment else "" for t in plan.stages.all()]
        for plan in RolloutPlan.objects.prefetch_related("stages__environment")
    }
    assert where["staging-ab-full"] == ["staging", "", ""]
    assert where["feature-flag-canary"][:2] == ["staging", ""]
    assert where["progressive"] == [""] * 5  # one environment: the release's
    in_staging = Release.objects.get(service__slug="dci-orchestrator", version="1.9.0")
    assert in_staging.environment.slug == "production"
    assert in_staging.current_environment.slug == "staging"
    assert paused.current_environment.slug == "production"  # 1.8.0, past its staging stage


def test_printed_admin_login_works_and_changes_each_run(db, debug) -> None:
    first = admin_password(load_demo())
    second = admin_password(load_demo())

    assert first != second
    client = Client()
    assert not client.login(username="admin", password=first)
    assert client.login(username="admin", password=second)
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.groups.filter(name=RELEASE_MANAGERS).exists()
    assert client.get("/admin/releases/release/").status_code == 200


def test_admin_password_from_the_environment(db, debug, monkeypatch) -> None:
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "demo-pass-123")

    output = load_demo()

    assert admin_password(output) == "demo-pass-123"
    assert Client().login(username="admin", password="demo-pass-123")


def test_demo_token_key_is_printed_only_when_created(db, debug) -> None:
    first = load_demo()
    second = load_demo()

    key = re.search(r"API token demo-ci for ai-orchestra: (rd_\S+)", first).group(1)
    token = ApiToken.objects.get(name="demo-ci")
    assert token.key_hash == hash_key(key)
    assert [s.slug for s in token.services.all()] == ["ai-orchestra"]
    assert "for ai-orchestra:" not in second
    assert "API token demo-ci exists" in second


def test_refuses_without_debug_unless_told(db, settings) -> None:
    settings.DEBUG = False

    with pytest.raises(CommandError, match="--allow-production"):
        load_demo()
    assert Release.objects.count() == 0

    load_demo("--allow-production")
    assert Release.objects.count() > 0
