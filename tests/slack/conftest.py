"""Slack configured against the fake Web API on loopback; requests signed as Slack signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from django.test import Client

from apps.signoffs.models import SignOffRule
from apps.slack.models import SignOffChannel, SlackMessage
from tests.signoffs.conftest import (  # noqa: F401 (fixtures)
    dave,
    erin,
    groups,
    olga,
    paul,
    plan,
    running,
)
from tests.slack.fake_slack import TOKEN, FakeSlack, running_slack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0RELEASES"


@pytest.fixture
def slack(settings) -> Iterator[FakeSlack]:
    with running_slack() as fake:
        settings.SLACK_BOT_TOKEN = TOKEN
        settings.SLACK_SIGNING_SECRET = SECRET
        settings.SLACK_API_URL = fake.url
        fake.people.update(
            {
                "UERIN": "erin@example.com",
                "UPAUL": "PAUL@Example.com",  # Slack's case need not be ours
                "UDAVE": "dave@example.com",
                "USTRANGER": "stranger@elsewhere.example",
            }
        )
        yield fake


@pytest.fixture
def canary_on_slack(running, plan) -> SignOffChannel:  # noqa: F811 (the fixtures above)
    """The plan's canary rule asks in #releases."""
    rule = SignOffRule.objects.get(plan=plan, stage_template__name="canary")
    return SignOffChannel.objects.create(rule=rule, channel=CHANNEL)


def sign(body: str, *, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    """The headers Slack sends: v0= HMAC-SHA256 of "v0:{timestamp}:{body}"."""
    timestamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(
        secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256
    ).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


def click(
    post: SlackMessage, slack_user: str, action: str = "signoff_go", comment: str | None = None
) -> str:
    """The form body Slack posts when someone presses a button of the post."""
    payload = {
        "type": "block_actions",
        "user": {"id": slack_user, "username": slack_user.lower(), "team_id": "T1"},
        "team": {"id": "T1"},
        "container": {
            "type": "message",
            "channel_id": post.posted_channel,
            "message_ts": post.ts,
        },
        "channel": {"id": post.posted_channel},
        "actions": [
            {
                "action_id": action,
                "block_id": f"signoff_{post.pk}",
                "value": str(post.pk),
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
        "state": {
            "values": {
                "signoff_comment": {"comment": {"type": "plain_text_input", "value": comment}}
            }
        },
        "response_url": "http://127.0.0.1:9/unused",
    }
    return urlencode({"payload": json.dumps(payload)})


def deliver(client: Client, body: str, headers: dict[str, str], capture) -> int:
    """POST to the interactivity endpoint; the Slack calls it writes are sent after commit."""
    with capture(execute=True):
        answer = client.post(
            "/slack/interactivity/",
            data=body,
            content_type="application/x-www-form-urlencoded",
            headers=headers,
        )
    return answer.status_code
