"""Metric checks: what is measured, where it is read, the rules, the data and every evaluation."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.releases.choices import Severity
from apps.releases.models import Release, RolloutPlan, Service, Stage, StageTemplate

from .choices import (
    BadDirection,
    Comparator,
    CriticalAction,
    Level,
    MetricKind,
    Reference,
    RunTrigger,
    SignificanceTest,
    SourceKind,
    TestMethod,
    Tolerance,
    Variant,
    Verdict,
    WarningAction,
)
from .evaluator import Rule

MINUTE = timedelta(minutes=1)
DECISION_WINDOW = timedelta(hours=48)


class MetricDefinition(models.Model):
    """A measured quantity (error_rate, p95_latency_seconds, ...), its unit and its bad side."""

    key = models.SlugField(max_length=80, unique=True, help_text="What CI sends as `metric`.")
    name = models.CharField(max_length=120)
    unit = models.CharField(max_length=20, blank=True, help_text="s, ms, requests, score, ...")
    kind = models.CharField(max_length=10, choices=MetricKind.choices, default=MetricKind.GAUGE)
    bad_direction = models.CharField(
        max_length=10, choices=BadDirection.choices, default=BadDirection.HIGHER
    )
    counts_traffic = models.BooleanField(
        default=False,
        help_text="The `count` of its treatment samples is the number of requests served; "
        "stages with a minimum number of requests count it.",
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    def format(self, value: float | None) -> str:
        """A value as people read it: ratios in percent, others with their unit."""
        if value is None:
            return "no value"
        if math.isinf(value):
            return "∞"
        if self.kind == MetricKind.RATIO:
            return f"{value * 100:.4g} %"
        return f"{value:.4g} {self.unit}".strip()


def sql_database_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(settings.CHECKS_SQL_DATABASES)]


class MetricSource(models.Model):
    """Where one metric of one service (or of every service) is read: pushed, Prometheus or SQL."""

    metric = models.ForeignKey(MetricDefinition, on_delete=models.CASCADE, related_name="sources")
    service = models.ForeignKey(
        Service,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="metric_sources",
        help_text="Empty: the source for every service without one of its own.",
    )
    kind = models.CharField(max_length=12, choices=SourceKind.choices, default=SourceKind.PUSH)
    base_url = models.URLField(
        blank=True, help_text="Prometheus server, e.g. http://prometheus.internal:9090"
    )
    database = models.CharField(
        max_length=60,
        blank=True,
        help_text="Name of a read-only database configured in CHECKS_SQL_DATABASES.",
    )
    query = models.TextField(
        blank=True,
        help_text="PromQL with {service} {environment} {release} {version} {variant} "
        "placeholders; or SQL returning rows (at, value[, count]) with %(service)s, "
        "%(environment)s, %(release)s, %(version)s, %(variant)s, %(start)s, %(end)s parameters.",
    )
    timeout_seconds = models.FloatField(
        default=5.0, validators=[MinValueValidator(0.1), MaxValueValidator(60)]
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["metric", "service"]
        constraints = [
            models.UniqueConstraint(
                fields=["metric", "service"], name="metricsource_one_per_service"
            ),
            models.UniqueConstraint(
                fields=["metric"], condition=Q(service=None), name="metricsource_one_default"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric} of {self.service or 'every service'}: {self.get_kind_display()}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.kind == SourceKind.PROMETHEUS:
            if not self.base_url:
                errors["base_url"] = "A Prometheus source needs the server's base URL."
            if not self.query.strip():
                errors["query"] = "A Prometheus source needs a PromQL query."
        if self.kind == SourceKind.SQL:
            names = dict(sql_database_choices())
            if self.database not in names:
                known = ", ".join(names) or "none configured"
                errors["database"] = (
                    f"Unknown read-only database {self.database!r} (known: {known})."
                )
            if not self.query.strip():
                errors["query"] = "An SQL source needs a query."
        if errors:
            raise ValidationError(errors)


class MetricCriterion(models.Model):
    """A rule on a metric for every stage of a plan, or for one stage template."""

    plan = models.ForeignKey(
        RolloutPlan,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="criteria",
        help_text="Watches every stage of this plan.",
    )
    stage_template = models.ForeignKey(
        StageTemplate,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="criteria",
        help_text="Watches only this stage.",
    )
    metric = models.ForeignKey(MetricDefinition, on_delete=models.PROTECT, related_name="+")
    comparator = models.CharField(
        max_length=2,
        choices=Comparator.choices,
        default=Comparator.GT,
        help_text="The bad side: `>` 0.05 means above 5 % is a breach.",
    )
    warning_threshold = models.FloatField(null=True, blank=True)
    critical_threshold = models.FloatField(null=True, blank=True)
    reference = models.CharField(
        max_length=10, choices=Reference.choices, default=Reference.ABSOLUTE
    )
    tolerance = models.CharField(
        max_length=10,
        choices=Tolerance.choices,
        default=Tolerance.RELATIVE,
        help_text="For control or baseline: thresholds apply to how much worse the release is.",
    )
    significance_test = models.CharField(
        max_length=14, choices=SignificanceTest.choices, default=SignificanceTest.NONE
    )
    p_value = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0001), MaxValueValidator(0.5)],
        help_text="A regression counts only when significant at this level (alpha).",
    )
    method = models.CharField(
        max_length=10,
        choices=TestMethod.choices,
        default=TestMethod.SEQUENTIAL,
        help_text="Sequential: always valid, on everything since the stage began, false alarms "
        "at most alpha however often it is checked. Fixed horizon: the test over the window "
        "alone, for a single judgment (checked every minute it alarms far more than alpha).",
    )
    minimum_effect = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="The smallest difference worth acting on, in the tolerance's units (20 with a "
        "relative tolerance: 20 % worse than the reference). Smaller ones, even significant, "
        "never act. Blank: the smallest positive threshold, else 10 % of the reference.",
    )
    success = models.BooleanField(
        default=False,
        help_text="Success criterion: the gate holds the advance until the release is "
        "significantly better than its reference by at least the minimum effect.",
    )
    decision_window = models.DurationField(
        default=DECISION_WINDOW,
        help_text="A success criterion still not significant this long after its stage began "
        "holds the gate until a release manager decides, with a reason.",
    )
    for_window = models.DurationField(
        default=timedelta(0),
        help_text="The breach must hold over this whole window (Prometheus `for`): every "
        "interval in it must breach. 0: the latest interval only.",
    )
    interval = models.DurationField(
        default=MINUTE, help_text="Samples are grouped into intervals of this length."
    )
    consecutive = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Evaluations in a row that must breach before it counts.",
    )
    min_samples = models.PositiveIntegerField(
        default=1, help_text="Fewer samples in the window: inconclusive."
    )
    inconclusive_limit = models.PositiveSmallIntegerField(
        default=5,
        help_text="This many inconclusive evaluations in a row count as a warning (0: never).",
    )
    on_critical = models.CharField(
        max_length=10, choices=CriticalAction.choices, default=CriticalAction.PAUSE
    )
    on_warning = models.CharField(
        max_length=10, choices=WarningAction.choices, default=WarningAction.NOTIFY
    )
    incident_severity = models.CharField(
        max_length=4,
        choices=Severity.choices,
        blank=True,
        help_text="The severity of the incident a critical breach opens (blank: the "
        "INCIDENTS_BREACH_SEVERITY setting).",
    )
    dry_run = models.BooleanField(
        default=False,
        help_text="Evaluated, recorded and shown, but never acts nor blocks the gate.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["plan", "stage_template", "metric", "id"]
        verbose_name_plural = "metric criteria"
        constraints = [
            models.CheckConstraint(
                condition=(Q(plan__isnull=False) & Q(stage_template__isnull=True))
                | (Q(plan__isnull=True) & Q(stage_template__isnull=False)),
                name="criterion_on_plan_or_stage",
            ),
            models.CheckConstraint(
                condition=Q(warning_threshold__isnull=False)
                | Q(critical_threshold__isnull=False)
                | Q(success=True),
                name="criterion_has_threshold",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        threshold = self.critical_threshold
        if threshold is None:
            threshold = self.warning_threshold
        return self.label_at(threshold)

    def label_at(self, threshold: float | None) -> str:
        """The criterion read at one of its thresholds ("error_rate > 2 %" for the warning)."""
        subject = self.metric.key
        if self.success:
            effect = self.rule().effect
            unit = " %" if self.tolerance == Tolerance.RELATIVE else ""
            by = f" by ≥ {effect:g}{unit}" if effect else ""
            return f"success: {subject} better than {self.reference}{by}"
        if self.reference != Reference.ABSOLUTE:
            unit = " %" if self.tolerance == Tolerance.RELATIVE else ""
            return f"{subject} vs {self.reference} worse by {self.comparator} {threshold:g}{unit}"
        return f"{subject} {self.comparator} {self.format_threshold(threshold)}"

    def format_threshold(self, threshold: float | None) -> str:
        if threshold is None:
            return "—"
        if self.reference != Reference.ABSOLUTE:
            return f"{threshold:g} %" if self.tolerance == Tolerance.RELATIVE else f"{threshold:g}"
        return self.metric.format(threshold)

    @property
    def window(self) -> timedelta:
        """How far back one evaluation looks."""
        return max(self.for_window, self.interval)

    def rule(self) -> Rule:
        """The evaluator's view of this criterion."""
        return Rule(
            comparator=self.comparator,
            warning=self.warning_threshold,
            critical=self.critical_threshold,
            kind=self.metric.kind,
            bad_direction=self.metric.bad_direction,
            for_window=self.for_window,
            interval=self.interval,
            min_samples=self.min_samples,
            reference=self.reference,
            tolerance=self.tolerance,
            test=self.significance_test,
            alpha=self.p_value,
            consecutive=self.consecutive,
            inconclusive_limit=self.inconclusive_limit,
            method=self.method,
            minimum_effect=self.minimum_effect,
            success=self.success,
        )

    def applies_to(self, stage: Stage | None) -> bool:
        """Does this criterion watch the given stage of a release?"""
        if stage is None:
            return False
        if self.stage_template_id is not None:
            return stage.template_id == self.stage_template_id
        return True

    def clean(self) -> None:
        errors: dict[str, str] = {}
        # The plan or stage may be set but not saved yet: a criterion added on "Add rollout
        # plan" is validated before its plan exists (the id is None, the object is there).
        has_plan = self.plan_id is not None or self.plan is not None
        has_stage = self.stage_template_id is not None or self.stage_template is not None
        if has_plan == has_stage:
            errors["plan"] = "Attach the criterion to a plan (all stages) or to one stage."
        if self.warning_threshold is None and self.critical_threshold is None and not self.success:
            errors["critical_threshold"] = "Give a warning or a critical threshold (or both)."
        for name in ("warning_threshold", "critical_threshold"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                errors[name] = "A threshold must be a finite number."
        if self.interval is not None and (
            self.interval < MINUTE or self.interval.total_seconds() % 60
        ):
            errors["interval"] = "The interval is a whole number of minutes, at least one."
        elif (
            self.for_window is not None
            and self.interval
            and (self.for_window.total_seconds() % self.interval.total_seconds())
        ):
            errors["for_window"] = "The window is a whole number of intervals."
        if self.for_window is not None and self.for_window > timedelta(days=1):
            errors["for_window"] = "The window is at most a day."
        metric = self.metric if self.metric_id else None
        if self.significance_test == SignificanceTest.PROPORTIONS and metric is not None:
            if metric.kind != MetricKind.RATIO:
                errors["significance_test"] = "The z-test compares ratios; this metric is not one."
        if self.significance_test != SignificanceTest.NONE and self.reference == Reference.ABSOLUTE:
            errors["significance_test"] = "A significance test needs a control or a baseline."
        if self.success:
            if self.reference == Reference.ABSOLUTE:
                errors["reference"] = (
                    "A success criterion compares the release with a control or a baseline."
                )
            if self.method != TestMethod.SEQUENTIAL:
                errors["method"] = "A success criterion is judged by the sequential test."
            if self.decision_window is not None and self.decision_window <= timedelta(0):
                errors["decision_window"] = "The decision window must be longer than zero."
        if errors:
            raise ValidationError(errors)


class SampleQuerySet(models.QuerySet):
    def older_than(self, when: Any) -> SampleQuerySet:
        return self.filter(at__lt=when)


class Sample(models.Model):
    """One measured value of a metric for a release's treatment, control or baseline."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="samples")
    metric = models.ForeignKey(MetricDefinition, on_delete=models.PROTECT, related_name="+")
    variant = models.CharField(max_length=10, choices=Variant.choices, default=Variant.TREATMENT)
    at = models.DateTimeField(default=timezone.now)
    value = models.FloatField()
    count = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Requests behind a rate (weights it; z-test)."
    )
    received_at = models.DateTimeField(default=timezone.now)

    objects = SampleQuerySet.as_manager()

    class Meta:
        ordering = ["release", "metric", "variant", "at"]
        constraints = [
            # Also the index every evaluation reads through: (release, metric, variant, at).
            models.UniqueConstraint(
                fields=["release", "metric", "variant", "at"], name="sample_once"
            ),
        ]
        indexes = [models.Index(fields=["at"], name="sample_at")]

    def __str__(self) -> str:
        return f"{self.metric_id}={self.value} ({self.variant}) at {self.at:%Y-%m-%d %H:%M:%S}"


class CheckRun(models.Model):
    """One evaluation of every criterion of one release: by the tick (one per slot) or by hand."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="check_runs")
    stage = models.ForeignKey(Stage, null=True, on_delete=models.SET_NULL, related_name="+")
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices, default=RunTrigger.TICK)
    # The tick's minute: two ticks in the same minute claim each release once (unique below).
    slot = models.DateTimeField(null=True, blank=True)
    claim = models.UUIDField(null=True, blank=True, editable=False)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    verdict = models.CharField(max_length=14, choices=Verdict.choices, blank=True)
    action = models.CharField(max_length=200, blank=True, help_text="What the run did.")

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["release", "slot"], condition=Q(slot__isnull=False), name="checkrun_slot"
            ),
        ]
        indexes = [
            models.Index(fields=["release", "-started_at"], name="checkrun_release"),
            # The tick reads back the runs it claimed (`slot = … AND claim = …`); the unique
            # constraint leads with the release, so without this that read scans every run ever
            # recorded (bench/tick_scale.py --history-minutes). Partial: manual runs have no claim.
            models.Index(fields=["claim"], condition=Q(claim__isnull=False), name="checkrun_claim"),
        ]

    def __str__(self) -> str:
        return f"Checks of {self.release_id} at {self.started_at:%Y-%m-%d %H:%M}"


class CheckResult(models.Model):
    """One criterion's evaluation: the value, the verdict, and the thresholds used then."""

    run = models.ForeignKey(CheckRun, on_delete=models.CASCADE, related_name="results")
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="+")
    criterion = models.ForeignKey(
        MetricCriterion, null=True, on_delete=models.SET_NULL, related_name="results"
    )
    label = models.CharField(max_length=200)
    at = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=10, choices=Level.choices)
    verdict = models.CharField(max_length=14, choices=Verdict.choices, db_index=True)
    value = models.FloatField(null=True, blank=True)
    reference_value = models.FloatField(null=True, blank=True)
    delta = models.FloatField(null=True, blank=True, help_text="How much worse than reference.")
    p_value = models.FloatField(null=True, blank=True)
    samples = models.PositiveIntegerField(default=0)
    threshold = models.FloatField(null=True, blank=True, help_text="The threshold crossed.")
    more_needed = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Sequential test: treatment samples (requests, for a rate) more before the "
        "minimum effect could be told apart; blank: not estimable.",
    )
    detail = models.TextField(blank=True)
    dry_run = models.BooleanField(default=False)
    # Evaluations in a row at this level (for `consecutive` and the inconclusive limit), and the
    # breach episode this result belongs to (one notification per episode).
    critical_streak = models.PositiveIntegerField(default=0)
    breach_streak = models.PositiveIntegerField(default=0)
    nodata_streak = models.PositiveIntegerField(default=0)
    episode = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["release", "criterion", "at"], name="checkresult_history"),
            # Reports read a period's results across all releases; without this they scan the
            # whole history, which grows by one row per criterion per running release a minute.
            models.Index(fields=["at"], name="checkresult_at"),
        ]

    def __str__(self) -> str:
        return f"{self.label}: {self.verdict}"

    @property
    def threshold_level(self) -> str:
        """Which threshold a warn or fail crossed, in words: "warning" or "critical"."""
        return "critical" if self.verdict == Verdict.FAIL else "warning"

    @property
    def fired_rule(self) -> str:
        """The rule that fired: a warning names the warning threshold, not the critical label
        the result was stored under ("error_rate > 2 % (warning)", not "error_rate > 5 %")."""
        criterion = self.criterion
        if (
            criterion is None
            or criterion.success
            or self.threshold is None
            or self.verdict not in (Verdict.WARN, Verdict.FAIL)
        ):
            return self.label
        return f"{criterion.label_at(self.threshold)} ({self.threshold_level})"


class CheckNotification(models.Model):
    """A claimed notification: at most one per release, criterion, breach episode and verdict."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="+")
    criterion = models.ForeignKey(MetricCriterion, on_delete=models.CASCADE, related_name="+")
    episode = models.BigIntegerField()
    verdict = models.CharField(max_length=14, choices=Verdict.choices)
    result = models.ForeignKey(CheckResult, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["release", "criterion", "episode", "verdict"], name="notify_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.verdict} notification for release {self.release_id}"


class SuccessResolution(models.Model):
    """A release manager's decision on a success criterion whose window ended inconclusive:
    the gate stops holding on it for this stage (apps/checks/success.py writes it)."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="+")
    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="+")
    criterion = models.ForeignKey(MetricCriterion, on_delete=models.CASCADE, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.CharField(max_length=120, help_text="Who decided, as the timeline names them.")
    reason = models.TextField()
    # What the criterion showed when it was decided: the evidence stays with the decision.
    evidence = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["stage", "criterion"], name="success_resolved_once"),
        ]

    def __str__(self) -> str:
        return f"Success criterion {self.criterion_id} of release {self.release_id} resolved"


def enabled_criteria() -> models.QuerySet[MetricCriterion]:
    """Criteria that are switched on, with their metric: for prefetching onto plans and stages."""
    return MetricCriterion.objects.filter(enabled=True).select_related("metric").order_by("id")


class StageCriteria(StageTemplate):
    """A plan's stage seen from the metric checks: where its own criteria are edited."""

    class Meta:
        proxy = True
        verbose_name = "stage criteria"
        verbose_name_plural = "stage criteria"
