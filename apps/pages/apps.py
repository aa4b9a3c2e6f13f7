from django.apps import AppConfig


class PagesConfig(AppConfig):
    """The pages people run rollouts from: dashboard, release page, incidents."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.pages"
    label = "pages"
