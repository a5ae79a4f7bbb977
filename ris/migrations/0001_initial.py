from django.db import migrations, models

SEQUENCES = ("accession", "mrn", "rp", "sps", "mpps")


def create_sequences(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in SEQUENCES:
        schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS ris_{name}_seq START 1")


def drop_sequences(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in SEQUENCES:
        schema_editor.execute(f"DROP SEQUENCE IF EXISTS ris_{name}_seq")


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="IdentifierCounter",
            fields=[
                ("name", models.CharField(max_length=32, primary_key=True, serialize=False)),
                ("value", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(create_sequences, drop_sequences),
    ]
