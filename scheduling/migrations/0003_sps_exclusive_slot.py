from django.db import migrations, models

CREATE = """
ALTER TABLE scheduling_scheduledprocedurestep DROP CONSTRAINT IF EXISTS sps_no_overlap_per_station;
ALTER TABLE scheduling_scheduledprocedurestep
    ADD CONSTRAINT sps_no_overlap_per_station
    EXCLUDE USING gist (station_id WITH =, tstzrange(start, "end") WITH &&)
    WHERE (exclusive_slot AND status IN ('SCHEDULED', 'ARRIVED', 'STARTED'));
"""
REVERT = """
ALTER TABLE scheduling_scheduledprocedurestep DROP CONSTRAINT IF EXISTS sps_no_overlap_per_station;
ALTER TABLE scheduling_scheduledprocedurestep
    ADD CONSTRAINT sps_no_overlap_per_station
    EXCLUDE USING gist (station_id WITH =, tstzrange(start, "end") WITH &&)
    WHERE (status IN ('SCHEDULED', 'ARRIVED', 'STARTED'));
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REVERT)


class Migration(migrations.Migration):
    dependencies = [("scheduling", "0002_booking_exclusion")]

    operations = [
        migrations.AddField(
            model_name="scheduledprocedurestep",
            name="exclusive_slot",
            field=models.BooleanField(default=True, db_default=True),
        ),
        migrations.RunPython(forwards, backwards),
    ]
