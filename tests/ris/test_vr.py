"""VR validators (PS3.5 §6.2), property-based, including Chinese names and pinyin."""

from __future__ import annotations

import string

import pytest
from django.core.exceptions import ValidationError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from registration.names import romanise_name, split_chinese_name, to_pinyin
from ris import vr

HAN = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
ascii_printable = st.text(alphabet=string.ascii_letters + string.digits + " .-_", max_size=80)


def _ok(fn, value) -> bool:
    try:
        fn(value)
        return True
    except ValidationError:
        return False


@given(st.text(max_size=40))
def test_sh_accepts_exactly_short_clean_strings(value):
    expected = len(value) <= 16 and "\\" not in value and not any(ord(c) < 32 or ord(c) == 127 for c in value)
    assert _ok(vr.validate_sh, value) == expected


@given(st.text(max_size=100))
def test_lo_limit_is_64(value):
    clean = "\\" not in value and not any(ord(c) < 32 or ord(c) == 127 for c in value)
    assert _ok(vr.validate_lo, value) == (clean and len(value) <= 64)


@given(st.text(alphabet=string.ascii_uppercase + string.digits + " _", max_size=24))
def test_cs_length(value):
    assert _ok(vr.validate_cs, value) == (len(value) <= 16)


@given(st.text(alphabet=string.ascii_lowercase + "-.", min_size=1, max_size=10))
def test_cs_rejects_lowercase_and_punctuation(value):
    assert not _ok(vr.validate_cs, value)


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=2, max_size=12))
def test_ui_from_components(parts):
    uid = ".".join(str(p) for p in parts)
    assert _ok(vr.validate_ui, uid) == (len(uid) <= 64)


@pytest.mark.parametrize("bad", ["1.02.3", "1..2", ".1.2", "1.2.", "1.2.a", "1.2.3" + ".4" * 40, "", "01.2"])
def test_ui_rejects_malformed(bad):
    assert not _ok(vr.validate_ui, bad)


@given(st.text(alphabet=string.ascii_letters + string.digits + " ", min_size=1, max_size=20))
def test_ae(value):
    assert _ok(vr.validate_ae, value) == (len(value) <= 16 and bool(value.strip()))


@given(st.dates())
def test_da_roundtrip(d):
    vr.validate_da(vr.format_da(d))


@pytest.mark.parametrize("bad", ["2024-01-01", "20240230", "2024011", "abcdefgh"])
def test_da_rejects(bad):
    assert not _ok(vr.validate_da, bad)


@given(st.times())
def test_tm_roundtrip(t):
    vr.validate_tm(vr.format_tm(t))
    vr.validate_tm(t.strftime("%H%M%S.%f"))


@pytest.mark.parametrize(("value", "ok"), [("045Y", True), ("003M", True), ("45Y", False), ("045X", False)])
def test_as(value, ok):
    assert _ok(vr.validate_as, value) == ok


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_ds_accepts_short_reprs(f):
    text = f"{f:.6g}"
    assert _ok(vr.validate_ds, text) == (len(text) <= 16)


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_is_range(i):
    vr.validate_is(str(i))


def test_is_out_of_range():
    assert not _ok(vr.validate_is, str(2**31))


@given(st.text(alphabet=HAN, min_size=2, max_size=4))
@example("一兙")  # 兙 has no reading in pypinyin: it must not reach the alphabetic group
@settings(max_examples=200)
def test_chinese_name_romanises_to_valid_pn(name):
    family, given_ = split_chinese_name(name)
    assert family + given_ == name
    alpha = romanise_name(family, given_)
    for part in alpha:
        assert (part.isascii() and part.replace(" ", "").isalpha()) or part == ""
    pn = vr.join_pn_groups(vr.make_pn(*alpha), vr.make_pn(family, given_))
    vr.validate_pn(pn)
    assert pn.count("=") == 1 and pn.split("=")[1] == f"{family}^{given_}" if given_ else True


@given(st.text(alphabet=HAN, min_size=1, max_size=6))
def test_pinyin_is_capitalised_ascii(text):
    out = to_pinyin(text)
    assert out.isascii()
    assert out[:1].isupper()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("王小东", ("Wang", "XiaoDong")),
        ("欧阳娜娜", ("OuYang", "NaNa")),
        ("单田芳", ("Shan", "TianFang")),
        ("曾国藩", ("Zeng", "GuoFan")),
    ],
)
def test_known_names(name, expected):
    assert romanise_name(*split_chinese_name(name)) == expected


@given(st.text(min_size=1, max_size=70))
def test_pn_component_refuses_separators(value):
    ok = _ok(vr.validate_pn_component, value)
    if any(c in value for c in "^=\\") or any(ord(c) < 32 or ord(c) == 127 for c in value):
        assert not ok
    else:
        assert ok


def test_pn_group_limits():
    vr.validate_pn("A" * 64 + "=" + "王" * 64)
    assert not _ok(vr.validate_pn, "A" * 65)
    assert not _ok(vr.validate_pn, "a=b=c=d")
    assert not _ok(vr.validate_pn, "a^b^c^d^e^f")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("Li^Ming", "Li Ming"),
        ("Wang^XiaoDong=王^小东=", "Wang XiaoDong / 王 小东"),
        ("", ""),
        ("Smith^^^Dr", "Smith Dr"),
    ],
)
def test_pn_filter_for_people(value, shown):
    from ris.templatetags.ris_tags import pn

    assert pn(value) == shown
