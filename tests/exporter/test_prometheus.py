"""A real Prometheus (Debian's `prometheus`) scrapes /metrics on loopback with the bearer token,
using the scrape configuration and the two alert rules of docs/deploy.md: the figures arrive,
a stopped tick and failing deliveries fire their alerts, and neither fires while all is well."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.utils import timezone

from apps.incidents.choices import Channel
from apps.incidents.models import Incident, NotificationDelivery
from apps.jobs.heartbeat import expected_jobs
from apps.jobs.models import JobRun, RunOutcome
from apps.outbox.choices import DeliveryStatus
from tests.conftest import need_service
from tests.factories import ServiceFactory

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "prometheus-scrapes-with-this-token-42"


def doc_blocks() -> tuple[dict, dict]:
    """The scrape configuration and the rules, as docs/deploy.md gives them."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```yaml\n(# (\S+)\n.*?)```", text, flags=re.S)
    found = {name: yaml.safe_load(body) for body, name in blocks}
    return found["prometheus.yml"], found["rolloutdesk-rules.yml"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def prometheus(live_server, settings, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        need_service("the `prometheus` binary is missing (apt-get install prometheus)")
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    scrape, rules = doc_blocks()
    (tmp_path / "token").write_text(TOKEN)
    job = scrape["scrape_configs"][0]
    job.update(scheme="http", scrape_interval="1s")
    job["authorization"]["credentials_file"] = str(tmp_path / "token")
    job["static_configs"] = [{"targets": [live_server.url.removeprefix("http://")]}]
    scrape["global"] = {"evaluation_interval": "1s"}
    for rule in rules["groups"][0]["rules"]:
        rule["for"] = "0s"  # the documented waits, shortened so the test need not sit them out
    (tmp_path / "rolloutdesk-rules.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(scrape))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    "Prometheus did not start:\n" + (tmp_path / "prometheus.log").read_text()
                )
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def api(url: str, path: str, **params: str) -> dict:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}/api/v1/{path}?{query}", timeout=3) as answer:
        return json.load(answer)["data"]


def wait_for(check, what: str, seconds: float = 25) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"Prometheus never showed {what}")


def firing(url: str) -> set[str]:
    return {
        a["labels"]["alertname"] for a in api(url, "alerts")["alerts"] if a["state"] == "firing"
    }


def scraped_once_more(url: str) -> None:
    """Wait until two fresh scrapes and rule evaluations have happened since now."""
    time.sleep(3)


def test_a_real_prometheus_scrapes_and_alerts(prometheus, transactional_db):
    now = timezone.now()
    for name, _, _ in expected_jobs():
        JobRun.objects.create(
            job=name, started_at=now, finished_at=now, first_run_at=now, outcome=RunOutcome.OK
        )

    def target_up():
        targets = api(prometheus, "targets")["activeTargets"]
        return targets and targets[0]["health"] == "up" and targets[0]

    target = wait_for(target_up, "the rolloutdesk target up (bearer token accepted)")
    assert target["labels"]["job"] == "rolloutdesk"
    result = wait_for(
        lambda: api(prometheus, "query", query='rolloutdesk_job_stale{task="rollouts.checks"}')[
            "result"
        ],
        "rolloutdesk_job_stale",
    )
    assert result[0]["value"][1] == "0"
    # Both rules loaded from the documented file, healthy, and silent while all is well.
    rules = api(prometheus, "rules")["groups"][0]["rules"]
    assert {r["name"] for r in rules} == {
        "RolloutdeskTickNotRunning",
        "RolloutdeskDeliveriesFailing",
    }
    assert all(r["health"] == "ok" for r in rules), rules
    scraped_once_more(prometheus)
    assert firing(prometheus) == set()

    # The tick stops (its last run ten minutes ago) and a webhook post fails.
    JobRun.objects.filter(job="rollouts.checks").update(
        finished_at=now - timedelta(minutes=10), started_at=now - timedelta(minutes=10)
    )
    incident = Incident.objects.create(service=ServiceFactory(), title="db down")
    NotificationDelivery.objects.create(
        incident=incident,
        channel=Channel.WEBHOOK,
        target="https://hooks.example.com/x",
        idempotency_key="hook-1",
        status=DeliveryStatus.FAILED,
    )
    alerts = wait_for(
        lambda: (
            firing(prometheus) >= {"RolloutdeskTickNotRunning", "RolloutdeskDeliveriesFailing"}
            and firing(prometheus)
        ),
        "both alerts firing",
    )
    assert alerts == {"RolloutdeskTickNotRunning", "RolloutdeskDeliveriesFailing"}
    failing = [
        a
        for a in api(prometheus, "alerts")["alerts"]
        if a["labels"]["alertname"] == "RolloutdeskDeliveriesFailing"
    ]
    assert failing[0]["labels"]["channel"] == "webhook"


def test_the_documented_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        need_service("`promtool` is missing (apt-get install prometheus)")
    _, rules = doc_blocks()
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 2 rules found" in checked.stdout
