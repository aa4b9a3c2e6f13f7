"""The real OpenFeature Python SDK and its OFREP provider against rolloutdesk on a live server.

What an application does (docs/ci.md, "Routing by OpenFeature"): point OFREPProvider at
rolloutdesk with an API token, then ask a boolean flag named after its service for each user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests
from openfeature import api as openfeature
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.rollouts import transitions
from tests.factories import EnvironmentFactory, ServiceFactory, make_release

pytestmark = pytest.mark.django_db(transaction=True)

SYSTEM = Actor.system("tests")
UNITS = [f"user-{n}" for n in range(120)]


@pytest.fixture
def sdk(live_server) -> Iterator[Callable[[dict[str, str]], OpenFeatureClient]]:
    """An OpenFeature client whose provider is OFREP at the live server, sending `headers`."""
    made: list[str] = []

    def client(headers: dict[str, str]) -> OpenFeatureClient:
        domain = f"rolloutdesk-{len(made)}"
        made.append(domain)
        provider = OFREPProvider(live_server.url, headers_factory=lambda: dict(headers), timeout=10)
        openfeature.set_provider(provider, domain=domain)
        return openfeature.get_client(domain)

    yield client
    openfeature.clear_providers()


def test_an_app_routes_by_the_sdk_exactly_as_bucket_says(sdk, live_server):
    service = ServiceFactory(name="AI Orchestra", slug="ai-orchestra")
    production = EnvironmentFactory()
    _, key = ApiToken.issue("app", [service])
    release = transitions.start(make_release(service=service, environment=production), actor=SYSTEM)
    release = transitions.advance(release, actor=SYSTEM)  # 25 %
    flags = sdk({"Authorization": f"Bearer {key}"})
    api = requests.Session()
    api.headers["Authorization"] = f"Token {key}"
    bucket_url = f"{live_server.url}/api/v1/releases/{release.pk}/bucket/"

    treated = 0
    for unit in UNITS:
        details = flags.get_boolean_details("ai-orchestra", False, EvaluationContext(unit))
        assert details.error_code is None, details.error_message
        expected = api.get(bucket_url, params={"unit": unit}, timeout=10).json()["variant"]
        assert details.variant == expected, unit
        assert details.value is (expected == "treatment")
        assert details.reason == Reason.SPLIT
        treated += details.value
    assert 0.12 < treated / len(UNITS) < 0.40
    assert details.flag_metadata["release"] == release.pk
    assert details.flag_metadata["percentage"] == 25
    assert details.flag_metadata["version"] == release.version

    # The percentage grows: those in the treatment stay in it.
    before = {
        u for u in UNITS if flags.get_boolean_value("ai-orchestra", False, EvaluationContext(u))
    }
    transitions.advance(release, actor=SYSTEM)  # 50 %
    after = {
        u for u in UNITS if flags.get_boolean_value("ai-orchestra", False, EvaluationContext(u))
    }
    assert before < after


def test_the_environment_attribute_and_the_api_key_header(sdk):
    service = ServiceFactory(name="AI Orchestra", slug="ai-orchestra")
    EnvironmentFactory()
    staging = EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    _, key = ApiToken.issue("app", [service])
    release = transitions.start(make_release(service=service, environment=staging), actor=SYSTEM)
    flags = sdk({"X-API-Key": key})
    there = flags.get_boolean_details(
        "ai-orchestra", True, EvaluationContext("user-1", {"environment": "staging"})
    )
    assert there.reason == Reason.SPLIT
    assert there.flag_metadata["release"] == release.pk
    # Production, the default: nothing is rolling out there, every user gets control.
    here = flags.get_boolean_details("ai-orchestra", True, EvaluationContext("user-1"))
    assert (here.value, here.variant, here.reason) == (False, "control", Reason.STATIC)


def test_errors_reach_the_app_as_openfeature_errors_with_its_default(sdk):
    service = ServiceFactory(name="AI Orchestra", slug="ai-orchestra")
    other = ServiceFactory(name="Billing", slug="billing")
    EnvironmentFactory()
    _, key = ApiToken.issue("app", [service])
    flags = sdk({"Authorization": f"Bearer {key}"})

    def error(flag: str, context: EvaluationContext | None) -> tuple[ErrorCode | None, bool]:
        details = flags.get_boolean_details(flag, True, context)
        return details.error_code, details.value

    assert error("no-such-service", EvaluationContext("u")) == (ErrorCode.FLAG_NOT_FOUND, True)
    assert error("ai-orchestra", None) == (ErrorCode.TARGETING_KEY_MISSING, True)
    bad_env = EvaluationContext("u", {"environment": "moon"})
    assert error("ai-orchestra", bad_env) == (ErrorCode.INVALID_CONTEXT, True)
    assert error(other.slug, EvaluationContext("u")) == (ErrorCode.GENERAL, True)  # 403
    stranger = sdk({"Authorization": "Bearer rd_not-a-key"})
    details = stranger.get_boolean_details("ai-orchestra", True, EvaluationContext("u"))
    assert (details.error_code, details.value) == (ErrorCode.GENERAL, True)
    assert "unauthorized" in (details.error_message or "")
