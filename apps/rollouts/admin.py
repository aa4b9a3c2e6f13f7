"""Release admin: the release page, its stages and timeline, the transition actions, checks now.

Lives in rollouts because it drives the transitions module and shows the gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from apps.core.actors import Actor
from apps.releases import gate_inputs
from apps.releases.choices import EventVerb, ReleaseStatus
from apps.releases.models import Event, Release, Stage

from . import gate, inputs
from .breach_response import run_checks_now
from .promotion import change_artifact
from .registration import register_release
from .transitions import TransitionError, allowed_actions, earlier_stages

# How many released names one success message lists before it says "and N more".
MESSAGE_NAME_LIMIT = 10


class StageInline(admin.TabularInline):
    """A release's own stages: read-only, they change only through transitions."""

    model = Stage
    ordering = ["position"]
    fields = [
        "position",
        "name",
        "traffic_percentage",
        "min_soak",
        "auto_advance",
        "status",
        "entered_at",
        "exited_at",
        "paused_for",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EventInline(admin.TabularInline):
    """The release's audit timeline, read-only for everyone."""

    model = Event
    fields = ["created_at", "verb", "actor_name", "stage", "reason", "data"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["created_at", "id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return super().get_queryset(request).select_related("stage")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReleaseAddForm(forms.ModelForm):
    """Registering a release by hand; saved through create_release, never by form.save()."""

    changelog_url = forms.URLField(required=False, assume_scheme="https")

    class Meta:
        model = Release
        fields = [
            "service",
            "environment",
            "version",
            "plan",
            "commit_sha",
            "commit_time",
            "changelog_url",
            "author",
            "author_name",
        ]
        help_texts = {"plan": "Leave empty to use the service's default plan."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["plan"].required = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        service, plan = cleaned.get("service"), cleaned.get("plan")
        if service is not None and plan is None:
            plan = service.default_plan
            if plan is None:
                self.add_error("plan", f"{service} has no default plan; choose one.")
                return cleaned
            cleaned["plan"] = plan
        if plan is not None and not plan.stages.exists():
            self.add_error("plan", f"Plan {plan} has no stages yet.")
        return cleaned


class ReasonForm(forms.Form):
    """The reason asked on the intermediate page of a transition action."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Recorded in each release's timeline and sent with the notification.",
    )

    def __init__(self, *args: Any, reason_required: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = reason_required


class StepBackForm(ReasonForm):
    """A step back's reason page also asks where to: the previous stage unless one is chosen."""

    to_stage = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        label="Step back to",
        help_text="Blank: each release's previous stage.",
    )

    def __init__(self, *args: Any, releases: list[Release], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices: list[tuple[Any, str]] = [("", "The previous stage")]
        if len(releases) == 1:
            # One release: its earlier stages by position (names may repeat across releases).
            choices += [(stage.position, str(stage)) for stage in earlier_stages(releases[0])]
        field = self.fields["to_stage"]
        if len(releases) > 1:
            field.help_text = (
                "Several releases are selected: each steps back to its previous stage."
            )
        field.choices = choices


@dataclass(frozen=True)
class TransitionAction:
    """How an admin action presents one transition."""

    action: str  # the admin action's name, posted back by the reason page
    verb: str  # imperative, lower case: "roll back"
    done: str  # past tense: "Rolled back"
    force: bool = False  # the release's next gated step, past a red gate (inputs.forced_step)

    def reason_required(self, key: str) -> bool:
        """The one table's answer (apps.rollouts.inputs); forcing always needs a reason."""
        return inputs.needs_reason("advance" if self.force else key, force=self.force)


TRANSITION_ACTIONS: dict[str, TransitionAction] = {
    "start": TransitionAction("start_releases", "start", "Started"),
    "advance": TransitionAction("advance_releases", "advance", "Advanced"),
    "pause": TransitionAction("pause_releases", "pause", "Paused"),
    "resume": TransitionAction("resume_releases", "resume", "Resumed"),
    "rollback": TransitionAction("rollback_releases", "roll back", "Rolled back"),
    "abort": TransitionAction("abort_releases", "abort", "Aborted"),
    "step_back": TransitionAction("step_back_releases", "step back", "Stepped back"),
    "force": TransitionAction(
        "force_advance_releases", "force past the red gate", "Forced ahead", force=True
    ),
}


def describe_state(release: Release) -> str:
    """Where a release stands, in a few words for messages and the reason page."""
    text = release.get_status_display().lower()
    if release.status in ReleaseStatus.active() and release.current_stage is not None:
        stage = release.current_stage
        percentage = f"{stage.traffic_percentage}%"
        # Demo plans name stages by their percentage; "25% (25%)" would read as a stutter.
        text += (
            f" at {stage.name}" if stage.name == percentage else f" at {stage.name} ({percentage})"
        )
    return text


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    """Releases: registered through create_release, moved only by the transition actions."""

    list_display = [
        "version",
        "service",
        "environment",
        "status",
        "current_stage_name",
        "traffic",
        "author_column",
        "created_at",
    ]
    list_display_links = ["version"]
    list_filter = ["status", "service", "environment", "plan"]
    list_select_related = ["service", "environment", "plan", "current_stage", "author"]
    search_fields = ["version", "service__name", "service__slug", "commit_sha", "author_name"]
    date_hierarchy = "created_at"
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    inlines = [StageInline, EventInline]
    add_form = ReleaseAddForm
    actions = [
        "start_releases",
        "advance_releases",
        "pause_releases",
        "resume_releases",
        "rollback_releases",
        "abort_releases",
        "step_back_releases",
        "force_advance_releases",
        "run_metric_checks",
    ]
    add_fieldsets = [
        (None, {"fields": ["service", "environment", "version", "plan"]}),
        (
            "Commit",
            {"fields": ["commit_sha", "commit_time", "changelog_url", "author", "author_name"]},
        ),
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "service",
                    "environment",
                    "version",
                    "plan",
                    "status",
                    "current_stage_name",
                    "traffic",
                    "gate_verdict",
                    "next_actions",
                ]
            },
        ),
        (
            "Commit",
            {"fields": ["commit_sha", "commit_time", "changelog_url", "author", "author_name"]},
        ),
        (
            "Timeline",
            {"fields": ["created_at", "started_at", "paused_at", "finished_at", "events_link"]},
        ),
    ]
    # Once created, what a release is (and its state) is fixed; only commit details can change.
    change_readonly_fields = [
        "service",
        "environment",
        "version",
        "plan",
        "status",
        "current_stage_name",
        "traffic",
        "gate_verdict",
        "next_actions",
        "created_at",
        "started_at",
        "paused_at",
        "finished_at",
        "events_link",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Release]:
        return super().get_queryset(request).with_related()

    def get_fieldsets(self, request: HttpRequest, obj: Release | None = None) -> list:
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Release | None = None) -> list[str]:
        return [] if obj is None else self.change_readonly_fields

    def get_form(
        self, request: HttpRequest, obj: Release | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(self, request: HttpRequest, obj: Release | None) -> list:
        # Stages and events exist only once create_release has made them.
        return [] if obj is None else self.inlines

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"author": request.user.pk, **super().get_changeform_initial_data(request)}

    def has_delete_permission(self, request: HttpRequest, obj: Release | None = None) -> bool:
        # Deleting a release would erase its audit timeline with it; abort or roll back instead.
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("releases.operate_release")

    def has_force_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("releases.operate_release") and request.user.has_perm(
            "releases.force_advance"
        )

    def save_model(
        self, request: HttpRequest, obj: Release, form: forms.Form, change: bool
    ) -> None:
        actor = Actor.for_user(request.user)
        if change:
            changed = [name for name in form.changed_data if name in form.fields]
            live = obj.status not in ReleaseStatus.finished()
            if "commit_sha" in changed and obj.commit_sha and live:
                # A new artifact: the sign-offs given on the old one lapse (apps.signoffs), and
                # a plan across environments goes back to where the old one's evidence starts.
                change_artifact(obj, commit_sha=obj.commit_sha, actor=actor)
            if not changed:
                return
            # Only the edited columns: a full save could write back a status that a transition
            # changed since this request read the row.
            obj.save(update_fields=[*changed, "updated_at"])
            Event.record(obj, EventVerb.UPDATED, actor, data={"fields": changed})
            gate_inputs.changed(releases=[obj.pk])  # e.g. its author, whom sign-offs compare
            return
        data = form.cleaned_data
        release, created = register_release(
            service=data["service"],
            environment=data["environment"],
            version=data["version"],
            plan=data["plan"],
            actor=actor,
            commit_sha=data["commit_sha"],
            commit_time=data["commit_time"],
            changelog_url=data["changelog_url"],
            author=data["author"],
            author_name=data["author_name"],
        )
        if not created:
            self.message_user(
                request,
                f"{release} was registered meanwhile by someone else; showing that one.",
                messages.WARNING,
            )
        # The admin goes on with the form's instance (log entry, redirect): make it the release
        # create_release saved.
        for field in Release._meta.concrete_fields:
            setattr(obj, field.attname, getattr(release, field.attname))
        obj._state.adding, obj._state.db = False, release._state.db

    # --- columns and read-only fields -------------------------------------------------------

    @admin.display(description="Current stage", ordering="current_stage__position")
    def current_stage_name(self, obj: Release) -> str:
        return obj.current_stage.name if obj.current_stage else "—"

    @admin.display(description="Traffic")
    def traffic(self, obj: Release) -> str:
        return f"{obj.traffic_percentage}%"

    @admin.display(description="Author", ordering="author_name")
    def author_column(self, obj: Release) -> str:
        return obj.author_display or "—"

    @admin.display(description="Gate")
    def gate_verdict(self, obj: Release) -> str:
        verdict = gate.evaluate(obj)
        if not verdict.step:
            return "No next step: the release is finished."
        if verdict.can_advance:
            return f"Green: the release may {verdict.step}."
        return format_html(
            "Red for {}:<ul>{}</ul>",
            verdict.step,
            format_html_join("", "<li>{}</li>", ((b.detail,) for b in verdict.blockers)),
        )

    @admin.display(description="Allowed now")
    def next_actions(self, obj: Release) -> str:
        names = [TRANSITION_ACTIONS[a].verb for a in allowed_actions(obj)]
        return ", ".join(names) or "nothing: the release is finished"

    @admin.display(description="Events")
    def events_link(self, obj: Release) -> str:
        url = reverse("admin:releases_event_changelist") + f"?release__id__exact={obj.pk}"
        return format_html('<a href="{}">All events of this release</a>', url)

    # --- transition actions ------------------------------------------------------------------

    @admin.action(description="Start the selected releases", permissions=["operate"])
    def start_releases(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._transition(request, queryset, "start")

    @admin.action(description="Advance the selected releases", permissions=["operate"])
    def advance_releases(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._transition(request, queryset, "advance")

    @admin.action(description="Pause the selected releases", permissions=["operate"])
    def pause_releases(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._transition(request, queryset, "pause")

    @admin.action(description="Resume the selected releases", permissions=["operate"])
    def resume_releases(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._transition(request, queryset, "resume")

    @admin.action(description="Roll back the selected releases", permissions=["operate"])
    def rollback_releases(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._transition(request, queryset, "rollback")

    @admin.action(description="Abort the selected (planned) releases", permissions=["operate"])
    def abort_releases(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._transition(request, queryset, "abort")

    @admin.action(
        description="Step the selected releases' traffic back to an earlier stage",
        permissions=["operate"],
    )
    def step_back_releases(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._transition(request, queryset, "step_back")

    @admin.action(description="Force the next step past a red gate", permissions=["force"])
    def force_advance_releases(
        self, request: HttpRequest, queryset: QuerySet
    ) -> HttpResponse | None:
        return self._transition(request, queryset, "force")

    @admin.action(description="Run metric checks now", permissions=["operate"])
    def run_metric_checks(self, request: HttpRequest, queryset: QuerySet[Release]) -> None:
        """Evaluate (and act on) the criteria of the selected running releases at once."""
        running = list(queryset.filter(status=ReleaseStatus.IN_PROGRESS).order_by("pk"))
        skipped = queryset.exclude(status=ReleaseStatus.IN_PROGRESS).count()
        results = acted = 0
        for release in running:
            report = run_checks_now(release)
            results += report.results
            acted += len(report.paused) + len(report.rolled_back) + len(report.stepped_back)
        text = f"Checked {len(running)} running release(s): {results} criterion result(s)"
        if acted:
            text += (
                f"; {acted} release(s) paused, stepped back or rolled back by a breaching criterion"
            )
        if skipped:
            text += f"; {skipped} not running, not checked"
        self.message_user(request, text + ".", messages.WARNING if acted else messages.SUCCESS)

    def _transition(
        self, request: HttpRequest, queryset: QuerySet[Release], key: str
    ) -> HttpResponse | None:
        """Ask for a reason, then run the transition on each release and report every outcome."""
        spec = TRANSITION_ACTIONS[key]
        releases = list(queryset.order_by("pk"))
        confirmed = "apply" in request.POST
        required = spec.reason_required(key)
        data = request.POST if confirmed else None
        if key == "step_back":
            form = StepBackForm(data, reason_required=required, releases=releases)
        else:
            form = ReasonForm(data, reason_required=required)
        if not (confirmed and form.is_valid()):
            return self._reason_page(request, releases, spec, form)

        reason = form.cleaned_data["reason"]
        to_stage = form.cleaned_data.get("to_stage")
        actor = Actor.for_user(request.user)
        done: list[Release] = []
        for release in releases:
            try:
                self._apply(release, key, spec, actor, reason, to_stage)
            except TransitionError as exc:
                details = [b.detail for b in exc.blockers if b.detail not in exc.message]
                refusal = " ".join([exc.message, *details])
                self.message_user(
                    request, f"Could not {spec.verb} {release}: {refusal}", messages.ERROR
                )
            except ValidationError as exc:
                self.message_user(
                    request,
                    f"Could not {spec.verb} {release}: {' '.join(exc.messages)}",
                    messages.ERROR,
                )
            else:
                done.append(release)
        if done:
            names = [f"{r} (now {describe_state(r)})" for r in done[:MESSAGE_NAME_LIMIT]]
            if len(done) > MESSAGE_NAME_LIMIT:
                names.append(f"and {len(done) - MESSAGE_NAME_LIMIT} more")
            self.message_user(
                request,
                f"{spec.done} {len(done)} of {len(releases)} release(s): {'; '.join(names)}.",
                messages.SUCCESS,
            )
        return None

    @staticmethod
    def _apply(
        release: Release,
        key: str,
        spec: TransitionAction,
        actor: Actor,
        reason: str,
        to_stage: int | None = None,
    ) -> Release:
        if spec.force:
            return inputs.run(
                release, inputs.forced_step(release), actor=actor, reason=reason, force=True
            )
        if to_stage is not None:
            return inputs.run(release, key, actor=actor, reason=reason, to_stage=to_stage)
        return inputs.run(release, key, actor=actor, reason=reason)

    def _reason_page(
        self,
        request: HttpRequest,
        releases: list[Release],
        spec: TransitionAction,
        form: ReasonForm,
    ) -> TemplateResponse:
        rows = []
        for release in releases:
            verdict = gate.evaluate(release)
            rows.append(
                {
                    "release": release,
                    "state": describe_state(release),
                    "gate": verdict.summary if verdict.step else "finished",
                    "gate_red": bool(verdict.step) and not verdict.can_advance,
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"{spec.verb.capitalize()}: give a reason",
            "opts": self.opts,
            "spec": spec,
            "rows": rows,
            "form": form,
            "action": spec.action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/releases/release/transition_reason.html", context)
