"""Fill the database with demo services, plans and releases, and an admin login to look at them.

Idempotent: everything is keyed on slugs and versions, so a second run adds nothing; releases are
moved through the transitions module only when they are first created.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from apps.api.models import ApiToken
from apps.core.actors import Actor
from apps.demo import cast
from apps.demo import metrics as metric_demo
from apps.releases.models import Environment, Release, RolloutPlan, Service, StageTemplate
from apps.releases.roles import RELEASE_MANAGERS, ensure_roles
from apps.rollouts import transitions
from apps.rollouts.breach_response import run_checks
from apps.rollouts.registration import register_release

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
ADMIN_USERNAME = "admin"
DEMO_TOKEN_NAME = "demo-ci"
# The login block, written for `manage.py demo_banner`, which prints it again once make run's
# processes are up (so it is not buried under the worker's start-up lines).
BANNER_FILE = "demo-login.txt"
# Demo releases never waited out their soak: each forced step says so in the timeline.
FORCE_REASON = "Demo data: soak skipped to give the example a history."


@dataclass(frozen=True)
class PlanSpec:
    """A demo plan: (stage name, traffic %, min soak, auto-advance[, environment slug]) per
    stage; a stage naming no environment runs in the release's (production in the demo)."""

    slug: str
    name: str
    description: str
    stages: list[tuple[str, int, timedelta, bool] | tuple[str, int, timedelta, bool, str]]


PLANS = [
    PlanSpec(
        "progressive",
        "Progressive 5→10→25→50→100",
        "Widen traffic step by step, soaking a day or two at each level.",
        [
            ("5%", 5, DAY, False),
            ("10%", 10, DAY, True),
            ("25%", 25, 2 * DAY, True),
            ("50%", 50, 2 * DAY, False),
            ("100%", 100, DAY, False),
        ],
    ),
    PlanSpec(
        "feature-flag-canary",
        "Feature-flag canary",
        "Deploy dark with the flags off in staging, then open the flag to a canary and widen it.",
        [
            # The runbook's Phase 1 runs in staging, then the same build goes to production.
            ("staging, flags off", 0, 2 * HOUR, False, "staging"),
            ("canary", 10, DAY, False),
            ("25%", 25, DAY, False),
            ("50%", 50, DAY, False),
            ("75%", 75, DAY, False),
            ("100%", 100, DAY, False),
        ],
    ),
    PlanSpec(
        "internal-beta",
        "Internal → beta",
        "Employees first, then beta users, then everyone.",
        [
            # "Phase 1: Internal Testing — deploy to staging", then beta users in production.
            ("internal", 1, 3 * DAY, False, "staging"),
            ("beta", 10, 4 * DAY, False),
            ("25%", 25, 2 * DAY, False),
            ("50%", 50, 2 * DAY, False),
            ("100%", 100, DAY, False),
        ],
    ),
    PlanSpec(
        "staging-ab-full",
        "Staging → A/B → full",
        "A fifth of staging traffic, then an A/B test on half of production, then everyone.",
        [
            ("staging", 20, DAY, False, "staging"),
            ("A/B", 50, 2 * DAY, False),
            ("full", 100, DAY, False),
        ],
    ),
]

ENVIRONMENTS = [
    # slug, name, is_production, order
    ("staging", "Staging", False, 10),
    ("production", "Production", True, 20),
]

SERVICES = [
    # slug, name, owner team, default plan slug, description
    (
        "ai-orchestra",
        "AI Orchestra",
        "ML Platform",
        "progressive",
        "Multi-agent orchestration service.",
    ),
    (
        "dci-orchestrator",
        "DCI Orchestrator",
        "Results Quality",
        "feature-flag-canary",
        "Dynamic Context Integration for OSA results.",
    ),
    ("billing-api", "Billing API", "Payments", "internal-beta", "Invoices, payments and refunds."),
]


@dataclass(frozen=True)
class DemoRelease:
    """A demo release and the steps that bring it to its demo state."""

    service: str
    environment: str
    version: str
    author_name: str
    plan: str | None = None  # None: the service's default plan
    # Transitions applied in order: "start", "advance", "pause", "resume", "rollback", "abort".
    steps: tuple[str, ...] = ()
    reason: str = ""  # for the last step


RELEASES = [
    DemoRelease(
        "ai-orchestra",
        "production",
        "2.3.0",
        "maria.k",
        steps=("start", "advance", "advance", "advance", "advance", "advance"),
    ),
    DemoRelease(
        "ai-orchestra",
        "production",
        "2.4.0",
        "maria.k",
        steps=("start", "advance", "advance"),
    ),
    DemoRelease("ai-orchestra", "production", "2.5.0-rc1", "jonas.b"),
    DemoRelease(
        "dci-orchestrator",
        "production",
        "1.8.0",
        "li.wei",
        steps=("start", "advance", "pause"),
        reason="Error rate on the canary climbing towards 5%; holding while we look.",
    ),
    DemoRelease(
        # Bound for production through staging, in one plan: it runs in staging while 1.8.0 is
        # paused in production (one running release per service and environment).
        "dci-orchestrator",
        "production",
        "1.9.0",
        "li.wei",
        plan="staging-ab-full",
        steps=("start",),
    ),
    DemoRelease(
        "billing-api",
        "production",
        "5.1.0",
        "sam.o",
        steps=("start", "advance", "rollback"),
        reason="p99 latency of checkout doubled for beta users.",
    ),
    DemoRelease("billing-api", "production", "5.2.0", "sam.o"),
]


class Command(BaseCommand):
    help = "Create demo services, plans and releases, and an admin login (safe to run twice)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Run even with DEBUG off (it resets the password of the user 'admin').",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # The command resets the admin password: a production database needs a deliberate yes.
        if not settings.DEBUG and not options["allow_production"]:
            raise CommandError("DEBUG is off; pass --allow-production to load demo data anyway.")
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        with transaction.atomic():
            # The role groups come from a migration; a flushed database (or a test's) lacks them.
            ensure_roles()
            admin_user = self._admin(password)
            environments = self._environments()
            plans = self._plans(environments)
            cast.people(password)
            cast.plan_extras(plans)  # before the releases, which copy them
            services = self._services(plans)
            cast.service_extras(services)
            made = self._releases(services, environments, plans, admin_user)
            token_key = self._token(services["ai-orchestra"], admin_user)
            checks = metric_demo.load(plans)
            cast.incident(services)
            cast.report()
        # Evaluate the demo releases' criteria once, so the admin shows real verdicts.
        checked = run_checks()

        self.stdout.write(
            f"Demo data: {len(services)} services, {len(environments)} environments, "
            f"{len(plans)} plans; {made} new release(s), {Release.objects.count()} in all."
        )
        self.stdout.write(
            f"Metric checks: {checks['metrics']} metrics on every plan, {checks['samples']} new "
            f"sample(s); {checked.results} criterion result(s) for {checked.releases} release(s)."
        )
        lines = [f"Admin login: {ADMIN_USERNAME} / {password}"]
        lines += [f"Demo login: {p.username} / {password} ({p.group})" for p in cast.PEOPLE]
        site = settings.SITE_URL.rstrip("/")
        lines += [f"Open {site}/ (dashboard) or {site}/admin/"]
        if token_key:
            lines.append(f"API token {DEMO_TOKEN_NAME} for ai-orchestra: {token_key}")
        else:
            lines.append(
                f"API token {DEMO_TOKEN_NAME} exists; its key was shown when it was created."
            )
        for line in lines:
            self.stdout.write(line)
        banner = settings.VAR_DIR / BANNER_FILE
        banner.write_text("\n".join(lines) + "\n", encoding="utf-8")
        banner.chmod(0o600)  # it holds the demo's password and token

    def _admin(self, password: str) -> Any:
        user, _ = get_user_model().objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"email": "admin@example.com"}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get(name=RELEASE_MANAGERS))
        return user

    def _environments(self) -> dict[str, Environment]:
        return {
            slug: Environment.objects.update_or_create(
                slug=slug, defaults={"name": name, "is_production": prod, "order": order}
            )[0]
            for slug, name, prod, order in ENVIRONMENTS
        }

    def _plans(self, environments: dict[str, Environment]) -> dict[str, RolloutPlan]:
        plans = {}
        for spec in PLANS:
            plan, _ = RolloutPlan.objects.update_or_create(
                slug=spec.slug, defaults={"name": spec.name, "description": spec.description}
            )
            for position, (name, pct, soak, auto, *where) in enumerate(spec.stages):
                StageTemplate.objects.update_or_create(
                    plan=plan,
                    position=position,
                    defaults={
                        "name": name,
                        "traffic_percentage": pct,
                        "min_soak": soak,
                        "auto_advance": auto,
                        "environment": environments[where[0]] if where else None,
                    },
                )
            plan.stages.filter(position__gte=len(spec.stages)).delete()
            plans[spec.slug] = plan
        return plans

    def _services(self, plans: dict[str, RolloutPlan]) -> dict[str, Service]:
        return {
            slug: Service.objects.update_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "owner_team": team,
                    "default_plan": plans[plan_slug],
                    "description": description,
                    # Someone hears of every transition: the worker prints the emails (console
                    # backend) and the admin's Outgoing messages lists them.
                    "notification_emails": f"{slug}-releases@example.com",
                },
            )[0]
            for slug, name, team, plan_slug, description in SERVICES
        }

    def _releases(
        self,
        services: dict[str, Service],
        environments: dict[str, Environment],
        plans: dict[str, RolloutPlan],
        admin_user: Any,
    ) -> int:
        system = Actor.system("demo")
        # Only a person with the force permission may skip a soak; the demo admin is one.
        admin_actor = Actor.for_user(admin_user)
        made = 0
        for spec in RELEASES:
            release, created = register_release(
                service=services[spec.service],
                environment=environments[spec.environment],
                version=spec.version,
                plan=plans[spec.plan] if spec.plan else None,
                actor=system,
                author_name=spec.author_name,
            )
            if not created:
                # Already there (and moved) from an earlier run: leave it as it is now.
                continue
            made += 1
            for index, step in enumerate(spec.steps):
                if step == "start":
                    cast.ready_to_start(release, admin_actor)
                reason = spec.reason if index == len(spec.steps) - 1 else ""
                if step == "advance":
                    transitions.advance(
                        release, actor=admin_actor, reason=reason or FORCE_REASON, force=True
                    )
                else:
                    transitions.ACTIONS[step](release, actor=system, reason=reason)
        return made

    def _token(self, service: Service, admin_user: Any) -> str:
        if ApiToken.objects.filter(name=DEMO_TOKEN_NAME).exists():
            # Only the hash is stored, so an existing token's key cannot be printed again.
            return ""
        _, key = ApiToken.issue(DEMO_TOKEN_NAME, [service], created_by=admin_user)
        return key
