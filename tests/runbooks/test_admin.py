"""The admin's runbook import: upload, a review page quoting each item's source line (editable,
untickable), one-transaction save for a service, and the diff when a changed runbook comes again."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.checklists.models import ChecklistTemplate
from apps.checks.models import MetricCriterion
from apps.releases.models import RolloutPlan
from apps.runbooks.models import RunbookImport
from tests.factories import EnvironmentFactory

from .keys import RUNBOOKS

pytestmark = pytest.mark.django_db
URL = "/admin/runbooks/runbookimport/import/"
PAYMENTS = (RUNBOOKS / "payments-tables-runbook.md").read_bytes()


class FormFields(HTMLParser):
    """What a browser would submit from the review form, as it stands."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name") and a.get("type") != "submit":
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.fields[a["name"]] = "on"
            else:
                self.fields[a["name"]] = a.get("value") or ""
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self.fields[self._select] = a["value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def fields_of(html: str) -> dict[str, str]:
    parser = FormFields()
    parser.feed(html)
    return parser.fields


@pytest.fixture
def client(rita) -> Client:
    EnvironmentFactory(name="Staging", slug="staging", is_production=False)
    EnvironmentFactory()
    c = Client()
    c.force_login(rita)
    return c


def upload(client: Client, service, data: bytes = PAYMENTS):  # noqa: ANN201
    return client.post(
        URL,
        {"file": SimpleUploadedFile("payments.md", data), "service": service.pk},
    )


def test_the_review_page_quotes_every_item_beside_its_fields(client, service) -> None:
    page = upload(client, service)
    assert page.status_code == 200
    html = page.content.decode()
    assert "line 17</span> <q>| Canary | production | 2% | 6 hours |</q>" in html
    assert "line 25</span> <q>| Payment error rate | &gt; 0.5% | &gt; 1% | roll back |</q>" in html
    assert "line 40</span> <q>| 2 | 20 min | Payments team lead |</q>" in html
    assert "line 46</span> <q>- [ ] Refund flow exercised end to end</q>" in html
    fields = fields_of(html)
    assert fields["stage-1-traffic_percentage"] == "2"
    assert fields["criterion-1-action"] == "rollback"
    assert fields["level-2-targets"] == "Head of engineering"
    assert not RolloutPlan.objects.filter(name__startswith="Payments").exists()


def test_saving_takes_the_edits_and_the_unticks_in_one_go(client, service) -> None:
    fields = fields_of(upload(client, service).content.decode())
    fields["stage-1-traffic_percentage"] = "5"
    del fields["criterion-2-keep"], fields["criterion-3-keep"]  # the latency pair unticked
    fields["level-0-after_minutes"] = "5"
    del fields["item-1-0-1-keep"]  # "Refund flow exercised end to end"
    fields["item-0-0-0-text"] = "Ledger reconciliation green (24 h)"
    answer = client.post(URL, fields)
    assert answer.status_code == 302, answer.content.decode()[:3000]
    record = RunbookImport.objects.get()
    assert answer["Location"].endswith(f"/runbooks/runbookimport/{record.pk}/change/")
    plan = record.plan
    assert [s.traffic_percentage for s in plan.stages.order_by("position")] == [0, 5, 25, 100]
    assert [c.metric.key for c in MetricCriterion.objects.filter(plan=plan)] == [
        "payment_error_rate"
    ]
    assert [lv.after_minutes for lv in record.policy.levels.order_by("position")] == [5, 20, 45]
    post = ChecklistTemplate.objects.get(kind="post_deployment")
    assert post.items.count() == 2
    pre = ChecklistTemplate.objects.get(kind="pre_deployment")
    assert pre.items.order_by("position").first().text == "Ledger reconciliation green (24 h)"
    service.refresh_from_db()
    assert service.default_plan == plan


def test_a_refusal_saves_nothing_and_keeps_the_edits(client, service) -> None:
    fields = fields_of(upload(client, service).content.decode())
    fields["stage-0-environment"] = "qa"
    fields["stage-2-traffic_percentage"] = "lots"
    fields["criterion-0-threshold"] = "0.4"
    answer = client.post(URL, fields)
    assert answer.status_code == 200
    html = answer.content.decode()
    assert "stage on line 18: &#x27;lots&#x27; is not a whole number." in html
    assert RunbookImport.objects.count() == 0
    again = fields_of(html)
    assert (again["stage-0-environment"], again["criterion-0-threshold"]) == ("qa", "0.4")
    fields["stage-2-traffic_percentage"] = "25"
    answer = client.post(URL, fields)
    assert (
        "stage &#x27;Smoke&#x27; (line 16): no environment &#x27;qa&#x27;"
        in answer.content.decode()
    )
    assert not RolloutPlan.objects.filter(name__startswith="Payments").exists()
    assert not MetricCriterion.objects.exists()


def test_reimporting_a_changed_runbook_shows_the_diff_first(client, service) -> None:
    assert client.post(URL, fields_of(upload(client, service).content.decode())).status_code == 302
    changed = PAYMENTS.replace(b"| Everyone | production | 100% | 24 hours |\n", b"")
    html = upload(client, service, changed).content.decode()
    assert 'id="review-diff"' in html
    assert "stage</td><td>removed</td><td>4: Everyone [production] 100%, soak 86400s" in html
    assert RunbookImport.objects.count() == 1  # shown, not saved


def test_an_altered_payload_is_refused(client, service) -> None:
    fields = fields_of(upload(client, service).content.decode())
    fields["payload"] = fields["payload"][:-3] + "abc"
    answer = client.post(URL, fields, follow=True)
    assert "The review expired or was altered" in answer.content.decode()
    assert not RunbookImport.objects.exists()


def test_only_release_managers_may_import(alice, service) -> None:
    c = Client()
    c.force_login(alice)
    assert c.get(URL).status_code == 403
