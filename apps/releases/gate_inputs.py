"""The gate's inputs changed: the code that changes one says so here, and the kept verdict follows.

The gate's answer for each release is kept (apps/rollouts/verdicts.py) so that readers — CI
polling the gate, the dashboard, traffic lookups — read a row instead of evaluating. Whatever
changes something a gate check reads (a transition, a checklist tick, a sign-off, a freeze
window, a check run, an incident, a new artifact) calls `changed()` with the releases, or the
services, it touches. This module sits below every feature app, so none of them imports
rollouts to do so; rollouts installs the keeper in its AppConfig.ready().

`changed()` marks the kept verdicts due inside the caller's transaction (one UPDATE) and
recomputes them once it commits: a crash between the two leaves them due, and the tick
recomputes them within a minute. A rolled-back change recomputes nothing of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from django.db import transaction

logger = logging.getLogger(__name__)


class Keeper(Protocol):
    """What keeps the verdicts (apps/rollouts/verdicts.py installs one)."""

    def mark_due(
        self, release_ids: set[int], service_ids: set[int] | None, measured_ids: set[int]
    ) -> None: ...

    def refresh(
        self, release_ids: set[int], service_ids: set[int] | None, measured_ids: set[int]
    ) -> None: ...


_keeper: Keeper | None = None


def install(keeper: Keeper) -> None:
    """Set the keeper of the verdicts (once, from rollouts' AppConfig.ready())."""
    global _keeper
    _keeper = keeper


class _Pending(threading.local):
    """This thread's releases and services to recompute at the next commit."""

    def __init__(self) -> None:
        self.release_ids: set[int] = set()
        self.service_ids: set[int] | None = set()  # None: every service
        self.measured_ids: set[int] = set()
        self.gathering = 0  # depth of gathered() blocks: their commits recompute nothing yet


_pending = _Pending()


@contextmanager
def gathered() -> Iterator[None]:
    """Recompute once, when the block ends, what the changes committed inside it touched.

    For a loop of changes that each commit on their own (the tick acts on each breaching
    release in a transaction of its own): without it, every commit recomputes the releases it
    touched, and a service-wide change (an incident) recomputes every release of the service,
    so a tick that rolls back 60 releases of one service evaluated some 1,900 gates instead
    of 60. The verdicts are marked due inside each change's transaction all the same, so a
    reader meanwhile evaluates afresh and a crash leaves them for the tick.
    """
    _pending.gathering += 1
    try:
        yield
    finally:
        _pending.gathering -= 1
        if not _pending.gathering:
            # Inside a transaction, once it commits (what it wrote is then what is evaluated).
            transaction.on_commit(_flush, robust=True)


def changed(
    *,
    releases: Iterable[int] = (),
    services: Iterable[int] = (),
    every_service: bool = False,
    measured: Iterable[int] = (),
) -> None:
    """An input of these releases' gates (or of every unfinished release of these services, or
    of every service) changed in the current transaction: recompute their verdicts on commit.

    `measured`: new check results were recorded for these releases, none of which changes a
    criterion's standing by itself (a pass after a pass): only the ones whose kept verdict names
    a metric check (its sentence quotes the latest value) are recomputed. The tick records a
    result per release each minute, and recomputing every gate each minute would cost as much
    as not keeping them.

    Calls within one transaction are gathered into one recompute (ticking fourteen items of a
    checklist recomputes its release once).
    """
    if _keeper is None:
        return
    release_ids = {int(pk) for pk in releases}
    service_ids = None if every_service else {int(pk) for pk in services}
    measured_ids = {int(pk) for pk in measured} - release_ids
    if not release_ids and not measured_ids and service_ids is not None and not service_ids:
        return
    _keeper.mark_due(release_ids, service_ids, measured_ids)
    _pending.release_ids |= release_ids
    _pending.measured_ids |= measured_ids
    if service_ids is None or _pending.service_ids is None:
        _pending.service_ids = None
    else:
        _pending.service_ids |= service_ids
    # One callback per call, but the first to run takes everything pending and the others find
    # nothing left. robust: the change has committed; a failed recompute stays due for the tick.
    transaction.on_commit(_flush, robust=True)


def _flush() -> None:
    if _pending.gathering:
        return  # a gathered() block recomputes everything once it ends
    pending = _pending.release_ids, _pending.service_ids, _pending.measured_ids
    _pending.release_ids, _pending.service_ids, _pending.measured_ids = set(), set(), set()
    release_ids, service_ids, measured_ids = pending
    if _keeper is not None and (release_ids or measured_ids or service_ids is None or service_ids):
        _keeper.refresh(release_ids, service_ids, measured_ids)
