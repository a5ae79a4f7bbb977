"""Strict structural checks of received DICOM files, before anything is acknowledged.

pydicom is lenient by design (a dataset cut in the middle of an element may parse without
error), so the receive path walks the encoded element headers itself (PS3.5 §7.1 data
element encoding, §7.5 nesting, A.4 encapsulation), seeking past values, and refuses any
element that runs past the end of the file. Only the four UIDs the durable path needs are
read; indexing reads the rest later, from headers only (``read_headers``).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
)

# VRs with a 2-byte reserved field and a 4-byte length in explicit VR (PS3.5 Table 7.1-1).
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_UNDEFINED = 0xFFFFFFFF
_ITEM = (0xFFFE, 0xE000)
_ITEM_DELIM = (0xFFFE, 0xE00D)
_SEQ_DELIM = (0xFFFE, 0xE0DD)
_PIXEL_DATA = (0x7FE0, 0x0010)
_PIXEL_TAGS = {(0x7FE0, 0x0008), (0x7FE0, 0x0009), _PIXEL_DATA}
_MAX_DEPTH = 32
# Deflated Explicit VR Little Endian and JPIP Referenced Deflate (PS3.5 A.5, A.6).
DEFLATED = {DeflatedExplicitVRLittleEndian, "1.2.840.10008.1.2.4.95"}

# Top-level attributes the durable path needs.
_WANTED = {
    (0x0008, 0x0016): "sop_class_uid",
    (0x0008, 0x0018): "sop_instance_uid",
    (0x0020, 0x000D): "study_instance_uid",
    (0x0020, 0x000E): "series_instance_uid",
}
_MAX_UID_READ = 256  # enough to report an over-long UID without reading a huge value


class MalformedObject(Exception):
    """The bytes are not a well-formed DICOM dataset (C-STORE 0xC000, Cannot understand)."""


@dataclass
class ObjectHeader:
    transfer_syntax_uid: str
    media_sop_class_uid: str
    media_sop_instance_uid: str
    dataset_offset: int
    dataset_size: int
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    # Image Pixel module (PS3.3 C.7.6.3): Rows present means Pixel Data is required.
    missing_pixel_data: bool = False


def _uid_text(raw: bytes) -> str:
    try:
        return raw.decode("ascii").rstrip("\x00 ")
    except UnicodeDecodeError as exc:
        raise MalformedObject("UID value is not ASCII") from exc


class _Walker:
    def __init__(self, fp: BinaryIO, end: int, *, implicit: bool, little: bool):
        self.fp = fp
        self.end = end
        self.implicit = implicit
        self.e = "<" if little else ">"
        self.found: dict[str, str] = {}
        self.has_rows = False
        self.has_pixels = False

    def _read(self, n: int) -> bytes:
        data = self.fp.read(n)
        if len(data) != n:
            raise MalformedObject("dataset ends inside an element header")
        return data

    def _skip(self, n: int) -> None:
        pos = self.fp.tell()
        if pos + n > self.end:
            raise MalformedObject("element value runs past the end of the dataset")
        self.fp.seek(n, io.SEEK_CUR)

    def _tag(self, implicit: bool, e: str) -> tuple[int, int]:
        group, elem = struct.unpack(e + "HH", self._read(4))
        return group, elem

    def _header(self, implicit: bool, e: str) -> tuple[tuple[int, int], bytes | None, int]:
        tag = self._tag(implicit, e)
        if tag[0] == 0xFFFE or implicit:
            (length,) = struct.unpack(e + "L", self._read(4))
            return tag, None, length
        vr = self._read(2)
        if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
            raise MalformedObject("invalid VR")
        if vr in _LONG_VRS:
            self._read(2)
            (length,) = struct.unpack(e + "L", self._read(4))
        else:
            (length,) = struct.unpack(e + "H", self._read(2))
        return tag, vr, length

    def walk(
        self,
        *,
        depth: int = 0,
        implicit: bool | None = None,
        e: str | None = None,
        until_item_delim: bool = False,
        limit: int | None = None,
    ) -> None:
        implicit = self.implicit if implicit is None else implicit
        e = self.e if e is None else e
        stop = self.end if limit is None else limit
        if depth > _MAX_DEPTH:
            raise MalformedObject("sequences nested too deeply")
        while True:
            pos = self.fp.tell()
            if pos >= stop:
                if until_item_delim:
                    raise MalformedObject("item without delimitation item")
                if pos > stop:
                    raise MalformedObject("element crosses the end of its container")
                return
            tag, vr, length = self._header(implicit, e)
            if tag == _ITEM_DELIM:
                if not until_item_delim:
                    raise MalformedObject("unexpected item delimiter")
                return
            if tag[0] == 0xFFFE:
                raise MalformedObject("unexpected item tag in a dataset")
            if depth == 0:
                if tag == (0x0028, 0x0010):
                    self.has_rows = True
                elif tag in _PIXEL_TAGS:
                    self.has_pixels = True
            if length == _UNDEFINED:
                if tag == _PIXEL_DATA and depth == 0:
                    self._fragments(e)
                elif vr is None or vr in (b"SQ", b"UN"):
                    # UN of undefined length is encoded as implicit VR LE (PS3.5 §6.2.2).
                    sub_implicit = implicit or vr == b"UN"
                    self._sequence(depth + 1, sub_implicit, "<" if vr == b"UN" else e)
                else:
                    raise MalformedObject("undefined length on a VR that cannot have one")
                continue
            if depth == 0 and tag in _WANTED:
                if self.fp.tell() + length > self.end:
                    raise MalformedObject("element value runs past the end of the dataset")
                raw = self.fp.read(min(length, _MAX_UID_READ))
                self.found[_WANTED[tag]] = _uid_text(raw)
                self._skip(length - len(raw))
                continue
            if vr == b"SQ" and length:
                start = self.fp.tell()
                if start + length > stop:
                    raise MalformedObject("sequence runs past the end of its container")
                self._sequence(depth + 1, implicit, e, limit=start + length)
                continue
            self._skip(length)

    def _sequence(self, depth: int, implicit: bool, e: str, limit: int | None = None) -> None:
        while True:
            if limit is not None and self.fp.tell() >= limit:
                return
            tag = self._tag(implicit, e)
            (length,) = struct.unpack(e + "L", self._read(4))
            if tag == _SEQ_DELIM:
                if limit is not None:
                    raise MalformedObject("sequence delimiter in a defined-length sequence")
                return
            if tag != _ITEM:
                raise MalformedObject("sequence contains something other than items")
            if length == _UNDEFINED:
                self.walk(depth=depth, implicit=implicit, e=e, until_item_delim=True)
            else:
                start = self.fp.tell()
                if start + length > self.end:
                    raise MalformedObject("item runs past the end of the dataset")
                self.walk(depth=depth, implicit=implicit, e=e, limit=start + length)

    def _fragments(self, e: str) -> None:
        # Encapsulated pixel data: Basic Offset Table item, fragments, sequence delimiter (A.4).
        while True:
            tag = self._tag(False, e)
            (length,) = struct.unpack(e + "L", self._read(4))
            if tag == _SEQ_DELIM:
                return
            if tag != _ITEM or length == _UNDEFINED:
                raise MalformedObject("malformed encapsulated pixel data")
            self._skip(length)


def _read_meta(fp: BinaryIO, size: int) -> tuple[dict[str, str], int]:
    """Read the File Meta Information (group 0002, always explicit VR LE, PS3.10 §7.1)."""
    preamble = fp.read(132)
    if len(preamble) < 132 or preamble[128:132] != b"DICM":
        raise MalformedObject("not a DICOM Part 10 file (no DICM prefix)")
    values: dict[str, str] = {}
    walker = _Walker(fp, size, implicit=False, little=True)
    while True:
        pos = fp.tell()
        peek = fp.read(2)
        fp.seek(pos)
        if len(peek) < 2 or struct.unpack("<H", peek)[0] != 0x0002:
            break
        tag, _vr, length = walker._header(False, "<")
        if length == _UNDEFINED or pos + length > size:
            raise MalformedObject("malformed file meta information")
        raw = fp.read(length)
        if len(raw) != length:
            raise MalformedObject("file meta information is truncated")
        if tag == (0x0002, 0x0010):
            values["transfer_syntax_uid"] = _uid_text(raw)
        elif tag == (0x0002, 0x0002):
            values["media_sop_class_uid"] = _uid_text(raw)
        elif tag == (0x0002, 0x0003):
            values["media_sop_instance_uid"] = _uid_text(raw)
    if not values.get("transfer_syntax_uid"):
        raise MalformedObject("file meta information has no Transfer Syntax UID")
    return values, fp.tell()


def inspect_file(path: Path | str, *, max_inflated: int = 512 * 1024**2) -> ObjectHeader:
    """Check a Part 10 file's structure and return its transfer syntax, offsets and UIDs."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as fp:
        meta, offset = _read_meta(fp, size)
        ts = meta["transfer_syntax_uid"]
        header = ObjectHeader(
            transfer_syntax_uid=ts,
            media_sop_class_uid=meta.get("media_sop_class_uid", ""),
            media_sop_instance_uid=meta.get("media_sop_instance_uid", ""),
            dataset_offset=offset,
            dataset_size=size - offset,
        )
        if header.dataset_size <= 0:
            raise MalformedObject("empty dataset")
        if ts in DEFLATED:
            try:
                inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                data = inflater.decompress(fp.read(), max_inflated)
            except zlib.error as exc:
                raise MalformedObject("deflated dataset does not inflate") from exc
            if inflater.unconsumed_tail:
                raise MalformedObject("deflated dataset is too large")
            stream: BinaryIO = io.BytesIO(data)
            walker = _Walker(stream, len(data), implicit=False, little=True)
        else:
            walker = _Walker(
                fp,
                size,
                implicit=ts == ImplicitVRLittleEndian,
                little=ts != ExplicitVRBigEndian,
            )
        walker.walk()
        header.missing_pixel_data = walker.has_rows and not walker.has_pixels
        for key, value in walker.found.items():
            setattr(header, key, value)
    return header
