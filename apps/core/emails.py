"""Every email is built one way: <name>-subject.txt, <name>-body.txt and <name>-body.html."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from email.mime.image import MIMEImage
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import Context
from django.template.loader import get_template


def _render(path: str, context: dict[str, Any], *, autoescape: bool) -> str:
    # Escaping is decided here, by the part's kind, for every template and everything it
    # includes: a text part shows "R&D <ops>" as typed (HTML entities there are garbage the
    # reader sees), an HTML part always escapes it, whatever tags a template carries.
    template = get_template(path).template
    return template.render(Context(context, autoescape=autoescape))


def message_id(key: str) -> str:
    """A stable Message-ID for an outbox message's key (RFC 5322: unique left part @ domain)."""
    # The site's host, not the sending machine's: every worker must make the same ID.
    domain = urlsplit(settings.SITE_URL).hostname or "rolloutdesk"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def render(name: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """Render the subject (one line), the plain-text body and the HTML body of an email."""
    ctx = {"site_url": settings.SITE_URL, **context}
    # One line: a newline in a title must not start another header.
    subject = " ".join(_render(f"emails/{name}-subject.txt", ctx, autoescape=False).split())
    text = _render(f"emails/{name}-body.txt", ctx, autoescape=False)
    html = _render(f"emails/{name}-body.html", ctx, autoescape=True)
    return subject, text, html


def send(
    name: str,
    to: Iterable[str],
    context: dict[str, Any],
    *,
    inline_images: Sequence[tuple[str, bytes]] = (),
    key: str = "",
) -> int:
    """Send one email, text with an HTML alternative: from a task, never inside a transaction.

    `inline_images` are (content id, PNG bytes): the HTML shows them as <img src="cid:...">.
    `key` is the outbox message's key: its Message-ID is made from it, so a send retried after a
    worker died between the mail server's "accepted" and recording it carries the same
    Message-ID, which mail servers and clients take as the same message, not a second one.
    """
    recipients = [address for address in to if address]
    if not recipients:
        return 0
    subject, text, html = render(name, context)
    headers = {"Message-ID": message_id(key)} if key else None
    message = EmailMultiAlternatives(
        subject, text, settings.DEFAULT_FROM_EMAIL, recipients, headers=headers
    )
    message.attach_alternative(html, "text/html")
    for content_id, png in inline_images:
        image = MIMEImage(png, "png")
        image.add_header("Content-ID", f"<{content_id}>")
        filename = f"{content_id.split('@')[0]}.png"
        image.add_header("Content-Disposition", "inline", filename=filename)
        message.attach(image)
    if inline_images:
        # multipart/related: clients show the images inside the HTML, not as attachments.
        message.mixed_subtype = "related"
    return message.send()
