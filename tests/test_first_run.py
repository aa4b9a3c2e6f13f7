"""A newcomer's first run: `make run` writes a .env so that the documented `manage.py` commands
work afterwards in a plain shell, and never overwrites a .env that is already there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What a clone holds that settings and the commands need; tests, docs and local state stay out.
COPIED = ["manage.py", "Makefile", "apps", "rolloutdesk", "static", "templates"]
# A newcomer's shell: nothing rolloutdesk reads is set, so the embedded defaults apply.
UNSET = (
    "DEBUG",
    "SECRET_KEY",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "ROLLOUTDESK_VAR_DIR",
    "EMAIL_URL",
    "DJANGO_SETTINGS_MODULE",
)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project without .env or var/, as `git clone` gives it."""
    target = tmp_path_factory.mktemp("first-run") / "rolloutdesk"
    target.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    return target


def newcomer_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in UNSET and not k.startswith("PYTEST")}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, env=newcomer_env(), capture_output=True, text=True, timeout=120
    )


def manage(clone: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *args], clone)


def make_env(clone: Path) -> subprocess.CompletedProcess:
    """The step `make run` takes first (run depends on env)."""
    return run(["make", "--no-print-directory", "env", f"PYTHON={sys.executable}"], clone)


def test_the_commands_work_after_the_first_run_and_the_env_is_kept(clone: Path) -> None:
    # Without it, the failure the newcomer met.
    before = manage(clone, "check")
    assert before.returncode != 0
    assert "Set the SECRET_KEY environment variable" in before.stderr

    written = make_env(clone)
    assert written.returncode == 0, written.stderr
    dotenv = clone / ".env"
    text = dotenv.read_text()
    assert "DEBUG=true" in text.splitlines()
    (key_line,) = [line for line in text.splitlines() if line.startswith("SECRET_KEY=")]
    assert len(key_line.removeprefix("SECRET_KEY=")) >= 50
    assert dotenv.stat().st_mode & 0o077 == 0  # the key is readable by its owner only

    for args in (
        ["check"],
        *([c, "--help"] for c in ("issue_token", "import_runbook", "send_report")),
    ):
        result = manage(clone, *args)
        assert result.returncode == 0, (args, result.stderr)

    # A second run keeps the file (and so the key) as it is.
    again = make_env(clone)
    assert again.returncode == 0, again.stderr
    assert dotenv.read_text() == text


def test_make_run_writes_the_env_first(clone: Path) -> None:
    planned = run(["make", "-n", "run", f"PYTHON={sys.executable}"], clone)
    assert planned.returncode == 0, planned.stderr
    commands = planned.stdout.splitlines()
    first_manage = next(i for i, line in enumerate(commands) if "manage.py" in line)
    assert any("rolloutdesk/write_env.py" in line for line in commands[:first_manage])


def test_a_dotenv_of_ones_own_is_never_overwritten(clone: Path, tmp_path: Path) -> None:
    own = "# mine\nDATABASE_URL=sqlite:////tmp/mine.sqlite3\n"
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text(own)
    result = run(
        [sys.executable, str(clone / "rolloutdesk" / "write_env.py"), str(project)], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (project / ".env").read_text() == own
    # It says why commands run on their own would still stop, instead of failing silently later.
    assert "sets neither DEBUG nor SECRET_KEY" in result.stderr


def test_gitignore_keeps_the_dotenv_out_of_git() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
