"""Chinese names: split into family/given and romanise to pinyin for the alphabetic group.

DICOM PS3.5 Annex J shows Chinese names as ``Wang^XiaoDong=王^小東=``: the alphabetic
group carries pinyin with each syllable capitalised, the ideographic group the characters.
"""

from __future__ import annotations

import re

from pypinyin import Style, lazy_pinyin

# Two-character (compound) surnames; anything else takes the first character as family name.
COMPOUND_SURNAMES = frozenset(
    [
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "司空",
        "夏侯",
        "令狐",
        "轩辕",
        "端木",
        "独孤",
        "南宫",
        "西门",
        "百里",
        "呼延",
        "澹台",
        "万俟",
        "闻人",
        "赫连",
        "拓跋",
        "钟离",
        "申屠",
        "太史",
    ]
)

_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def has_han(text: str) -> bool:
    return bool(_HAN.search(text or ""))


def split_chinese_name(full: str) -> tuple[str, str]:
    """Split 王小东 into ('王', '小东'); 欧阳娜娜 into ('欧阳', '娜娜')."""
    full = re.sub(r"\s+", "", full or "")
    if not full:
        return "", ""
    if len(full) >= 3 and full[:2] in COMPOUND_SURNAMES:
        return full[:2], full[2:]
    if len(full) == 1:
        return full, ""
    return full[0], full[1:]


# Surnames whose reading differs from the character's most common reading.
_SURNAME_READINGS = {
    "单": "Shan",
    "曾": "Zeng",
    "解": "Xie",
    "仇": "Qiu",
    "朴": "Piao",
    "区": "Ou",
    "查": "Zha",
    "乐": "Yue",
    "尉迟": "YuChi",
    "万俟": "MoQi",
    "覃": "Qin",
    "缪": "Miao",
    "翟": "Zhai",
    "盖": "Ge",
    "繁": "Po",
    "員": "Yun",
    "长孙": "ZhangSun",
    "重": "Chong",
}


def _without_reading(chars: str) -> str:
    """Text pypinyin has no reading for: keep ASCII letters and digits, drop the rest.

    A rare character (e.g. 兙) has no pinyin; kept as is it would put a non-ASCII character into
    the alphabetic PN group, which ASCII-only consoles and ISO_IR 100 cannot show.
    """
    return "".join(c for c in chars if c.isascii() and c.isalnum())


def to_pinyin(text: str, *, surname: bool = False) -> str:
    """Romanise Han characters; each syllable capitalised, no tone marks, no spaces."""
    if not text:
        return ""
    if surname and text in _SURNAME_READINGS:
        return _SURNAME_READINGS[text]
    syllables = lazy_pinyin(text, style=Style.NORMAL, errors=_without_reading, v_to_u=False)
    return "".join(s[:1].upper() + s[1:] for s in syllables if s.strip())


def romanise_name(family: str, given: str) -> tuple[str, str]:
    """Pinyin (family, given) for an ideographic name."""
    return to_pinyin(family, surname=True), to_pinyin(given)
