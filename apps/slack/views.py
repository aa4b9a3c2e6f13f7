"""Slack's interactivity endpoint: POST /slack/interactivity/ (the Request URL in the Slack
app's Interactivity settings). A 404 while Slack is not configured."""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from slack_sdk.signature import SignatureVerifier

from . import interactions, web

logger = logging.getLogger(__name__)


@csrf_exempt  # Slack cannot send a CSRF token: its signature is what proves the request
@require_POST
def interactivity(request: HttpRequest) -> HttpResponse:
    if not web.enabled():
        raise Http404("Slack sign-offs are not configured.")
    body = request.body
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    # HMAC-SHA256 of "v0:{timestamp}:{body}" with the signing secret, and a timestamp within
    # five minutes of now: a forged request fails the first, a replayed old one the second.
    verifier = SignatureVerifier(settings.SLACK_SIGNING_SECRET)
    signed = timestamp.isdigit() and signature.startswith("v0=")  # is_valid needs a number
    if not (signed and verifier.is_valid(body=body, timestamp=timestamp, signature=signature)):
        logger.warning("Slack interactivity: refused a request with a bad signature or timestamp")
        return HttpResponse(
            "The request's Slack signature or timestamp is not valid.",
            status=401,
            content_type="text/plain",
        )
    try:
        payload = json.loads(request.POST.get("payload", ""))
    except ValueError:
        return HttpResponse(
            "The form field 'payload' is not JSON.", status=400, content_type="text/plain"
        )
    if not isinstance(payload, dict):
        return HttpResponse(
            "The form field 'payload' is not a JSON object.", status=400, content_type="text/plain"
        )
    outcome = interactions.handle(payload, signature=signature)
    logger.info("Slack interactivity: %s", outcome)
    # Slack only needs a 200 within three seconds; what changed reaches it through chat.update.
    return HttpResponse(status=200)
