"""``scheduling_procedureevent`` is append-only in the database itself (PostgreSQL row triggers).

Every department figure and dispute rests on these rows: BEFORE UPDATE/DELETE triggers raise,
like audit/migrations/0002 (the model refuses the same in Python, ris/append_only.py). The
referenced rows and actors are PROTECTed so that no cascade or SET NULL would have to rewrite
an event. (TRUNCATE, used by the test runner's flush, is an owner-level operation.)
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

CREATE = """
CREATE OR REPLACE FUNCTION ris_event_forbid_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'event rows are append-only (%% on %% refused)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS scheduling_procedureevent_append_only ON scheduling_procedureevent;
CREATE TRIGGER scheduling_procedureevent_append_only
    BEFORE UPDATE OR DELETE ON scheduling_procedureevent
    FOR EACH ROW EXECUTE FUNCTION ris_event_forbid_change();
"""

DROP = "DROP TRIGGER IF EXISTS scheduling_procedureevent_append_only ON scheduling_procedureevent;"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0003_sps_exclusive_slot"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="procedureevent",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="procedureevent",
            name="requested_procedure",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="events", to="scheduling.requestedprocedure"
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
