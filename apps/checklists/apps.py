from django.apps import AppConfig


class ChecklistsConfig(AppConfig):
    """Checklist templates, the per-release checklists made from them, and runbook import."""

    name = "apps.checklists"
    label = "checklists"
    verbose_name = "Checklists"
