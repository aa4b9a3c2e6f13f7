"""Ways of asking for sign-offs besides email, registered by the apps that speak them (Slack).

An asker is called inside the transaction that creates the requests (asking.request_signoffs),
with the gate's status and the new requests; a watcher inside the transaction of a change to a
gate attempt's sign-offs (a go, a no-go, a withdrawal, the artifact changing), with the release
and that attempt's gate key. Each writes its own outbox rows there: a change that rolls back
tells nobody anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.releases.models import Release

    from .models import SignOffRequest
    from .services import GateStatus

Asker = Callable[["GateStatus", "list[SignOffRequest]"], None]
Watcher = Callable[["Release", str, str], None]

_ASKERS: list[Asker] = []
_WATCHERS: list[Watcher] = []


def register(asker: Asker, watcher: Watcher | None = None) -> Asker:
    """Add a way of asking, and what it does when sign-offs change (in the asking app's
    AppConfig.ready()); registering twice is once."""
    if asker not in _ASKERS:
        _ASKERS.append(asker)
    if watcher is not None and watcher not in _WATCHERS:
        _WATCHERS.append(watcher)
    return asker


def ask(status: GateStatus, requests: list[SignOffRequest]) -> None:
    """Ask through every registered channel, inside the caller's transaction."""
    for asker in _ASKERS:
        asker(status, requests)


def changed(release: Release, gate_key: str, *, because: str) -> None:
    """The sign-offs of this gate attempt changed (`because` names the change, once)."""
    for watcher in _WATCHERS:
        watcher(release, gate_key, because)
