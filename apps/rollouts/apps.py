from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    """The gate, the transitions, and the scheduled tick that acts on them."""

    name = "apps.rollouts"
    label = "rollouts"

    def ready(self) -> None:
        from apps.releases import gate_checks

        from . import (
            messages,  # noqa: F401 (declares this app's emails to the outbox)
            verdicts,
        )
        from .gate import check_soak, check_status
        from .gate_promotion import check_promotion
        from .gate_running import check_running_release

        gate_checks.register("status", check_status)
        gate_checks.register("running_release", check_running_release)
        gate_checks.register("promotion", check_promotion)
        gate_checks.register("soak", check_soak)
        # Whatever changes a gate input asks (apps.releases.gate_inputs) to recompute the kept
        # verdicts: the feature apps call it without importing rollouts.
        verdicts.install()
