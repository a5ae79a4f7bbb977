"""Trigram indexes so patient search (substring, any name group, case-insensitive) stays
indexed at hundreds of thousands of patients (PostgreSQL only; SQLite scans)."""

from django.db import migrations

INDEXES = {
    "patient_search_compact_trgm": "UPPER(search_compact) gin_trgm_ops",
    "patient_pn_alpha_trgm": "UPPER(pn_alphabetic) gin_trgm_ops",
    "patient_pn_ideo_trgm": "pn_ideographic gin_trgm_ops",
    "patient_pn_phon_trgm": "UPPER(pn_phonetic) gin_trgm_ops",
    "patient_id_trgm": "UPPER(patient_id) gin_trgm_ops",
}


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, expr in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON registration_patient USING gin ({expr})")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("registration", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
