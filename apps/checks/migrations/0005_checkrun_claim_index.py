"""CheckRun's partial index on the claim, declared on the model (CheckRun.Meta.indexes).

It was created by hand-written SQL in the former hardening app's migration, under the name
`hardening_checkrun_claim`. A database that has it keeps it under the model's name: PostgreSQL
renames it (instant, no rebuild of an index over every run ever recorded); SQLite cannot rename
an index, so it drops it and builds it again. A fresh database simply builds it. Either way the
migration state gets the model's index, so makemigrations sees nothing to do.
"""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

OLD = "hardening_checkrun_claim"
NEW = "checkrun_claim"
CREATE = f"CREATE INDEX IF NOT EXISTS {NEW} ON checks_checkrun (claim) WHERE claim IS NOT NULL"


def adopt_or_create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"DO $$ BEGIN IF to_regclass('{NEW}') IS NULL THEN "
            f"ALTER INDEX IF EXISTS {OLD} RENAME TO {NEW}; END IF; END $$"
        )
    schema_editor.execute(f"DROP INDEX IF EXISTS {OLD}")
    schema_editor.execute(CREATE)


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    schema_editor.execute(f"DROP INDEX IF EXISTS {NEW}")


class Migration(migrations.Migration):
    dependencies = [("checks", "0004_checkresult_at_index")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(adopt_or_create, drop)],
            state_operations=[
                migrations.AddIndex(
                    model_name="checkrun",
                    index=models.Index(
                        condition=models.Q(claim__isnull=False),
                        fields=["claim"],
                        name=NEW,
                    ),
                )
            ],
        )
    ]
