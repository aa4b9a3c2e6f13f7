"""The kept verdict: the gate's last answer for each release, for readers that must be cheap."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models

from apps.releases.choices import BlockerKind
from apps.releases.models import Release


class GateState(models.TextChoices):
    """The gate at a glance: open, only waiting (time, a tick, a signature), held, or no step."""

    GREEN = "green", "Green"
    AMBER = "amber", "Amber"
    RED = "red", "Red"
    FINISHED = "finished", "Finished"


class KeptVerdict(models.Model):
    """What `gate.evaluate` last answered for a release, recomputed whenever an input changes.

    Never a second implementation: `payload` is the gate endpoint's document for that answer,
    written only by apps/rollouts/verdicts.py from `gate.evaluate`. `version` goes up when the
    answer changes (ETags and long polls key on it); `next_change_at` is when time alone will
    change it (a soak ending, a freeze starting or ending, a sign-off lapsing), so the tick
    recomputes only those due.

    Reading (the dashboard, the API, OFREP): `apps.rollouts.verdicts.read_many(ids)` gives the
    kept verdicts of many releases in one query (recomputing first the few missing or due);
    `verdicts.read(id)` one. Filter releases by `kept_verdict__state` (GateState) or
    `kept_verdict__top_kind` (the most severe blocker's kind). `payload["blockers"]` lists the
    blockers in the gate's check order, as the API answers; `blockers_by_severity()` lists them
    most severe first (BlockerKind order: an incident or a failing metric before a no-go, before
    a missing sign-off, an open checklist, soak).
    """

    release = models.OneToOneField(
        Release, primary_key=True, on_delete=models.CASCADE, related_name="kept_verdict"
    )
    version = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=10, choices=GateState.choices)
    # The most important blocker's kind (BlockerKind.rank), for the dashboard's filter and sort.
    top_kind = models.CharField(max_length=32, blank=True)
    # A metric check holds the gate: its sentence quotes the latest value, so every new result
    # of the release recomputes it (gate_inputs.changed(measured=...)).
    metric_blocked = models.BooleanField(default=False)
    payload = models.JSONField(default=dict)
    # The traffic endpoint's document (percentage, status, stage), kept beside the gate's.
    traffic = models.JSONField(default=dict)
    computed_at = models.DateTimeField()
    next_change_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "kept gate verdict"
        indexes = [
            models.Index(
                fields=["next_change_at"],
                name="keptverdict_due",
                condition=models.Q(next_change_at__isnull=False),
            ),
            models.Index(fields=["state"], name="keptverdict_state"),
        ]

    def __str__(self) -> str:
        return f"release {self.release_id}: {self.state} (v{self.version})"

    def is_due(self, now: datetime) -> bool:
        """Whether time alone may have changed the answer since it was kept."""
        return self.next_change_at is not None and self.next_change_at <= now

    @property
    def etag(self) -> str:
        """The strong ETag of the gate and traffic answers: release and version."""
        return f'"{self.release_id}-{self.version}"'

    @property
    def can_advance(self) -> bool:
        return bool(self.payload.get("can_advance"))

    def gate_document(self) -> dict[str, Any]:
        """What `GET gate/` answers: the kept payload with its version and time (the DRF action
        and the lean read, apps/api/reads.py, both answer this)."""
        # can_advance first, as documented (docs/ci.md): what a reader looks for.
        return {
            "can_advance": self.payload["can_advance"],
            **self.payload,
            "version": self.version,
            "computed_at": self.computed_at,
        }

    def blockers_by_severity(self) -> list[dict[str, str]]:
        """The kept blockers ({"kind", "detail"}), most severe first; ties keep check order."""
        blockers = self.payload.get("blockers", [])
        return sorted(blockers, key=lambda b: BlockerKind.rank(b["kind"]))
