from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """The gate, the transitions, and the scheduled tick that acts on them."""

    name = "apps.rollouts"
    label = "rollouts"

    def ready(self) -> None:
        from . import messages  # noqa: F401 (declares this app's emails to the outbox)
