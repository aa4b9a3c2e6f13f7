"""The JSON Schema of the configuration document, built from the models' columns (fields.py),
published at /api/v1/config/schema.json and checked before anything is applied."""

from __future__ import annotations

from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from apps.checklists.models import ChecklistTemplate
from apps.checks.models import MetricCriterion, MetricDefinition, MetricSource
from apps.incidents.models import EscalationLevel, EscalationPolicy, RoutingRule
from apps.releases.models import Environment, RolloutPlan, Service, StageTemplate
from apps.signoffs.models import FreezeWindow, SignOffRule

from .fields import properties

SCHEMA_ID = "https://rolloutdesk.example/schemas/config-v1.json"
SLUG = {"type": "string", "pattern": r"^[-a-zA-Z0-9_]+$", "maxLength": 80}
NAME = {"type": "string", "minLength": 1}
NULLABLE_NAME = {"anyOf": [NAME, {"type": "null"}]}


def obj(props: dict[str, Any], required: list[str], description: str = "") -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def listed(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


@cache
def document_schema() -> dict[str, Any]:
    stage = obj(
        {
            "name": NAME,
            **{k: v for k, v in properties(StageTemplate).items() if k != "name"},
            "environment": {
                "anyOf": [SLUG, {"type": "null"}],
                "description": "The environment's slug; null: the release's environment.",
            },
        },
        ["name", "traffic_percentage"],
    )
    criterion = obj(
        {
            "metric": {**SLUG, "description": "The metric's key."},
            "stage": {
                **NULLABLE_NAME,
                "description": "The name of the one stage it watches; null: every stage.",
            },
            **properties(MetricCriterion),
        },
        ["metric"],
    )
    plan = obj(
        {
            "slug": SLUG,
            **properties(RolloutPlan),
            "stages": {**listed(stage), "minItems": 1},
            "criteria": listed(criterion),
            "checklists": listed(
                obj(
                    {
                        "template": {**NAME, "description": "A checklist template's name."},
                        "stage": {
                            **NULLABLE_NAME,
                            "description": "Stage-exit checklists: the stage whose exit it "
                            "gates; null for the other kinds.",
                        },
                    },
                    ["template"],
                )
            ),
            "signoff_rules": listed(
                obj(
                    {
                        "stage": {
                            **NULLABLE_NAME,
                            "description": "null: the rule guards the start; a stage's name: "
                            "leaving that stage.",
                        },
                        "groups": {**listed(NAME), "minItems": 1},
                        **properties(SignOffRule),
                    },
                    ["groups"],
                )
            ),
        },
        ["slug", "name", "stages"],
    )
    template = obj(
        {
            "name": NAME,
            **properties(ChecklistTemplate),
            "sections": listed(
                obj(
                    {
                        "name": {"type": "string"},
                        "items": listed(
                            obj(
                                {
                                    "text": NAME,
                                    "required": {"type": "boolean"},
                                    "key": {"type": "string"},
                                },
                                ["text"],
                            )
                        ),
                    },
                    ["name", "items"],
                )
            ),
        },
        ["name", "kind", "sections"],
        "Saved as a new version when its kind or items differ from the current version.",
    )
    policy = obj(
        {
            "name": NAME,
            **properties(EscalationPolicy),
            "levels": listed(
                obj(
                    {
                        **properties(EscalationLevel),
                        "contacts": {
                            **listed({"type": "string", "format": "email"}),
                            "description": "Existing contacts, by email.",
                        },
                        "rotation": {
                            **NULLABLE_NAME,
                            "description": "An existing on-call rotation, by name.",
                        },
                    },
                    [],
                    "L1, L2, ... in this order.",
                )
            ),
        },
        ["name"],
    )
    service = obj(
        {
            "slug": SLUG,
            **properties(Service),
            "default_plan": {"anyOf": [SLUG, {"type": "null"}]},
            "escalation_policy": {
                **NULLABLE_NAME,
                "description": "The policy new incidents of the service escalate by.",
            },
        },
        ["slug", "name"],
    )
    source = obj(
        {
            "metric": SLUG,
            "service": {
                "anyOf": [SLUG, {"type": "null"}],
                "description": "null: the source for every service without one of its own.",
            },
            **properties(MetricSource),
        },
        ["metric"],
        "Where a metric is read. base_url carries no user or password: the stored ones stay.",
    )
    window = obj(
        {
            "name": NAME,
            **properties(FreezeWindow),
            "services": {**listed(SLUG), "description": "None: every service."},
            "environments": {**listed(SLUG), "description": "None: every environment."},
        },
        ["name"],
    )
    routing_rule = obj(
        {
            "name": NAME,
            **properties(RoutingRule),
            "service": {
                "anyOf": [SLUG, {"type": "null"}],
                "description": "Only this service's incidents; null: every service.",
            },
            "policy": {**NAME, "description": "The escalation policy, by name."},
        },
        ["name", "policy"],
        "Escalation routing: the first enabled rule (lowest position) an incident matches "
        "chooses its policy.",
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "rolloutdesk configuration",
        "description": "Plans, criteria, sources, checklist templates, sign-off rules, freeze "
        "windows and escalation policies (docs/configuration.md).",
        "type": "object",
        "properties": {
            "version": {"const": 1},
            "environments": listed(
                obj({"slug": SLUG, **properties(Environment)}, ["slug", "name"])
            ),
            "metrics": listed(obj({"key": SLUG, **properties(MetricDefinition)}, ["key", "name"])),
            "sources": listed(source),
            "checklist_templates": listed(template),
            "escalation_policies": listed(policy),
            "plans": listed(plan),
            "services": listed(service),
            "freeze_windows": listed(window),
            "routing_rules": listed(routing_rule),
        },
        "required": ["version"],
        "additionalProperties": False,
    }


def validation_errors(document: Any) -> list[str]:
    """Every way the document departs from the schema, each named by its place in the file."""
    validator = Draft202012Validator(document_schema())
    found = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path))):
        place = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
        found.append(f"{place.lstrip('.') or 'document'}: {error.message}")
    return found
