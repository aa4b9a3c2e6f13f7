"""A report's content: every section's figures for the period, against the period before."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apps.releases.models import Service

from . import dora, figures
from .formatting import COUNT, DURATION, PERCENT, RATE, figure
from .schedule import Period


def scope(service: Service | None) -> dict[str, Any]:
    if service is None:
        return {"service": None, "name": "All services"}
    return {"service": service.slug, "name": service.name}


def _dora_rows(current: dict[str, Any], previous: dict[str, Any]) -> list[dict[str, Any]]:
    """Each service's four keys, now and in the previous period."""
    before = {row["service"]: row for row in previous["services"]}
    empty = dora._keys({}, {}, 1.0)
    return [
        {"service": row["service"], "current": row, "previous": before.get(row["service"], empty)}
        for row in current["services"]
    ]


def build(service: Service | None, period: Period, *, now: datetime) -> dict[str, Any]:
    """Every figure of the report, as plain JSON (durations in seconds, rates 0–1)."""
    previous = period.previous()

    def both(compute: Any, *extra: Any) -> tuple[Any, Any]:
        return compute(service, period, *extra), compute(service, previous, *extra)

    releases, releases_before = both(figures.release_counts)
    checks, checks_before = both(figures.check_totals)
    incidents, incidents_before = both(figures.incident_totals)
    wait, wait_before = both(figures.signoff_wait)
    checklists, checklists_before = both(figures.checklist_completion)
    automatic, automatic_before = both(figures.automatic_actions, now)
    keys, keys_before = both(dora.four_keys)
    overall, overall_before = keys["overall"], keys_before["overall"]

    overview = [
        figure("started", "Releases started", releases["started"], releases_before["started"]),
        figure(
            "completed",
            "Releases completed",
            releases["completed"],
            releases_before["completed"],
            better="higher",
        ),
        figure(
            "rolled_back",
            "Releases rolled back",
            releases["rolled_back"],
            releases_before["rolled_back"],
            better="lower",
        ),
        figure("aborted", "Releases aborted", releases["aborted"], releases_before["aborted"]),
        figure(
            "deployments",
            "Deployments to production",
            overall["deployments"],
            overall_before["deployments"],
            better="higher",
        ),
        figure(
            "lead_time",
            "Lead time for changes",
            overall["lead_time"],
            overall_before["lead_time"],
            DURATION,
            "lower",
        ),
        figure(
            "change_failure_rate",
            "Change failure rate",
            overall["change_failure_rate"],
            overall_before["change_failure_rate"],
            PERCENT,
            "lower",
        ),
        figure(
            "time_to_restore",
            "Time to restore service",
            overall["time_to_restore"],
            overall_before["time_to_restore"],
            DURATION,
            "lower",
        ),
        figure(
            "incidents_opened",
            "Incidents opened",
            incidents["opened"],
            incidents_before["opened"],
            better="lower",
        ),
        figure(
            "incidents_resolved",
            "Incidents resolved",
            incidents["resolved"],
            incidents_before["resolved"],
        ),
        figure(
            "time_to_acknowledge",
            "Mean time to acknowledge",
            incidents["time_to_acknowledge"],
            incidents_before["time_to_acknowledge"],
            DURATION,
            "lower",
        ),
        figure(
            "time_to_resolve",
            "Mean time to resolve",
            incidents["time_to_resolve"],
            incidents_before["time_to_resolve"],
            DURATION,
            "lower",
        ),
        figure(
            "check_pass_rate",
            "Metric check pass rate",
            checks["pass_rate"],
            checks_before["pass_rate"],
            PERCENT,
            "higher",
        ),
        figure(
            "automatic_actions",
            "Automatic pauses and rollbacks",
            automatic["all"]["total"],
            automatic_before["all"]["total"],
        ),
        figure(
            "check_precision",
            "Precision of automatic actions",
            automatic["all"]["precision"],
            automatic_before["all"]["precision"],
            PERCENT,
            "higher",
        ),
        figure(
            "signoff_wait",
            "Mean wait for sign-off",
            wait["average"],
            wait_before["average"],
            DURATION,
            "lower",
        ),
        figure(
            "checklist_completion",
            "Checklist items done",
            checklists["completion"],
            checklists_before["completion"],
            PERCENT,
            "higher",
        ),
    ]
    release_rows = figures.release_rows(service, period, now)
    return {
        "version": 1,
        "kind": period.kind,
        "scope": scope(service),
        "period": period.as_dict(),
        "previous_period": previous.as_dict(),
        "generated_at": now.isoformat(),
        "overview": overview,
        "releases": {
            "counts": releases,
            "previous": releases_before,
            "rows": release_rows,
            "in_progress": [r for r in release_rows if r["stage"]],
        },
        "gates": {
            "decisions": figures.gate_decisions(service, period),
            "signoff_wait": wait,
            "signoff_wait_previous": wait_before,
        },
        "checks": {
            "totals": checks,
            "previous": checks_before,
            "rows": figures.check_rows(service, period),
        },
        "automatic_actions": {
            **automatic,
            "previous": {k: automatic_before[k] for k in ("pauses", "rollbacks", "all")},
        },
        "incidents": {
            "totals": incidents,
            "previous": incidents_before,
            "rows": figures.incident_rows(service, period),
        },
        "checklists": {"totals": checklists, "previous": checklists_before},
        "dora": {
            "definitions": dora.DEFINITIONS,
            "overall": {"current": overall, "previous": overall_before},
            "services": _dora_rows(keys, keys_before),
            "units": {
                "deployments": COUNT,
                "deployments_per_day": RATE,
                "lead_time": DURATION,
                "change_failure_rate": PERCENT,
                "time_to_restore": DURATION,
            },
        },
        "weekly": dora.weekly_series(service, period),
        "next_steps": {
            "pending_signoffs": figures.pending_signoffs(service),
            "due_to_advance": figures.due_to_advance(service, now),
            "open_incidents": figures.open_incidents(service),
        },
    }
