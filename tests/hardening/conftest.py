"""Fixtures shared between the security tests (`run` is the suite-wide one in tests/conftest.py)."""

from tests.hardening.test_permission_matrix import world  # noqa: F401 (a fixture)
