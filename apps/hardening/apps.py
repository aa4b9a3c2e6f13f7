from django.apps import AppConfig


class HardeningConfig(AppConfig):
    """Proof under load and attack: failed-token throttling, clean outage answers, bench floor."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.hardening"
    label = "hardening"
