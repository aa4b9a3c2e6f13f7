from django.apps import AppConfig


class OutboxConfig(AppConfig):
    """Outgoing messages: written with the change that causes them, sent and retried here."""

    name = "apps.outbox"
    label = "outbox"
    verbose_name = "Outgoing messages"

    def ready(self) -> None:
        from . import emails  # noqa: F401 (registers the Message table with the engine)
