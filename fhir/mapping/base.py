"""What every resource type of the facade declares: permission, scope, search, mapping."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import QuerySet
from django.utils import timezone

from ..search import Param


@dataclass
class Context:
    """Per request: the absolute base URL (``https://host/fhir``) and read vs search."""

    base: str
    site: str  # scheme://host of the request, for links outside /fhir/
    detail: bool = True

    def site_url(self, path: str) -> str:
        return self.site + path


class ResourceType:
    name: str = ""
    model = None  # the fhir.resources R4B class that validates what we emit
    read_action: str = ""  # ris.roles permission for read and search
    create_action: str | None = None
    audit_object_type: str = ""
    params: dict[str, Param] = {}
    ordering: tuple[str, ...] = ("pk",)

    def queryset(self, user) -> QuerySet:
        """Rows of this type the user may read (object scope), ready for mapping."""
        raise NotImplementedError

    def search_queryset(self, user) -> QuerySet:
        return self.queryset(user)

    def to_fhir(self, obj, ctx: Context) -> dict:
        raise NotImplementedError

    def patient_pk(self, obj) -> int | None:
        return None

    def prepare(self, objs: list, ctx: Context) -> None:
        """Batch loading for a page of results (avoid N+1); optional."""

    @property
    def interactions(self) -> list[str]:
        return ["read", "search-type"] + (["create"] if self.create_action else [])


def ref(type_name: str, pk, display: str = "") -> dict:
    out = {"reference": f"{type_name}/{pk}"}
    if display:
        out["display"] = display
    return out


def fhir_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    return timezone.localtime(value).isoformat()


def fhir_instant(value: datetime | None) -> str | None:
    return fhir_datetime(value)


def fhir_date(value: date | None) -> str | None:
    return value.isoformat() if value else None


def meta(updated: datetime | None) -> dict | None:
    return {"lastUpdated": fhir_instant(updated)} if updated else None


def clean(d: dict) -> dict:
    """Drop empty values (FHIR forbids empty elements)."""
    return {k: v for k, v in d.items() if v not in (None, "", [], {})}
