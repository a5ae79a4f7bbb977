"""Indexes the department dashboards need on other apps' tables (PostgreSQL only).

Measured with bench/dashboard.py at 1,000,000 procedures:
- procedure events by action and time (orders, completions, cancellations in a period),
  covering the procedure id so the period's procedures are found by an index-only scan;
- audit search by user (case-insensitive) and time.
Built CONCURRENTLY (the migration is not atomic) so a live site keeps writing meanwhile.
"""

from django.db import migrations

INDEXES = [
    (
        "dept_procevent_action_at",
        "scheduling_procedureevent (action, at) INCLUDE (requested_procedure_id)",
        "",
    ),
    (
        "dept_procevent_proc_action",
        "scheduling_procedureevent (requested_procedure_id, action) INCLUDE (at)",
        "",
    ),
    ("dept_audit_user_at", "audit_auditevent (upper(actor_username), at)", ""),
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, target, where in INDEXES:
        schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {target} {where}")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _target, _where in INDEXES:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [
        ("department", "0001_initial"),
        ("scheduling", "0003_sps_exclusive_slot"),
        ("audit", "0002_append_only_trigger"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
