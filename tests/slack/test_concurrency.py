"""The same signed request twice at once (PostgreSQL): one sign-off, one update of the post."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client

from apps.core.actors import Actor
from apps.signoffs import asking
from apps.signoffs.models import SignOff
from apps.slack.choices import SlackMessageKind
from apps.slack.models import SlackInteraction, SlackMessage
from tests.slack.conftest import CHANNEL, click, sign

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_request_delivered_twice_at_once_signs_once(
    postgres, slack, canary_on_slack, running, erin, paul
) -> None:
    asking.request_signoffs(running, actor=Actor.system("tests"))  # autocommit: sent at once
    post = SlackMessage.objects.get(kind=SlackMessageKind.POST, channel=CHANNEL)
    assert post.ts
    body = click(post, "UERIN", comment="go")
    headers = sign(body)
    barrier = threading.Barrier(2)

    def deliver(_: int) -> int:
        try:
            client = Client()
            barrier.wait(timeout=10)
            return client.post(
                "/slack/interactivity/",
                data=body,
                content_type="application/x-www-form-urlencoded",
                headers=headers,
            ).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(deliver, [0, 1])) == [200, 200]
    assert SignOff.objects.filter(signer=erin).count() == 1
    assert SlackInteraction.objects.count() == 1
    assert SlackMessage.objects.filter(kind=SlackMessageKind.UPDATE).count() == 1
    assert len(slack.of("chat.update")) == 1
