from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    """Incidents with their timeline, escalation, on-call rotations and notifications."""

    name = "apps.incidents"
    label = "incidents"
    verbose_name = "Incidents and on-call"

    def ready(self) -> None:
        from . import notify  # noqa: F401 (registers the deliveries with the outbox engine)
