"""Every write endpoint in /api/v1/schema/ gets nested, NUL-bearing, oversized and wrong-typed
bodies: no answer is a 5xx, every refusal is JSON, and a refused request writes no row anywhere.

The operations come from the schema itself, so an endpoint added later is fuzzed without editing
this file (a path parameter of a collection not named in OBJECTS fails the test, asking for one).
Each body is sent by a service token and by a signed-in superuser: they reach different code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import Severity
from tests.factories import UserFactory, make_release

pytestmark = pytest.mark.django_db

WRITE_METHODS = ("post", "put", "patch", "delete")
RAW = "__raw_json_token__"  # replaced by a raw token json.dumps cannot write (1e400, 10**400)

# Values for one property (or the whole body): raw JSON text, spliced in as is.
BAD_VALUES: list[str] = [
    json.dumps("bad\x00value"),  # NUL in a string
    '"\\ud800"',  # a lone surrogate
    json.dumps("x" * 5_000),  # longer than any column
    "1" + "0" * 399,  # a 400-digit integer
    str(2**63),  # one past bigint
    "-1",
    "1e400",  # past a float
    "1.5",
    "true",
    "null",
    "[]",
    '{"a": 1}',
    '["x", ["y"]]',
    '{"\\u0000": 1}',  # NUL in a key
    "[" * 2_000 + "]" * 2_000,  # nested 2,000 deep (well formed)
]
# Whole bodies that are no document of any endpoint.
BAD_BODIES: list[str] = [
    "[" * 100_000,
    '{"a": ' * 50_000,
    "[]",
    '"text"',
    "0",
    "null",
    '{"\\u0000": "x"}',
]


def _schema() -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))


@dataclass
class Operation:
    method: str
    path: str
    properties: dict[str, Any]
    form: bool  # also takes form bodies

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def write_operations() -> list[Operation]:
    schema = _schema()
    found = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            if method not in WRITE_METHODS:
                continue
            content = op.get("requestBody", {}).get("content", {})
            body = _resolve(schema, content.get("application/json", {}).get("schema", {}))
            properties = {
                name: _resolve(schema, spec) for name, spec in body.get("properties", {}).items()
            }
            form = "application/x-www-form-urlencoded" in content
            found.append(Operation(method, path, properties, form))
    return found


OPERATIONS = write_operations()


def test_the_schema_has_write_operations_to_fuzz() -> None:
    # A schema that stopped listing them would make every case below vanish silently.
    assert len(OPERATIONS) >= 10
    assert {"POST /api/v1/releases/", "POST /api/v1/samples/"} <= {str(o) for o in OPERATIONS}


def row_counts() -> tuple[int, ...]:
    """Rows in every table of every installed model, in one query."""
    tables = sorted(
        {m._meta.db_table for m in apps.get_models() if m._meta.managed and not m._meta.proxy}
    )
    name = connection.ops.quote_name
    sql = "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {name(t)})" for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return tuple(cursor.fetchone())


@pytest.fixture
def objects(service, production) -> dict[str, int]:
    """One object per collection a path parameter names, for `{id}` in the paths."""
    release = make_release(service=service, environment=production)
    incident = lifecycle.open_incident(
        service=service, title="Down", severity=Severity.SEV2, actor=Actor.system("tests")
    )
    return {"releases": release.pk, "incidents": incident.pk}


@pytest.fixture
def clients(api) -> list[APIClient]:
    admin = APIClient()
    admin.force_login(UserFactory(username="fuzz-admin", is_staff=True, is_superuser=True))
    return [api, admin]


def plausible(name: str, spec: dict[str, Any]) -> Any:
    """A value of the right shape, so that one bad property is what the endpoint judges."""
    known = {
        "service": "ai-orchestra",
        "environment": "production",
        "version": "9.9.9",
        "commit_sha": "a1b2c3d4e5f6",
        "title": "Checkout down",
        "reason": "fuzz",
        "key": "tests",
    }
    if name in known:
        return known[name]
    if "enum" in spec:
        return spec["enum"][0]
    return {"boolean": True, "integer": 1, "number": 1.0, "array": [], "object": {}}.get(
        spec.get("type", "string"), "x"
    )


def cases(operation: Operation) -> Iterator[tuple[str, str, str]]:
    """(what, content type, body) for each bad request to one operation."""
    json_type = "application/json"
    for body in BAD_BODIES:
        yield f"body {body[:20]!r}", json_type, body
    # Over DATA_UPLOAD_MAX_MEMORY_SIZE (the samples endpoint reads up to its own larger limit).
    yield (
        "body over the limit",
        json_type,
        json.dumps({"x": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}),
    )
    base = {name: plausible(name, spec) for name, spec in operation.properties.items()}
    if not operation.properties:  # a free-form or list body: bad values as whole items
        for value in BAD_VALUES:
            yield f"item {value[:20]!r}", json_type, f"[{value}]"
            yield f"field {value[:20]!r}", json_type, '{"version": "4", "alerts": [' + value + "]}"
    for name in operation.properties:
        for value in BAD_VALUES:
            text = json.dumps({**base, name: RAW}).replace(json.dumps(RAW), value)
            yield f"{name}={value[:20]!r}", json_type, text
        if operation.form:
            for value in ("bad\x00value", "x" * 5_000):
                form = {**{k: str(v) for k, v in base.items()}, name: value}
                yield (
                    f"form {name}={value[:20]!r}",
                    "application/x-www-form-urlencoded",
                    urlencode(form),
                )


@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_no_bad_body_is_a_server_error_or_a_partial_write(operation, objects, clients):
    path = operation.path
    if "{id}" in path:
        collection = path.split("/{id}")[0].rsplit("/", 1)[-1]
        assert collection in objects, f"add an object for {collection!r} to the objects fixture"
        path = path.replace("{id}", str(objects[collection]))
    failures = []
    for client in clients:
        nul_query = getattr(client, operation.method)(path + "?service=%00")
        if nul_query.status_code != 400:
            failures.append(("?service=%00", nul_query.status_code, nul_query.content[:200]))
        for what, content_type, body in cases(operation):
            before = row_counts()
            answer = getattr(client, operation.method)(path, body, content_type=content_type)
            code = answer.status_code
            if code >= 500:
                failures.append((what, code, answer.content[:200]))
            elif code >= 400:
                if not answer["Content-Type"].startswith("application/json"):
                    failures.append((what, code, f"not JSON: {answer['Content-Type']}"))
                if row_counts() != before:
                    failures.append((what, code, "refused, yet rows were written"))
    assert failures == []
