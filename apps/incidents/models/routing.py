"""Routing rules: which escalation policy an incident pages, chosen from its labels when it opens.

Rules are tried in order and the first one that matches chooses the policy; when none matches,
the service's own policy (its incident routing) does. A rule matches on the incident's service,
source and severity, and on label matchers written as Alertmanager writes them
(`team="security"`, `alertname=~"Cost.*"`): an alert's labels, or for a metric breach the labels
rolloutdesk gives it (metric, criterion, environment).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from apps.releases.models import Service

from ..choices import IncidentSource, MatchOp, Severity
from .oncall import EscalationPolicy
from .timetable import condition_text, severity_reaches

# name, operator, then a "quoted" value (JSON escapes) or a bare one without spaces, quotes or
# operator characters (so `team ==` is refused, not read as team="=").
MATCHER_RE = re.compile(
    r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"
    r'(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^"\s=!~,{}]*))\s*$'
)
MATCHER_EXAMPLE = 'team="security" or alertname=~"Cost.*"'


@dataclass(frozen=True)
class Matcher:
    """One label condition. A missing label reads as "" (as in Prometheus: `team!="x"` holds)."""

    name: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value, ensure_ascii=False)}"

    def holds(self, labels: dict[str, str]) -> bool:
        actual = str(labels.get(self.name, ""))
        if self.op == MatchOp.EQUAL:
            return actual == self.value
        if self.op == MatchOp.NOT_EQUAL:
            return actual != self.value
        # Anchored, as Alertmanager's regex matchers are: "Cost.*" does not match "HighCost".
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == MatchOp.REGEX else not found


def parse_matchers(text: str) -> list[Matcher]:
    """One matcher per line; raise ValidationError naming every line that is not one."""
    matchers: list[Matcher] = []
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        found = MATCHER_RE.match(line)
        if found is None:
            errors.append(
                f"Line {number}: {line.strip()!r} is not a matcher such as {MATCHER_EXAMPLE}."
            )
            continue
        value = found["bare"] if found["quoted"] is None else found["quoted"]
        if found["quoted"] is not None:
            try:
                value = json.loads(f'"{found["quoted"]}"')
            except json.JSONDecodeError:
                errors.append(f"Line {number}: the quoted value has a broken escape (\\).")
                continue
        if found["op"] in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            try:
                re.compile(value)
            except re.error as exc:
                errors.append(f"Line {number}: {value!r} is not a regular expression ({exc}).")
                continue
        matchers.append(Matcher(name=found["name"], op=found["op"], value=value))
    if errors:
        raise ValidationError(errors)
    return matchers


@dataclass(frozen=True)
class Facts:
    """What a rule looks at in an incident about to open."""

    service_id: int
    severity: str
    source: str
    labels: dict[str, str]

    @classmethod
    def of_labels(cls, stored: dict[str, Any] | None) -> dict[str, str]:
        """The matchable labels of an incident's stored `labels` ({"labels": …, …})."""
        inner = (stored or {}).get("labels") or {}
        return {str(k): str(v) for k, v in inner.items()} if isinstance(inner, dict) else {}


class RoutingRuleQuerySet(models.QuerySet):
    def for_service(self, service_id: int) -> RoutingRuleQuerySet:
        """The enabled rules that may match the service's incidents, in the order tried."""
        return (
            self.filter(enabled=True)
            .filter(models.Q(service__isnull=True) | models.Q(service_id=service_id))
            .order_by("position", "pk")
        )


class RoutingRule(models.Model):
    """One line of the routing table: incidents it matches escalate by its policy."""

    position = models.PositiveIntegerField(
        default=10,
        validators=[MinValueValidator(1)],
        help_text="Rules are tried from the lowest position up; the first that matches wins.",
    )
    name = models.CharField(
        max_length=120, unique=True, help_text='e.g. "security → security on-call"'
    )
    enabled = models.BooleanField(default=True)
    service = models.ForeignKey(
        Service,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="routing_rules",
        help_text="Only this service's incidents (empty: every service).",
    )
    source = models.CharField(
        max_length=20,
        choices=IncidentSource.choices,
        blank=True,
        help_text="Only incidents opened this way (empty: any).",
    )
    min_severity = models.CharField(
        max_length=4,
        choices=Severity.choices,
        blank=True,
        help_text="Only incidents at least this severe (empty: any).",
    )
    matchers = models.TextField(
        blank=True,
        help_text='Label matchers, one per line, as in Alertmanager: team="security", '
        'alertname=~"Cost.*", env!="staging". All must hold. A metric breach has the labels '
        "metric, criterion (its id), environment and plan.",
    )
    policy = models.ForeignKey(
        EscalationPolicy,
        on_delete=models.PROTECT,
        related_name="routing_rules",
        help_text="The policy matching incidents escalate by.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RoutingRuleQuerySet.as_manager()

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            parse_matchers(self.matchers)
        except ValidationError as exc:
            raise ValidationError({"matchers": exc.messages}) from exc

    def parsed_matchers(self) -> list[Matcher] | None:
        """The matchers; None when they do not parse (a rule saved around the admin's
        validation, from a shell or a fixture): such a rule never matches."""
        try:
            return parse_matchers(self.matchers)
        except ValidationError:
            return None

    def matches(self, facts: Facts) -> bool:
        """Does an incident with these facts take this rule's policy?"""
        if self.service_id is not None and self.service_id != facts.service_id:
            return False
        if self.source and self.source != facts.source:
            return False
        if not severity_reaches(facts.severity, self.min_severity):
            return False
        matchers = self.parsed_matchers()
        if matchers is None:
            return False
        return all(m.holds(facts.labels) for m in matchers)

    def conditions_text(self) -> str:
        """What the rule asks, in words: 'service billing, SEV2 or worse, team="security"'."""
        parts = []
        if self.service_id is not None:
            parts.append(f"service {self.service.slug}")
        if self.source:
            parts.append(f"source {self.source}")
        if self.min_severity:
            parts.append(condition_text(self.min_severity))
        matchers = self.parsed_matchers()
        if matchers is None:
            return "matchers that do not parse: never matches"
        parts.extend(str(m) for m in matchers)
        return ", ".join(parts) or "every incident"
