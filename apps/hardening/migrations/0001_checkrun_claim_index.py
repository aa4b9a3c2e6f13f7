"""An index for the tick's claim of its check runs, found by bench/tick_scale.py --history-minutes.

Each tick inserts its runs with a claim id, then reads back `WHERE slot = … AND claim = …`. No
index covered that (the unique one leads with the release), so the read-back scanned every run
ever recorded: one row per running release per minute, so the tick slowed a little every day.
Written as SQL in this app (the model is the checks app's, whose migrations other work changes);
partial, since manual runs have no claim. Works on PostgreSQL and SQLite.
"""

from django.db import migrations

INDEX = "hardening_checkrun_claim"


class Migration(migrations.Migration):
    dependencies = [("checks", "0004_checkresult_at_index")]

    operations = [
        migrations.RunSQL(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON checks_checkrun (claim) "
            "WHERE claim IS NOT NULL",
            reverse_sql=f"DROP INDEX IF EXISTS {INDEX}",
        )
    ]
