"""Periodic jobs, item by item: one bad row is logged, recorded and skipped, never a run's end.

`job(name)` records one run of a periodic job (a JobRun row per name) and hands out
`run.item(obj)`, a guard that runs one item in its own savepoint and records a failure as a
JobItemFailure instead of letting it stop the loop. See apps/jobs/runner.py.
"""
