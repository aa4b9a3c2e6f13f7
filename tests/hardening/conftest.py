"""Fixtures shared with the fault tests and between the security tests."""

from tests.faults.conftest import run  # noqa: F401 (a fixture)
from tests.hardening.test_permission_matrix import world  # noqa: F401 (a fixture)
