"""Statuses and verbs: every allowed value in one place."""

from django.db import models


class ReleaseStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    IN_PROGRESS = "in_progress", "In progress"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ABORTED = "aborted", "Aborted"

    @classmethod
    def active(cls) -> list[str]:
        """Statuses in which the release holds traffic and its current stage matters."""
        return [cls.IN_PROGRESS, cls.PAUSED]

    @classmethod
    def finished(cls) -> list[str]:
        return [cls.COMPLETED, cls.ROLLED_BACK, cls.ABORTED]


class StageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    PASSED = "passed", "Passed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    SKIPPED = "skipped", "Not reached"


class EventVerb(models.TextChoices):
    CREATED = "created", "Created"
    STARTED = "started", "Started"
    ADVANCED = "advanced", "Advanced"
    COMPLETED = "completed", "Completed"
    PAUSED = "paused", "Paused"
    RESUMED = "resumed", "Resumed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ABORTED = "aborted", "Aborted"
    GATE_OVERRIDDEN = "gate_overridden", "Gate overridden"
    UPDATED = "updated", "Updated"
    CHECKLIST_ITEM_DONE = "checklist_item_done", "Checklist item done"
    CHECKLIST_ITEM_REOPENED = "checklist_item_reopened", "Checklist item reopened"
    CHECKLIST_OPENED = "checklist_opened", "Checklist opened"
    SIGNED_OFF = "signed_off", "Signed off"
    SIGNOFF_WITHDRAWN = "signoff_withdrawn", "Sign-off withdrawn"
    SIGNOFF_DECIDED = "signoff_decided", "Go/no-go decided"
    SIGNOFFS_REQUESTED = "signoffs_requested", "Sign-offs requested"
    SIGNOFFS_LAPSED = "signoffs_lapsed", "Sign-offs lapsed"
    ARTIFACT_CHANGED = "artifact_changed", "Artifact changed"
    STEPPED_BACK = "stepped_back", "Stepped back"
    SENT_BACK = "sent_back", "Sent back to an earlier environment"


class BlockerKind(models.TextChoices):
    """Why a gate is red: the kind of each blocker the gate returns (and CI reads as `kind`).

    Listed most important first: this order is the blockers' severity (`rank`), which the
    dashboard's gate line follows to name the most important blocker first. The kinds that only
    wait (for time, a tick or a signature) come last; `waiting` names them.
    """

    STATUS = "status", "Release finished"
    PAUSED = "paused", "Release paused"
    METRICS = "metrics", "Metric check failing"
    INCIDENT = "incident", "Incident on the service"
    NO_GO = "no_go", "No-go"
    FREEZE = "freeze", "Change freeze"
    RUNNING_RELEASE = "running_release", "Another release running"
    # The step into another environment, before every earlier stage passed on this artifact.
    PROMOTION = "promotion", "Earlier environment not passed"
    AUTHOR_UNMATCHED = "author_unmatched", "Author matches no user"
    # A success criterion whose decision window ended inconclusive: a person decides.
    SUCCESS_UNDECIDED = "success_undecided", "Success criterion inconclusive"
    # Waiting only: the light is amber. A missing signature before an open checklist before a
    # pending check before time alone: the order a release manager would chase them.
    SIGNOFF = "signoff", "Sign-off needed"
    CHECKLIST = "checklist", "Checklist items open"
    METRICS_PENDING = "metrics_pending", "Metric check without a pass yet"
    TRAFFIC = "traffic", "Traffic not served yet"
    SOAK = "soak", "Soak time"

    # How the pages count the blockers after the first, by kind: "2 sign-offs, 1 checklist".
    @classmethod
    def noun(cls, kind: str, count: int) -> str:
        singular, plural = {
            cls.METRICS: ("failing metric check", "failing metric checks"),
            cls.SUCCESS_UNDECIDED: ("undecided success criterion", "undecided success criteria"),
            cls.INCIDENT: ("incident", "incidents"),
            cls.NO_GO: ("no-go", "no-gos"),
            cls.FREEZE: ("freeze", "freezes"),
            cls.PROMOTION: ("earlier stage not passed", "earlier stages not passed"),
            cls.RUNNING_RELEASE: ("release running alongside", "releases running alongside"),
            cls.AUTHOR_UNMATCHED: ("unmatched author", "unmatched authors"),
            cls.PAUSED: ("pause", "pauses"),
            cls.STATUS: ("finished release", "finished releases"),
            cls.SIGNOFF: ("sign-off", "sign-offs"),
            cls.CHECKLIST: ("checklist", "checklists"),
            cls.METRICS_PENDING: ("pending metric check", "pending metric checks"),
            cls.TRAFFIC: ("traffic minimum", "traffic minimums"),
            cls.SOAK: ("soak", "soaks"),
        }.get(kind, ("other", "others"))
        return f"{count} {singular if count == 1 else plural}"

    @classmethod
    def waiting(cls) -> frozenset[str]:
        """Kinds that only ask for time or for someone's tick or signature (amber, not red)."""
        return frozenset({cls.SOAK, cls.CHECKLIST, cls.SIGNOFF, cls.METRICS_PENDING, cls.TRAFFIC})

    @classmethod
    def rank(cls, kind: str) -> int:
        """0 for the most important kind; an unknown kind sorts last."""
        # `cls.values` walks the enum on every call; the dashboard ranks every blocker of a
        # thousand releases, so the order is looked up in a dict made once.
        return _BLOCKER_RANKS.get(kind, len(_BLOCKER_RANKS))


_BLOCKER_RANKS: dict[str, int] = {kind: n for n, kind in enumerate(BlockerKind.values)}


class Severity(models.TextChoices):
    # Ordered most severe first: "at or above SEV2" means SEV1 or SEV2.
    SEV1 = "sev1", "SEV1 (critical)"
    SEV2 = "sev2", "SEV2 (high)"
    SEV3 = "sev3", "SEV3 (moderate)"
    SEV4 = "sev4", "SEV4 (info)"

    @classmethod
    def rank(cls, value: str) -> int:
        """1 for SEV1 … 4 for SEV4: lower is more severe."""
        return int(value[-1])
