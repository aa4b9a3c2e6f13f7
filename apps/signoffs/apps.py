from django.apps import AppConfig


class SignoffsConfig(AppConfig):
    """Sign-off rules, sign-offs, sign-off requests and change-freeze windows."""

    name = "apps.signoffs"
    label = "signoffs"
    verbose_name = "Sign-offs and freezes"

    def ready(self) -> None:
        from apps.releases import gate_checks

        from . import drafts  # noqa: F401 (declares this app's emails to the outbox)
        from .gate import check_freeze, check_signoffs

        gate_checks.register("signoffs", check_signoffs)
        gate_checks.register("freeze", check_freeze)
