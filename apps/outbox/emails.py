"""Emails as outbox rows: one Message per address, built from its kind's templates when sent.

A feature app declares each kind of email it sends once, with the function that builds it from
the row's ids (`@kind("release-transition")`), and writes messages inside the transaction of
the change that causes them with `write(...)`. The builder runs at send time, so the email
shows the state of things when it goes out; it raises `Skip` when there is nothing to say any
more (the person signed meanwhile).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from apps.core import emails

from . import engine
from .engine import Skip
from .models import Message

__all__ = ["Draft", "Skip", "kind", "write"]

KEY_LENGTH = 250


@dataclass
class Draft:
    """What a kind's builder returns: the email's template name and context."""

    template: str
    context: dict[str, Any]
    inline_images: Sequence[tuple[str, bytes]] = field(default_factory=tuple)


@dataclass(frozen=True)
class Kind:
    name: str
    build: Callable[[dict[str, Any]], Draft]
    # Inside the transaction that marks the message sent: what the sending app records.
    sent: Callable[[Message], None] | None = None


KINDS: dict[str, Kind] = {}


def kind(
    name: str, *, sent: Callable[[Message], None] | None = None
) -> Callable[[Callable[[dict[str, Any]], Draft]], Callable[[dict[str, Any]], Draft]]:
    """Declare a kind of email and the function that builds one from a message's args."""

    def register(build: Callable[[dict[str, Any]], Draft]) -> Callable[[dict[str, Any]], Draft]:
        KINDS[name] = Kind(name=name, build=build, sent=sent)
        return build

    return register


def message_key(key: str, address: str) -> str:
    """The per-address key: readable when it fits, hashed when the address is very long."""
    full = f"{key}:to:{address.lower()}"
    if len(full) <= KEY_LENGTH:
        return full
    digest = hashlib.sha256(address.lower().encode()).hexdigest()[:24]
    return f"{key[: KEY_LENGTH - 30]}:to#{digest}"


def write(
    kind_name: str, to: Iterable[str], *, key: str, args: dict[str, Any], about: str = ""
) -> list[int]:
    """Write one message per address in the caller's transaction; queued after it commits.

    `key` names what the message is for; with the address it is unique, so writing the same
    message twice (a retried change, two workers) stores and sends it once. Returns the ids of
    the messages now waiting to be sent.
    """
    if kind_name not in KINDS:
        raise LookupError(f"No email kind {kind_name!r} is declared.")
    addresses = list(dict.fromkeys(a.strip() for a in to if a and a.strip()))
    if not addresses:
        return []
    now = timezone.now()
    keys = [message_key(key, address) for address in addresses]
    Message.objects.bulk_create(
        [
            Message(
                kind=kind_name,
                key=k,
                to=address,
                args=args,
                about=about[:100],
                created_at=now,
                next_attempt_at=now,
            )
            for k, address in zip(keys, addresses, strict=True)
        ],
        ignore_conflicts=True,
    )
    ids = list(
        Message.objects.filter(key__in=keys, attempts=0, claimed_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    engine.queue_after_commit(Message, ids)
    return ids


def _send(message: Message) -> None:
    try:
        declared = KINDS[message.kind]
    except KeyError:
        raise LookupError(f"No email kind {message.kind!r} is declared.") from None
    draft = declared.build(message.args)
    if not emails.send(
        draft.template,
        [message.to],
        draft.context,
        inline_images=draft.inline_images,
        key=message.key,
    ):
        raise OSError("The mail backend accepted no message.")


def _sent(message: Message) -> None:
    declared = KINDS.get(message.kind)
    if declared is not None and declared.sent is not None:
        declared.sent(message)


engine.register(Message, _send, on_sent=_sent)
