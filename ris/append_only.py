"""Append-only event logs: rows are inserted once and never updated or deleted.

The department's figures and every dispute rest on ``scheduling.ProcedureEvent`` and
``reports.ReportEvent``. The database refuses UPDATE/DELETE with row triggers (PostgreSQL,
like ``audit/migrations/0002``); this mixin refuses them in Python first, with a clear error,
for ``save()`` of an existing row, ``delete()`` and queryset ``update()``/``delete()``.
"""

from __future__ import annotations

from django.db import models


class AppendOnlyError(PermissionError):
    pass


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only.")

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only.")

    update.queryset_only = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only.")
