"""Slack's Web API through slack-sdk's WebClient, and whether Slack is configured at all."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError


class SlackRefused(OSError):
    """The Web API answered `ok: false` (or not at all): an outside failure, so the outbox
    retries the row with backoff rather than recording a bug."""

    def __init__(self, message: str, error: str = "") -> None:
        super().__init__(message)
        self.error = error  # Slack's error code: "channel_not_found", "users_not_found", ...


def enabled() -> bool:
    """Slack sign-offs are on only with a bot token and a signing secret (settings check both)."""
    return bool(settings.SLACK_BOT_TOKEN and settings.SLACK_SIGNING_SECRET)


def client() -> WebClient:
    base = settings.SLACK_API_URL
    return WebClient(
        token=settings.SLACK_BOT_TOKEN,
        base_url=base if base.endswith("/") else base + "/",
        timeout=int(settings.SLACK_TIMEOUT),
    )


def call(method: str, **arguments: Any) -> dict[str, Any]:
    """One Web API method by its WebClient name (`chat_postMessage`, ...): its answer's data,
    or SlackRefused."""
    try:
        response = getattr(client(), method)(**arguments)
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else str(exc)
        raise SlackRefused(f"Slack refused {method}: {error}", str(error)) from exc
    return dict(response.data) if isinstance(response.data, dict) else {}


def email_of(slack_user: str) -> str:
    """The Slack user's email address (users.info; the app needs users:read.email)."""
    answer = call("users_info", user=slack_user)
    return str(answer.get("user", {}).get("profile", {}).get("email") or "")


def user_id_for(email: str) -> str:
    """The Slack user with this email address (users.lookupByEmail), for a direct message."""
    try:
        answer = call("users_lookupByEmail", email=email)
    except SlackRefused as exc:
        if exc.error == "users_not_found":
            return ""
        raise
    return str(answer.get("user", {}).get("id") or "")
