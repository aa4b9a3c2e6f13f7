"""Settings come from the environment; production values pass Django's deployment checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manage(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    base.pop("SECRET_KEY", None)
    base.pop("DEBUG", None)
    base.update({"ROLLOUTDESK_VAR_DIR": str(tmp_path / "var"), **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_values(tmp_path: Path) -> None:
    result = manage(
        ["check", "--deploy", "--fail-level", "WARNING"],
        {
            "DEBUG": "false",
            "SECRET_KEY": "k" * 20 + "-Xq93!vT7pZ0^bW2sL8@fR4&hN6*mC1%dY5",
            "ALLOWED_HOSTS": "rolloutdesk.example.com",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "EMAIL_URL": "smtp://mail.example.com:587",
            # The documented deploy: its Redis broker also holds the rate-limit counters.
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    # SECRET_KEY empty rather than absent: a developer's .env (written by `make run`) must not
    # hide the refusal; real environment variables win over it, and an empty key is no key.
    result = manage(["check"], {"DEBUG": "false", "SECRET_KEY": ""}, tmp_path)
    assert result.returncode != 0
    assert "Set the SECRET_KEY environment variable" in result.stderr


def _refused(env: dict[str, str], tmp_path: Path) -> str:
    result = manage(["check"], {"DEBUG": "true", **env}, tmp_path)
    assert result.returncode != 0
    return result.stderr


def test_single_sign_on_settings_that_cannot_work_stop_the_start(tmp_path: Path) -> None:
    # Password sign-in off with no provider: nobody could sign in.
    assert "SSO_PASSWORD_LOGIN=false needs single sign-on" in _refused(
        {"SSO_PASSWORD_LOGIN": "false"}, tmp_path
    )
    assert "set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET" in _refused(
        {"OIDC_ISSUER": "https://idp.example.com"}, tmp_path
    )
    assert "OIDC_GROUP_MAP entry 'rd-approvers' is not" in _refused(
        {"OIDC_GROUP_MAP": "rd-rm=Release managers;rd-approvers"}, tmp_path
    )


def test_slack_needs_both_its_token_and_its_signing_secret(tmp_path: Path) -> None:
    assert "need both SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET" in _refused(
        {"SLACK_BOT_TOKEN": "xoxb-1"}, tmp_path
    )
    ok = manage(
        ["check"],
        {"DEBUG": "true", "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"},
        tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
