"""Modality Worklist C-FIND identifier → filter spec (pure; PS3.4 C.2.2.2 and Annex K).

``parse_identifier(ds)`` turns the request identifier into an ``MWLQuery``:

* ``criteria``: matching keys as plain data (``StringMatch``, ``EmptyMatch``, ``UIDListMatch``,
  ``DateMatch``, ``DateTimeRange``, ``TimeRange``) on *logical fields* that
  ``worklist.selectors`` maps to columns. Every matching type of C.2.2.2 is covered: single
  value, wildcard (``*``/``?``), universal (zero length or ``*``), range for DA/TM, combined
  SPS Start Date + Time (C.2.2.2.5.1), list of UID, multiple values (backslash), sequence
  matching on the Scheduled Procedure Step Sequence, and empty-value matching (``""``).
* ``returns``: the requested return keys in tag order (nested for sequences), each tied to
  a ``KeySpec`` of the registry below — the keys this SCP supports (every Type 1 and 2 key
  of Table K.6-1 plus the IHE Scheduled Workflow R+ keys).
* ``unsupported``: requested keys we neither return nor match (→ status 0xFF01).

A malformed identifier raises ``IdentifierError`` (→ 0xA900). The request's Specific
Character Set is honoured: pydicom decodes the values with it before they reach us.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag


class IdentifierError(ValueError):
    """The identifier cannot be understood (0xA900 Identifier does not match SOP Class)."""


# --------------------------------------------------------------------------------------
# The keys this SCP supports.
# field: the logical field the value comes from (see worklist/selectors.py MWL_FIELDS), or
# None for keys we always return zero-length (Type 2 keys the RIS keeps no data for).
# match: how the key may be matched: "str" (single/wildcard/multiple/empty), "pn", "uid",
# "da", "tm", "int", "code" (a code sequence), "sq" (the SPS sequence), "none".


@dataclass(frozen=True)
class KeySpec:
    tag: int
    keyword: str
    vr: str
    field: str | None
    match: str
    type: str  # return key type in Table K.6-1: "1", "1C", "2", "2C", "3"
    children: tuple[int, ...] = ()


def _k(tag, keyword, vr, fld, match, typ, children=()):
    return KeySpec(tag, keyword, vr, fld, match, typ, children)


CODE_ITEM_KEYS = {
    0x00080100: _k(0x00080100, "CodeValue", "SH", "code_value", "str", "1"),
    0x00080102: _k(0x00080102, "CodingSchemeDesignator", "SH", "coding_scheme", "str", "1"),
    0x00080103: _k(0x00080103, "CodingSchemeVersion", "SH", None, "none", "1C"),
    0x00080104: _k(0x00080104, "CodeMeaning", "LO", "code_meaning", "str", "1"),
}

SPS_ITEM_KEYS = {
    0x00080060: _k(0x00080060, "Modality", "CS", "sps_modality", "str", "1"),
    0x00321070: _k(0x00321070, "RequestedContrastAgent", "LO", "contrast_agent", "str", "2C"),
    0x00400001: _k(0x00400001, "ScheduledStationAETitle", "AE", "station_ae", "str", "1"),
    0x00400002: _k(0x00400002, "ScheduledProcedureStepStartDate", "DA", "sps_start_date", "da", "1"),
    0x00400003: _k(0x00400003, "ScheduledProcedureStepStartTime", "TM", "sps_start_time", "tm", "1"),
    0x00400004: _k(0x00400004, "ScheduledProcedureStepEndDate", "DA", "sps_end_date", "none", "3"),
    0x00400005: _k(0x00400005, "ScheduledProcedureStepEndTime", "TM", "sps_end_time", "none", "3"),
    0x00400006: _k(0x00400006, "ScheduledPerformingPhysicianName", "PN", "performing_physician", "pn", "2"),
    0x00400007: _k(0x00400007, "ScheduledProcedureStepDescription", "LO", "sps_description", "str", "1C"),
    0x00400008: _k(
        0x00400008,
        "ScheduledProtocolCodeSequence",
        "SQ",
        "protocol_code",
        "code",
        "1C",
        tuple(CODE_ITEM_KEYS),
    ),
    0x00400009: _k(0x00400009, "ScheduledProcedureStepID", "SH", "sps_id", "str", "1"),
    0x00400010: _k(0x00400010, "ScheduledStationName", "SH", "station_name", "str", "2"),
    0x00400011: _k(0x00400011, "ScheduledProcedureStepLocation", "SH", "sps_location", "str", "2"),
    0x00400012: _k(0x00400012, "PreMedication", "LO", "pre_medication", "str", "2C"),
    0x00400020: _k(0x00400020, "ScheduledProcedureStepStatus", "CS", "sps_status", "str", "3"),
}

TOP_KEYS = {
    0x00080050: _k(0x00080050, "AccessionNumber", "SH", "accession", "str", "2"),
    0x00080090: _k(0x00080090, "ReferringPhysicianName", "PN", "referring", "pn", "2"),
    0x00081110: _k(0x00081110, "ReferencedStudySequence", "SQ", None, "none", "2"),
    0x00081120: _k(0x00081120, "ReferencedPatientSequence", "SQ", None, "none", "2"),
    0x00100010: _k(0x00100010, "PatientName", "PN", "patient_name", "pn", "1"),
    0x00100020: _k(0x00100020, "PatientID", "LO", "patient_id", "str", "1"),
    0x00100021: _k(0x00100021, "IssuerOfPatientID", "LO", "issuer", "str", "3"),
    0x00100030: _k(0x00100030, "PatientBirthDate", "DA", "birth_date", "da", "2"),
    0x00100040: _k(0x00100040, "PatientSex", "CS", "sex", "str", "2"),
    0x00101030: _k(0x00101030, "PatientWeight", "DS", None, "none", "2"),
    0x00102000: _k(0x00102000, "MedicalAlerts", "LO", "medical_alerts", "str", "2"),
    0x00102110: _k(0x00102110, "Allergies", "LO", "allergies", "str", "2"),
    0x001021C0: _k(0x001021C0, "PregnancyStatus", "US", "pregnancy_status", "int", "2"),
    0x0020000D: _k(0x0020000D, "StudyInstanceUID", "UI", "study_uid", "uid", "1"),
    0x00321032: _k(0x00321032, "RequestingPhysician", "PN", "requesting", "pn", "2"),
    0x00321033: _k(0x00321033, "RequestingService", "LO", "requesting_service", "str", "3"),
    0x00321060: _k(0x00321060, "RequestedProcedureDescription", "LO", "rp_description", "str", "1C"),
    0x00321064: _k(
        0x00321064,
        "RequestedProcedureCodeSequence",
        "SQ",
        "procedure_code",
        "code",
        "1C",
        tuple(CODE_ITEM_KEYS),
    ),
    0x00380010: _k(0x00380010, "AdmissionID", "LO", "admission_id", "str", "2"),
    0x00380050: _k(0x00380050, "SpecialNeeds", "LO", None, "str", "2"),
    0x00380300: _k(0x00380300, "CurrentPatientLocation", "LO", None, "str", "2"),
    0x00380500: _k(0x00380500, "PatientState", "LO", None, "str", "2"),
    0x00400100: _k(0x00400100, "ScheduledProcedureStepSequence", "SQ", None, "sq", "1", tuple(SPS_ITEM_KEYS)),
    0x00401001: _k(0x00401001, "RequestedProcedureID", "SH", "rp_id", "str", "1"),
    0x00401002: _k(0x00401002, "ReasonForTheRequestedProcedure", "LO", "reason", "str", "3"),
    0x00401003: _k(0x00401003, "RequestedProcedurePriority", "SH", "priority", "str", "2"),
    0x00401004: _k(0x00401004, "PatientTransportArrangements", "LO", None, "str", "2"),
    0x00402016: _k(0x00402016, "PlacerOrderNumberImagingServiceRequest", "LO", "placer", "str", "3"),
    0x00402017: _k(0x00402017, "FillerOrderNumberImagingServiceRequest", "LO", "filler", "str", "3"),
    0x00403001: _k(0x00403001, "ConfidentialityConstraintOnPatientDataDescription", "LO", None, "str", "2"),
}

SPECIFIC_CHARACTER_SET = 0x00080005
# Keys that are never "unsupported" although we do not match on them.
IGNORED_KEYS = {SPECIFIC_CHARACTER_SET, 0x00080201}  # Timezone Offset From UTC: we answer in local time


def children_of(spec: KeySpec) -> dict[int, KeySpec]:
    if spec.match == "code":
        return CODE_ITEM_KEYS
    if spec.tag == 0x00400100:
        return SPS_ITEM_KEYS
    return {}


# --------------------------------------------------------------------------------------
# Filter spec.


@dataclass(frozen=True)
class StringMatch:
    """Single value / wildcard / multiple values (OR) on a string field; ``pn``: PN rules."""

    field: str
    values: tuple[str, ...]
    pn: bool = False

    @property
    def has_wildcards(self) -> bool:
        return any(has_wildcard(v) for v in self.values)


@dataclass(frozen=True)
class EmptyMatch:
    """Empty value matching (``""``, PS3.4 C.2.2.2.7): the field has no value."""

    field: str


@dataclass(frozen=True)
class IntMatch:
    field: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class UIDListMatch:
    field: str
    uids: tuple[str, ...]


@dataclass(frozen=True)
class DateMatch:
    """DA single value (lo == hi), range, open range, or several of them (OR)."""

    field: str
    ranges: tuple[tuple[date | None, date | None], ...]


@dataclass(frozen=True)
class DateTimeRange:
    """Combined date + time range on a datetime field (naive local bounds, inclusive)."""

    field: str
    lo: datetime | None
    hi: datetime | None


@dataclass(frozen=True)
class TimeRange:
    """Time-of-day range on a datetime field, whatever the date (inclusive)."""

    field: str
    lo: time | None
    hi: time | None


Criterion = StringMatch | EmptyMatch | IntMatch | UIDListMatch | DateMatch | DateTimeRange | TimeRange


@dataclass
class ReturnKey:
    spec: KeySpec
    children: list[ReturnKey] | None = None  # for SQ keys: requested item keys (None: all)


@dataclass
class MWLQuery:
    criteria: list[Criterion] = field(default_factory=list)
    returns: list[ReturnKey] = field(default_factory=list)
    unsupported: list[int] = field(default_factory=list)
    character_set: tuple[str, ...] = ()

    def fields(self) -> set[str]:
        return {c.field for c in self.criteria}

    @property
    def names_station(self) -> bool:
        """Whether the query restricts the station itself (then no worklist scope applies)."""
        return bool(self.fields() & {"station_ae", "station_name"})

    @property
    def names_status(self) -> bool:
        return "sps_status" in self.fields()


# --------------------------------------------------------------------------------------
# Value parsing helpers.

_WILDCARD = re.compile(r"[*?]")
_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
EMPTY_VALUE = '""'


def has_wildcard(value: str) -> bool:
    return bool(_WILDCARD.search(value))


def is_universal(values: list[str]) -> bool:
    """Zero length, or a value of only ``*`` (C.2.2.2.3: equivalent to universal)."""
    return not values or all(v == "" or set(v) == {"*"} for v in values)


def parse_da(value: str) -> date:
    value = value.strip()
    if not _DA.match(value):
        # Tolerate the ACR-NEMA form YYYY.MM.DD some old modalities still send.
        if re.match(r"^\d{4}\.\d{2}\.\d{2}$", value):
            value = value.replace(".", "")
        else:
            raise IdentifierError(f"not a DA value: {value!r}")
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError as exc:
        raise IdentifierError(f"not a calendar date: {value!r}") from exc


def parse_tm(value: str, *, upper: bool = False) -> time:
    """TM → time; an upper bound extends to the end of its precision ("10" → 10:59:59.999999)."""
    value = value.strip().replace(":", "")
    m = _TM.match(value)
    if not m:
        raise IdentifierError(f"not a TM value: {value!r}")
    hh, mm, ss, frac = m.groups()
    try:
        h = int(hh)
        mi = int(mm) if mm is not None else (59 if upper else 0)
        s = int(ss) if ss is not None else (59 if upper else 0)
        if frac:
            digits = frac[1:]
            us = int(digits.ljust(6, "9" if upper else "0"))
        else:
            us = 999999 if upper else 0
        s = min(s, 59)  # leap second "60" is valid TM; clamp
        return time(h, mi, s, us)
    except ValueError as exc:
        raise IdentifierError(f"not a valid time: {value!r}") from exc


def _split_range(value: str) -> tuple[str, str] | None:
    if "-" not in value:
        return None
    parts = value.split("-")
    if len(parts) != 2:
        raise IdentifierError(f"malformed range: {value!r}")
    return parts[0].strip(), parts[1].strip()


def parse_da_ranges(values: list[str]) -> tuple[tuple[date | None, date | None], ...]:
    ranges = []
    for value in values:
        rng = _split_range(value)
        if rng is None:
            d = parse_da(value)
            ranges.append((d, d))
            continue
        lo_s, hi_s = rng
        if not lo_s and not hi_s:
            raise IdentifierError("a range needs at least one bound")
        lo = parse_da(lo_s) if lo_s else None
        hi = parse_da(hi_s) if hi_s else None
        if lo and hi and lo > hi:
            raise IdentifierError(f"range bounds reversed: {value!r}")
        ranges.append((lo, hi))
    return tuple(ranges)


def parse_tm_range(value: str) -> tuple[time | None, time | None]:
    rng = _split_range(value)
    if rng is None:
        return parse_tm(value), parse_tm(value, upper=True)
    lo_s, hi_s = rng
    if not lo_s and not hi_s:
        raise IdentifierError("a range needs at least one bound")
    return (parse_tm(lo_s) if lo_s else None, parse_tm(hi_s, upper=True) if hi_s else None)


# --------------------------------------------------------------------------------------
# Element access.


def _raw_values(elem) -> list[str]:
    """The element's values as strings (trailing padding removed), [] when zero length."""
    value = elem.value
    if value is None or value == "" or value == b"":
        return []
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    out = []
    for item in items:
        if isinstance(item, bytes):
            raise IdentifierError(f"undecodable value in {elem.keyword or elem.tag}")
        out.append(str(item).strip(" \x00") if item is not None else "")
    return out


def _pn_values(elem) -> list[str]:
    value = elem.value
    if value is None or value == "":
        return []
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    return [str(item).strip(" \x00") for item in items]


# --------------------------------------------------------------------------------------
# The parser.


def parse_identifier(ds: Dataset) -> MWLQuery:
    """Parse a C-FIND MWL request identifier. Raises ``IdentifierError`` if malformed."""
    if not isinstance(ds, Dataset):
        raise IdentifierError("no identifier")
    query = MWLQuery()
    try:
        charset = ds.get(SPECIFIC_CHARACTER_SET)
        query.character_set = tuple(_raw_values(charset)) if charset is not None else ()
        _parse_level(ds, TOP_KEYS, query, query.returns)
    except IdentifierError:
        raise
    except (ValueError, TypeError, LookupError, AttributeError) as exc:
        raise IdentifierError(f"cannot decode the identifier: {type(exc).__name__}") from exc
    _combine_sps_datetime(query)
    return query


def _parse_level(ds: Dataset, registry: dict[int, KeySpec], query: MWLQuery, out: list[ReturnKey]) -> None:
    for elem in ds:
        tag = int(elem.tag)
        if Tag(tag).group in (0x0000, 0x0002):
            raise IdentifierError("command or meta elements in the identifier")
        if tag in IGNORED_KEYS:
            continue
        spec = registry.get(tag)
        if spec is None:
            query.unsupported.append(tag)
            continue
        if spec.vr == "SQ":
            out.append(_parse_sequence(elem, spec, query))
            continue
        out.append(ReturnKey(spec))
        _parse_matching(elem, spec, query)


def _parse_sequence(elem, spec: KeySpec, query: MWLQuery) -> ReturnKey:
    items = list(elem.value or [])
    if len(items) > 1:
        raise IdentifierError(f"{spec.keyword}: a matching sequence has at most one item")
    if not items or len(items[0]) == 0:
        return ReturnKey(spec, children=None)  # universal: return every supported item key
    if spec.match == "none":
        query.unsupported.append(spec.tag)  # e.g. Referenced Study Sequence with item keys
        return ReturnKey(spec, children=[])
    children: list[ReturnKey] = []
    registry = children_of(spec)
    if spec.match == "code":
        for child in items[0]:
            ctag = int(child.tag)
            cspec = registry.get(ctag)
            if cspec is None:
                query.unsupported.append(ctag)
                continue
            children.append(ReturnKey(cspec))
            values = _raw_values(child)
            if is_universal(values) or cspec.field is None:
                continue
            # Sequence matching on the code: the item's keys match the row's code fields.
            _string_criterion(f"{spec.field}.{cspec.field}", values, query, pn=False, wildcard=True)
        return ReturnKey(spec, children=children)
    _parse_level(items[0], registry, query, children)
    return ReturnKey(spec, children=children)


def _string_criterion(fld: str, values: list[str], query: MWLQuery, *, pn: bool, wildcard: bool) -> None:
    if values == [EMPTY_VALUE]:
        query.criteria.append(EmptyMatch(fld))
        return
    if is_universal(values):
        return
    if not wildcard and any(has_wildcard(v) for v in values):
        raise IdentifierError(f"wildcards are not allowed for {fld}")
    query.criteria.append(StringMatch(fld, tuple(values), pn=pn))


def _parse_matching(elem, spec: KeySpec, query: MWLQuery) -> None:
    if spec.match == "none":
        values = _raw_values(elem)
        if values:
            query.unsupported.append(spec.tag)  # a value we cannot match on (0xFF01)
        return
    fld = spec.field or spec.keyword
    if spec.match == "pn":
        values = _pn_values(elem)
        _string_criterion(fld, values, query, pn=True, wildcard=True)
        return
    values = _raw_values(elem)
    if spec.match == "str":
        if spec.field is None:
            # A Type 2 key we keep no data for: every entity has the empty value.
            if values and values != [EMPTY_VALUE] and not is_universal(values):
                query.criteria.append(StringMatch(f"none.{spec.keyword}", tuple(values)))
            return
        _string_criterion(fld, values, query, pn=False, wildcard=spec.vr != "UI")
    elif spec.match == "uid":
        if not values:
            return
        if values == [EMPTY_VALUE]:
            raise IdentifierError(f"{spec.keyword}: empty value matching is not allowed for UIDs")
        for uid in values:
            if not _UID.match(uid) or len(uid) > 64:
                raise IdentifierError(f"{spec.keyword}: not a UID: {uid!r}")
        query.criteria.append(UIDListMatch(fld, tuple(values)))
    elif spec.match == "int":
        if not values:
            return
        if values == [EMPTY_VALUE]:
            query.criteria.append(EmptyMatch(fld))
            return
        query.criteria.append(IntMatch(fld, tuple(int(v) for v in values)))
    elif spec.match == "da":
        if not values:
            return
        if values == [EMPTY_VALUE]:
            query.criteria.append(EmptyMatch(fld))
            return
        query.criteria.append(DateMatch(fld, parse_da_ranges(values)))
    elif spec.match == "tm":
        if not values:
            return
        if len(values) != 1:
            raise IdentifierError(f"{spec.keyword}: one time or time range expected")
        lo, hi = parse_tm_range(values[0])
        query.criteria.append(TimeRange(fld, lo, hi))


def _combine_sps_datetime(query: MWLQuery) -> None:
    """SPS Start Date + Start Time → one datetime range on ``sps_start`` (C.2.2.2.5.1).

    Date alone: the whole days. Time alone: that time of day on any date. Both: the combined
    range from (lower date, lower time) to (upper date, upper time), so ``20260105-20260107``
    with ``0800-1800`` runs from 5 January 08:00 to 7 January 18:00.
    """
    date_c = next(
        (c for c in query.criteria if isinstance(c, DateMatch) and c.field == "sps_start_date"), None
    )
    time_c = next(
        (c for c in query.criteria if isinstance(c, TimeRange) and c.field == "sps_start_time"), None
    )
    if date_c is None and time_c is None:
        return
    keep = [c for c in query.criteria if c is not date_c and c is not time_c]
    if date_c is not None and len(date_c.ranges) > 1:
        if time_c is not None:
            raise IdentifierError("several start dates cannot be combined with a start time")
        keep.append(DateMatch("sps_start", date_c.ranges))
        query.criteria = keep
        return
    if date_c is None:
        keep.append(TimeRange("sps_start", time_c.lo, time_c.hi))
        query.criteria = keep
        return
    d_lo, d_hi = date_c.ranges[0]
    t_lo = time_c.lo if time_c is not None else None
    t_hi = time_c.hi if time_c is not None else None
    lo = datetime.combine(d_lo, t_lo or time.min) if d_lo else None
    hi = datetime.combine(d_hi, t_hi or time.max) if d_hi else None
    if lo is None and hi is None:
        return
    if lo and hi and lo > hi:
        raise IdentifierError("SPS start date/time range is empty")
    keep.append(DateTimeRange("sps_start", lo, hi))
    query.criteria = keep


def dicom_wildcard_to_like(value: str, *, escape: str = "\\") -> str:
    """DICOM ``*``/``?`` → SQL LIKE ``%``/``_`` with LIKE's own metacharacters escaped."""
    out = []
    for ch in value:
        if ch in ("%", "_", escape):
            out.append(escape + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)
