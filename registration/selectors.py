"""Reads over patients."""

from __future__ import annotations

from datetime import date

from django.db.models import Q, QuerySet

from .models import Patient


def patient_list() -> QuerySet[Patient]:
    return Patient.objects.filter(merged_into__isnull=True)


def patient_search(*, query: str = "", birth_date: date | None = None) -> QuerySet[Patient]:
    """Find patients by any name group (characters, pinyin, case-insensitive), ID or birth date.

    Each whitespace-separated term must match somewhere; pinyin may be typed with or
    without the separator between family and given name ("wang xiaodong", "wangxiaodong").
    """
    qs = patient_list()
    if birth_date:
        qs = qs.filter(birth_date=birth_date)
    for term in query.split():
        term = term.strip()
        if not term:
            continue
        compact = term.replace("^", "").lower()
        # Every disjunct is served by a trigram index on PostgreSQL (registration 0002), so
        # the OR becomes a BitmapOr instead of a scan; pn_alphabetic covers family/given.
        qs = qs.filter(
            Q(patient_id__istartswith=term)
            | Q(pn_alphabetic__icontains=term)
            | Q(pn_ideographic__contains=term)
            | Q(pn_phonetic__icontains=term)
            | Q(search_compact__icontains=compact)
        )
    return qs


def patient_find_duplicates(
    *,
    family_name: str,
    given_name: str,
    ideographic_family: str = "",
    ideographic_given: str = "",
    birth_date: date | None,
) -> QuerySet[Patient]:
    """Likely duplicates of a new registration: same name (any group) and birth date."""
    if not birth_date:
        return Patient.objects.none()
    name_q = Q()
    if family_name or given_name:
        name_q |= Q(family_name__iexact=family_name, given_name__iexact=given_name)
    if ideographic_family or ideographic_given:
        name_q |= Q(ideographic_family=ideographic_family, ideographic_given=ideographic_given)
    if not name_q:
        return Patient.objects.none()
    return patient_list().filter(name_q, birth_date=birth_date)
