"""Indexes for the Modality Worklist query engine (worklist/selectors.py), PostgreSQL only.

Patient's Name is matched case-insensitively with LIKE against each PN component group
(``UPPER(pn_alphabetic) LIKE 'WANG%'``); text_pattern_ops expression indexes make prefix
patterns index scans whatever the database collation. Patient ID alone (without issuer) is
a common MWL key; the unique (issuer, patient_id) index cannot serve it.
"""

from django.db import migrations

INDEXES = [
    ("mwl_patient_pn_alpha_like", "registration_patient", "(UPPER(pn_alphabetic) text_pattern_ops)"),
    ("mwl_patient_pn_ideo_like", "registration_patient", "(pn_ideographic text_pattern_ops)"),
    ("mwl_patient_pn_phon_like", "registration_patient", "(UPPER(pn_phonetic) text_pattern_ops)"),
    ("mwl_patient_id", "registration_patient", "(patient_id)"),
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, table, columns in INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} {columns}")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _columns in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("worklist", "0001_initial"),
        ("registration", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
