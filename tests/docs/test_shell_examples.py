"""Every shell example in docs/ runs as written, against a real server on 127.0.0.1.

Each ```sh / ```bash block of docs/*.md is run with `bash -euo pipefail` from the repository
root, with `RD`, `TOKEN` and `ID` pointing at pytest-django's live server (demo-like data made
here) and `python manage.py ...` working on a database of its own (migrated, with load_demo).
A block is left out only when the line before it says why: `<!-- not run: reason -->`; a block
that quotes a script says so with `<!-- file: docs/examples/NAME.sh -->`, must equal that file,
and the script is run by the scenario tests below (the CI pipeline: completed, a red start
gate, a rollback mid-rollout).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from apps.api.models import ApiToken
from apps.checklists.choices import ChecklistKind
from apps.checks.choices import BadDirection, MetricKind
from apps.checks.models import MetricDefinition
from apps.releases.models import Release
from tests.checklists.helpers import link, make_template
from tests.factories import EnvironmentFactory, PlanFactory, ServiceFactory, make_release

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(settings.BASE_DIR)
DOCS = ROOT / "docs"
PIPELINE = DOCS / "examples" / "pipeline.sh"
BIN = Path(sys.executable).parent  # the virtual environment's bin/: `python` is this one
SHELLS = {"sh", "bash", "shell"}
# The variables every doc with API examples sets, in these words.
SETUP_LINES = {
    "RD": "export RD=http://127.0.0.1:8000/api/v1",
    "TOKEN": "export TOKEN=rd_...",
    "ID": "export ID=42",
}
# Blocks that are not run, and why (each doc says so too, in its `<!-- not run: ... -->`).
NOT_RUN = {
    ("ci.md", "export RD="): "sets the variables; the test sets its own",
    ("checklists.md", "export RD="): "same",
    ("metric-checks.md", "export RD="): "same",
    ("signoffs.md", "export RD="): "same",
    ("deploy.md", "pip install"): "installs and exports a production machine's settings",
    ("performance.md", "bench/api.py"): "the benchmarks need PostgreSQL and minutes each",
    ("configuration.md", "export_config --service"): "tests/configuration runs each command",
    ("configuration.md", "config/apply?dry_run=1"): "tests/configuration posts the same",
    ("deploy.md", "gate/?wait=30"): "waits for a release's soak",
}
# What each run block must print (regular expressions), found by a phrase in the block.
EXPECT = {
    ("ci.md", "issue_token"): [r"Token 'github-ci' for ai-orchestra\.", r"\nrd_[\w-]{30,}"],
    ("ci.md", "bash docs/examples/pipeline.sh"): [r"route 5% to 2\.6\.0", r"serves 100%"],
    ("ci.md", "/ofrep/v1/evaluate/flags/"): [
        r'^\{"key":"ai-orchestra","value":false,"variant":"control","reason":"STATIC",'
    ],
    ("ci.md", "$ID/events/"): [
        r'^\{"count":1,"next":null,"previous":null,"results":\[\{"id":\d+,"created_at":"[^"]+",'
        r'"verb":"created",'
    ],
    ("ci.md", "/step-back/"): [
        r'"status":"in_progress","stage":"canary","traffic_percentage":5',
        # traffic/: its keys in any order (PostgreSQL's jsonb keeps them sorted its own way).
        r'^\{(?=[^{}]*"percentage":5)(?=[^{}]*"stage":"canary")[^{}]*\}$',
    ],
    ("ci.md", "traffic/?environment="): [
        r'^\{"percentage":0,"status":"planned","stage":null,"environment":"production"\}$'
    ],
    ("ci.md", "$ID/gate/"): [
        r'^\{"can_advance":false,"step":"start","stage":null,"status":"planned",',
        r"Checklist 'Pre-deployment' \(0/1 done\) has 1 required item open: All tests pass\.",
    ],
    ("checklists.md", "/checks/"): [r'"key":\s*"tests"', r'"state":\s*"done"'],
    ("checklists.md", "import_runbook"): [
        r"Imported DCI Orchestrator Deployment Guide: Pre-Deployment Checklist \(v1\)",
        r"Imported AI Orchestra pre-flight \(v1\)",
        r'"kind":\s*"pre_deployment"',
    ],
    ("runbooks.md", "--dry-run --json"): [
        r'"traffic_percentage": 25,',
        r'"action": "rollback",',
        r"line 8: 25% \[production\] 25%, soak 86400s",
    ],
    ("metric-checks.md", "/samples/"): [r'^\{"accepted":2,"duplicates":0\}$'],
    ("signoffs.md", "/artifact/"): [
        r'^\{"release":\d+,"commit_sha":"9fceb02d0ae598e95dc970b74767f19372d61af8","lapsed":\[\]\}$'
    ],
    ("reports.md", "send_report"): [r"(?i)weekly", r"(?i)deployment frequency"],
    ("deploy.md", "migrate"): [r"(?i)static files? copied"],
}
NOT_RUN_MARK = re.compile(r"^<!-- not run: (?P<reason>.+\S) -->$")
FILE_MARK = re.compile(r"^<!-- file: (?P<path>docs/examples/[\w.-]+\.sh) -->$")


@dataclass
class Block:
    doc: str
    line: int
    lang: str
    text: str
    before: str  # the last non-blank line before the fence

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def shell_blocks() -> list[Block]:
    blocks = []
    for path in sorted(DOCS.glob("*.md")):
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            # A fence may be indented (in a list item): its lines lose that indentation.
            opening = re.match(r"^( *)```(\w*)", lines[i])
            if not opening:
                i += 1
                continue
            start, indent, lang = i, len(opening.group(1)), opening.group(2)
            i += 1
            while not lines[i].lstrip().startswith("```"):
                i += 1
            if lang in SHELLS:
                before = next((x for x in reversed(lines[:start]) if x.strip()), "")
                text = "".join(line[indent:] + "\n" for line in lines[start + 1 : i])
                blocks.append(Block(path.name, start + 1, lang, text, before.strip()))
            i += 1
    return blocks


def keyed(block: Block, table: dict) -> list:
    return [key for key in table if key[0] == block.doc and key[1] in block.text]


BLOCKS = shell_blocks()
RUN = [b for b in BLOCKS if not NOT_RUN_MARK.match(b.before) and not FILE_MARK.match(b.before)]


def test_every_shell_block_is_run_quoted_from_a_script_or_says_why_not():
    assert len(BLOCKS) >= 10, "the docs' shell examples were not found"
    for block in BLOCKS:
        if mark := NOT_RUN_MARK.match(block.before):
            assert keyed(block, NOT_RUN), f"{block.id} is marked not run: add it to NOT_RUN"
            assert len(mark.group("reason")) > 10, f"{block.id}: say why it is not run"
        elif mark := FILE_MARK.match(block.before):
            script = (ROOT / mark.group("path")).read_text()
            assert block.text == script, f"{block.id} differs from {mark.group('path')}"
        else:
            assert len(keyed(block, EXPECT)) == 1, f"{block.id}: give it one entry in EXPECT"
    # No stale entries: each names exactly one block.
    for table in (NOT_RUN, EXPECT):
        for key in table:
            assert sum(key in keyed(b, table) for b in BLOCKS) == 1, key
    assert sum(FILE_MARK.match(b.before) is not None for b in BLOCKS) == 1  # the pipeline


def test_the_docs_name_the_api_root_and_the_token_alike():
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text()
        blocks = [b for b in BLOCKS if b.doc == path.name]
        code = "".join(b.text for b in blocks)
        used = [name for name in SETUP_LINES if f"${name}" in code or f"${{{name}" in code]
        if not used:
            continue
        setup = [b for b in blocks if "export RD=" in b.text]
        assert len(setup) == 1, f"{path.name}: state RD and TOKEN once, at the top"
        assert setup[0] is blocks[0], f"{path.name}: the variables come before the examples"
        for name in used:
            assert SETUP_LINES[name] in setup[0].text, f"{path.name}: {SETUP_LINES[name]}"
        # The API root already ends in /api/v1: a path after it never repeats it.
        assert "$RD/api/" not in text and "${RD}/api/" not in text, path.name
    for old in ("RD_TOKEN", "ROLLOUTDESK_TOKEN", "ROLLOUTDESK_URL"):
        assert not any(old in b.text for b in BLOCKS), old


# --- a live server and the data the examples act on ----------------------------------------


@pytest.fixture(scope="module")
def live_server(django_db_setup) -> Iterator:
    """pytest-django's live server, with the plain-HTTP settings in place before it starts."""
    from django.test.utils import override_settings
    from pytest_django.live_server_helper import LiveServer

    with override_settings(
        SECURE_SSL_REDIRECT=False,
        SECURE_HSTS_SECONDS=0,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
    ):
        server = LiveServer("127.0.0.1")
        yield server
        server.stop()


@dataclass
class World:
    rd: str
    token: str
    release: Release


@pytest.fixture
def world(live_server) -> World:
    """ai-orchestra in production with a no-soak plan (canary 5 % → half 50 % → full 100 %) whose
    pre-deployment checklist has one automated item, `tests`; a token; a planned release."""
    plan = PlanFactory(
        slug="ci-example",
        name="CI example",
        stages=[
            ("canary", 5, timedelta(0), False),
            ("half", 50, timedelta(0), False),
            ("full", 100, timedelta(0), False),
        ],
    )
    template = make_template(
        "Pre-deployment",
        ChecklistKind.PRE_DEPLOYMENT,
        {"Code quality": [("All tests pass", "tests")]},
    )
    link(plan, template)
    service = ServiceFactory(slug="ai-orchestra", name="AI Orchestra", default_plan=plan)
    environment = EnvironmentFactory()
    MetricDefinition.objects.get_or_create(
        key="error_rate",
        defaults={
            "name": "Error rate",
            "kind": MetricKind.RATIO,
            "bad_direction": BadDirection.HIGHER,
        },
    )
    _, key = ApiToken.issue("github-ci", [service])
    release = make_release(service=service, environment=environment, plan=plan, version="2.5.0")
    return World(rd=f"{live_server.url}/api/v1", token=key, release=release)


@pytest.fixture(scope="module")
def manage_env(tmp_path_factory) -> dict[str, str]:
    """The environment `python manage.py ...` runs in: a SQLite database and var/ of its own,
    migrated, with the demo data."""
    var = tmp_path_factory.mktemp("var")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env['PATH']}",
        DEBUG="true",
        DATABASE_URL=f"sqlite:///{var / 'rolloutdesk.sqlite3'}",
        ROLLOUTDESK_VAR_DIR=str(var),
        DJANGO_SETTINGS_MODULE="rolloutdesk.settings",
    )
    for command in (["migrate", "-v", "0"], ["load_demo"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True
        )
        assert done.returncode == 0, done.stderr.decode()
    return env


def bash(
    script: str | Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    args = ["bash", "-euo", "pipefail"]
    args += [str(script)] if isinstance(script, Path) else ["-c", script]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_the_shell_example_runs_as_written(block: Block, world: World, manage_env) -> None:
    env = {**manage_env, "RD": world.rd, "TOKEN": world.token, "ID": str(world.release.pk)}
    done = bash(block.text, env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{block.id} failed ({done.returncode}):\n{block.text}\n{out}"
    [key] = keyed(block, EXPECT)
    for pattern in EXPECT[key]:
        assert re.search(pattern, out, re.M), f"{block.id}: no {pattern!r} in:\n{out}"


# --- the CI pipeline of docs/ci.md ----------------------------------------------------------


def pipeline_env(world: World, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"RD", "TOKEN", "PLAN", "SERVICE"}}
    return {
        **env,
        "RD": world.rd,
        "TOKEN": world.token,
        "VERSION": "2.6.0",
        "GIT_SHA": "0123456789abcdef0123456789abcdef01234567",
        "POLL_SECONDS": "0.2",
        **extra,
    }


def routes(output: str) -> list[int]:
    """The percentages the script's set_traffic was called with, in order."""
    return [int(p) for p in re.findall(r"^route (\d+)% to 2\.6\.0$", output, re.M)]


def test_the_pipeline_rolls_a_release_out_to_100_percent_and_a_rerun_changes_nothing(world):
    done = bash(PIPELINE, pipeline_env(world))
    assert done.returncode == 0, done.stdout + done.stderr
    assert routes(done.stdout) == [5, 50, 100, 100]  # the last stage, then completed
    assert "reported tests: passed" in done.stdout
    assert re.search(r"release \d+ completed: 2\.6\.0 serves 100%", done.stdout)
    release = Release.objects.get(version="2.6.0")
    assert release.status == "completed"
    assert release.commit_sha == "0123456789abcdef0123456789abcdef01234567"

    again = bash(PIPELINE, pipeline_env(world))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"release {release.pk}: ai-orchestra 2.6.0 to production, completed" in again.stdout
    assert routes(again.stdout) == [100]
    assert Release.objects.filter(version="2.6.0").count() == 1


def test_a_red_start_gate_prints_its_blockers_and_fails_the_job(world):
    # A required manual item the pipeline cannot tick: the start gate stays red.
    template = make_template(
        "Team readiness",
        ChecklistKind.PRE_DEPLOYMENT,
        {"Team": ["Runbook reviewed with the team"]},
    )
    link(world.release.plan, template)

    done = bash(PIPELINE, pipeline_env(world))
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"rolloutdesk: release \d+ may not start \(HTTP 409\)", done.stderr)
    assert re.search(
        r"blocked by checklist: Checklist 'Team readiness' .*Runbook reviewed with the team",
        done.stderr,
    )
    assert "curl:" not in done.stderr
    assert routes(done.stdout) == []  # nothing was routed to the build
    assert Release.objects.get(version="2.6.0").status == "planned"


def test_a_rollback_while_the_pipeline_waits_sets_traffic_to_0_before_it_fails(world):
    # The canary soaks for an hour: the pipeline routes 5 % and polls the red gate.
    world.release.plan.stages.filter(name="canary").update(min_soak=timedelta(hours=1))
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", str(PIPELINE)],
        cwd=ROOT,
        env=pipeline_env(world),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any("soak" in line for line in lines):  # it printed the gate's blocker
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        release = Release.objects.get(version="2.6.0")
        # Someone else (a person, the metric checks) rolls it back through the API meanwhile.
        request = urllib.request.Request(
            f"{world.rd}/releases/{release.pk}/rollback/",
            data=json.dumps({"reason": "error rate doubled"}).encode(),
            headers={"Authorization": f"Token {world.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    output = "".join(lines)
    assert routes(output)[0] == 5
    assert routes(output)[-1] == 0, output
    assert output.rstrip().endswith("was rolled back: 2.6.0 serves 0%"), output
    release.refresh_from_db()
    assert release.status == "rolled_back"
