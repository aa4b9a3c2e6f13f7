from django.apps import AppConfig


class HardeningConfig(AppConfig):
    """Proof under load and attack: failed-token throttling, clean outage answers, bench floor."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.hardening"
    label = "hardening"

    def ready(self) -> None:
        from . import checks  # noqa: F401 (registers the deploy check)
