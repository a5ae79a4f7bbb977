"""RADPEER: each signed report is considered by the sampler exactly once.

Reports signed before this migration were already eligible for (several) sampling runs under
the old windowed scheme, so they are marked considered now rather than sampled again.
"""

from django.db import migrations, models
from django.db.models import F


def mark_existing(apps, schema_editor):
    Report = apps.get_model("reports", "Report")
    Report.objects.filter(status__in=["final", "amended"], peer_review_considered_at__isnull=True).update(
        peer_review_considered_at=F("signed_at")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0002_immutability_and_search"),
    ]

    operations = [
        migrations.AddField(
            model_name="report",
            name="peer_review_considered_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(mark_existing, migrations.RunPython.noop),
    ]
