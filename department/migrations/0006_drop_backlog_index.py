"""The reading backlog now comes from the milestone table (its partial "unread" index), so the
index on scheduling_requestedprocedure that 0002 first created is only write overhead."""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS dept_rp_completed_ended")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("department", "0005_milestone_report_facts")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
