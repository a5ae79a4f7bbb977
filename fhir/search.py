"""Search parameters (FHIR R4 §3.1.1 "search"): parsing of token, string, date, reference and
number values into Django ``Q`` objects.

Each resource declares its parameters as ``Param`` rows; the same table drives the query, the
400 for a parameter we do not support, and the CapabilityStatement. Repeated parameters are
ANDed, comma-separated values ORed (``\\,`` escapes a comma), as the specification says.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import reduce
from urllib.parse import urlsplit

from django.db.models import Q
from django.utils import timezone

from .errors import BadRequest

# Parameters that control the result rather than select (FHIR R4 §3.1.1.5).
CONTROL_PARAMS = {"_count", "_offset", "_format"}


@dataclass(frozen=True)
class Token:
    system: str | None  # None: no system given (any); "": explicitly no system ("|code")
    code: str


@dataclass(frozen=True)
class DateValue:
    prefix: str
    start: datetime | date
    end: datetime | date  # exclusive upper bound of the value's precision


@dataclass(frozen=True)
class RefValue:
    type: str | None
    id: str


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # token | string | date | reference | number
    documentation: str
    build: Callable[..., Q]  # build(value, modifier) -> Q
    modifiers: tuple[str, ...] = ()
    target: str | None = None  # reference parameters: the resource type referred to


def split_or(raw: str) -> list[str]:
    parts = re.split(r"(?<!\\),", raw)
    return [p.replace("\\,", ",") for p in parts]


def parse_token(raw: str) -> Token:
    if "|" in raw:
        system, _, code = raw.partition("|")
        return Token(system, code)
    return Token(None, raw)


_DATE_RE = re.compile(
    r"^(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2})"
    r"(T(?P<time>\d{2}:\d{2}(:\d{2}(\.\d+)?)?)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
SUPPORTED_DATE_PREFIXES = ("eq", "gt", "lt", "ge", "le")


def parse_date(raw: str, name: str) -> DateValue:
    m = _DATE_RE.match(raw)
    if not m:
        raise BadRequest(
            f"Search parameter {name!r}: {raw!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime).",
            expression=name,
            code="value",
        )
    prefix = m["prefix"] or "eq"
    if prefix not in SUPPORTED_DATE_PREFIXES:
        raise BadRequest(
            f"Search parameter {name!r}: prefix {prefix!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_DATE_PREFIXES)}).",
            expression=name,
            code="not-supported",
        )
    y = int(m["y"])
    try:
        if m["time"]:
            fmt = "%Y-%m-%dT%H:%M:%S" if m["time"].count(":") == 2 else "%Y-%m-%dT%H:%M"
            text = f"{m['y']}-{m['m']}-{m['d']}T{m['time'].split('.')[0]}"
            start = datetime.strptime(text, fmt)
            tz = m["tz"]
            if tz:
                start = datetime.fromisoformat(text + ("+00:00" if tz == "Z" else tz))
            else:
                start = timezone.make_aware(start)
            step = timedelta(seconds=1) if m["time"].count(":") == 2 else timedelta(minutes=1)
            return DateValue(prefix, start, start + step)
        if m["d"]:
            d = date(y, int(m["m"]), int(m["d"]))
            return DateValue(prefix, d, d + timedelta(days=1))
        if m["m"]:
            month = int(m["m"])
            d = date(y, month, 1)
            nxt = date(y + (month == 12), month % 12 + 1, 1)
            return DateValue(prefix, d, nxt)
        return DateValue(prefix, date(y, 1, 1), date(y + 1, 1, 1))
    except ValueError as exc:
        raise BadRequest(
            f"Search parameter {name!r}: {raw!r} is not a valid date.", expression=name, code="value"
        ) from exc


def _as_datetime(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value
    return timezone.make_aware(datetime.combine(value, time.min))


def date_q(field: str, value: DateValue, *, is_date_field: bool) -> Q:
    """Range semantics of FHIR date search over a date or datetime column."""
    start, end = value.start, value.end
    if is_date_field:
        start = start.date() if isinstance(start, datetime) else start
        end = end.date() if isinstance(end, datetime) else end
        if isinstance(value.start, datetime) and end == start:
            end = start + timedelta(days=1)
    else:
        start, end = _as_datetime(start), _as_datetime(end)
    if value.prefix == "eq":
        return Q(**{f"{field}__gte": start, f"{field}__lt": end})
    if value.prefix == "ge":
        return Q(**{f"{field}__gte": start})
    if value.prefix == "gt":
        return Q(**{f"{field}__gte": end})
    if value.prefix == "le":
        return Q(**{f"{field}__lt": end})
    return Q(**{f"{field}__lt": start})  # lt


def parse_reference(raw: str, name: str, target: str | None) -> RefValue:
    """``123``, ``Patient/123`` or ``http(s)://…/fhir/Patient/123``."""
    path = urlsplit(raw).path if raw.startswith(("http://", "https://")) else raw
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise BadRequest(f"Search parameter {name!r}: empty reference.", expression=name, code="value")
    if len(parts) == 1:
        return RefValue(None, parts[0])
    ref_type, ref_id = parts[-2], parts[-1]
    if target and ref_type != target:
        raise BadRequest(
            f"Search parameter {name!r} refers to {target}, not {ref_type}.", expression=name, code="value"
        )
    return RefValue(ref_type, ref_id)


def int_id(raw: str, name: str) -> int | None:
    """A resource id of ours is a positive integer; anything else matches nothing."""
    return int(raw) if raw.isdigit() and len(raw) <= 18 else None


def id_q(field: str = "pk") -> Callable[..., Q]:
    def build(raw: str, modifier: str | None) -> Q:
        pk = int_id(raw, "_id")
        return Q(**{field: pk}) if pk is not None else Q(pk__in=[])

    return build


def reference_q(field: str, name: str, target: str) -> Callable[..., Q]:
    def build(raw: str, modifier: str | None) -> Q:
        ref = parse_reference(raw, name, target)
        pk = int_id(ref.id, name)
        return Q(**{field: pk}) if pk is not None else Q(pk__in=[])

    return build


def date_param_q(field: str, name: str, *, is_date_field: bool) -> Callable[..., Q]:
    def build(raw: str, modifier: str | None) -> Q:
        return date_q(field, parse_date(raw, name), is_date_field=is_date_field)

    return build


def token_choice_q(field: str, name: str, mapping: dict[str, tuple[str, ...]], valueset: set[str]):
    """A token over a code of a required binding mapped onto our statuses.

    ``valueset`` is every code of the FHIR value set: a valid code we never use matches
    nothing; anything else is a 400 naming the parameter.
    """

    def build(raw: str, modifier: str | None) -> Q:
        token = parse_token(raw)
        if token.code not in valueset:
            raise BadRequest(
                f"Search parameter {name!r}: unknown code {token.code!r} "
                f"(one of {', '.join(sorted(valueset))}).",
                expression=name,
                code="code-invalid",
            )
        return Q(**{f"{field}__in": mapping.get(token.code, ())})

    return build


@dataclass
class ParsedQuery:
    filters: list[Q]
    count: int
    offset: int
    params: list[tuple[str, str]]  # the selecting parameters as given, for paging links


def parse_query(
    items: list[tuple[str, str]],
    params: dict[str, Param],
    *,
    resource_type: str,
    default_count: int,
    max_count: int,
) -> ParsedQuery:
    filters: list[Q] = []
    count, offset = default_count, 0
    kept: list[tuple[str, str]] = []
    for key, raw in items:
        name, _, modifier = key.partition(":")
        if name in CONTROL_PARAMS:
            if name == "_format":
                continue  # checked during content negotiation
            if not re.fullmatch(r"\d{1,9}", raw or ""):
                raise BadRequest(
                    f"{name} must be a non-negative integer, not {raw!r}.", expression=name, code="value"
                )
            if name == "_count":
                count = min(int(raw), max_count)
            else:
                offset = int(raw)
            continue
        param = params.get(name)
        if param is None:
            raise BadRequest(
                f"Unknown search parameter {name!r} for {resource_type} "
                f"(supported: {', '.join(sorted(params))}, _count, _offset).",
                expression=name,
                code="not-supported",
            )
        if modifier and modifier not in param.modifiers:
            raise BadRequest(
                f"Search parameter {name!r} does not support the modifier {modifier!r}.",
                expression=key,
                code="not-supported",
            )
        if raw == "":
            raise BadRequest(f"Search parameter {name!r} has no value.", expression=name, code="value")
        filters.append(reduce(operator.or_, (param.build(v, modifier or None) for v in split_or(raw))))
        kept.append((key, raw))
    return ParsedQuery(filters, count, offset, kept)
