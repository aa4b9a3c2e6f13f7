"""Schemathesis against /api/v1/schema/: every operation, bounded examples (derandomized, so CI
runs the same cases each time), with a token of the service, then its stateful phase, which
follows the links it infers between operations (a release listed, then advanced, then read).
No answer is a 5xx; every 4xx is a JSON object that says what is wrong (a "detail" sentence or
per-field lists), with no traceback; and every answer is one the schema documents: its status
code, its content type and its body (a field documented non-null never comes back null).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from apps.api.models import ApiToken  # noqa: E402
from apps.core.actors import Actor  # noqa: E402
from apps.rollouts import transitions  # noqa: E402
from tests.factories import PlanFactory, make_release  # noqa: E402

pytestmark = pytest.mark.django_db
EXAMPLES = 25
# Stateful scenarios and steps per scenario: enough to walk register → start → advance → read.
SCENARIOS = 30
STEPS = 6
LEAKS = ("Traceback", 'File "', "psycopg", "django.db", "Exception Value")


@schemathesis.check
def well_formed_client_error(ctx, response, case) -> bool | None:
    """A 4xx is a JSON object naming the problem, never a page or a traceback."""
    if not 400 <= response.status_code < 500:
        return None
    text = response.text
    leaked = [word for word in LEAKS if word in text]
    if leaked:
        raise AssertionError(f"{response.status_code} leaks {leaked}: {text[:300]}")
    # Header names as the transport gives them: some versions lower-case them.
    headers = {name.lower(): value for name, value in response.headers.items()}
    content_type = headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    if "json" not in content_type:
        raise AssertionError(f"{response.status_code} is {content_type!r}, not JSON: {text[:200]}")
    body = json.loads(text)
    if not isinstance(body, dict) or not body:
        raise AssertionError(f"{response.status_code} body is not an object: {text[:200]}")
    if "detail" in body:
        if not isinstance(body["detail"], str) or not body["detail"].strip():
            raise AssertionError(f"'detail' must be a sentence: {text[:200]}")
    return None


CHECKS = [
    schemathesis.checks.not_a_server_error,
    well_formed_client_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


def _load_schema():
    """The schema /api/v1/schema/ serves, generated the same way, bound to the WSGI app.

    (Loaded at collection: schemathesis's fixture-based loader does not run on this pytest.)
    """
    from drf_spectacular.generators import SchemaGenerator

    from rolloutdesk.wsgi import application

    raw = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app = application
    loaded.location = "/api/v1/schema/"
    return loaded


schema = _load_schema()


@pytest.fixture(autouse=True)
def _app_with_test_settings(_plain_http) -> None:
    """The WSGI app's middleware rebuilt under the test settings: built at collection, it kept
    the production HTTPS redirect, and every case was answered 301 (unnoticed while the only
    checks were "no 5xx" and "4xx well formed")."""
    from rolloutdesk.wsgi import application

    application.load_middleware()


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Schemathesis calls the WSGI app itself, not Django's test client, so each response's
    request_finished would close the test's connection inside its transaction; newer versions
    send several requests per case (an unsupported method too), and the next one found the
    connection closed. Do what Django's test client does: leave the connection alone."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_key(service, production) -> str:
    """Releases to find (one running, one planned) and a token of their service."""
    plan = PlanFactory(
        slug="fuzz",
        stages=[("canary", 10, timedelta(0), False), ("full", 100, timedelta(0), False)],
    )
    running = make_release(service=service, environment=production, plan=plan, version="1.0")
    transitions.start(running, actor=Actor.system("tests"))
    make_release(service=service, environment=production, plan=plan, version="2.0")
    return ApiToken.issue("fuzz", [service])[1]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, fuzz_key) -> None:
    case.call_and_validate(headers={"Authorization": f"Token {fuzz_key}"}, checks=CHECKS)


def test_workflows_through_the_inferred_links_answer_as_documented(fuzz_key) -> None:
    class Workflow(schema.as_state_machine()):
        def get_call_kwargs(self, case) -> dict:
            return {"headers": {"Authorization": f"Token {fuzz_key}"}}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)

    Workflow.run(
        settings=settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )


def test_fields_that_can_be_null_are_documented_nullable(fuzz_key, service) -> None:
    """A planned release has no stage, an incident opened by hand no release and no policy, a
    pre-deployment checklist no stage: each answer validates against its documented schema."""
    from werkzeug.test import Client

    from apps.checklists.choices import ChecklistKind
    from apps.checklists.models import Checklist
    from apps.incidents.models import Incident
    from apps.releases.models import Release
    from rolloutdesk.wsgi import application

    planned = Release.objects.get(version="2.0")
    incident = Incident.objects.create(service=service, title="By hand")
    Checklist.objects.create(release=planned, name="Before", kind=ChecklistKind.PRE_DEPLOYMENT)
    service.default_plan = None
    service.save(update_fields=["default_plan"])
    client = Client(application)
    headers = {"Authorization": f"Token {fuzz_key}"}
    answers = [
        ("/api/v1/releases/{id}/", f"/api/v1/releases/{planned.pk}/"),
        ("/api/v1/releases/", "/api/v1/releases/"),
        ("/api/v1/incidents/{id}/", f"/api/v1/incidents/{incident.pk}/"),
        ("/api/v1/services/{slug}/", f"/api/v1/services/{service.slug}/"),
        ("/api/v1/releases/{id}/checklists/", f"/api/v1/releases/{planned.pk}/checklists/"),
    ]
    for documented, path in answers:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.get_data(as_text=True)[:300])
        body = response.get_data(as_text=True)
        assert "null" in body, (path, body[:300])  # the case this checks is there
        schema[documented]["GET"].validate_response(response)
