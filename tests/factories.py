"""factory_boy factories for the domain models."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model

from apps.core.actors import Actor
from apps.releases.models import Environment, Release, RolloutPlan, Service, StageTemplate
from apps.rollouts.registration import register_release


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests-1")


class PlanFactory(factory.django.DjangoModelFactory):
    """A plan with stages given as [(name, percentage, soak, auto_advance[, environment]), ...]."""

    class Meta:
        model = RolloutPlan
        django_get_or_create = ("slug",)
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Plan {n}")
    slug = factory.Sequence(lambda n: f"plan-{n}")

    @factory.post_generation
    def stages(self, create: bool, extracted: list | None, **kwargs: object) -> None:
        if not create:
            return
        specs = extracted or [
            ("canary", 5, timedelta(0), False),
            ("quarter", 25, timedelta(0), False),
            ("half", 50, timedelta(0), False),
            ("full", 100, timedelta(0), False),
        ]
        for position, (name, pct, soak, auto, *environment) in enumerate(specs):
            StageTemplate.objects.create(
                plan=self,
                position=position,
                name=name,
                traffic_percentage=pct,
                min_soak=soak,
                auto_advance=auto,
                environment=environment[0] if environment else None,
            )


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Service {n}")
    slug = factory.Sequence(lambda n: f"service-{n}")
    owner_team = "Platform"
    default_plan = factory.SubFactory(PlanFactory)


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment
        django_get_or_create = ("slug",)

    name = "Production"
    slug = "production"
    is_production = True


def make_release(
    *,
    service: Service | None = None,
    environment: Environment | None = None,
    plan: RolloutPlan | None = None,
    version: str | None = None,
    **fields: object,
) -> Release:
    """Create a release the way the product does (stages copied from the plan)."""
    service = service or ServiceFactory()
    release, _ = register_release(
        service=service,
        environment=environment or EnvironmentFactory(),
        version=version or f"1.0.{Release.objects.count() + 1}",
        plan=plan,
        actor=Actor.system("tests"),
        **fields,
    )
    return release
