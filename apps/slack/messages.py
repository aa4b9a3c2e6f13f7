"""The Slack calls rolloutdesk makes, written as outbox rows inside the change's transaction.

`ask` is the sign-offs app's asker (apps/signoffs/channels.py): when sign-offs are requested
for a gate whose plan rule names a Slack channel, it writes one post for the channel (once per
gate attempt) and, with `direct`, one post per person asked. `state_of` says where a post's gate
stands, read when the post or its update is sent, so a late update still shows the latest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.outbox import engine as outbox
from apps.releases.models import Release
from apps.signoffs import services
from apps.signoffs.messages import signoff_url
from apps.signoffs.models import SignOff, SignOffRequest

from . import web
from .blocks import PostState, request_message
from .choices import SlackMessageKind
from .models import SignOffChannel, SlackMessage


def ask(status: services.GateStatus, requests: list[SignOffRequest]) -> None:
    """Post the request where the gate's plan rule says (nothing while Slack is off)."""
    if not web.enabled() or status.rule.source_id is None:
        return
    where = SignOffChannel.objects.filter(rule_id=status.rule.source_id).first()
    if where is None:
        return
    release, gate = status.release, status.gate
    now = timezone.now()
    common = {"release": release, "stage": gate.stage, "gate_key": gate.key}
    rows = []
    if where.channel:
        rows.append(
            SlackMessage(
                kind=SlackMessageKind.POST,
                key=f"post:{release.pk}:{gate.key}:channel:{where.channel}",
                channel=where.channel,
                next_attempt_at=now,
                **common,
            )
        )
    if where.direct:
        rows += [
            SlackMessage(
                kind=SlackMessageKind.POST,
                key=f"post:{release.pk}:{gate.key}:person:{r.user_id}",
                person=r.user,
                next_attempt_at=now,
                **common,
            )
            for r in requests
        ]
    _write(rows)


def _write(rows: list[SlackMessage]) -> list[int]:
    """Store the rows (a key already stored is stored once) and send the new ones after commit."""
    if not rows:
        return []
    keys = [r.key for r in rows]
    known = set(SlackMessage.objects.filter(key__in=keys).values_list("key", flat=True))
    SlackMessage.objects.bulk_create([r for r in rows if r.key not in known], ignore_conflicts=True)
    ids = list(SlackMessage.objects.filter(key__in=set(keys) - known).values_list("pk", flat=True))
    outbox.queue_after_commit(SlackMessage, ids)
    return ids


def update_posts(release: Release, gate_key: str, *, because: str) -> list[int]:
    """Update every posted request of this gate attempt (the channel's and each person's)."""
    now = timezone.now()
    posts = SlackMessage.objects.filter(
        release=release, gate_key=gate_key, kind=SlackMessageKind.POST
    )
    return _write(
        [
            SlackMessage(
                kind=SlackMessageKind.UPDATE,
                key=f"update:{post.pk}:{because}",
                release=release,
                stage_id=post.stage_id,
                gate_key=gate_key,
                parent=post,
                next_attempt_at=now,
            )
            for post in posts
        ]
    )


def changed(release: Release, gate_key: str, because: str) -> None:
    """The sign-offs of a gate attempt changed, here or on the page: redraw its posts."""
    if web.enabled():
        update_posts(release, gate_key, because=because)


def tell_one(post: SlackMessage, channel: str, slack_user: str, text: str, because: str) -> None:
    """A reply only one person sees (chat.postEphemeral): why their answer was refused."""
    _write(
        [
            SlackMessage(
                kind=SlackMessageKind.EPHEMERAL,
                key=f"ephemeral:{because}",
                release_id=post.release_id,
                gate_key=post.gate_key,
                parent=post,
                channel=channel,
                slack_user=slack_user,
                text=text,
                next_attempt_at=timezone.now(),
            )
        ]
    )


# --- what a post shows --------------------------------------------------------------------


def state_of(post: SlackMessage, now: datetime | None = None) -> PostState:
    release = Release.objects.select_related("service", "environment").get(pk=post.release_id)
    now = now or timezone.now()
    status = services.gate_status(release, now=now)
    url = settings.SITE_URL.rstrip("/") + signoff_url(release.pk)
    gate_label = f"leaving stage {post.stage.name}" if post.stage else "the start"
    if status is None or status.gate.key != post.gate_key:
        decisions = list(
            SignOff.objects.filter(release=release, gate_key=post.gate_key)
            .select_related("signer")
            .order_by("created_at", "pk")
        )
        sha = post.gate_key.rpartition("@")[2]
        if sha != release.commit_sha:
            was = f" on {sha[:12]}" if sha else ""
            why = (
                f"The artifact changed to {release.commit_sha[:12] or 'none'}: sign-offs{was} "
                "lapsed. A new request follows when the gate asks again."
            )
        else:
            why = "This gate is behind the release now: it moved on, or was stopped."
        return PostState(release, gate_label, "", False, why, decisions, url, commit=sha)
    assessment = status.assessment
    decisions = sorted(assessment.standing, key=lambda s: (s.created_at, s.pk))
    if assessment.met:
        outcome = "Signed off: the quorum is reached with no no-go."
    elif assessment.no_gos:
        names = ", ".join(s.signer.get_username() for s in assessment.no_gos)
        outcome = f"Blocked by a no-go from {names}."
    else:
        outcome = ""
    return PostState(
        release,
        gate_label,
        status.rule.describe(),
        open=not assessment.met,
        outcome=outcome,
        decisions=decisions,
        url=url,
        commit=release.commit_sha,
    )


def describe(post: SlackMessage) -> dict[str, Any]:
    """The post's text and blocks as they should read now."""
    return request_message(post.pk, state_of(post))
