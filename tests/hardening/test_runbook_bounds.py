"""A runbook upload's parse is linear and bounded (issue 13, point 7): a 2 MB file of 260,000
task lines took a gunicorn worker past its 30 s timeout; now it is refused at once, with a
message saying which limit and how to proceed, and any file within the limits parses in well
under a second per MB.
"""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from apps.checklists import runbook
from apps.checklists.models import ChecklistTemplate, TemplateItem
from apps.checklists.runbook import MAX_ITEM_CHARS, MAX_ITEMS, MAX_LINES, RunbookError

TASK_LINES = b"# Runbook\n" + b"- [ ] x\n" * 260_000  # 2.08 MB: within MAX_BYTES


def timed_parse(data: bytes) -> tuple[float, runbook.ParsedRunbook | RunbookError]:
    start = time.perf_counter()
    try:
        outcome: runbook.ParsedRunbook | RunbookError = runbook.parse(data, source="big.md")
    except RunbookError as exc:
        outcome = exc
    return time.perf_counter() - start, outcome


def test_260000_task_lines_are_refused_at_once_naming_the_line_limit() -> None:
    assert len(TASK_LINES) <= runbook.MAX_BYTES

    seconds, outcome = timed_parse(TASK_LINES)

    assert isinstance(outcome, RunbookError)
    assert f"up to {MAX_LINES:,} lines" in outcome.message
    assert seconds < 0.5


def test_more_items_than_the_limit_are_refused_naming_the_item_limit() -> None:
    data = b"# Runbook\n" + b"- [ ] x\n" * (MAX_ITEMS + 1)

    _, outcome = timed_parse(data)

    assert isinstance(outcome, RunbookError)
    assert f"more than {MAX_ITEMS:,} task-list items" in outcome.message
    assert f"line {MAX_ITEMS + 2} is item {MAX_ITEMS + 1:,}" in outcome.message


def test_the_item_limit_itself_is_accepted() -> None:
    _, outcome = timed_parse(b"# Runbook\n" + b"- [ ] x\n" * MAX_ITEMS)

    assert isinstance(outcome, runbook.ParsedRunbook)
    assert sum(c.item_count for c in outcome.checklists) == MAX_ITEMS


def test_a_wrapped_item_past_its_length_is_refused_naming_its_line() -> None:
    data = b"# Runbook\n\n- [ ] Tests pass\n" + b"   and more words\n" * (MAX_ITEM_CHARS // 10)

    _, outcome = timed_parse(data)

    assert isinstance(outcome, RunbookError)
    assert "item on line 3 is longer than" in outcome.message


def test_a_wrapped_item_keeps_its_whole_text_and_key() -> None:
    parsed = runbook.parse(b"# R\n\n- [ ] The integration\n  tests pass\n  on staging\n")

    [item] = parsed.checklists[0].sections[0].items
    assert (item.text, item.key) == ("The integration tests pass on staging", "integration-tests")


@pytest.mark.parametrize(
    "shape",
    [
        # prose, with one item: the most lines a runbook may have, ~2 MB
        b"# R\n- [ ] Tests pass\n" + b"Prose about the deployment, forty bytes.\n" * 49_000,
        # the most items, each in a section of its own, with prose between them
        b"# R\n"
        + (b"## Part\n- [ ] Tests pass and coverage ok\n" + b"words " * 100 + b"\n")
        * (MAX_ITEMS - 10),
    ],
    ids=["most-lines", "most-items"],
)
def test_a_file_within_the_limits_parses_in_well_under_a_second_per_mb(shape: bytes) -> None:
    seconds, outcome = timed_parse(shape)

    assert isinstance(outcome, runbook.ParsedRunbook)
    megabytes = len(shape) / 1e6
    assert seconds / megabytes < 0.5, f"{megabytes / seconds:.1f} MB/s"


@pytest.mark.django_db
def test_the_admin_upload_of_260000_task_lines_says_why_and_saves_nothing(rita) -> None:
    client = Client()
    client.force_login(rita)
    url = reverse("admin:checklists_checklisttemplate_import")

    start = time.perf_counter()
    response = client.post(url, {"file": SimpleUploadedFile("big.md", TASK_LINES)})

    assert time.perf_counter() - start < 5
    assert response.status_code == 200
    assert f"up to {MAX_LINES:,} lines".encode() in response.content
    assert ChecklistTemplate.objects.count() == TemplateItem.objects.count() == 0
