"""Severity and routing from the runbook: a criterion names the severity of the incident its
breach opens, and routing rules on the incident's labels choose the policy that is paged.

Pages go to a real SMTP server on 127.0.0.1 (aiosmtpd) and the webhook to a real HTTP receiver on
127.0.0.1, as in the delivery fault tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.checks.choices import CriticalAction, MetricKind
from apps.checks.models import MetricCriterion, MetricDefinition
from apps.core.actors import Actor
from apps.incidents import lifecycle
from apps.incidents.choices import IncidentSource, RoutedBy, Severity
from apps.incidents.escalation import escalate_due
from apps.incidents.models import (
    Contact,
    EscalationLevel,
    EscalationPolicy,
    Incident,
    RoutingRule,
    parse_matchers,
)
from apps.releases.roles import ROLE_PERMISSIONS
from apps.rollouts import transitions
from apps.rollouts.breach_response import run_checks
from tests.checks.conftest import criterion, push
from tests.factories import PlanFactory, ServiceFactory, make_release
from tests.faults.services import free_port
from tests.faults.test_mail_and_webhook_down import Inbox

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 12, 0, 30, tzinfo=UTC)
SYSTEM = Actor.system("tests")
RUNBOOK_PEOPLE = {"ada@example.com", "ben@example.com", "sam@example.com", "pia@example.com"}


@pytest.fixture
def inbox(settings):
    server = Inbox(free_port())
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 2
    yield server
    server.stop()


def pages(inbox: Inbox) -> list[tuple[str, str]]:
    """(recipient, subject) of every incident page the SMTP server received, in order."""
    return [
        (to, " ".join(str(message["Subject"]).split()))
        for recipients, message in inbox.messages
        if "page" in str(message["Subject"]) and "incident #" in str(message["Subject"])
        for to in recipients
    ]


def team_policy(name: str, levels: list[tuple[int, str]]) -> EscalationPolicy:
    """A policy paging one named person per level: [(after_minutes, name), ...]."""
    policy = EscalationPolicy.objects.create(name=name)
    for position, (after, person) in enumerate(levels, start=1):
        contact = Contact.objects.create(name=person, email=f"{person.lower()}@example.com")
        level = EscalationLevel.objects.create(
            policy=policy, position=position, after_minutes=after
        )
        level.contacts.set([contact])
    return policy


@pytest.fixture
def security(db) -> EscalationPolicy:
    return team_policy("Security on-call", [(0, "Sol"), (15, "Quinn")])


@pytest.fixture
def product(db) -> EscalationPolicy:
    return team_policy("Product team", [(0, "Priya")])


def rule(name: str, policy: EscalationPolicy, position: int, **fields: Any) -> RoutingRule:
    made = RoutingRule(name=name, policy=policy, position=position, **fields)
    made.full_clean()
    made.save()
    return made


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def plan(db):
    return PlanFactory(
        slug="watched",
        stages=[("canary", 5, timedelta(0), False), ("full", 100, timedelta(0), False)],
    )


@pytest.fixture
def running(clock, service, production, plan):
    release = make_release(service=service, environment=production, plan=plan, version="2.4.0")
    transitions.start(release, actor=SYSTEM)
    return release


def open_by_alert(service, labels: dict[str, str], severity: str = Severity.SEV2) -> Incident:
    incident, _ = lifecycle.trigger(
        service=service,
        fingerprint="alertmanager:" + "-".join(f"{k}={v}" for k, v in sorted(labels.items())),
        title="Alert",
        actor=SYSTEM,
        severity=severity,
        source=IncidentSource.ALERTMANAGER,
        labels={"labels": labels, "annotations": {}},
    )
    return incident


# --- the Must show ------------------------------------------------------------------------------


def test_a_criterion_severity_incident_and_a_label_routed_policy_page_the_routed_team_only(
    clock, inbox, receiver, running, plan, error_rate, routing, security, product, settings, run
):
    """ "Session isolation failure: critical, page security": the criterion says SEV1 (the
    setting says SEV2), the second rule matches the breach's labels, and only security's people
    are paged, at opening and when its L2 is due; the service's runbook policy pages nobody."""
    settings.INCIDENTS_BREACH_SEVERITY = Severity.SEV2
    routing.webhook_url = receiver.url
    routing.save()
    rule("cost_spike → product team", product, 1, matchers='metric="cost_spike"')
    chosen = rule(
        "session isolation → security on-call",
        security,
        2,
        source=IncidentSource.BREACH,
        matchers='metric="error_rate"\nenvironment=~"prod.*"',
    )
    rule("every SEV1 → product team", product, 3, min_severity=Severity.SEV1)
    criterion(plan, error_rate, on_critical=CriticalAction.ROLLBACK, incident_severity="sev1")
    push(running, error_rate, [0.09], end=NOW)

    run(run_checks)

    [incident] = Incident.objects.filter(source=IncidentSource.BREACH)
    assert incident.severity == Severity.SEV1
    assert (incident.policy, incident.routed_by, incident.routing_rule) == (
        security,
        RoutedBy.RULE,
        chosen,
    )
    assert incident.routing_note == (
        "Rule “session isolation → security on-call” (position 2): source breach, "
        'metric="error_rate", environment=~"prod.*".'
    )
    assert incident.labels["labels"] == {
        "metric": "error_rate",
        "criterion": str(incident.events.get(verb="opened").data["criterion"]["id"]),
        "environment": "production",
        "plan": "watched",
    }
    # What is frozen and paged is the routed policy.
    assert incident.timetable.policy_name == "Security on-call"
    assert pages(inbox) == [
        (
            "sol@example.com",
            f"[SEV1] AI Orchestra: {incident.title} — incident #{incident.pk}, L1 page",
        )
    ]
    assert "[SEV1]" in receiver.received[0]["json"]["text"]

    clock.move_to(NOW + timedelta(minutes=16))
    run(escalate_due)

    assert [to for to, _ in pages(inbox)] == ["sol@example.com", "quinn@example.com"]
    assert not RUNBOOK_PEOPLE & {to for to, _ in pages(inbox)}
    assert incident.deliveries.filter(contact__email__in=RUNBOOK_PEOPLE).count() == 0


def test_a_criterion_without_a_severity_opens_at_the_setting_and_no_rule_means_the_services_policy(
    clock, running, plan, error_rate, routing, security, settings, run
):
    settings.INCIDENTS_BREACH_SEVERITY = Severity.SEV3
    rule("security → security on-call", security, 1, matchers='team="security"')
    criterion(plan, error_rate, on_critical=CriticalAction.PAUSE)  # incident_severity blank
    push(running, error_rate, [0.09], end=NOW)

    run(run_checks)

    [incident] = Incident.objects.filter(source=IncidentSource.BREACH)
    assert incident.severity == Severity.SEV3
    assert (incident.policy, incident.routed_by, incident.routing_rule) == (
        routing.policy,
        RoutedBy.SERVICE,
        None,
    )
    assert incident.routing_note == "No rule matched: the service's policy."
    assert incident.timetable.policy_name == routing.policy.name


def test_a_second_criterion_with_a_worse_severity_raises_the_open_incident(
    clock, running, plan, error_rate, routing, run
):
    """One incident per release: a SEV1 criterion joining a SEV3 one makes the incident SEV1."""
    criterion(plan, error_rate, on_critical=CriticalAction.NOTIFY, incident_severity="sev3")
    push(running, error_rate, [0.09], end=NOW)
    run(run_checks)
    latency = MetricDefinition.objects.create(
        key="p95_latency_seconds", name="p95 latency", unit="s", kind=MetricKind.GAUGE
    )
    criterion(
        plan,
        latency,
        on_critical=CriticalAction.NOTIFY,
        critical_threshold=2.0,
        incident_severity="sev1",
    )
    later = NOW + timedelta(minutes=1)  # the tick runs once per slot
    clock.move_to(later)
    push(running, latency, [3.0, 3.0], end=later)
    run(run_checks)

    [incident] = Incident.objects.filter(source=IncidentSource.BREACH)
    assert incident.severity == Severity.SEV1
    again = incident.events.get(verb="triggered_again")
    assert again.data["severity"] == {"from": "sev3", "to": "sev1"}


# --- rules on Alertmanager labels ----------------------------------------------------------------


def test_the_first_matching_rule_wins_and_the_service_policy_catches_the_rest(
    service, other_service, routing, security, product
):
    rule("billing only", product, 1, service=other_service)
    rule("off", product, 2, enabled=False, matchers='team="security"')
    first = rule("security", security, 3, matchers='team="security"')
    rule("security too", product, 4, matchers='team=~"sec.*"')
    rule("cost spikes", product, 5, matchers='alertname=~"Cost.*"')

    assert open_by_alert(service, {"team": "security"}).routing_rule == first
    assert open_by_alert(service, {"team": "secops"}).policy == product
    # Anchored, as in Alertmanager: "Cost.*" does not match "HighCostSpike".
    assert open_by_alert(service, {"alertname": "CostSpike"}).policy == product
    rest = open_by_alert(service, {"alertname": "HighCostSpike"})
    assert (rest.policy, rest.routed_by) == (routing.policy, RoutedBy.SERVICE)
    assert open_by_alert(other_service, {"team": "security"}).routing_rule.name == "billing only"


def test_rules_match_on_severity_source_and_negative_matchers(service, security, product):
    rule("SEV1 from alerts", security, 1, min_severity=Severity.SEV1, source="alertmanager")
    rule("not staging", product, 2, matchers='env!="staging"\nalertname!~"Test.*"')

    assert open_by_alert(service, {"x": "1"}, Severity.SEV1).policy == security
    assert open_by_alert(service, {"x": "2"}, Severity.SEV2).policy == product  # env missing: ""
    nothing = open_by_alert(service, {"env": "staging"}, Severity.SEV2)
    # No rule matched and the service has no routing: nobody is paged, and it says so.
    assert (nothing.policy, nothing.routed_by, nothing.escalation_snapshot) == (
        None,
        RoutedBy.NONE,
        None,
    )
    assert "nobody is paged" in nothing.routing_note
    by_hand = lifecycle.open_incident(
        service=service, title="Pager test", severity=Severity.SEV1, actor=SYSTEM
    )
    # Not from Alertmanager, so not SEV1 from alerts; no env label reads as "": not staging.
    assert by_hand.policy == product


def test_an_alertmanager_post_is_routed_by_its_labels(api, service, routing, security, run):
    rule("security", security, 1, matchers='team="security"')
    body = {
        "version": "4",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "TokenLeak", "service": "ai-orchestra", "team": "security"},
                "annotations": {"summary": "Token leak"},
                "fingerprint": "f1",
            },
            {
                "status": "firing",
                "labels": {"alertname": "Slow", "service": "ai-orchestra", "severity": "warning"},
                "fingerprint": "f2",
            },
        ],
    }
    response = run(api.post, "/api/v1/hooks/alertmanager/", body, format="json")
    assert response.status_code == 200, response.content
    leak, slow = Incident.objects.order_by("pk")
    assert (leak.policy, leak.routed_by) == (security, RoutedBy.RULE)
    assert (slow.policy, slow.routed_by) == (routing.policy, RoutedBy.SERVICE)


def test_reopening_pages_the_routed_policy_again(service, routing, security, run):
    rule("security", security, 1, matchers='team="security"')
    incident = open_by_alert(service, {"team": "security"})
    run(lifecycle.resolve, incident, actor=SYSTEM)
    run(lifecycle.reopen, incident, actor=SYSTEM)
    incident.refresh_from_db()
    assert incident.timetable.policy_name == "Security on-call"
    assert incident.policy == security


def test_a_rule_edited_or_deleted_later_leaves_the_incident_with_what_chose_it(service, security):
    chosen = rule("security", security, 1, matchers='team="security"')
    incident = open_by_alert(service, {"team": "security"})
    chosen.matchers = 'team="nobody"'
    chosen.save()
    chosen.delete()
    incident.refresh_from_db()
    assert (incident.policy, incident.routed_by, incident.routing_rule) == (
        security,
        RoutedBy.RULE,
        None,
    )
    assert incident.routing_note == 'Rule “security” (position 1): team="security".'


# --- matchers -----------------------------------------------------------------------------------


def test_matchers_parse_as_alertmanager_writes_them():
    parsed = parse_matchers('team="security"\n\n  alertname =~ "Cost.*"\nenv!=staging\nx!~"a\\"b"')
    assert [str(m) for m in parsed] == [
        'team="security"',
        'alertname=~"Cost.*"',
        'env!="staging"',
        'x!~"a\\"b"',
    ]


def test_bad_matchers_are_refused_naming_each_line(security):
    with pytest.raises(ValidationError) as caught:
        rule("broken", security, 1, matchers='team = "a" "b"\nok="1"\nname=~"(unclosed"\n9x="1"')
    messages = caught.value.message_dict["matchers"]
    assert len(messages) == 3
    assert messages[0].startswith('Line 1: \'team = "a" "b"\' is not a matcher such as')
    assert messages[1].startswith("Line 3: '(unclosed' is not a regular expression")
    assert messages[2].startswith("Line 4:")
    assert not RoutingRule.objects.exists()


def test_a_rule_saved_around_validation_never_matches_nor_stops_an_incident(service, security):
    RoutingRule.objects.create(name="broken", policy=security, position=1, matchers="team")
    incident = open_by_alert(service, {"team": "security"})
    assert incident.routed_by == RoutedBy.NONE
    assert RoutingRule.objects.get().conditions_text() == (
        "matchers that do not parse: never matches"
    )


# --- named by hand ------------------------------------------------------------------------------


def test_a_policy_named_by_hand_wins_over_rules_and_the_service(
    service, routing, security, product, rita, run
):
    rule("everything", product, 1)
    incident = run(
        lifecycle.open_incident,
        service=service,
        title="Suspicious logins",
        severity=Severity.SEV2,
        actor=Actor.for_user(rita),
        policy=security,
    )
    assert (incident.policy, incident.routed_by, incident.routing_rule) == (
        security,
        RoutedBy.NAMED,
        None,
    )
    assert incident.routing_note == "Named by rita when the incident was opened."
    assert incident.timetable.policy_name == "Security on-call"
    assert list(incident.deliveries.values_list("target", flat=True)) == ["sol@example.com"]


def test_an_unknown_severity_is_refused_naming_it(service):
    with pytest.raises(ValidationError, match="'sev9' is not a severity"):
        lifecycle.open_incident(service=service, title="x", severity="sev9", actor=SYSTEM)


def test_incidents_of_another_service_are_not_matched_by_its_rules(security):
    mine, theirs = ServiceFactory(slug="mine"), ServiceFactory(slug="theirs")
    rule("theirs only", security, 1, service=theirs)
    assert open_by_alert(mine, {"a": "b"}).policy is None
    assert open_by_alert(theirs, {"a": "b"}).policy == security


def test_the_api_opens_an_incident_naming_a_policy_and_says_what_chose_each(
    api, service, routing, security, product
):
    rule("everything", product, 1)
    named = api.post(
        "/api/v1/incidents/",
        {"service": "ai-orchestra", "title": "Token leak", "policy": "Security on-call"},
        format="json",
    )
    assert named.status_code == 201, named.content
    body = named.json()
    assert (body["policy"], body["routed_by"], body["routing_rule"]) == (
        "Security on-call",
        "named",
        None,
    )
    assert body["routing_note"] == "Named by token:ci when the incident was opened."
    by_rule = api.post("/api/v1/incidents/", {"service": "ai-orchestra", "title": "x"})
    assert (by_rule.json()["policy"], by_rule.json()["routed_by"]) == ("Product team", "rule")
    unknown = api.post(
        "/api/v1/incidents/",
        {"service": "ai-orchestra", "title": "y", "policy": "Nobody on-call"},
        format="json",
    )
    assert unknown.status_code == 400
    assert unknown.json() == {"policy": ["There is no escalation policy named 'Nobody on-call'."]}
    assert Incident.objects.count() == 2
    detail = api.get(f"/api/v1/incidents/{body['id']}/").json()
    opened = next(e for e in detail["timeline"] if e["verb"] == "opened")
    assert opened["data"]["policy"]["routed_by"] == "named"


def test_the_admin_opens_an_incident_naming_a_policy_and_keeps_rules(rita, service, security):
    client = Client()
    client.force_login(rita)
    response = client.post(
        reverse("admin:incidents_incident_add"),
        {
            "service": service.pk,
            "title": "Suspicious logins",
            "severity": "sev2",
            "policy": security.pk,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    incident = Incident.objects.get()
    assert (incident.policy, incident.routed_by) == (security, RoutedBy.NAMED)
    change = client.get(reverse("admin:incidents_incident_change", args=[incident.pk]))
    assert "Named by rita when the incident was opened." in change.content.decode()

    add = reverse("admin:incidents_routingrule_add")
    bad = client.post(
        add, {"position": 1, "name": "broken", "matchers": "team ==", "policy": security.pk}
    )
    assert bad.status_code == 200
    assert "Line 1: &#x27;team ==&#x27; is not a matcher" in bad.content.decode()
    assert not RoutingRule.objects.exists()
    good = client.post(
        add,
        {
            "position": 1,
            "name": "security",
            "enabled": "on",
            "matchers": 'team="security"',
            "policy": security.pk,
        },
    )
    assert good.status_code == 302
    listing = client.get(reverse("admin:incidents_routingrule_changelist")).content.decode()
    assert "team=&quot;security&quot;" in listing and "Security on-call" in listing


def test_oncall_and_the_incident_page_say_which_rule_chose_the_policy(
    client, victor, service, routing, security
):
    rule("security → security on-call", security, 1, matchers='team="security"')
    routed = open_by_alert(service, {"team": "security"})
    plain = open_by_alert(service, {"team": "web"})
    client.force_login(victor)
    html = client.get("/oncall/").content.decode()
    assert "<td>security → security on-call</td>" in html
    assert "<td>team=&quot;security&quot;</td>" in html
    assert (
        f"#{routed.pk} SEV2 Alert</a> (open) — pages Security on-call: Rule “security → "
        "security on-call” (position 1): team=&quot;security&quot;." in html
    )
    assert (
        f"#{plain.pk} SEV2 Alert</a> (open) — pages {routing.policy.name}: No rule matched" in html
    )
    # The routed policy's table is shown too, with who it pages.
    assert f'id="policy-{security.pk}"' in html and "Escalation: Security on-call" in html
    page = client.get(f"/incidents/{routed.pk}/").content.decode()
    assert (
        '<dt>Policy chosen by</dt><dd class="routing">Rule “security → security on-call” '
        "(position 1): team=&quot;security&quot;.</dd>" in page
    )


def test_release_managers_keep_the_rules_and_everyone_reads_them(rita, alice, victor):
    assert [u.has_perm("incidents.change_routingrule") for u in (rita, alice, victor)] == [
        True,
        False,
        False,
    ]
    assert all(u.has_perm("incidents.view_routingrule") for u in (rita, alice, victor))
    for name, perms in ROLE_PERMISSIONS.items():
        held = Group.objects.get(name=name).permissions.filter(content_type__model="routingrule")
        assert {f"incidents.{p.codename}" for p in held} == {
            p for p in perms if p.endswith("_routingrule")
        }, name


def test_the_criterion_admin_names_the_incident_severity(rita, plan, error_rate, settings):
    settings.INCIDENTS_BREACH_SEVERITY = Severity.SEV2
    client = Client()
    client.force_login(rita)
    form = {
        "plan": str(plan.pk),
        "metric": str(error_rate.pk),
        "comparator": ">",
        "critical_threshold": "0.1",
        "reference": "absolute",
        "tolerance": "relative",
        "significance_test": "none",
        "p_value": "0.05",
        "method": "sequential",
        "decision_window": "2 00:00:00",
        "for_window": "00:03:00",
        "interval": "00:01:00",
        "consecutive": "1",
        "min_samples": "1",
        "inconclusive_limit": "5",
        "on_warning": "notify",
        "on_critical": "rollback",
        "incident_severity": "sev1",
        "enabled": "on",
    }
    saved = client.post("/admin/checks/metriccriterion/add/", form)
    assert saved.status_code == 302, saved.content.decode()[:3000]
    client.post("/admin/checks/metriccriterion/add/", {**form, "incident_severity": ""})
    assert sorted(MetricCriterion.objects.values_list("incident_severity", flat=True)) == [
        "",
        "sev1",
    ]
    listing = client.get("/admin/checks/metriccriterion/").content.decode()
    assert '<td class="field-incident_severity_column">SEV1</td>' in listing
    assert "SEV2 (setting)" in listing


def test_oncall_costs_the_same_queries_however_many_rules_and_policies(
    client, victor, service, security, django_assert_num_queries
):
    rule("first", security, 1, matchers='team="security"')
    client.force_login(victor)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/oncall/").status_code == 200
    for n in range(3):
        rule(f"team {n}", team_policy(f"Team {n}", [(0, f"P{n}"), (5, f"Q{n}")]), 2 + n)
    with django_assert_num_queries(len(few.captured_queries)):
        html = client.get("/oncall/").content.decode()
    assert html.count("Escalation: Team ") == 3
