"""The ``arrived`` milestone now ignores an arrival made before the last reschedule.

The milestone table is derived from the event logs: clear it so the next sync rebuilds every
row with the new definition.
"""

from django.db import migrations


def resync(apps, schema_editor):
    apps.get_model("department", "ProcedureMilestone").objects.all().delete()
    apps.get_model("department", "MilestoneSyncState").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("department", "0006_drop_backlog_index")]

    operations = [migrations.RunPython(resync, migrations.RunPython.noop)]
