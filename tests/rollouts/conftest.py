"""The rollouts tests' fixtures: the metric checks' error-rate metric, for the breach ones."""

from tests.checks.conftest import error_rate  # noqa: F401 (a fixture, used by name)
