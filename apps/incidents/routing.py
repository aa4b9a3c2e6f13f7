"""Which escalation policy a new incident pages: the one place that decides.

In order: a policy named by the person opening it by hand; else the first enabled routing rule
(by position) that matches the incident's service, source, severity and labels; else the
service's own policy (its incident routing); else none, and nobody is paged. The choice is made
once, when the incident opens, and recorded on it with the sentence the pages show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .choices import RoutedBy
from .models import EscalationPolicy, Facts, IncidentRouting, RoutingRule


@dataclass(frozen=True)
class Choice:
    """The policy chosen for an incident, what chose it, and that in a sentence."""

    policy: EscalationPolicy | None
    routed_by: str
    rule: RoutingRule | None
    note: str


def choose(
    *,
    service_id: int,
    severity: str,
    source: str,
    labels: dict[str, Any] | None,
    routing: IncidentRouting | None,
    named: EscalationPolicy | None = None,
    named_by: str = "",
) -> Choice:
    """The policy for an incident about to open (one query for the rules, none when named)."""
    if named is not None:
        who = f" by {named_by}" if named_by else ""
        return Choice(named, RoutedBy.NAMED, None, f"Named{who} when the incident was opened.")
    facts = Facts(
        service_id=service_id,
        severity=severity,
        source=source,
        labels=Facts.of_labels(labels),
    )
    rules = RoutingRule.objects.for_service(service_id).select_related("policy", "service")
    for rule in rules:
        if rule.matches(facts):
            note = f"Rule “{rule.name}” (position {rule.position}): {rule.conditions_text()}."
            return Choice(rule.policy, RoutedBy.RULE, rule, note[:500])
    if routing is not None and routing.policy is not None:
        return Choice(
            routing.policy, RoutedBy.SERVICE, None, "No rule matched: the service's policy."
        )
    return Choice(
        None, RoutedBy.NONE, None, "No rule matched and the service has no policy: nobody is paged."
    )
