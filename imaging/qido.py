"""QIDO-RS (PS3.18 §10.6): the search engine over the study index (one SQL query per search).

``parse_search`` turns the query parameters of a search into a ``Search`` (criteria, return
keys, paging) or raises ``QidoError`` naming the parameter at fault; ``search_rows`` runs
it as one SELECT on the index tables (``Study``/``Series``/``Instance``, joined upwards, never
a file read); ``row_dataset`` turns a row into a pydicom ``Dataset`` whose
``to_json_dict()`` is the PS3.18 Annex F JSON object.

Matching (PS3.18 §8.3.4, PS3.4 C.2.2.2), per the VR of the attribute:
* UI: single UID or a list (``,`` or ``\\`` separated); no wildcards.
* DA: single date, ``a-b``, ``-b``, ``a-`` (inclusive).  TM: single time or range, compared
  on the stored HHMMSS[.FFFFFF] text, an upper bound extended to the end of its precision.
* PN: case-insensitive, against the whole value or any component group, ``*``/``?``
  wildcards. With ``fuzzymatching=true``: case- and separator-insensitive substring of any
  group, and a value in Chinese characters also matches its pinyin (``王小东`` finds
  ``Wang^XiaoDong``), so "wang", "xiaodong", "wangxiaodong", "王", "小东" all find
  ``Wang^XiaoDong=王^小东``.
* CS/SH/LO: single value (case-sensitive, trailing spaces insignificant), wildcards; several
  values ``\\``-separated are an OR; Modalities in Study matches any of its values.
* IS: integer equality.
An empty value or ``*`` is universal matching (no restriction).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import reduce

from django.conf import settings
from django.db.models import CharField, F, Func, Lookup, Q, Value
from django.db.models.functions import Replace, Upper
from django.db.models.lookups import GreaterThanOrEqual, LessThanOrEqual
from pydicom import config
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from .models import Instance, Series, Study

STUDY, SERIES, INSTANCE = "study", "series", "instance"
LEVELS = (STUDY, SERIES, INSTANCE)
RESERVED = {"includefield", "fuzzymatching", "limit", "offset"}


class QidoError(Exception):
    """An invalid search parameter: 400 with the parameter named."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Attr:
    tag: int
    keyword: str
    vr: str
    level: str
    field: str | None  # ORM field on the level's model; None = computed (not matchable)
    match: str | None  # uid | da | tm | pn | str | multi | int | None (return only)
    default: bool = True  # in the level's default return keys (PS3.18 Table 10.6.3-3..5)


def _a(tag, keyword, vr, level, fld, match, default=True) -> Attr:
    return Attr(tag, keyword, vr, level, fld, match, default)


ATTRS: tuple[Attr, ...] = (
    # Study level (patient attributes are study attributes in the Study Root model).
    _a(0x00080020, "StudyDate", "DA", STUDY, "study_date", "da"),
    _a(0x00080030, "StudyTime", "TM", STUDY, "study_time", "tm"),
    _a(0x00080050, "AccessionNumber", "SH", STUDY, "accession_number", "str"),
    _a(0x00080061, "ModalitiesInStudy", "CS", STUDY, "modalities", "multi"),
    _a(0x00080090, "ReferringPhysicianName", "PN", STUDY, "referring_physician", "pn"),
    _a(0x00081030, "StudyDescription", "LO", STUDY, "description", "str", default=False),
    _a(0x00100010, "PatientName", "PN", STUDY, "patient_name", "pn"),
    _a(0x00100020, "PatientID", "LO", STUDY, "dicom_patient_id", "str"),
    _a(0x00100021, "IssuerOfPatientID", "LO", STUDY, "issuer_of_patient_id", "str", default=False),
    _a(0x00100030, "PatientBirthDate", "DA", STUDY, "patient_birth_date", "da"),
    _a(0x00100040, "PatientSex", "CS", STUDY, "patient_sex", "str"),
    _a(0x00101010, "PatientAge", "AS", STUDY, "patient_age", "str", default=False),
    _a(0x0020000D, "StudyInstanceUID", "UI", STUDY, "study_instance_uid", "uid"),
    _a(0x00200010, "StudyID", "SH", STUDY, "study_id", "str"),
    _a(0x00201206, "NumberOfStudyRelatedSeries", "IS", STUDY, "num_series", None),
    _a(0x00201208, "NumberOfStudyRelatedInstances", "IS", STUDY, "num_instances", None),
    # Series level.
    _a(0x00080021, "SeriesDate", "DA", SERIES, "series_date", "da", default=False),
    _a(0x00080031, "SeriesTime", "TM", SERIES, "series_time", "tm", default=False),
    _a(0x00080060, "Modality", "CS", SERIES, "modality", "str"),
    _a(0x0008103E, "SeriesDescription", "LO", SERIES, "description", "str"),
    _a(0x00180015, "BodyPartExamined", "CS", SERIES, "body_part", "str", default=False),
    _a(0x00185100, "PatientPosition", "CS", SERIES, "patient_position", "str", default=False),
    _a(0x0020000E, "SeriesInstanceUID", "UI", SERIES, "series_instance_uid", "uid"),
    _a(0x00200011, "SeriesNumber", "IS", SERIES, "series_number", "int"),
    _a(0x00201209, "NumberOfSeriesRelatedInstances", "IS", SERIES, "num_instances", None),
    # Instance level.
    _a(0x00080008, "ImageType", "CS", INSTANCE, "image_type", None, default=False),
    _a(0x00080016, "SOPClassUID", "UI", INSTANCE, "sop_class_uid", "uid"),
    _a(0x00080018, "SOPInstanceUID", "UI", INSTANCE, "sop_instance_uid", "uid"),
    _a(0x00083002, "AvailableTransferSyntaxUID", "UI", INSTANCE, "transfer_syntax_uid", None, default=False),
    _a(0x00200013, "InstanceNumber", "IS", INSTANCE, "instance_number", "int"),
    _a(0x00280004, "PhotometricInterpretation", "CS", INSTANCE, "photometric_interpretation", None, False),
    _a(0x00280008, "NumberOfFrames", "IS", INSTANCE, "number_of_frames", None),
    _a(0x00280010, "Rows", "US", INSTANCE, "rows", None),
    _a(0x00280011, "Columns", "US", INSTANCE, "columns", None),
)
BY_TAG: dict[int, Attr] = {a.tag: a for a in ATTRS}
# Always returned, computed: Specific Character Set, Retrieve URL, Instance Availability.
SPECIFIC_CHARACTER_SET, RETRIEVE_URL, INSTANCE_AVAILABILITY = 0x00080005, 0x00081190, 0x00080056

_PREFIX = {
    STUDY: {STUDY: ""},
    SERIES: {STUDY: "study__", SERIES: ""},
    INSTANCE: {STUDY: "series__study__", SERIES: "series__", INSTANCE: ""},
}
MODELS = {STUDY: Study, SERIES: Series, INSTANCE: Instance}
ORDER = {
    STUDY: ("id",),
    SERIES: ("study_id", "series_number", "id"),
    INSTANCE: ("series__study_id", "series_id", "instance_number", "id"),
}


def orm_path(level: str, attr: Attr) -> str:
    return _PREFIX[level][attr.level] + attr.field


def visible_levels(level: str) -> tuple[str, ...]:
    return LEVELS[: LEVELS.index(level) + 1]


@dataclass
class Search:
    level: str
    q: Q = field(default_factory=Q)
    returns: list[Attr] = field(default_factory=list)
    limit: int = 0
    offset: int = 0
    warnings: list[str] = field(default_factory=list)


class Like(Lookup):
    """``lhs LIKE rhs ESCAPE '\\'`` (the rhs is already a LIKE pattern)."""

    lookup_name = "qido_like"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*lhs_params, *rhs_params]


def wildcard_to_like(value: str) -> str:
    """DICOM ``*``/``?`` → LIKE ``%``/``_``, LIKE's own metacharacters escaped."""
    out = []
    for ch in value:
        if ch in "%_\\":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _universal(value: str) -> bool:
    return value == "" or set(value) == {"*"}


# ---------------------------------------------------------------------------------------
# Parameters.

_TAG_RE = re.compile(r"^[0-9A-Fa-f]{8}$")
_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_DA_RE = re.compile(r"^\d{8}$")
_TM_RE = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")


def resolve_attribute(name: str, *, parameter: str) -> tuple[int, str]:
    """An attribute ID (keyword or 8 hex digits) → (tag, keyword); QidoError if not DICOM."""
    if "." in name:
        raise QidoError(parameter, f"sequence attribute paths are not supported: {name!r}")
    if _TAG_RE.match(name):
        tag = int(name, 16)
        try:
            dictionary_VR(tag)
        except KeyError:
            raise QidoError(parameter, f"not a DICOM attribute: {name!r}") from None
        return tag, keyword_for_tag(tag) or name
    tag = tag_for_keyword(name)
    if tag is None:
        raise QidoError(parameter, f"not a DICOM attribute: {name!r}")
    return tag, name


def _parse_da(value: str, parameter: str) -> date:
    if not _DA_RE.match(value):
        raise QidoError(parameter, f"not a DA value (YYYYMMDD): {value!r}")
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise QidoError(parameter, f"not a calendar date: {value!r}") from None


def _norm_tm(value: str, parameter: str, *, upper: bool) -> str:
    """TM → comparable ``HHMMSS.FFFFFF`` text; an upper bound runs to the end of its precision."""
    m = _TM_RE.match(value.replace(":", ""))
    if not m:
        raise QidoError(parameter, f"not a TM value (HHMMSS): {value!r}")
    hh, mm, ss, frac = m.groups()
    fill = "9" if upper else "0"
    if int(hh) > 23 or (mm and int(mm) > 59) or (ss and int(ss) > 60):
        raise QidoError(parameter, f"not a valid time: {value!r}")
    mm = mm or ("59" if upper else "00")
    ss = ss or ("59" if upper else "00")
    digits = (frac[1:] if frac else "").ljust(6, fill)
    return f"{hh}{mm}{ss}.{digits}"


def _range(value: str, parameter: str) -> tuple[str, str] | None:
    if "-" not in value:
        return None
    parts = value.split("-")
    if len(parts) != 2 or (not parts[0] and not parts[1]):
        raise QidoError(parameter, f"malformed range: {value!r}")
    return parts[0].strip(), parts[1].strip()


def _da_q(path: str, value: str, parameter: str) -> Q:
    rng = _range(value, parameter)
    if rng is None:
        return Q(**{path: _parse_da(value, parameter)})
    lo = _parse_da(rng[0], parameter) if rng[0] else None
    hi = _parse_da(rng[1], parameter) if rng[1] else None
    if lo and hi and lo > hi:
        raise QidoError(parameter, f"range bounds reversed: {value!r}")
    q = Q()
    if lo:
        q &= Q(**{f"{path}__gte": lo})
    if hi:
        q &= Q(**{f"{path}__lte": hi})
    return q


def _tm_q(path: str, value: str, parameter: str) -> Q:
    rng = _range(value, parameter)
    lo_s, hi_s = rng if rng is not None else (value, value)
    lo = _norm_tm(lo_s, parameter, upper=False) if lo_s else None
    hi = _norm_tm(hi_s, parameter, upper=True) if hi_s else None
    if lo and hi and lo > hi:
        raise QidoError(parameter, f"range bounds reversed: {value!r}")
    expr = _TmText(F(path))
    q = ~Q(**{path: ""})
    if lo:
        q &= Q(GreaterThanOrEqual(expr, Value(lo)))
    if hi:
        q &= Q(LessThanOrEqual(expr, Value(hi)))
    return q


class _TmText(Func):
    """Stored TM text → ``HHMMSS.FFFFFF`` (separators dropped, zero-filled) so it compares as text."""

    template = (
        "(RPAD(SPLIT_PART(REPLACE(%(expressions)s, ':', ''), '.', 1), 6, '0') || '.' || "
        "RPAD(SPLIT_PART(REPLACE(%(expressions)s, ':', ''), '.', 2), 6, '0'))"
    )
    output_field = CharField()


def _uid_q(path: str, value: str, parameter: str) -> Q:
    uids = [u.strip() for u in re.split(r"[,\\]", value) if u.strip()]
    for uid in uids:
        if _has_wildcard(uid):
            raise QidoError(parameter, "wildcards are not allowed in UID matching")
        if len(uid) > 64 or not _UID_RE.match(uid):
            raise QidoError(parameter, f"not a valid UID: {uid!r}")
    if not uids:
        return Q()
    return Q(**{f"{path}__in": uids}) if len(uids) > 1 else Q(**{path: uids[0]})


def _str_one(path: str, value: str) -> Q:
    value = value.rstrip(" ")
    if _has_wildcard(value):
        return Q(Like(F(path), Value(wildcard_to_like(value))))
    return Q(**{path: value})


def _str_q(path: str, value: str, parameter: str) -> Q:
    values = value.split("\\")
    if any(_universal(v) for v in values):
        return Q()
    return reduce(operator.or_, [_str_one(path, v) for v in values])


def _multi_q(path: str, value: str, parameter: str) -> Q:
    """A multi-valued CS stored ``\\``-joined (Modalities in Study): any stored value matches."""
    parts = []
    for v in value.split("\\"):
        v = v.strip()
        if _universal(v):
            return Q()
        like = wildcard_to_like(v)
        esc = "\\\\"  # a literal backslash in a LIKE pattern with ESCAPE '\'
        parts.append(
            Q(Like(F(path), Value(like)))
            | Q(Like(F(path), Value(like + esc + "%")))
            | Q(Like(F(path), Value("%" + esc + like)))
            | Q(Like(F(path), Value("%" + esc + like + esc + "%")))
        )
    return reduce(operator.or_, parts)


def _int_q(path: str, value: str, parameter: str) -> Q:
    try:
        number = int(value.strip())
    except ValueError:
        raise QidoError(parameter, f"not an integer: {value!r}") from None
    if not -(2**31) <= number < 2**31:  # IS is a 32-bit signed integer (PS3.5 6.2)
        raise QidoError(parameter, f"out of the IS range: {value!r}")
    return Q(**{path: number})


def _pn_norm(group: str) -> str:
    """Trailing empty components are insignificant (PS3.5 6.2.1): ``Wang^^`` == ``Wang``."""
    return group.rstrip("^").strip(" ")


def _pn_q(path: str, value: str, parameter: str, *, fuzzy: bool) -> Q:
    groups = [g for g in (_pn_norm(g) for g in value.split("=")) if not _universal(g)]
    if not groups:
        return Q()
    if fuzzy:
        return _pn_fuzzy_q(path, groups)
    upper = Upper(F(path))
    parts = []
    for group in groups:
        like = wildcard_to_like(group.upper())
        # The group may be the whole value, the first group, a middle or the last one.
        parts.append(
            Q(Like(upper, Value(like)))
            | Q(Like(upper, Value(like + "=%")))
            | Q(Like(upper, Value("%=" + like)))
            | Q(Like(upper, Value("%=" + like + "=%")))
        )
    return reduce(operator.and_, parts)


_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def _pn_fuzzy_q(path: str, groups: list[str]) -> Q:
    from registration.names import to_pinyin

    compact = Upper(Replace(Replace(F(path), Value("^"), Value("")), Value(" "), Value("")))
    parts = []
    for group in groups:
        term = group.replace("^", "").replace(" ", "")
        alternatives = {term.upper()}
        if _HAN.search(term):
            alternatives.add(to_pinyin(term).upper())
        parts.append(
            reduce(
                operator.or_,
                [Q(Like(compact, Value("%" + wildcard_to_like(alt) + "%"))) for alt in alternatives if alt],
            )
        )
    return reduce(operator.and_, parts)


_MATCHERS = {"uid": _uid_q, "da": _da_q, "tm": _tm_q, "str": _str_q, "multi": _multi_q, "int": _int_q}


def _flag(value: str, parameter: str) -> bool:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise QidoError(parameter, "must be true or false")


def _nonneg(value: str, parameter: str, *, minimum: int) -> int:
    if not value.isascii() or not value.isdigit() or not minimum <= int(value) < 2**31:
        raise QidoError(parameter, f"must be an integer from {minimum} to {2**31 - 1}")
    return int(value)


def parse_search(level: str, params, *, path_uids: dict[str, str] | None = None) -> Search:
    """``params``: a QueryDict (or anything with ``lists()``) of a QIDO-RS search."""
    search = Search(level=level)
    levels = visible_levels(level)
    data = dict(params.lists())
    for name, values in data.items():
        if "\x00" in name or any("\x00" in v for v in values):
            raise QidoError(name.replace("\x00", ""), "NUL characters are not allowed")
    fuzzy = _flag(data["fuzzymatching"][-1], "fuzzymatching") if "fuzzymatching" in data else False
    cap = settings.RIS_QIDO_MAX_RESULTS
    search.limit = cap
    if "limit" in data:
        search.limit = min(_nonneg(data["limit"][-1], "limit", minimum=1), cap)
    if "offset" in data:
        search.offset = _nonneg(data["offset"][-1], "offset", minimum=0)
    qs = []
    for uid_keyword, uid in (path_uids or {}).items():
        attr = BY_TAG[tag_for_keyword(uid_keyword)]
        qs.append(Q(**{orm_path(level, attr): uid}))
    for name, values in data.items():
        if name in RESERVED:
            continue
        tag, keyword = resolve_attribute(name, parameter=name)
        attr = BY_TAG.get(tag)
        if attr is None or attr.level not in levels or attr.match is None:
            raise QidoError(name, f"matching on {keyword} is not supported at the {level} level")
        if len(values) > 1:
            raise QidoError(name, "give the attribute once (several UIDs: one comma-separated list)")
        value = values[0]
        path = orm_path(level, attr)
        if attr.match == "pn":
            qs.append(_pn_q(path, value, name, fuzzy=fuzzy))
        elif _universal(value) and attr.match != "uid":
            continue
        else:
            qs.append(_MATCHERS[attr.match](path, value, name))
    search.q = reduce(operator.and_, qs, Q())
    search.returns = _return_keys(level, data.get("includefield", []), search)
    return search


def _return_keys(level: str, includes: list[str], search: Search) -> list[Attr]:
    levels = visible_levels(level)
    chosen = {a.tag: a for a in ATTRS if a.level == level and a.default}
    # The UIDs of the levels above are always there, so every result names its place.
    for above in levels[:-1]:
        uid = {STUDY: 0x0020000D, SERIES: 0x0020000E}[above]
        chosen[uid] = BY_TAG[uid]
    names = [n.strip() for raw in includes for n in raw.split(",") if n.strip()]
    for name in names:
        if name == "all":
            chosen.update({a.tag: a for a in ATTRS if a.level in levels})
            continue
        tag, keyword = resolve_attribute(name, parameter="includefield")
        attr = BY_TAG.get(tag)
        if attr is None or attr.level not in levels:
            search.warnings.append(f"{keyword} is not available at the {level} level and was not returned")
            continue
        chosen[tag] = attr
    return sorted(chosen.values(), key=lambda a: a.tag)


# ---------------------------------------------------------------------------------------
# The query and the JSON rows.


def search_rows(search: Search) -> tuple[list[dict], bool]:
    """Rows of the page and whether there are more (one SELECT: limit + 1 rows)."""
    level = search.level
    values = {orm_path(level, a) for a in search.returns}
    values.add(orm_path(level, BY_TAG[0x0020000D]))
    if level != STUDY:
        values.add(orm_path(level, BY_TAG[0x0020000E]))
    if level == INSTANCE:
        values.add("sop_instance_uid")
    qs = MODELS[level].objects.filter(search.q).order_by(*ORDER[level]).values(*values)
    rows = list(qs[search.offset : search.offset + search.limit + 1])
    more = len(rows) > search.limit
    return rows[: search.limit], more


def _value(attr: Attr, raw):
    if raw is None or raw == "":
        return None
    if attr.vr == "DA":
        return raw.strftime("%Y%m%d")
    if attr.vr == "TM":
        return raw.replace(":", "")
    if attr.vr == "CS" and attr.keyword in ("ModalitiesInStudy", "ImageType"):
        return raw.split("\\")
    return raw


def row_dataset(search: Search, row: dict, *, base_url: str) -> Dataset:
    """One result as a Dataset; ``.to_json_dict()`` gives the Annex F object."""
    level = search.level
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for attr in search.returns:
        value = _value(attr, row[orm_path(level, attr)])
        # Index values are as received; a non-conformant one is returned, not refused.
        ds.add(DataElement(attr.tag, attr.vr, value, validation_mode=config.IGNORE))
    study_uid = row[orm_path(level, BY_TAG[0x0020000D])]
    url = f"{base_url}studies/{study_uid}"
    if level != STUDY:
        url += f"/series/{row[orm_path(level, BY_TAG[0x0020000E])]}"
    if level == INSTANCE:
        url += f"/instances/{row['sop_instance_uid']}"
    ds.add_new(RETRIEVE_URL, "UR", url)
    ds.add_new(INSTANCE_AVAILABILITY, "CS", "ONLINE")
    return ds
