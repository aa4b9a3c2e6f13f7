from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    """Incidents with their timeline, escalation, on-call rotations and notifications."""

    name = "apps.incidents"
    label = "incidents"
    verbose_name = "Incidents and on-call"

    def ready(self) -> None:
        from apps.releases import gate_checks

        from . import notify  # noqa: F401 (registers the deliveries with the outbox engine)
        from .gate import check_incidents

        gate_checks.register("incidents", check_incidents)
