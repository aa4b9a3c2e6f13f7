"""The OpenFeature Remote Evaluation Protocol (OFREP, core): a service's rollout as a flag.

A flag's key is a service's slug; the evaluation context's `targetingKey` is the unit (a user or
org id) and its optional `environment` attribute an environment's slug (default: production).
The answer is the unit's assignment by Release.bucket, the same as `GET bucket/`:

- a release of the service holds traffic there (apps.releases.assignment.splitting): `true` /
  `treatment` or `false` / `control` at its percentage there (its current stage's, or 100 in an
  environment it was promoted past: `traffic/?environment=`), reason SPLIT;
- none does: `false` / `control` for every unit (nothing is being rolled out), reason STATIC.

Shapes and error codes follow the OFREP OpenAPI document (open-feature/protocol,
service/openapi.yaml, v0.3): 400 with PARSE_ERROR, TARGETING_KEY_MISSING or INVALID_CONTEXT,
404 FLAG_NOT_FOUND, 401/403 for the token. The views (views_ofrep.py) only read the request,
call these functions and write the answer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from apps.core.actors import Actor
from apps.core.scope import check_service
from apps.releases.assignment import splitting, splitting_one
from apps.releases.models import Environment, Release, Service

from .parsers import BadDocument, check
from .serializers import BucketQuerySerializer

DEFAULT_ENVIRONMENT = "production"
# A unit is what `bucket/?unit=` takes: one limit for both.
UNIT_MAX_LENGTH: int = BucketQuerySerializer().fields["unit"].max_length


class ErrorCode:
    """OpenFeature error codes OFREP answers (https://openfeature.dev/specification/types)."""

    PARSE_ERROR = "PARSE_ERROR"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    GENERAL = "GENERAL"


class Reason:
    """The OpenFeature reasons these evaluations give."""

    SPLIT = "SPLIT"  # a release holds traffic: the unit's hash against its percentage
    STATIC = "STATIC"  # nothing is being rolled out: every unit gets control


class EvaluationError(Exception):
    """An evaluation that cannot be made: the HTTP status, the OFREP error code and why."""

    def __init__(self, status: int, code: str, details: str) -> None:
        super().__init__(details)
        self.status = status
        self.code = code
        self.details = details

    def as_dict(self, key: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"key": key} if key is not None else {}
        return {**body, "errorCode": self.code, "errorDetails": self.details}


@dataclass(frozen=True)
class Context:
    """What an evaluation context says that matters here: the unit and the environment."""

    unit: str
    environment: str


def parse_context(raw: bytes) -> Context:
    """The request body's `{"context": {"targetingKey": ..., "environment": ...}}`, checked.

    PARSE_ERROR for a body that is no JSON object (or holds what the API's parser refuses: a NUL,
    a lone surrogate, deep nesting); TARGETING_KEY_MISSING without a targetingKey (a provider
    sends `{}` when the application gave no context); INVALID_CONTEXT for a context, key or
    environment of the wrong type or size. Other attributes are allowed and ignored.
    """
    try:
        document = json.loads(raw or b"{}")
        check(document)
    except (ValueError, RecursionError) as exc:
        raise EvaluationError(400, ErrorCode.PARSE_ERROR, f"The body is not JSON: {exc}.") from exc
    except BadDocument as exc:
        raise EvaluationError(400, ErrorCode.PARSE_ERROR, str(exc.detail["detail"])) from exc
    if not isinstance(document, dict):
        raise EvaluationError(
            400, ErrorCode.PARSE_ERROR, 'The body must be a JSON object: {"context": {...}}.'
        )
    context = document.get("context", {})
    if not isinstance(context, dict):
        raise EvaluationError(400, ErrorCode.INVALID_CONTEXT, "context must be a JSON object.")
    unit = context.get("targetingKey")
    if unit is None or unit == "":
        raise EvaluationError(
            400,
            ErrorCode.TARGETING_KEY_MISSING,
            "context.targetingKey is required: the user or org id to bucket.",
        )
    if not isinstance(unit, str):
        raise EvaluationError(
            400, ErrorCode.INVALID_CONTEXT, "context.targetingKey must be a string."
        )
    if len(unit) > UNIT_MAX_LENGTH:
        raise EvaluationError(
            400,
            ErrorCode.INVALID_CONTEXT,
            f"context.targetingKey is {len(unit)} characters long; at most {UNIT_MAX_LENGTH}.",
        )
    environment = context.get("environment", DEFAULT_ENVIRONMENT)
    if not isinstance(environment, str) or not environment:
        raise EvaluationError(
            400,
            ErrorCode.INVALID_CONTEXT,
            "context.environment must be an environment's slug (a string), e.g. 'production'.",
        )
    return Context(unit=unit, environment=environment)


def unknown_environment(slug: str) -> EvaluationError:
    known = ", ".join(Environment.objects.order_by("order", "slug").values_list("slug", flat=True))
    return EvaluationError(
        400,
        ErrorCode.INVALID_CONTEXT,
        f"context.environment {slug!r} is no environment here; known: {known or 'none'}.",
    )


def evaluation(key: str, release: Release | None, context: Context) -> dict[str, Any]:
    """One flag's OFREP evaluation for the unit: by `release`'s bucket, or control for all."""
    metadata: dict[str, Any] = {"environment": context.environment}
    if release is None:
        return {
            "key": key,
            "value": False,
            "variant": "control",
            "reason": Reason.STATIC,
            "metadata": {**metadata, "percentage": 0},
        }
    # The percentage in the context's environment (assignment.splitting annotates it): 100 in
    # one the release was promoted past, as traffic/?environment= answers.
    variant, percentage = release.bucket(context.unit, getattr(release, "percentage_here", None))
    metadata.update(release=release.pk, version=release.version, percentage=percentage)
    if release.current_stage is not None and getattr(release, "current_here", True):
        metadata["stage"] = release.current_stage.name
    return {
        "key": key,
        "value": variant == "treatment",
        "variant": variant,
        "reason": Reason.SPLIT,
        "metadata": metadata,
    }


def evaluate_flag(key: str, context: Context, actor: Actor) -> dict[str, Any]:
    """The evaluation of flag `key` (a service's slug) for `actor` (a token).

    404 FLAG_NOT_FOUND for no such service, 403 (Refused) for another service's token,
    INVALID_CONTEXT for an unknown environment. One query while a release holds traffic (the
    hot path); when none does, two more tell "nothing rolling out" from a name that is wrong."""
    release = splitting_one(key, context.environment)
    if release is not None:
        check_service(actor, release.service_id, "flags", _refusal(key))
        return evaluation(key, release, context)
    service_id = Service.objects.filter(slug=key).values_list("pk", flat=True).first()
    if service_id is None:
        raise EvaluationError(404, ErrorCode.FLAG_NOT_FOUND, f"No flag {key!r}: no such service.")
    check_service(actor, service_id, "flags", _refusal(key))
    if not Environment.objects.filter(slug=context.environment).exists():
        raise unknown_environment(context.environment)
    return evaluation(key, None, context)


def _refusal(key: str) -> str:
    return f"This token may not evaluate flag {key!r}: it belongs to another service."


def evaluate_all(context: Context, actor: Actor) -> dict[str, Any]:
    """Every flag `actor` (a token) may evaluate, its services by slug, for one unit: OFREP's
    bulk answer. Three queries whatever the number of flags."""
    environment = Environment.objects.filter(slug=context.environment).first()
    if environment is None:
        raise unknown_environment(context.environment)
    service_ids = actor.service_ids or frozenset()
    services = Service.objects.filter(pk__in=service_ids).order_by("slug").values_list("pk", "slug")
    releases = splitting(service_ids, environment)
    return {"flags": [evaluation(slug, releases.get(pk), context) for pk, slug in services]}


def etag(context: Context, body: bytes) -> str:
    """A strong ETag of a bulk answer for one context: the same unit and environment with the
    same flags, the same tag, so an unchanged assignment is a 304. The context is in it so a tag
    kept for one user never confirms another's flags, even where they happen to be equal."""
    digest = hashlib.sha256(f"{context.environment}\n{context.unit}\n".encode() + body)
    return '"' + digest.hexdigest()[:32] + '"'
