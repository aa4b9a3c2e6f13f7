from django.apps import AppConfig


class RunbooksConfig(AppConfig):
    """Runbook import: a Markdown runbook drafted into plan, criteria, escalation and checklists,
    reviewed, then saved in one transaction."""

    name = "apps.runbooks"
    label = "runbooks"
    verbose_name = "Runbooks"
