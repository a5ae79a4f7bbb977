"""Validators for DICOM value representations (PS3.5 §6.2, Table 6.2-1).

Every value the RIS will later put into a dataset is checked here at entry, so the MWL
never emits a non-conformant value. Each validator raises django ValidationError with a
message a front-desk user understands.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# PS3.5 6.1.2.1: the default repertoire is ASCII G0 without control characters except ESC.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BACKSLASH = "\\"

AE_MAX, SH_MAX, LO_MAX, PN_GROUP_MAX, CS_MAX, UI_MAX = 16, 16, 64, 64, 16, 64
DS_MAX, IS_MAX = 16, 12

_CS_RE = re.compile(r"^[A-Z0-9 _]*$")
_UI_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_DA_RE = re.compile(r"^\d{8}$")
_TM_RE = re.compile(r"^([01]\d|2[0-3])([0-5]\d([0-5]\d(\.\d{1,6})?)?)?$")
_AS_RE = re.compile(r"^\d{3}[DWMY]$")
_DS_RE = re.compile(r"^[ ]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ ]*$")
_IS_RE = re.compile(r"^[ ]*[+-]?\d+[ ]*$")


def _no_control(value: str, vr: str) -> None:
    if _CONTROL.search(value):
        raise ValidationError(
            _(
                "This text contains invisible control characters (such as a tab or a line break); remove them."
            ),
            params={"vr": vr},
            code="control_characters",
        )
    if _BACKSLASH in value:
        raise ValidationError(
            _("The backslash character \\ cannot be stored here; remove it."),
            params={"vr": vr},
            code="backslash",
        )


def _max_len(value: str, limit: int, vr: str) -> None:
    if len(value) > limit:
        raise ValidationError(
            _("This is too long: at most %(limit)d characters."),
            params={"vr": vr, "limit": limit},
            code="max_length",
        )


def validate_ae(value: str) -> None:
    """AE: ≤16 chars, default repertoire, not all spaces, no backslash/control."""
    _no_control(value, "AE")
    _max_len(value, AE_MAX, "AE")
    if not value.strip():
        raise ValidationError(_("AE title must not be empty or only spaces."))
    if not value.isascii():
        raise ValidationError(_("AE title must use ASCII characters only."))


def validate_sh(value: str) -> None:
    _no_control(value, "SH")
    _max_len(value, SH_MAX, "SH")


def validate_lo(value: str) -> None:
    _no_control(value, "LO")
    _max_len(value, LO_MAX, "LO")


def validate_cs(value: str) -> None:
    _max_len(value, CS_MAX, "CS")
    if not _CS_RE.match(value):
        raise ValidationError(_("Use only capital letters A–Z, digits 0–9, spaces and underscores."))


def validate_ui(value: str) -> None:
    _max_len(value, UI_MAX, "UI")
    if not _UI_RE.match(value):
        raise ValidationError(
            _("UID must be digits separated by dots, without leading zeros in a component.")
        )


def validate_pn_component(value: str) -> None:
    """One component of a PN group: no ^, =, backslash or control characters."""
    _no_control(value, "PN")
    if "^" in value or "=" in value:
        raise ValidationError(
            _(
                "A name cannot contain the characters ^ or = (the imaging equipment uses them to separate name parts); remove them."
            ),
            code="pn_separator",
        )


def validate_pn(value: str) -> None:
    """A whole PN value: ≤3 groups separated by '=', each ≤64 chars and ≤5 components."""
    _no_control(value, "PN")
    groups = value.split("=")
    if len(groups) > 3:
        raise ValidationError(_("A person name has at most three component groups."))
    for group in groups:
        _max_len(group, PN_GROUP_MAX, "PN")
        if len(group.split("^")) > 5:
            raise ValidationError(_("A person name group has at most five components."))


def validate_da(value: str) -> None:
    if not _DA_RE.match(value):
        raise ValidationError(_("Date must be YYYYMMDD."))
    try:
        datetime.strptime(value, "%Y%m%d")
    except ValueError as exc:
        raise ValidationError(_("Date is not a valid calendar date.")) from exc


def validate_tm(value: str) -> None:
    if not _TM_RE.match(value):
        raise ValidationError(_("Time must be HHMMSS.FFFFFF."))


def validate_as(value: str) -> None:
    if not _AS_RE.match(value):
        raise ValidationError(_("Age must be nnnD, nnnW, nnnM or nnnY."))


def validate_ds(value: str) -> None:
    _max_len(value, DS_MAX, "DS")
    if not _DS_RE.match(value):
        raise ValidationError(_("Not a decimal string."))


def validate_is(value: str) -> None:
    _max_len(value, IS_MAX, "IS")
    if not _IS_RE.match(value):
        raise ValidationError(_("Not an integer string."))
    if not -(2**31) <= int(value) <= 2**31 - 1:
        raise ValidationError(_("Integer string out of range."))


def format_da(value: date | None) -> str:
    # Not strftime: %Y does not zero-pad years before 1000 on every platform.
    return f"{value.year:04d}{value.month:02d}{value.day:02d}" if value else ""


def format_tm(value: time | None) -> str:
    return value.strftime("%H%M%S") if value else ""


def make_pn(family: str = "", given: str = "", middle: str = "", prefix: str = "", suffix: str = "") -> str:
    """One PN component group with trailing empty components removed (PS3.5 6.2.1)."""
    parts = [family, given, middle, prefix, suffix]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)


def join_pn_groups(alphabetic: str, ideographic: str = "", phonetic: str = "") -> str:
    """Join component groups with '=', dropping trailing empty groups."""
    groups = [alphabetic, ideographic, phonetic]
    while len(groups) > 1 and not groups[-1]:
        groups.pop()
    return "=".join(groups)


# --- Coded entries (PS3.3 §8.1–8.3: Code Value, Coding Scheme Designator, Code Meaning) ------
# A code goes out on the worklist in the Requested Procedure / Scheduled Protocol Code
# Sequences, encoded in each station's character set. Code Value and Coding Scheme
# Designator are identifiers: printable ASCII only. Code Meaning is text for people and may
# use any script, but never characters no character set can carry (private-use, surrogates,
# unassigned, control or format characters such as U+E000 or U+200B).
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")
_UNENCODABLE_CATEGORIES = {"Co", "Cs", "Cn", "Cc", "Cf"}


def _unencodable(value: str) -> str | None:
    import unicodedata

    for ch in value:
        if unicodedata.category(ch) in _UNENCODABLE_CATEGORIES:
            return f"U+{ord(ch):04X}"
    return None


def _code_identifier(value: str, label) -> None:
    validate_sh(value)
    if not value.strip():
        raise ValidationError(_("%(label)s must not be empty."), params={"label": label})
    if not _PRINTABLE_ASCII.match(value):
        raise ValidationError(
            _("%(label)s may contain only printable ASCII characters (letters, digits, punctuation)."),
            params={"label": label},
        )
    if value != value.strip():
        raise ValidationError(_("%(label)s must not start or end with a space."), params={"label": label})


def validate_code_value(value: str) -> None:
    """Code Value (0008,0100), SH."""
    _code_identifier(value, _("Code value"))


def validate_coding_scheme(value: str) -> None:
    """Coding Scheme Designator (0008,0102), SH."""
    _code_identifier(value, _("Coding scheme"))


def validate_code_meaning(value: str) -> None:
    """Code Meaning (0008,0104), LO: any script, nothing a character set cannot encode."""
    validate_lo(value)
    if not value.strip():
        raise ValidationError(_("The meaning must not be empty."))
    bad = _unencodable(value)
    if bad:
        raise ValidationError(
            _("The meaning contains a character that cannot be sent to modalities (%(char)s)."),
            params={"char": bad},
        )


def code_errors(*, code_value: str, coding_scheme: str, code_meaning: str) -> dict[str, list[str]]:
    """Field errors of one coded entry ({} when valid); used by the model, the API and checks."""
    errors: dict[str, list[str]] = {}
    for field, validator, value in (
        ("code_value", validate_code_value, code_value),
        ("coding_scheme", validate_coding_scheme, coding_scheme),
        ("code_meaning", validate_code_meaning, code_meaning),
    ):
        try:
            validator(value or "")
        except ValidationError as exc:
            errors[field] = list(exc.messages)
    return errors
