"""Every email is built one way: <name>-subject.txt, <name>-body.txt and <name>-body.html."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def render(name: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """Render the subject (one line), the plain-text body and the HTML body of an email."""
    ctx = {"site_url": settings.SITE_URL, **context}
    subject = " ".join(render_to_string(f"emails/{name}-subject.txt", ctx).split())
    text = render_to_string(f"emails/{name}-body.txt", ctx)
    html = render_to_string(f"emails/{name}-body.html", ctx)
    return subject, text, html


def send(name: str, to: Iterable[str], context: dict[str, Any]) -> int:
    """Send one email, text with an HTML alternative: from a task, never inside a transaction."""
    recipients = [address for address in to if address]
    if not recipients:
        return 0
    subject, text, html = render(name, context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, recipients)
    message.attach_alternative(html, "text/html")
    return message.send()
