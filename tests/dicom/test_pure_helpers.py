"""Pure helpers: host binding, PN per character-set profile, romanisation, PDU framing."""

from __future__ import annotations

import struct

import pytest

from ris.dicom.find import _pdata_pdus
from ris.dicom.policy import host_matches
from worklist.mwl_response import fold_text, pn_for_profile, pn_string_for_profile


@pytest.mark.parametrize(
    ("binding", "address", "ok"),
    [
        ("", "10.0.0.5", True),
        ("10.0.0.5", "10.0.0.5", True),
        ("10.0.0.5", "10.0.0.6", False),
        ("10.0.0.0/24", "10.0.0.77", True),
        ("10.0.1.0/24", "10.0.0.77", False),
        ("10.9.9.9, 10.0.0.5", "10.0.0.5", True),
        ("localhost", "127.0.0.1", True),
        ("10.0.0.5", "::ffff:10.0.0.5", True),
        ("10.0.0.5", "not-an-ip", False),
        ("no-such-host.invalid", "10.0.0.5", False),
    ],
)
def test_host_binding(binding, address, ok):
    assert host_matches(binding, address) is ok


def test_pn_per_profile():
    assert pn_for_profile("Wang^XiaoDong", "王^小东", "", "ISO_IR 192") == "Wang^XiaoDong=王^小东="
    assert pn_for_profile("Wang^XiaoDong", "王^小东", "", "GB18030") == "Wang^XiaoDong=王^小东="
    assert pn_for_profile("Wang^XiaoDong", "", "", "ISO_IR 192") == "Wang^XiaoDong"
    assert pn_for_profile("Wang^XiaoDong", "王^小东", "", "ISO_IR 100") == "Wang^XiaoDong"
    assert pn_for_profile("", "王^小东", "", "ASCII") == "Wang^XiaoDong"
    assert pn_string_for_profile("Li^Ming=李^明", "ASCII") == "Li^Ming"
    assert pn_string_for_profile("Li^Ming=李^明", "ISO_IR 192") == "Li^Ming=李^明"


def test_fold_text():
    assert fold_text("胸部CT平扫", "ASCII") == "Xiong Bu CT Ping Sao"
    assert fold_text("Jérôme", "ISO_IR 100") == "Jérôme"
    assert fold_text("Jérôme", "ASCII") == "Jerome"
    assert fold_text("胸部", "ISO_IR 192") == "胸部"


def test_pdata_framing_one_pdu_or_fragments():
    command, data = b"C" * 10, b"D" * 30
    one = _pdata_pdus(command, data, 3, 16384)
    assert one[:2] == b"\x04\x00"
    assert struct.unpack(">I", one[2:6])[0] == len(one) - 6
    assert one[6:12] == struct.pack(">IBB", 12, 3, 0x03)  # last command fragment
    split = _pdata_pdus(command, data, 3, 16)  # peer accepts 16-byte PDUs: fragments
    offset, pdvs = 0, []
    while offset < len(split):
        length = struct.unpack(">I", split[offset + 2 : offset + 6])[0]
        assert length <= 16
        body = split[offset + 6 : offset + 6 + length]
        pdvs.append((body[5], body[6:]))
        offset += 6 + length
    assert b"".join(f for h, f in pdvs if h & 0x01) == command
    assert b"".join(f for h, f in pdvs if not h & 0x01) == data
    assert [h for h, _ in pdvs][-1] == 0x02 and 0x03 in [h for h, _ in pdvs]
