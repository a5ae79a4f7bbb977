"""MWL C-FIND responses: one identifier per matching SPS, encoded straight to bytes.

A response carries every requested key: its value, or zero length when there is none (Type 2),
requested sequence items included, plus Specific Character Set. Building pydicom Datasets and
letting pydicom encode them costs ~1 ms per match; here the request's return keys are compiled
once into element encoders (constant tag/VR headers, per-row values), so a match costs a few
tens of microseconds. The bytes are valid for the presentation context's transfer syntax
(Implicit or Explicit VR Little Endian).

Character-set profiles (per Station, PS3.5 6.1 and Annex J):

* ``ISO_IR 192``: UTF-8, all three PN groups: ``Wang^XiaoDong=王^小东=`` (J.1's byte form).
* ``GB18030``: the same text in GB18030 (J.3's bytes).
* ``ISO_IR 100``: Latin-1; Han characters cannot be encoded, so names use their alphabetic
  (pinyin) group and other text is romanised.
* ``ASCII``: default repertoire only (pinyin), no Specific Character Set element — for
  consoles that show nothing else.
"""

from __future__ import annotations

import struct
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from io import BytesIO

from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset

from .mwl import (
    CODE_ITEM_KEYS,
    SPECIFIC_CHARACTER_SET,
    KeySpec,
    MWLQuery,
    ReturnKey,
    children_of,
)

UTF8, GB18030, LATIN1, ASCII = "ISO_IR 192", "GB18030", "ISO_IR 100", "ASCII"
CODECS = {UTF8: "utf-8", GB18030: "gb18030", LATIN1: "latin-1", ASCII: "ascii"}
# Profiles that can carry Han characters (all three PN component groups).
FULL_PROFILES = (UTF8, GB18030)

# VRs whose explicit-VR header has a 4-byte length (PS3.5 7.1.2).
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
ITEM = b"\xfe\xff\x00\xe0"
MAX_CHARS = {"SH": 16, "LO": 64, "AE": 16, "CS": 16, "LT": 10240}


# ----------------------------------------------------------------------------------------
# Text per profile.


def _han_to_pinyin(text: str) -> str:
    from pypinyin import Style, lazy_pinyin

    out: list[str] = []
    buf: list[str] = []

    def flush():
        if buf:
            syllables = lazy_pinyin("".join(buf), style=Style.NORMAL, errors="ignore")
            if out and out[-1] and not out[-1].endswith(" "):
                out.append(" ")
            out.append(" ".join(s.capitalize() for s in syllables if s))
            buf.clear()

    for ch in text:
        if "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff":
            buf.append(ch)
        else:
            if buf:
                flush()
                if ch not in " ^=":
                    out.append(" ")
            out.append(ch)
    flush()
    return "".join(out).strip()


def fold_text(text: str, profile: str) -> str:
    """Text that the profile's character repertoire can carry (romanised when needed)."""
    if not text or profile in FULL_PROFILES:
        return text
    codec = CODECS[profile]
    try:
        text.encode(codec)
        return text
    except UnicodeEncodeError:
        pass
    text = _han_to_pinyin(text)
    try:
        text.encode(codec)
        return text
    except UnicodeEncodeError:
        pass
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return folded.encode(codec, errors="replace").decode(codec)


def _pinyin_pn_group(group: str) -> str:
    from registration.names import to_pinyin

    components = group.split("^")
    if components:
        components[0] = to_pinyin(components[0], surname=True)
    components[1:] = [to_pinyin(c) for c in components[1:]]
    return "^".join(components)


def pn_for_profile(alphabetic: str, ideographic: str, phonetic: str, profile: str) -> str:
    """PN value with the component groups the profile can carry.

    Full profiles keep ``alpha=ideo=phon``, with the trailing ``=`` of an empty phonetic group
    as in PS3.5 Annex J (``Wang^XiaoDong=王^小东=``); Latin-1/ASCII carry the alphabetic group
    only (romanised from the ideographic group when the alphabetic one is empty).
    """
    alphabetic, ideographic, phonetic = alphabetic or "", ideographic or "", phonetic or ""
    if profile in FULL_PROFILES:
        if ideographic or phonetic:
            return f"{alphabetic}={ideographic}={phonetic}"
        return alphabetic
    if not alphabetic and ideographic:
        alphabetic = _pinyin_pn_group(ideographic)
    return fold_text(alphabetic, profile)


def pn_string_for_profile(value: str, profile: str) -> str:
    """A PN kept as one DICOM string (physicians) → the groups the profile can carry."""
    if not value:
        return ""
    groups = value.split("=")
    groups += [""] * (3 - len(groups))
    if profile in FULL_PROFILES:
        return value
    return pn_for_profile(groups[0], groups[1], groups[2], profile)


# ----------------------------------------------------------------------------------------
# Values by logical field.


def _local(dt: datetime | None) -> datetime | None:
    return timezone.localtime(dt) if dt is not None else None


def _fmt_da(value: date | datetime | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def _fmt_tm(value: datetime | None) -> str:
    return value.strftime("%H%M%S") if value else ""


def _station_aes(row: dict) -> str:
    alt = row.get("alt_station_aes") or ""
    return f"{row['station_ae']}\\{alt}" if alt else row["station_ae"]


VALUE_FUNCS: dict[str, Callable[[dict], object]] = {
    "sps_start_date": lambda r: _fmt_da(r["_start"]),
    "sps_start_time": lambda r: _fmt_tm(r["_start"]),
    "sps_end_date": lambda r: _fmt_da(r["_end"]),
    "sps_end_time": lambda r: _fmt_tm(r["_end"]),
    "birth_date": lambda r: _fmt_da(r["birth_date"]),
    "station_ae": _station_aes,
    "sps_description": lambda r: r["sps_description"] or r["code_meaning"] or "",
    "rp_description": lambda r: r["rp_description"] or r["code_meaning"] or "",
    "pregnancy_status": lambda r: r["pregnancy_status"],
}


# ----------------------------------------------------------------------------------------
# Element encoding.


class _Codec:
    def __init__(self, explicit: bool) -> None:
        self.explicit = explicit

    def header(self, tag: int, vr: str) -> tuple[bytes, str]:
        """Constant part of the element header and the struct format of its length."""
        group, elem = tag >> 16, tag & 0xFFFF
        if not self.explicit:
            return struct.pack("<HH", group, elem), "<I"
        vrb = vr.encode()
        if vrb in LONG_VRS:
            return struct.pack("<HH", group, elem) + vrb + b"\x00\x00", "<I"
        return struct.pack("<HH", group, elem) + vrb, "<H"


Encoder = Callable[[dict], bytes]


def _pad(data: bytes, vr: str) -> bytes:
    if len(data) % 2:
        return data + (b"\x00" if vr == "UI" else b" ")
    return data


class ResponseEncoder:
    """Compiles the request's return keys once; ``encode(row)`` → identifier bytes."""

    def __init__(self, query: MWLQuery, *, charset_profile: str = UTF8, explicit_vr: bool = False) -> None:
        if charset_profile not in CODECS:
            charset_profile = UTF8
        self.profile = charset_profile
        self.codec_name = CODECS[charset_profile]
        self.explicit = explicit_vr
        self._codec = _Codec(explicit_vr)
        self._encoders = self._compile(query.returns, top=True)

    # -- compilation ---------------------------------------------------------------------
    def _compile(self, keys: list[ReturnKey], *, top: bool) -> list[Encoder]:
        plan: list[tuple[int, Encoder]] = []
        if top and self.profile != ASCII:
            plan.append((SPECIFIC_CHARACTER_SET, self._constant(SPECIFIC_CHARACTER_SET, "CS", self.profile)))
        seen: set[int] = set()
        for key in keys:
            spec = key.spec
            if spec.tag in seen:
                continue
            seen.add(spec.tag)
            encoder = self._compile_key(key)
            if encoder is not None:
                plan.append((spec.tag, encoder))
        plan.sort(key=lambda item: item[0])
        return [encoder for _tag, encoder in plan]

    def _constant(self, tag: int, vr: str, text: str) -> Encoder:
        head, lenfmt = self._codec.header(tag, vr)
        data = _pad(text.encode("ascii"), vr)
        element = head + struct.pack(lenfmt, len(data)) + data
        return lambda _row: element

    def _compile_key(self, key: ReturnKey) -> Encoder | None:
        spec = key.spec
        if spec.vr == "SQ":
            return self._compile_sequence(key)
        head, lenfmt = self._codec.header(spec.tag, spec.vr)
        if spec.field is None:
            empty = head + struct.pack(lenfmt, 0)
            return lambda _row: empty
        getter = self._value_getter(spec)
        if spec.vr == "US":

            def encode_us(row, head=head, lenfmt=lenfmt, getter=getter):
                value = getter(row)
                if value is None or value == "":
                    return head + struct.pack(lenfmt, 0)
                return head + struct.pack(lenfmt, 2) + struct.pack("<H", int(value))

            return encode_us
        vr = spec.vr
        codec = self.codec_name if vr in ("PN", "LO", "SH", "LT", "ST", "UT", "UC") else "ascii"
        pad = b"\x00" if vr == "UI" else b" "

        def encode_text(row, head=head, lenfmt=lenfmt, getter=getter, codec=codec, pad=pad):
            value = getter(row)
            if not value:
                return head + struct.pack(lenfmt, 0)
            data = value.encode(codec, errors="replace")
            if len(data) & 1:
                data += pad
            return head + struct.pack(lenfmt, len(data)) + data

        return encode_text

    def _value_getter(self, spec: KeySpec) -> Callable[[dict], object]:
        profile = self.profile
        fld = spec.field
        if fld == "patient_name":
            return lambda r: pn_for_profile(
                r["pn_alphabetic"], r["pn_ideographic"], r["pn_phonetic"], profile
            )
        func = VALUE_FUNCS.get(fld)
        if func is None:

            def func(r, fld=fld):
                return r.get(fld) or ""

        if spec.vr == "PN":
            return lambda r: pn_string_for_profile(func(r) or "", profile)
        if spec.vr in ("LO", "SH", "LT") and profile not in FULL_PROFILES:
            limit = MAX_CHARS.get(spec.vr, 64)
            return lambda r: fold_text(func(r) or "", profile)[:limit]
        return func

    def _compile_sequence(self, key: ReturnKey) -> Encoder:
        spec = key.spec
        head, lenfmt = self._codec.header(spec.tag, "SQ")
        empty = head + struct.pack(lenfmt, 0)
        if spec.field is None and spec.match != "sq":
            return lambda _row: empty  # Type 2 sequences the RIS has no items for
        registry = children_of(spec)
        children = key.children
        if children is None:  # universal: every supported item key
            children = [ReturnKey(s) for s in registry.values()]
        if spec.match == "code":
            children = [
                ReturnKey(CODE_ITEM_KEYS[c.spec.tag]) for c in children if CODE_ITEM_KEYS[c.spec.tag].field
            ]
        item_encoders = self._compile(children, top=False)

        def encode_sequence(row, head=head, lenfmt=lenfmt, item_encoders=item_encoders):
            content = b"".join([enc(row) for enc in item_encoders])
            item = ITEM + struct.pack("<I", len(content)) + content
            return head + struct.pack(lenfmt, len(item)) + item

        return encode_sequence

    # -- per row -------------------------------------------------------------------------
    def encode(self, row: dict) -> bytes:
        row["_start"] = _local(row.get("sps_start"))
        row["_end"] = _local(row.get("sps_end"))
        return b"".join([enc(row) for enc in self._encoders])

    def dataset(self, row: dict) -> Dataset:
        """The same response as a pydicom Dataset (tests, debugging)."""
        return decode_identifier(self.encode(row), explicit_vr=self.explicit)


def decode_identifier(data: bytes, *, explicit_vr: bool) -> Dataset:
    return read_dataset(BytesIO(data), is_implicit_VR=not explicit_vr, is_little_endian=True)
