"""No two active steps may overlap on one station (PostgreSQL exclusion constraint).

The booking service already serialises per station with a row lock; this constraint makes
the database refuse a double booking even from a path that forgot to.
"""

from django.db import migrations

CREATE = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE scheduling_scheduledprocedurestep
    ADD CONSTRAINT sps_no_overlap_per_station
    EXCLUDE USING gist (station_id WITH =, tstzrange(start, "end") WITH &&)
    WHERE (status IN ('SCHEDULED', 'ARRIVED', 'STARTED'));
"""
DROP = "ALTER TABLE scheduling_scheduledprocedurestep DROP CONSTRAINT IF EXISTS sps_no_overlap_per_station;"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("scheduling", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
