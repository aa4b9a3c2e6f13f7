"""A Go or No-go pressed on Slack: the same rules as the sign-off page, then the post updated.

The view has verified Slack's signature and timestamp; here the request is claimed by its
signature (the same signed request again, a replay inside the timestamp's five minutes, does
nothing), the Slack user is mapped to an active account by email, and the decision goes to
apps.signoffs.services.sign, which applies the groups, the author rule, the quorum and the
no-go comment. A post whose gate attempt is no longer the release's current one (the artifact
changed, the stage moved) signs nothing: its buttons were for something else.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from apps.signoffs import services
from apps.signoffs.choices import Decision

from . import messages, web
from .blocks import ACTIONS, COMMENT_ACTION, COMMENT_BLOCK
from .choices import SlackMessageKind
from .models import SlackInteraction, SlackMessage

logger = logging.getLogger(__name__)
User = get_user_model()

REPLAY = "replay: already handled"
STALE = (
    "This request is for an earlier gate of the release (its artifact changed, or it moved "
    "on): nothing was signed. Sign the newer request, or on the sign-off page."
)


class _Stale(Exception):
    """The post's gate attempt is not the release's current one."""


def _comment(payload: dict[str, Any]) -> str:
    values = payload.get("state", {}).get("values", {})
    value = values.get(COMMENT_BLOCK, {}).get(COMMENT_ACTION, {}).get("value")
    return str(value or "")


def handle(payload: dict[str, Any], *, signature: str) -> str:
    """Act on one verified interaction; returns what happened, in words (also kept)."""
    action = next((a for a in payload.get("actions") or [] if a.get("action_id") in ACTIONS), None)
    if payload.get("type") != "block_actions" or action is None:
        return "ignored: not a sign-off button"
    slack_user = str(payload.get("user", {}).get("id") or "")
    channel = str(
        payload.get("container", {}).get("channel_id") or payload.get("channel", {}).get("id") or ""
    )
    try:
        # Committed at once: a second delivery of this request finds it and stops here.
        with transaction.atomic():
            interaction = SlackInteraction.objects.create(
                signature=signature, slack_user=slack_user, action=action["action_id"]
            )
    except IntegrityError:
        return REPLAY
    value = str(action.get("value", ""))
    post = (
        SlackMessage.objects.filter(pk=int(value), kind=SlackMessageKind.POST)
        .select_related("release", "stage")
        .first()
        if value.isdigit()
        else None
    )
    if post is None:
        return _kept(interaction, "ignored: no such request")
    interaction.message = post
    user, why = _account(slack_user)
    if user is None:
        return _refuse(interaction, post, channel, why)
    interaction.user = user
    decision = ACTIONS[action["action_id"]]
    try:
        with transaction.atomic():
            release = services.lock_release(post.release)
            gate = services.current_gate(release)
            if gate is None or gate.key != post.gate_key:
                raise _Stale
            # sign() tells the sign-offs' channels, which redraw every post of the attempt.
            services.sign(release, user=user, decision=decision, comment=_comment(payload))
    except _Stale:
        with transaction.atomic():
            # The post is redrawn without its buttons, saying why.
            messages.update_posts(post.release, post.gate_key, because=f"stale-{interaction.pk}")
        return _refuse(interaction, post, channel, STALE)
    except PermissionDenied as exc:
        return _refuse(interaction, post, channel, str(exc))
    except ValidationError as exc:
        return _refuse(interaction, post, channel, " ".join(exc.messages))
    said = "go" if decision == Decision.GO else "no-go"
    return _kept(interaction, f"signed: {said} by {user.get_username()}")


def _account(slack_user: str) -> tuple[Any, str]:
    """The active account whose email is the Slack user's, or None and why not."""
    try:
        email = web.email_of(slack_user)
    except web.SlackRefused as exc:
        logger.warning("Slack users.info for %s failed: %s", slack_user, exc)
        return None, "rolloutdesk could not read your Slack profile's email; try again later."
    if not email:
        return None, "Your Slack profile has no email address rolloutdesk could read."
    matches = list(User.objects.filter(email__iexact=email, is_active=True)[:2])
    if len(matches) != 1:
        return None, (
            f"No active rolloutdesk account has the email {email}."
            if not matches
            else f"Several rolloutdesk accounts have the email {email}: sign on the page."
        )
    return matches[0], ""


def _refuse(interaction: SlackInteraction, post: SlackMessage, channel: str, why: str) -> str:
    with transaction.atomic():
        messages.tell_one(
            post, channel or post.posted_channel, interaction.slack_user, why, str(interaction.pk)
        )
        return _kept(interaction, f"refused: {why}")


def _kept(interaction: SlackInteraction, outcome: str) -> str:
    interaction.outcome = outcome
    interaction.save(update_fields=["outcome", "user", "message"])
    return outcome
