from django.apps import AppConfig


class ChecklistsConfig(AppConfig):
    """Checklist templates, the per-release checklists made from them, and runbook import."""

    name = "apps.checklists"
    label = "checklists"
    verbose_name = "Checklists"

    def ready(self) -> None:
        from apps.releases import gate_checks

        from .gate import check_checklists

        gate_checks.register("checklists", check_checklists)
