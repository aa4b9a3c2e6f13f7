"""Apply a configuration document: validate it, then make the database say what it says, in one
transaction, listing every change (the diff). `dry_run` runs the very same apply and rolls it
back, so the diff shown is the diff that would be applied.

What the file names is made to match it; what it does not name is left alone (a plan, service,
template, policy or freeze window missing from the file is not deleted). Inside a plan or a
policy the file is the whole truth: stages, criteria, checklist links, sign-off rules and
escalation levels not in it are removed. Objects are matched by their keys (slugs, names, the
metric and service of a source); a stage by its position, a criterion by its stage, metric and
order among those, so an unchanged row is never rewritten and its history stays attached.
Releases keep the stages they copied at registration: nothing here touches a release.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction

from apps.checklists.models import ChecklistTemplate, PlanChecklist
from apps.checklists.runbook import DetectedChecklist, DetectedItem, DetectedSection
from apps.checklists.services import save_template_version
from apps.checks.choices import SourceKind
from apps.checks.models import MetricCriterion, MetricDefinition, MetricSource
from apps.core.actors import Actor
from apps.incidents.models import (
    Contact,
    EscalationLevel,
    EscalationPolicy,
    IncidentRouting,
    OnCallRotation,
    RoutingRule,
)
from apps.releases import gate_inputs
from apps.releases.models import Environment, RolloutPlan, Service, StageTemplate
from apps.signoffs.models import FreezeWindow, SignOffRule

from .export import without_credentials
from .fields import FieldError, carried, from_file, to_file
from .schema import validation_errors

# Serializes concurrent applies on PostgreSQL (two pipelines merging at once): the second
# computes its diff after the first has committed. SQLite serializes writers by itself.
LOCK_KEY = 0x726F6C6C  # "roll"


class ConfigError(ValueError):
    """The document cannot be applied; `errors` name each problem by its place in the file."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Change:
    op: str  # "create", "update", "delete"
    what: str  # e.g. "plan checkout / stage 2 (canary)"
    detail: str = ""

    def line(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.op]
        return f"{sign} {self.what}" + (f": {self.detail}" if self.detail else "")


@dataclass
class Result:
    changes: list[Change] = field(default_factory=list)
    applied: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "changed": bool(self.changes),
            "changes": [
                {"op": c.op, "what": c.what, "detail": c.detail, "line": c.line()}
                for c in self.changes
            ],
        }


class _Applier:
    def __init__(self, *, actor: Actor, allow_sql: bool) -> None:
        self.actor = actor
        self.allow_sql = allow_sql
        self.changes: list[Change] = []
        self.errors: list[str] = []

    # --- generic --------------------------------------------------------------------------

    def values(self, model: type[models.Model], data: dict, where: str) -> dict[str, Any]:
        """The carried columns the entry gives, as the columns hold them; absent: default."""
        found = {}
        for f in carried(model):
            if f.name not in data:
                continue
            try:
                found[f.name] = from_file(f, data[f.name])
            except FieldError as exc:
                self.errors.append(f"{where}.{f.name}: {exc}")
        return found

    def save(
        self,
        obj: models.Model | None,
        model: type[models.Model],
        fixed: dict[str, Any],
        values: dict[str, Any],
        what: str,
        where: str,
    ) -> models.Model | None:
        """Create the object, or update the columns that differ; record what changed."""
        if obj is None:
            obj = model(**fixed, **values)
            op, detail = "create", ""
        else:
            differ = []
            for name, value in {**fixed, **values}.items():
                current = getattr(obj, name)
                if current != value:
                    field_ = model._meta.get_field(name)
                    differ.append(
                        f"{name} {self.show(field_, current)} → {self.show(field_, value)}"
                    )
                    setattr(obj, name, value)
            if not differ:
                return obj
            op, detail = "update", ", ".join(differ)
        try:
            obj.full_clean()
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                place = where if name == "__all__" else f"{where}.{name}"
                self.errors.extend(f"{place}: {m}" for m in messages)
            return None
        obj.save()
        self.changes.append(Change(op, what, detail))
        return obj

    @staticmethod
    def show(field_: models.Field, value: Any) -> str:
        if isinstance(field_, models.ForeignKey):
            return repr(str(value)) if value is not None else "none"
        shown = to_file(field_, value)
        return repr(shown) if isinstance(shown, str) else str(shown)

    def set_m2m(self, obj: models.Model, name: str, wanted: list, label, what: str) -> None:
        manager = getattr(obj, name)
        current = set(manager.all())
        if current != set(wanted):
            before = ", ".join(sorted(label(o) for o in current)) or "none"
            after = ", ".join(sorted(label(o) for o in wanted)) or "none"
            manager.set(wanted)
            self.changes.append(Change("update", what, f"{name} {before} → {after}"))

    def delete(self, obj: models.Model, what: str) -> None:
        obj.delete()
        self.changes.append(Change("delete", what))

    def lookup(self, model: type[models.Model], where: str, label: str, **key: Any) -> Any:
        """The object the file refers to by key; an error naming it when there is none."""
        if key and all(v is None for v in key.values()):
            return None
        found = list(model.objects.filter(**key)[:2])
        if len(found) == 1:
            return found[0]
        shown = ", ".join(f"{k}={v!r}" for k, v in key.items())
        if not found:
            self.errors.append(f"{where}: no {label} with {shown}.")
        else:
            self.errors.append(f"{where}: more than one {label} with {shown}.")
        return None

    # --- sections ---------------------------------------------------------------------------

    def environments(self, entries: list[dict]) -> None:
        for i, data in enumerate(entries):
            where = f"environments[{i}]"
            obj = Environment.objects.filter(slug=data["slug"]).first()
            self.save(
                obj,
                Environment,
                {"slug": data["slug"]},
                self.values(Environment, data, where),
                f"environment {data['slug']}",
                where,
            )

    def metrics(self, entries: list[dict]) -> None:
        for i, data in enumerate(entries):
            where = f"metrics[{i}]"
            obj = MetricDefinition.objects.filter(key=data["key"]).first()
            self.save(
                obj,
                MetricDefinition,
                {"key": data["key"]},
                self.values(MetricDefinition, data, where),
                f"metric {data['key']}",
                where,
            )

    def sources(self, entries: list[dict]) -> None:
        for i, data in enumerate(entries):
            where = f"sources[{i}]"
            metric = self.lookup(MetricDefinition, where + ".metric", "metric", key=data["metric"])
            service = self.lookup(Service, where + ".service", "service", slug=data.get("service"))
            if metric is None or (data.get("service") and service is None):
                continue
            obj = MetricSource.objects.filter(metric=metric, service=service).first()
            values = self.values(MetricSource, data, where)
            # The file carries the URL without credentials: the stored ones stay while the
            # rest of the URL is unchanged.
            if obj is not None and values.get("base_url") == without_credentials(obj.base_url):
                values["base_url"] = obj.base_url
            before = (obj.kind, obj.database, obj.query) if obj else None
            what = f"source of {metric.key} for {service.slug if service else 'every service'}"
            saved = self.save(
                obj, MetricSource, {"metric": metric, "service": service}, values, what, where
            )
            touched = saved is not None and (
                before is None or before != (saved.kind, saved.database, saved.query)
            )
            if touched and SourceKind.SQL in (saved.kind, before[0] if before else None):
                if not self.allow_sql:
                    self.errors.append(
                        f"{where}: SQL sources run queries on a database; only a superuser "
                        "changes them (the admin, or manage.py apply_config)."
                    )

    def checklist_templates(self, entries: list[dict]) -> None:
        for i, data in enumerate(entries):
            where = f"checklist_templates[{i}]"
            name = data["name"].strip()
            current = ChecklistTemplate.objects.filter(name=name, is_current=True).first()
            wanted = [
                (
                    s["name"],
                    [
                        (it["text"], it.get("required", True), it.get("key", ""))
                        for it in s["items"]
                    ],
                )
                for s in data["sections"]
            ]
            kind = data["kind"]
            description = data.get("description", "")
            if current is not None and current.kind == kind and self._content(current) == wanted:
                if current.description != description:
                    current.description = description
                    current.save(update_fields=["description"])
                    self.changes.append(
                        Change("update", f"checklist template {name}", "description")
                    )
                continue
            detected = DetectedChecklist(
                name=name,
                heading=name,
                kind=kind,
                sections=[
                    DetectedSection(
                        name=section,
                        items=[DetectedItem(text=t, required=r, key=k) for t, r, k in items],
                    )
                    for section, items in wanted
                ],
            )
            try:
                saved = save_template_version(detected, actor=self.actor, source="configuration")
            except ValidationError as exc:
                self.errors.extend(f"{where}: {m}" for m in exc.messages)
                continue
            if description:
                ChecklistTemplate.objects.filter(pk=saved.template.pk).update(
                    description=description
                )
            op = "create" if current is None else "update"
            self.changes.append(
                Change(
                    op,
                    f"checklist template {name}",
                    f"v{saved.template.version}, {saved.item_count} items",
                )
            )

    @staticmethod
    def _content(template: ChecklistTemplate) -> list:
        return [
            (s.name, [(it.text, it.required, it.key) for it in s.items.order_by("position")])
            for s in template.sections.order_by("position")
        ]

    def escalation_policies(self, entries: list[dict]) -> None:
        for i, data in enumerate(entries):
            where = f"escalation_policies[{i}]"
            name = data["name"]
            obj = EscalationPolicy.objects.filter(name=name).first()
            policy = self.save(
                obj,
                EscalationPolicy,
                {"name": name},
                self.values(EscalationPolicy, data, where),
                f"escalation policy {name}",
                where,
            )
            if policy is None:
                continue
            existing = {level.position: level for level in policy.levels.all()}
            levels = data.get("levels", [])
            for j, level_data in enumerate(levels):
                lwhere = f"{where}.levels[{j}]"
                position = j + 1
                rotation = self.lookup(
                    OnCallRotation,
                    lwhere + ".rotation",
                    "rotation",
                    name=level_data.get("rotation"),
                )
                contacts = [
                    self.lookup(Contact, f"{lwhere}.contacts[{k}]", "contact", email=email)
                    for k, email in enumerate(level_data.get("contacts", []))
                ]
                what = f"escalation policy {name} / L{position}"
                level = self.save(
                    existing.get(position),
                    EscalationLevel,
                    {"policy": policy, "position": position, "rotation": rotation},
                    self.values(EscalationLevel, level_data, lwhere),
                    what,
                    lwhere,
                )
                if level is not None and None not in contacts:
                    self.set_m2m(level, "contacts", contacts, lambda c: c.email, what)
            for position, level in sorted(existing.items()):
                if position > len(levels):
                    self.delete(level, f"escalation policy {name} / L{position}")

    def plans(self, entries: list[dict]) -> None:
        for i, data in enumerate(entries):
            where = f"plans[{i}]"
            slug = data["slug"]
            obj = RolloutPlan.objects.filter(slug=slug).first()
            plan = self.save(
                obj,
                RolloutPlan,
                {"slug": slug},
                self.values(RolloutPlan, data, where),
                f"plan {slug}",
                where,
            )
            if plan is None:
                continue
            stages = self.stages(plan, data.get("stages", []), where)
            if stages is None:
                continue
            self.criteria(plan, stages, data.get("criteria", []), where)
            self.plan_checklists(plan, stages, data.get("checklists", []), where)
            self.signoff_rules(plan, stages, data.get("signoff_rules", []), where)

    def stages(self, plan: RolloutPlan, entries: list[dict], where: str) -> dict | None:
        """Stages by position; returns the plan's stages by name (None after an error)."""
        names = [e["name"] for e in entries]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            self.errors.append(f"{where}.stages: two stages are named {', '.join(twice)}.")
            return None
        existing = {s.position: s for s in plan.stages.all()}
        by_name = {}
        for position, data in enumerate(entries):
            swhere = f"{where}.stages[{position}]"
            env = self.lookup(
                Environment, swhere + ".environment", "environment", slug=data.get("environment")
            )
            stage = self.save(
                existing.get(position),
                StageTemplate,
                {"plan": plan, "position": position, "environment": env},
                self.values(StageTemplate, data, swhere),
                f"plan {plan.slug} / stage {position + 1} ({data['name']})",
                swhere,
            )
            if stage is not None:
                by_name[stage.name] = stage
        for position, stage in sorted(existing.items()):
            if position >= len(entries):
                self.delete(stage, f"plan {plan.slug} / stage {position + 1} ({stage.name})")
        return by_name

    def stage_of(self, stages: dict, name: str | None, where: str) -> tuple[bool, Any]:
        if name is None:
            return True, None
        if name not in stages:
            self.errors.append(f"{where}.stage: the plan has no stage {name!r}.")
            return False, None
        return True, stages[name]

    def criteria(self, plan: RolloutPlan, stages: dict, entries: list[dict], where: str) -> None:
        existing: dict[tuple, list[MetricCriterion]] = defaultdict(list)
        for c in (
            MetricCriterion.objects.filter(
                models.Q(plan=plan) | models.Q(stage_template__plan=plan)
            )
            .select_related("metric", "stage_template")
            .order_by("id")
        ):
            existing[(c.stage_template.name if c.stage_template else None, c.metric.key)].append(c)
        seen: dict[tuple, int] = defaultdict(int)
        for i, data in enumerate(entries):
            cwhere = f"{where}.criteria[{i}]"
            ok, stage = self.stage_of(stages, data.get("stage"), cwhere)
            metric = self.lookup(MetricDefinition, cwhere + ".metric", "metric", key=data["metric"])
            if not ok or metric is None:
                continue
            key = (data.get("stage"), metric.key)
            rows = existing[key]
            n = seen[key]
            seen[key] += 1
            obj = rows[n] if n < len(rows) else None
            where_to = f"stage {data['stage']}" if data.get("stage") else "every stage"
            self.save(
                obj,
                MetricCriterion,
                {
                    "plan": None if stage else plan,
                    "stage_template": stage,
                    "metric": metric,
                },
                self.values(MetricCriterion, data, cwhere),
                f"plan {plan.slug} / criterion {metric.key} on {where_to}"
                + (f" #{n + 1}" if n else ""),
                cwhere,
            )
        for key, rows in existing.items():
            for obj in rows[seen.get(key, 0) :]:
                self.delete(obj, f"plan {plan.slug} / criterion {obj.label}")

    def plan_checklists(
        self, plan: RolloutPlan, stages: dict, entries: list[dict], where: str
    ) -> None:
        existing = {
            (link.template.name, link.stage_template.name if link.stage_template else None): link
            for link in PlanChecklist.objects.filter(plan=plan).select_related(
                "template", "stage_template"
            )
        }
        wanted = set()
        for i, data in enumerate(entries):
            lwhere = f"{where}.checklists[{i}]"
            ok, stage = self.stage_of(stages, data.get("stage"), lwhere)
            template = self.lookup(
                ChecklistTemplate,
                lwhere + ".template",
                "current checklist template",
                name=data["template"],
                is_current=True,
            )
            if not ok or template is None:
                continue
            key = (template.name, data.get("stage"))
            wanted.add(key)
            link = existing.get(key)
            what = f"plan {plan.slug} / checklist {template.name}" + (
                f" at exit of {key[1]}" if key[1] else ""
            )
            if link is not None and link.template_id == template.pk:
                continue
            self.save(
                link,
                PlanChecklist,
                {"plan": plan, "template": template, "stage_template": stage},
                {},
                what,
                lwhere,
            )
        for key, link in existing.items():
            if key not in wanted:
                self.delete(link, f"plan {plan.slug} / checklist {key[0]}")

    def signoff_rules(
        self, plan: RolloutPlan, stages: dict, entries: list[dict], where: str
    ) -> None:
        existing = {
            rule.stage_template.name if rule.stage_template else None: rule
            for rule in SignOffRule.objects.filter(plan=plan).select_related("stage_template")
        }
        wanted = set()
        for i, data in enumerate(entries):
            rwhere = f"{where}.signoff_rules[{i}]"
            ok, stage = self.stage_of(stages, data.get("stage"), rwhere)
            groups = [
                self.lookup(Group, f"{rwhere}.groups[{k}]", "group", name=name)
                for k, name in enumerate(data["groups"])
            ]
            if not ok or None in groups:
                continue
            key = data.get("stage")
            if key in wanted:
                self.errors.append(f"{rwhere}: a second sign-off rule on the same gate.")
                continue
            wanted.add(key)
            what = f"plan {plan.slug} / sign-off on " + (f"leaving {key}" if key else "start")
            rule = self.save(
                existing.get(key),
                SignOffRule,
                {"plan": plan, "stage_template": stage},
                self.values(SignOffRule, data, rwhere),
                what,
                rwhere,
            )
            if rule is not None:
                self.set_m2m(rule, "groups", groups, lambda g: g.name, what)
        for key, rule in existing.items():
            if key not in wanted:
                where_to = f"leaving {key}" if key else "start"
                self.delete(rule, f"plan {plan.slug} / sign-off on {where_to}")

    def services(self, entries: list[dict]) -> None:
        for i, data in enumerate(entries):
            where = f"services[{i}]"
            slug = data["slug"]
            plan = self.lookup(
                RolloutPlan, where + ".default_plan", "plan", slug=data.get("default_plan")
            )
            service = self.save(
                Service.objects.filter(slug=slug).first(),
                Service,
                {"slug": slug, "default_plan": plan},
                self.values(Service, data, where),
                f"service {slug}",
                where,
            )
            if service is None or "escalation_policy" not in data:
                continue
            policy = self.lookup(
                EscalationPolicy,
                where + ".escalation_policy",
                "escalation policy",
                name=data["escalation_policy"],
            )
            routing = IncidentRouting.objects.filter(service=service).first()
            if routing is None and policy is None:
                continue
            # Only the policy: the routing's webhook URL is a secret the file does not carry.
            self.save(
                routing,
                IncidentRouting,
                {"service": service, "policy": policy},
                {},
                f"service {slug} / incident routing",
                where,
            )

    def freeze_windows(self, entries: list[dict]) -> None:
        for i, data in enumerate(entries):
            where = f"freeze_windows[{i}]"
            name = data["name"]
            found = list(FreezeWindow.objects.filter(name=name)[:2])
            if len(found) > 1:
                self.errors.append(f"{where}: more than one freeze window is named {name!r}.")
                continue
            services = [
                self.lookup(Service, f"{where}.services[{k}]", "service", slug=slug)
                for k, slug in enumerate(data.get("services", []))
            ]
            envs = [
                self.lookup(Environment, f"{where}.environments[{k}]", "environment", slug=slug)
                for k, slug in enumerate(data.get("environments", []))
            ]
            what = f"freeze window {name}"
            window = self.save(
                found[0] if found else None,
                FreezeWindow,
                {"name": name},
                self.values(FreezeWindow, data, where),
                what,
                where,
            )
            if window is None or None in services or None in envs:
                continue
            self.set_m2m(window, "services", services, lambda s: s.slug, what)
            self.set_m2m(window, "environments", envs, lambda e: e.slug, what)

    def routing_rules(self, entries: list[dict]) -> None:
        for i, data in enumerate(entries):
            where = f"routing_rules[{i}]"
            service = self.lookup(Service, where + ".service", "service", slug=data.get("service"))
            policy = self.lookup(
                EscalationPolicy, where + ".policy", "escalation policy", name=data["policy"]
            )
            if policy is None or (data.get("service") and service is None):
                continue
            self.save(
                RoutingRule.objects.filter(name=data["name"]).first(),
                RoutingRule,
                {"name": data["name"], "service": service, "policy": policy},
                self.values(RoutingRule, data, where),
                f"routing rule {data['name']}",
                where,
            )


# The order sections are applied in: what a later one refers to comes first.
SECTIONS = (
    "environments",
    "metrics",
    "checklist_templates",
    "escalation_policies",
    "plans",
    "services",
    "sources",
    "freeze_windows",
    "routing_rules",
)


def apply(document: Any, *, actor: Actor, dry_run: bool = False, allow_sql: bool = True) -> Result:
    """Make the database match the document, or change nothing (ConfigError names why).

    `allow_sql`: whether SQL sources may be created or changed (only superusers may).
    """
    problems = validation_errors(document)
    if problems:
        raise ConfigError(problems)
    applier = _Applier(actor=actor, allow_sql=allow_sql)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        for section in SECTIONS:
            getattr(applier, section)(document.get(section, []))
        if applier.errors:
            transaction.set_rollback(True)
            raise ConfigError(applier.errors)
        if dry_run:
            transaction.set_rollback(True)
        elif applier.changes:
            # Criteria, stage minimums, freeze windows, sign-off rules may all hold running
            # releases: every unfinished release's kept gate verdict is recomputed on commit.
            gate_inputs.changed(every_service=True)
    return Result(changes=applier.changes, applied=not dry_run and bool(applier.changes))


# Who may apply a document: whoever may change everything one changes (release managers hold
# all of these, apps/releases/roles.py). A token applies for the person who created it.
APPLY_PERMS = (
    "releases.add_rolloutplan",
    "releases.change_rolloutplan",
    "releases.add_service",
    "releases.change_service",
    "releases.add_environment",
    "releases.change_environment",
    "releases.delete_stagetemplate",
    "checks.change_metriccriterion",
    "checks.delete_metriccriterion",
    "checks.change_metricsource",
    "checklists.add_checklisttemplate",
    "checklists.change_planchecklist",
    "signoffs.change_signoffrule",
    "signoffs.change_freezewindow",
    "incidents.change_escalationpolicy",
    "incidents.change_incidentrouting",
    "incidents.add_routingrule",
    "incidents.change_routingrule",
)


def may_apply(user: Any) -> bool:
    return bool(user and user.is_active and user.has_perms(APPLY_PERMS))
