"""Decoding, parsing and ACKs over python-hl7, with the checks a listener needs first.

HL7 v2 §2.5/2.7: MSH-1 is the field separator, MSH-2 the encoding characters (component,
repetition, escape, subcomponent), MSH-18 the character set. The character set must be known
before the message can be decoded, so MSH is read from the raw bytes (it is ASCII).
"""

from __future__ import annotations

import hl7
from django.conf import settings
from django.utils import timezone

from ..models import CODECS, Charset


class HL7Reject(Exception):
    """The message cannot be processed at all: answered AR (HL7 table 0357 code)."""

    def __init__(self, message: str, *, code: str = "207", location: str = ""):
        super().__init__(message)
        self.code = code
        self.location = location


def max_segment_length() -> int:
    return int(getattr(settings, "RIS_HL7_MAX_SEGMENT_LENGTH", 65536))


def codec_for(charset: str) -> str:
    name = (charset or "").strip().upper()
    if not name:
        return ""
    codec = CODECS.get(name)
    if codec is None:
        raise HL7Reject(f"Unsupported character set {charset!r} in MSH-18.", code="203", location="MSH^1^18")
    return codec


def sniff_msh(raw: bytes) -> dict:
    """MSH fields from the raw bytes (MSH is ASCII): separators, MSH-3/4/9/10/18."""
    if not raw.startswith(b"MSH"):
        raise HL7Reject("The message does not start with an MSH segment.", code="100", location="MSH")
    if len(raw) < 8:
        raise HL7Reject("The message is truncated.", code="100", location="MSH")
    end = raw.find(b"\r")
    head = raw if end < 0 else raw[:end]
    text = head.decode("latin-1")
    sep = text[3]
    enc = text[4:8]
    if sep.isalnum() or len(set(sep + enc)) != 5 or any(c.isalnum() or c in " \r\n" for c in enc):
        raise HL7Reject("Invalid encoding characters in MSH-1/MSH-2.", code="102", location="MSH^1^2")
    parts = text.split(sep)
    fields = ["MSH", sep, *parts[1:]]  # fields[n] == MSH-n

    def f(n: int) -> str:
        return fields[n] if n < len(fields) else ""

    return {
        "sep": sep,
        "encoding": enc,
        "sending_application": f(3).split(enc[0])[0],
        "sending_facility": f(4).split(enc[0])[0],
        "message_type": f(9),
        "control_id": f(10),
        "version": f(12),
        "charset": f(18).split(enc[1])[0],
    }


def decode(raw: bytes, *, charset: str, default_codec: str = "utf-8") -> str:
    codec = codec_for(charset) or default_codec
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise HL7Reject(
            f"The message is not valid {charset or default_codec} text (byte {exc.start}).",
            code="102",
            location="MSH^1^18",
        ) from None
    return text.replace("\r\n", "\r").replace("\n", "\r")


def parse(text: str) -> hl7.Message:
    limit = max_segment_length()
    for n, seg in enumerate(text.split("\r"), 1):
        if len(seg) > limit:
            raise HL7Reject(
                f"Segment {n} ({seg[:3]}) is longer than {limit} characters.",
                code="100",
                location=f"{seg[:3]}^1",
            )
        if seg and (len(seg) < 3 or not seg[:3].isalnum() or (len(seg) > 3 and seg[3] != text[3])):
            raise HL7Reject(f"Segment {n} is malformed.", code="100", location=f"{seg[:3]}")
    try:
        return hl7.parse(text)
    except Exception as exc:  # python-hl7 raises plain errors on broken structure
        raise HL7Reject(f"The message cannot be parsed: {exc.__class__.__name__}.", code="100") from None


def get(msg: hl7.Message, segment, field: int, component: int = 1, repetition: int = 1, sub: int = 1) -> str:
    """One value, unescaped by python-hl7's ``extract_field``; "" when absent.
    ``segment`` is "PID" or ("OBR", 2) for the second OBR."""
    seg_id, nth = (segment, 1) if isinstance(segment, str) else segment
    try:
        value = msg.segments(seg_id)(nth).extract_field(nth, field, repetition, component, sub)
    except (KeyError, IndexError):
        return ""
    return str(value).replace("\r", "\n").strip() if value else ""


def repetitions(msg: hl7.Message, segment: str, field: int) -> int:
    segs = [s for s in msg if str(s[0]) == segment]
    if not segs:
        return 0
    try:
        value = segs[0][field]
    except IndexError:
        return 0
    if isinstance(value, hl7.Field) and value and isinstance(value[0], hl7.Repetition):
        return len(value)
    return 1 if str(value) else 0


def escape(msg_or_none, text: str) -> str:
    """HL7 escaping (python-hl7's ``escape``) of the delimiters; characters outside ASCII are
    kept as they are (the message's MSH-18 encodes them), newlines become ``\\.br\\``."""
    container = msg_or_none or _TEMPLATE
    text = (text or "").replace("\r\n", "\r").replace("\n", "\r")
    out = []
    for ch in text:
        out.append(ch if ord(ch) > 0x7E else container.escape(ch))
    return "".join(out)


_TEMPLATE = hl7.parse("MSH|^~\\&|RIS")


def hl7_timestamp(dt=None) -> str:
    dt = timezone.localtime(dt or timezone.now())
    return dt.strftime("%Y%m%d%H%M%S")


def build_ack(
    *,
    code: str,
    msh: dict,
    text: str = "",
    error_code: str = "",
    location: str = "",
    control_id: str,
) -> str:
    """ACK per HL7 §2.9.2 (original mode), built on python-hl7's ``create_ack`` when the
    message parsed; from the sniffed MSH otherwise. ERR names the field (ERR-1 for 2.3.x
    readers, ERR-2/3 for 2.5)."""
    sep, enc = msh.get("sep") or "|", msh.get("encoding") or "^~\\&"
    comp, sub = enc[0], enc[3]
    mtype = msh.get("message_type", "")
    trigger = mtype.split(comp)[1] if comp in mtype else ""

    def esc(v: str) -> str:
        return escape(_TEMPLATE, v)

    msh_fields = [
        "MSH",
        enc,
        esc(settings.RIS_HL7_APPLICATION),
        esc(settings.RIS_HL7_FACILITY),
        esc(msh.get("sending_application", "")),
        esc(msh.get("sending_facility", "")),
        hl7_timestamp(),
        "",
        f"ACK{comp}{trigger}{comp}ACK" if trigger else "ACK",
        control_id,
        "P",
        esc(msh.get("version") or "2.5.1"),
    ]
    if msh.get("charset"):
        msh_fields += ["", "", "", "", "", esc(msh["charset"])]
    segments = [sep.join(msh_fields)]
    segments.append(sep.join(["MSA", code, esc(msh.get("control_id", "")), esc(text[:80])]))
    if code != "AA":
        loc = location.replace("^", comp)
        err_code = error_code or ("207" if code == "AE" else "200")
        meaning = ERROR_MEANINGS.get(err_code, "Application error")
        eld = (
            f"{loc}{comp}{err_code}{sub}{meaning}{sub}HL70357"
            if loc
            else f"{comp}{comp}{comp}{err_code}{sub}{meaning}{sub}HL70357"
        )
        segments.append(
            sep.join(
                ["ERR", eld, loc, f"{err_code}{comp}{meaning}{comp}HL70357", "E", "", "", "", esc(text[:250])]
            )
        )
    return "\r".join(segments) + "\r"


ERROR_MEANINGS = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}

SUPPORTED_CHARSETS = [c.value for c in Charset]
