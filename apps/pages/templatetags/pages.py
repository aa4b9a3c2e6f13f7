"""Template helpers of the pages: the navigation, built from the URLs that exist."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import Resolver404, resolve

register = template.Library()

# Pages other apps may add; each is linked once its URL resolves.
OPTIONAL_PAGES = [
    ("/incidents/", "Incidents"),
    ("/oncall/", "On call"),
    ("/reports/", "Reports"),
]


def _exists(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


@register.inclusion_tag("pages/_nav.html", takes_context=True)
def site_nav(context: dict[str, Any]) -> dict[str, Any]:
    """Dashboard, then incidents, on-call and reports when those pages exist, then the admin."""
    request = context.get("request")
    user = context.get("user")
    current = request.path if request else ""
    links = [("/", "Dashboard")]
    links += [(path, label) for path, label in OPTIONAL_PAGES if _exists(path)]
    if user is not None and user.is_staff:
        links.append(("/admin/", "Admin"))
    return {
        "links": [
            {
                "href": href,
                "label": label,
                "current": current == href or (href not in ("/",) and current.startswith(href)),
            }
            for href, label in links
        ]
    }


@register.filter
def open_manual_count(items: list[Any]) -> int:
    """How many items of a section a person may tick at once: open and manual (CI ticks the
    automated ones)."""
    return sum(1 for item in items if not item.is_done and not item.is_automated)
