"""A Content-Security-Policy on every page: scripts and styles only from the site itself or with
the request's nonce, no plugins, no framing, forms post only here. Chromium opens the pages, the
admin and the API docs under it and reports zero violations; a scan of the templates finds no
inline handler, javascript: URL or un-nonced inline block that a page not visited here could hold.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from apps.incidents.models import Incident
from apps.reports import services as reports
from apps.reports.schedule import period_containing
from tests.pages import conftest as pages_conftest
from tests.pages import test_browser as browser_tests
from tests.pages.conftest import sign_in

# The browser tests' fixtures: Chromium, the plain-HTTP live server, a tab, a started rollout.
browser_rollout = browser_tests.browser_rollout
browser = pages_conftest.browser
live_server = pages_conftest.live_server
open_page = pages_conftest.open_page

# What a violation of the policy looks like from inside the page: the event, and Chromium's
# console line (kept too, for violations the event does not reach, e.g. in a worker).
LISTEN = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.mark.django_db
def test_every_answer_carries_the_policy(client: Client, rita) -> None:
    client.force_login(rita)
    for path in ("/", "/admin/", "/api/v1/docs/", "/api/v1/releases/"):
        policy = client.get(path).headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy, path
        assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe-inline" not in policy.replace("style-src-attr 'unsafe-inline'", ""), path


@pytest.mark.services
def test_the_pages_admin_and_api_docs_break_no_rule_of_the_policy(
    browser_rollout, rita, live_server, open_page
) -> None:
    release = browser_rollout.release
    incident = Incident.objects.create(
        service=release.service, release=release, title="Canary error rate"
    )
    period = period_containing("weekly", timezone.localdate() or date.today(), "UTC")
    report, _ = reports.obtain_report(None, period)

    page = open_page()
    page.context.add_init_script(LISTEN)
    console: list[str] = []
    page.on(
        "console",
        lambda m: console.append(m.text) if "Content Security Policy" in m.text else None,
    )
    sign_in(page, live_server, "rita")

    visits = {
        "/": ".card .bar",
        f"/releases/{release.pk}/": "#traffic",
        f"/releases/{release.pk}/signoff/": "main",
        f"/incidents/{incident.pk}/": "main",
        f"/reports/{report.pk}/": "main table",
        "/admin/": "#content",
        f"/admin/releases/release/{release.pk}/change/": "#release_form",
        "/api/v1/docs/": ".swagger-ui .info .title",  # rendered by its scripts: they ran
        # DRF's browsable API: a list (with its filter button) and a detail page.
        "/api/v1/releases/": ".response-info",
        f"/api/v1/releases/{release.pk}/": ".response-info",
    }
    for path, shown in visits.items():
        response = page.goto(live_server.url + path)
        assert response is not None and response.status == 200, path
        assert "script-src" in (response.headers.get("content-security-policy") or ""), path
        page.locator(shown).first.wait_for()
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__csp") == [], path
        assert console == [], path

    # The dashboard's traffic bar still draws its width (it was an inline style).
    page.goto(live_server.url + "/")
    bar = page.locator(".card .bar rect").first.bounding_box()
    track = page.locator(".card .bar").first.bounding_box()
    assert bar and track and 0 < bar["width"] < track["width"] * 0.2  # 5 % of the track


# Markup a strict policy blocks: inline handlers, javascript: URLs, <script>/<style> blocks
# without the nonce, and style attributes.
BLOCKED = re.compile(
    r"""\son[a-z]+\s*=|javascript:|<script(?![^>]*\b(src|nonce)=)[^>]*>|"""
    r"""<style(?![^>]*\bnonce=)[^>]*>|\sstyle\s*=""",
    re.I,
)
# Emails (no policy there; mail clients need inline styles), and the report shared with the
# email, whose page alone allows style attributes (never scripts): see docs/security.md.
EXEMPT = ("emails/", "reports/_report.html")


def test_no_template_holds_markup_the_policy_blocks() -> None:
    base = Path(settings.BASE_DIR)
    templates = [*base.glob("templates/**/*.html"), *base.glob("apps/*/templates/**/*.html")]
    found = [
        f"{path.relative_to(base)}: {match.group(0).strip()}"
        for path in templates
        if not any(part in path.as_posix() for part in EXEMPT)
        for match in BLOCKED.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []
