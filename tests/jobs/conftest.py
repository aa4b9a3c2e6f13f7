"""Fixtures the poisoned-row tests share with the metric-check tests."""

from tests.checks.conftest import error_rate  # noqa: F401 (the metric fixture)
