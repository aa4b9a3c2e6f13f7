"""Ways of asking for sign-offs besides email, registered by the apps that speak them (Slack).

Each asker is called inside the transaction that creates the requests (asking.request_signoffs),
with the gate's status and the new requests, and writes its own outbox rows there: a request
that rolls back asks nobody anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import SignOffRequest
    from .services import GateStatus

Asker = Callable[["GateStatus", "list[SignOffRequest]"], None]

_ASKERS: list[Asker] = []


def register(asker: Asker) -> Asker:
    """Add a way of asking (in the asking app's AppConfig.ready()); registering twice is once."""
    if asker not in _ASKERS:
        _ASKERS.append(asker)
    return asker


def ask(status: GateStatus, requests: list[SignOffRequest]) -> None:
    """Ask through every registered channel, inside the caller's transaction."""
    for asker in _ASKERS:
        asker(status, requests)
