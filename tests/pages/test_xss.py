"""What people and CI type is shown as text: a version, a reason and a comment with <script>."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.checklists.models import ChecklistItem
from tests.pages.conftest import SMOKE, build_plan, client_for, start_rollout

pytestmark = pytest.mark.django_db

SCRIPT = '<script>alert("x")</script>'
ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"


def test_version_reason_and_comments_render_as_text(service, production, rita, alice):
    rollout = start_rollout(
        service=service, environment=production, plan=build_plan("xss"), version=f"1.0{SCRIPT}"
    )
    release = rollout.release
    item = ChecklistItem.objects.get(text=SMOKE)
    client_for(alice).post(
        reverse("pages:tick_item", args=[release.pk, item.pk]),
        {"done": "1", "comment": f"ticked {SCRIPT}"},
    )
    client_for(alice).post(
        reverse("pages:sign", args=[release.pk]), {"decision": "go", "comment": f"ok {SCRIPT}"}
    )
    client_for(rita).post(
        reverse("pages:transition", args=[release.pk]),
        {"action": "pause", "reason": f"hold {SCRIPT}"},
    )

    pages = {
        "release": client_for(rita).get(reverse("pages:release", args=[release.pk])),
        "dashboard": client_for(rita).get(reverse("pages:dashboard")),
        "refusal": client_for(rita).post(
            reverse("pages:transition", args=[release.pk]),
            {"action": "advance", "reason": f"again {SCRIPT}"},
        ),
    }
    for name, response in pages.items():
        html = response.content.decode()
        # The only scripts are the pages' own static files (tick in place), never the payload.
        scripts = re.findall(r"<script[^>]*>", html)
        assert all(re.fullmatch(r'<script src="/static/js/[\w.-]+\.js" defer>', s) for s in scripts)
        assert ESCAPED in html, name
    release_html = pages["release"].content.decode()
    for text in (f"1.0{ESCAPED}", f"hold {ESCAPED}", f"ok {ESCAPED}", f"ticked {ESCAPED}"):
        assert text in release_html
