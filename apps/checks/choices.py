"""Every allowed value of the metric checks, in one place."""

from __future__ import annotations

from django.db import models


class MetricKind(models.TextChoices):
    # How samples of a metric combine over a window, and which significance test fits it.
    RATIO = "ratio", "Ratio 0–1 (mean weighted by count, e.g. error rate)"
    GAUGE = "gauge", "Gauge (mean, e.g. p95 latency, quality score)"
    COUNTER = "counter", "Counter (sum; no sample means zero, e.g. cross-contamination)"


class BadDirection(models.TextChoices):
    HIGHER = "higher", "Higher is worse"
    LOWER = "lower", "Lower is worse"


class SourceKind(models.TextChoices):
    PUSH = "push", "Pushed samples (API)"
    PROMETHEUS = "prometheus", "Prometheus query"
    SQL = "sql", "Read-only SQL query"


class Comparator(models.TextChoices):
    GT = ">", ">"
    GTE = ">=", "≥"
    LT = "<", "<"
    LTE = "<=", "≤"


class Reference(models.TextChoices):
    ABSOLUTE = "absolute", "Absolute thresholds on the release's own value"
    CONTROL = "control", "Compared with the control (the rest of the traffic)"
    BASELINE = "baseline", "Compared with the pre-release baseline"


class Tolerance(models.TextChoices):
    ABSOLUTE = "absolute", "Absolute difference (metric units)"
    RELATIVE = "relative", "Relative difference (%)"


class SignificanceTest(models.TextChoices):
    NONE = "none", "None"
    PROPORTIONS = "z-test", "Two-proportion z-test (ratio metrics with counts)"
    MANN_WHITNEY = "mann-whitney", "Mann-Whitney U (sample values)"


class TestMethod(models.TextChoices):
    # How a relative criterion's significance test is read (docs/metric-checks.md).
    SEQUENTIAL = "sequential", "Sequential (always valid: checked every minute, error ≤ alpha)"
    FIXED = "fixed", "Fixed horizon (one judgment over the window; repeated looks inflate alarms)"


class CriticalAction(models.TextChoices):
    NOTIFY = "notify", "Notify"
    PAUSE = "pause", "Pause the release"
    STEP_BACK = "step_back", "Step traffic back to the previous stage"
    ROLLBACK = "rollback", "Roll the release back"


class WarningAction(models.TextChoices):
    NOTIFY = "notify", "Notify"
    STEP_BACK = "step_back", "Step traffic back to the previous stage"
    NOTHING = "none", "Record only"


class Variant(models.TextChoices):
    TREATMENT = "treatment", "Treatment (the release)"
    CONTROL = "control", "Control (the rest)"
    BASELINE = "baseline", "Baseline (before the release)"


class Level(models.TextChoices):
    """What one evaluation measured, before history (consecutive, inconclusive limit) applies."""

    OK = "ok", "Within thresholds"
    WARNING = "warning", "Warning threshold crossed"
    CRITICAL = "critical", "Critical threshold crossed"
    NO_DATA = "no_data", "No or too few data"
    # A success criterion whose improvement is not significant yet: it waits, it never warns.
    PENDING = "pending", "Not yet significant"
    ERROR = "error", "Source failed"


class Verdict(models.TextChoices):
    PASS = "pass", "Pass"
    WARN = "warn", "Warn"
    FAIL = "fail", "Fail"
    INCONCLUSIVE = "inconclusive", "Inconclusive"

    @classmethod
    def severity(cls, verdict: str) -> int:
        return {cls.PASS: 0, cls.INCONCLUSIVE: 1, cls.WARN: 2, cls.FAIL: 3}.get(verdict, 0)


class RunTrigger(models.TextChoices):
    TICK = "tick", "Scheduled tick"
    MANUAL = "manual", "Run by hand"
