"""How one Slack outbox row is sent (registered with apps/outbox's engine, which claims the row,
retries it with backoff and records how it went)."""

from __future__ import annotations

from django.conf import settings

from apps.outbox import engine as outbox

from . import web
from .choices import SlackMessageKind
from .messages import describe
from .models import SlackMessage


class NotPostedYet(web.SlackRefused):
    """An update whose request Slack has not been given yet: it waits and retries."""


def send(row: SlackMessage) -> None:
    if not web.enabled():
        raise outbox.Skip("Slack is not configured (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET).")
    if row.kind == SlackMessageKind.POST:
        _post(row)
    elif row.kind == SlackMessageKind.UPDATE:
        parent = row.parent
        if parent is None:
            raise outbox.Skip("The request it updates is gone.")
        if not parent.ts:
            raise NotPostedYet(f"Request {parent.pk} is not on Slack yet.")
        web.call("chat_update", channel=parent.posted_channel, ts=parent.ts, **describe(parent))
    else:
        web.call("chat_postEphemeral", channel=row.channel, user=row.slack_user, text=row.text)


def _post(row: SlackMessage) -> None:
    if row.ts:
        return  # posted by an attempt whose bookkeeping failed afterwards: never post twice
    channel = row.channel
    if row.person_id is not None:
        # A direct message: posting to a user's id opens the bot's conversation with them.
        channel = web.user_id_for(row.person.email)
        if not channel:
            raise outbox.Skip(f"No Slack user has the address {row.person.email}.")
    answer = web.call("chat_postMessage", channel=channel, unfurl_links=False, **describe(row))
    # Kept at once: chat.update of this message needs the channel and timestamp Slack gave it.
    SlackMessage.objects.filter(pk=row.pk).update(
        posted_channel=str(answer.get("channel") or channel), ts=str(answer.get("ts") or "")
    )


outbox.register(
    SlackMessage,
    send=send,
    related=("parent", "person", "stage"),
    max_attempts=lambda: settings.SLACK_MAX_ATTEMPTS,
)
