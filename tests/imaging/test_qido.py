"""QIDO-RS (PS3.18 §10.6): matching rules, return keys, paging, errors, one SQL query per search."""

from __future__ import annotations

import json
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pydicom.uid import CTImageStorage, MRImageStorage, generate_uid

from audit.models import AuditEvent
from imaging.models import Instance, ReceivedObject, Series, Study

pytestmark = pytest.mark.django_db

JSON = "application/dicom+json"


def make_study(
    *,
    patient_name="Test^Patient",
    patient_id="PID1",
    study_date=date(2026, 1, 1),
    study_time="101500",
    accession="",
    modalities=("CT",),
    series=1,
    instances=1,
    referring="",
    description="CT CHEST",
):
    study = Study.objects.create(
        study_instance_uid=generate_uid(),
        accession_number=accession,
        study_id="1",
        study_date=study_date,
        study_time=study_time,
        description=description,
        modalities="\\".join(modalities),
        referring_physician=referring,
        dicom_patient_id=patient_id,
        patient_name=patient_name,
        patient_birth_date=date(1980, 1, 2),
        patient_sex="F",
        num_series=series,
        num_instances=series * instances,
    )
    for s in range(series):
        modality = modalities[s % len(modalities)]
        se = Series.objects.create(
            study=study,
            series_instance_uid=generate_uid(),
            series_number=s + 1,
            modality=modality,
            description=f"SERIES {s + 1}",
            num_instances=instances,
        )
        for i in range(instances):
            sop_uid = generate_uid()
            sop_class = MRImageStorage if modality == "MR" else CTImageStorage
            ro = ReceivedObject.objects.create(
                sop_instance_uid=sop_uid,
                sop_class_uid=sop_class,
                study_instance_uid=study.study_instance_uid,
                series_instance_uid=se.series_instance_uid,
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                relpath=f"test/{sop_uid}.dcm",
                sha256="0" * 64,
                size=1,
                received_at=timezone.now(),
                state="indexed",
            )
            Instance.objects.create(
                series=se,
                received_object=ro,
                sop_instance_uid=sop_uid,
                sop_class_uid=sop_class,
                instance_number=i + 1,
                rows=16,
                columns=16,
                transfer_syntax_uid="1.2.840.10008.1.2.1",
            )
    return study


def _get(api, url, **params):
    return api.get(url, params, HTTP_ACCEPT=JSON)


def _uids(response, tag="0020000D"):
    assert response.status_code == 200, response.content
    return {item[tag]["Value"][0] for item in response.json()}


@pytest.fixture
def api(api_for):
    return api_for("radiologist")


@pytest.fixture
def studies(db):
    return {
        "wang": make_study(
            patient_name="Wang^XiaoDong=王^小东",
            patient_id="MRN1",
            study_date=date(2026, 3, 1),
            study_time="083000",
            accession="ACC1",
            modalities=("CT", "MR"),
            series=2,
            instances=2,
            referring="Li^Na",
        ),
        "smith": make_study(
            patient_name="Smith^John",
            patient_id="MRN2",
            study_date=date(2026, 3, 5),
            study_time="14:45:10",
            accession="ACC2",
            modalities=("MR",),
        ),
        "zhang": make_study(
            patient_name="Zhang^Wei=张^伟",
            patient_id="MRN3",
            study_date=date(2025, 12, 31),
            study_time="2359",
            accession="X_1%",
            modalities=("DX",),
        ),
    }


def test_study_search_returns_annex_f_json_with_the_required_keys(api, studies):
    r = _get(api, "/dicomweb/studies", PatientID="MRN1")
    assert r.status_code == 200 and r["Content-Type"].startswith(JSON)
    [item] = r.json()
    wang = studies["wang"]
    assert item["0020000D"] == {"vr": "UI", "Value": [wang.study_instance_uid]}
    assert item["00100010"] == {
        "vr": "PN",
        "Value": [{"Alphabetic": "Wang^XiaoDong", "Ideographic": "王^小东"}],
    }
    assert item["00080020"] == {"vr": "DA", "Value": ["20260301"]}
    assert item["00080061"] == {"vr": "CS", "Value": ["CT", "MR"]}
    assert item["00201206"] == {"vr": "IS", "Value": [2]} and item["00201208"] == {"vr": "IS", "Value": [4]}
    assert item["00081190"]["Value"][0].endswith(f"/dicomweb/studies/{wang.study_instance_uid}")
    assert item["00080056"] == {"vr": "CS", "Value": ["ONLINE"]}
    assert item["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}
    assert "00081030" not in item  # Study Description only with includefield
    audit = AuditEvent.objects.get(action="imaging.qido")
    assert audit.detail["level"] == "study" and audit.detail["matches"] == 1


def test_zero_matches_is_200_empty_array(api, studies):
    r = _get(api, "/dicomweb/studies", PatientID="NOBODY")
    assert r.status_code == 200 and r.json() == []


def test_single_value_wildcard_and_keyword_or_tag(api, studies):
    w, s, z = (studies[k].study_instance_uid for k in ("wang", "smith", "zhang"))
    assert _uids(_get(api, "/dicomweb/studies", AccessionNumber="ACC1")) == {w}
    assert _uids(_get(api, "/dicomweb/studies", **{"00080050": "ACC2"})) == {s}
    assert _uids(_get(api, "/dicomweb/studies", AccessionNumber="ACC*")) == {w, s}
    assert _uids(_get(api, "/dicomweb/studies", AccessionNumber="ACC?")) == {w, s}
    # LIKE metacharacters in the value are literal.
    assert _uids(_get(api, "/dicomweb/studies", AccessionNumber="X_1%")) == {z}
    assert _uids(_get(api, "/dicomweb/studies", AccessionNumber="X?1*")) == {z}
    assert _uids(_get(api, "/dicomweb/studies", AccessionNumber="XX1%")) == set()
    # Universal matching: empty value or "*" restricts nothing.
    assert _uids(_get(api, "/dicomweb/studies", AccessionNumber="*")) == {w, s, z}
    assert _uids(_get(api, "/dicomweb/studies", PatientID="")) == {w, s, z}


def test_modalities_in_study_matches_any_value(api, studies):
    w, s = studies["wang"].study_instance_uid, studies["smith"].study_instance_uid
    assert _uids(_get(api, "/dicomweb/studies", ModalitiesInStudy="MR")) == {w, s}
    assert _uids(_get(api, "/dicomweb/studies", ModalitiesInStudy="CT")) == {w}
    assert _uids(_get(api, "/dicomweb/studies", ModalitiesInStudy="C")) == set()
    assert _uids(_get(api, "/dicomweb/studies", ModalitiesInStudy="CT\\DX")) == {
        w,
        studies["zhang"].study_instance_uid,
    }


def test_date_ranges(api, studies):
    w, s, z = (studies[k].study_instance_uid for k in ("wang", "smith", "zhang"))
    assert _uids(_get(api, "/dicomweb/studies", StudyDate="20260301")) == {w}
    assert _uids(_get(api, "/dicomweb/studies", StudyDate="20260301-20260305")) == {w, s}
    assert _uids(_get(api, "/dicomweb/studies", StudyDate="-20260101")) == {z}
    assert _uids(_get(api, "/dicomweb/studies", StudyDate="20260302-")) == {s}


def test_time_ranges_on_stored_text(api, studies):
    w, s, z = (studies[k].study_instance_uid for k in ("wang", "smith", "zhang"))
    assert _uids(_get(api, "/dicomweb/studies", StudyTime="083000")) == {w}
    assert _uids(_get(api, "/dicomweb/studies", StudyTime="08")) == {w}  # the whole hour
    assert _uids(_get(api, "/dicomweb/studies", StudyTime="0800-1500")) == {w, s}  # "14:45:10" stored
    assert _uids(_get(api, "/dicomweb/studies", StudyTime="1445-")) == {s, z}
    assert _uids(_get(api, "/dicomweb/studies", StudyTime="-0830")) == {w}
    # Combined with a date: both must match.
    assert _uids(_get(api, "/dicomweb/studies", StudyTime="2300-", StudyDate="20251231")) == {z}
    assert _uids(_get(api, "/dicomweb/studies", StudyTime="2300-", StudyDate="20260305")) == set()


def test_uid_list_matching(api, studies):
    w, s = studies["wang"].study_instance_uid, studies["smith"].study_instance_uid
    assert _uids(_get(api, "/dicomweb/studies", StudyInstanceUID=f"{w},{s}")) == {w, s}
    assert _uids(_get(api, "/dicomweb/studies", StudyInstanceUID=f"{w}\\{s}")) == {w, s}
    assert _uids(_get(api, "/dicomweb/studies", StudyInstanceUID=w)) == {w}


def test_person_name_matching_without_fuzzy(api, studies):
    w, s = studies["wang"].study_instance_uid, studies["smith"].study_instance_uid
    assert _uids(_get(api, "/dicomweb/studies", PatientName="Wang^XiaoDong")) == {w}
    assert _uids(_get(api, "/dicomweb/studies", PatientName="wang^xiaodong")) == {w}  # case-insensitive
    assert _uids(_get(api, "/dicomweb/studies", PatientName="王^小东")) == {w}  # ideographic group
    assert _uids(_get(api, "/dicomweb/studies", PatientName="Wang^XiaoDong=王^小东")) == {w}
    assert _uids(_get(api, "/dicomweb/studies", PatientName="Sm*")) == {s}
    assert _uids(_get(api, "/dicomweb/studies", PatientName="Wang")) == set()  # not a prefix match
    assert _uids(_get(api, "/dicomweb/studies", ReferringPhysicianName="LI^NA")) == {w}


def test_fuzzy_person_name_matching_pinyin_and_chinese(api, studies):
    w, z = studies["wang"].study_instance_uid, studies["zhang"].study_instance_uid

    def fuzzy(value):
        return _uids(_get(api, "/dicomweb/studies", PatientName=value, fuzzymatching="true"))

    for value in ("wang", "xiaodong", "wangxiaodong", "Wang^Xiao", "王", "小东", "王小东", "王^小东"):
        assert fuzzy(value) == {w}, value
    assert fuzzy("张伟") == {z}
    assert fuzzy("zhang wei") == {z}
    # A Chinese query also finds a study whose name only has the pinyin group.
    only_pinyin = make_study(patient_name="Liu^Yang", patient_id="MRN9")
    assert fuzzy("刘洋") == {only_pinyin.study_instance_uid}
    assert fuzzy("nobody") == set()
    assert _uids(_get(api, "/dicomweb/studies", PatientName="wang", fuzzymatching="false")) == set()


def test_includefield_and_all(api, studies):
    r = _get(api, "/dicomweb/studies", PatientID="MRN1", includefield="StudyDescription,00101010")
    [item] = r.json()
    assert item["00081030"] == {"vr": "LO", "Value": ["CT CHEST"]}
    assert item["00101010"] == {"vr": "AS"}  # empty value: present, no Value
    r = _get(api, "/dicomweb/studies", PatientID="MRN1", includefield="all")
    [item] = r.json()
    assert "00081030" in item and "00100021" in item
    # An attribute the index does not hold: answered without it, with a warning.
    r = _get(api, "/dicomweb/studies", PatientID="MRN1", includefield="PatientWeight")
    assert r.status_code == 200 and "00101030" not in r.json()[0]
    assert r["Warning"].startswith("299 ") and "PatientWeight" in r["Warning"]


def test_limit_offset_and_the_warning_header(api, studies, settings):
    all_uids = [s.study_instance_uid for s in sorted(studies.values(), key=lambda s: s.pk)]
    r = _get(api, "/dicomweb/studies", limit=2)
    assert [i["0020000D"]["Value"][0] for i in r.json()] == all_uids[:2]
    assert "299" in r["Warning"] and "additional results" in r["Warning"]
    r = _get(api, "/dicomweb/studies", limit=2, offset=2)
    assert [i["0020000D"]["Value"][0] for i in r.json()] == all_uids[2:]
    assert "Warning" not in r
    assert _get(api, "/dicomweb/studies", offset=10).json() == []
    settings.RIS_QIDO_MAX_RESULTS = 1  # the server's cap applies to a larger or absent limit
    r = _get(api, "/dicomweb/studies", limit=50)
    assert len(r.json()) == 1 and "additional results" in r["Warning"]


def test_series_search_at_both_resources(api, studies):
    wang = studies["wang"]
    r = _get(api, f"/dicomweb/studies/{wang.study_instance_uid}/series")
    items = r.json()
    assert len(items) == 2
    assert {i["00080060"]["Value"][0] for i in items} == {"CT", "MR"}
    assert all(i["0020000D"]["Value"][0] == wang.study_instance_uid for i in items)
    assert all(i["00201209"] == {"vr": "IS", "Value": [2]} for i in items)
    se = wang.series.get(modality="MR")
    assert items[1]["00081190"]["Value"][0].endswith(
        f"/studies/{wang.study_instance_uid}/series/{se.series_instance_uid}"
    )
    # /series across studies, matching study-level attributes too.
    assert _uids(_get(api, "/dicomweb/series", Modality="MR"), "0020000E") == {
        se.series_instance_uid,
        studies["smith"].series.get().series_instance_uid,
    }
    assert _uids(_get(api, "/dicomweb/series", Modality="MR", PatientID="MRN2"), "0020000E") == {
        studies["smith"].series.get().series_instance_uid
    }
    assert _uids(_get(api, "/dicomweb/series", SeriesNumber="2"), "0020000E") == {
        wang.series.get(series_number=2).series_instance_uid
    }
    # A study that does not exist: no matches.
    assert _get(api, f"/dicomweb/studies/{generate_uid()}/series").json() == []


def test_instance_search_at_every_resource(api, studies):
    wang = studies["wang"]
    se = wang.series.get(modality="MR")
    base = f"/dicomweb/studies/{wang.study_instance_uid}"
    r = _get(api, f"{base}/series/{se.series_instance_uid}/instances")
    items = r.json()
    assert [i["00200013"]["Value"][0] for i in items] == [1, 2]
    assert items[0]["00080016"]["Value"] == [MRImageStorage]
    assert items[0]["00280010"] == {"vr": "US", "Value": [16]}
    assert items[0]["0020000E"]["Value"] == [se.series_instance_uid]
    sop = items[0]["00080018"]["Value"][0]
    assert items[0]["00081190"]["Value"][0].endswith(f"/series/{se.series_instance_uid}/instances/{sop}")
    assert len(_get(api, f"{base}/instances").json()) == 4
    assert _uids(_get(api, "/dicomweb/instances", SOPClassUID=MRImageStorage), "00080018") == set(
        Instance.objects.filter(sop_class_uid=MRImageStorage).values_list("sop_instance_uid", flat=True)
    )
    assert _uids(_get(api, "/dicomweb/instances", SOPInstanceUID=sop, PatientName="wang*"), "00080018") == {
        sop
    }
    r = _get(api, "/dicomweb/instances", InstanceNumber="2", Modality="CT", includefield="all")
    [item] = r.json()
    assert item["00083002"]["Value"] == ["1.2.840.10008.1.2.1"] and item["00100020"]["Value"] == ["MRN1"]


@pytest.mark.parametrize(
    ("url", "level_table"),
    [
        ("/dicomweb/studies", "imaging_study"),
        ("/dicomweb/series", "imaging_series"),
        ("/dicomweb/instances", "imaging_instance"),
    ],
)
def test_one_sql_query_per_search_whatever_the_number_of_matches(api, url, level_table):
    for n in range(12):
        make_study(patient_id=f"P{n}", series=2, instances=2)
    api.get(url, HTTP_ACCEPT=JSON)  # warm up authentication/session queries

    def count(params):
        with CaptureQueriesContext(connection) as ctx:
            r = api.get(url, params, HTTP_ACCEPT=JSON)
        assert r.status_code == 200
        return [q["sql"] for q in ctx.captured_queries if "imaging_" in q["sql"]], len(r.json())

    few, n_few = count({"PatientID": "P1", "includefield": "all"})
    many, n_many = count({"PatientName": "Test*", "includefield": "all"})
    assert n_few >= 1 and n_many > n_few
    assert len(few) == len(many) == 1
    assert level_table in many[0]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"NoSuchAttribute": "x"}, "NoSuchAttribute"),
        ({"FFFF0001": "x"}, "FFFF0001"),
        ({"PatientWeight": "70"}, "PatientWeight"),  # a DICOM attribute the index cannot match
        ({"Modality": "CT"}, "Modality"),  # series attribute in a study search
        ({"StudyDate": "2026-03-01"}, "StudyDate"),
        ({"StudyDate": "20261301"}, "StudyDate"),
        ({"StudyDate": "20260305-20260301"}, "StudyDate"),
        ({"StudyDate": "-"}, "StudyDate"),
        ({"StudyTime": "25"}, "StudyTime"),
        ({"StudyTime": "10h"}, "StudyTime"),
        ({"StudyInstanceUID": "1.2.*"}, "StudyInstanceUID"),
        ({"StudyInstanceUID": "1.02.3"}, "StudyInstanceUID"),
        (
            {"ReferencedStudySequence.ReferencedSOPInstanceUID": "1.2"},
            "ReferencedStudySequence.ReferencedSOPInstanceUID",
        ),
        ({"limit": "-1"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "x"}, "offset"),
        ({"offset": "9" * 30}, "offset"),
        ({"limit": "١٢"}, "limit"),  # Arabic-Indic digits: isdigit() but not DICOM
        ({"fuzzymatching": "yes"}, "fuzzymatching"),
        ({"includefield": "NoSuchAttribute"}, "includefield"),
    ],
)
def test_invalid_parameter_is_400_problem_naming_it(api, studies, params, parameter):
    r = _get(api, "/dicomweb/studies", **params)
    assert r.status_code == 400
    assert r["Content-Type"] == "application/problem+json"
    body = json.loads(r.content)
    assert body["parameter"] == parameter and parameter in body["detail"]
    assert not AuditEvent.objects.filter(action="imaging.qido").exists()


def test_nul_in_a_parameter_is_400(api, studies):
    # ris.middleware rejects NUL bytes first; qido.parse_search refuses them too if reached.
    r = _get(api, "/dicomweb/studies", AccessionNumber="A\x00B")
    assert r.status_code == 400
    assert not AuditEvent.objects.filter(action="imaging.qido").exists()
    from django.http import QueryDict

    from imaging import qido

    with pytest.raises(qido.QidoError) as exc:
        qido.parse_search(qido.STUDY, QueryDict("AccessionNumber=A%00B"))
    assert exc.value.parameter == "AccessionNumber"


def test_instance_number_must_be_an_integer(api, studies):
    for value in ("one", "9" * 20):
        r = _get(api, "/dicomweb/instances", InstanceNumber=value)
        assert r.status_code == 400 and r.json()["parameter"] == "InstanceNumber"


def test_invalid_path_uid_is_400(api):
    r = _get(api, "/dicomweb/studies/not-a-uid/series")
    assert r.status_code == 400 and r.json()["parameter"] == "StudyInstanceUID"


def test_xml_only_accept_is_406(api, studies):
    r = api.get("/dicomweb/studies", HTTP_ACCEPT='multipart/related; type="application/dicom+xml"')
    assert r.status_code == 406 and r["Content-Type"] == "application/problem+json"
    assert api.get("/dicomweb/studies", HTTP_ACCEPT="application/json").status_code == 200
    assert api.get("/dicomweb/studies", HTTP_ACCEPT="*/*").status_code == 200
    assert api.get("/dicomweb/studies").status_code == 200


def test_unknown_resource_is_404(api):
    assert api.get(f"/dicomweb/studies/{generate_uid()}/nonsense", HTTP_ACCEPT=JSON).status_code == 404


def test_permission_and_authentication(api_for, studies):
    from rest_framework.test import APIClient

    for url in ("/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances"):
        assert api_for("front_desk").get(url, HTTP_ACCEPT=JSON).status_code == 403
        assert APIClient().get(url, HTTP_ACCEPT=JSON).status_code in (401, 403)
    assert not AuditEvent.objects.filter(action="imaging.qido").exists()


def test_stow_still_answers_post_on_studies(api_for):
    r = api_for("technologist").post("/dicomweb/studies", data=b"x", content_type="application/dicom")
    assert r.status_code == 415


def test_cors_is_off_by_default_and_configurable(api_for, studies, settings):
    from django.test import Client

    api = api_for("radiologist")
    origin = "https://viewer.example.org"
    r = api.get("/dicomweb/studies", HTTP_ACCEPT=JSON, HTTP_ORIGIN=origin)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r
    settings.RIS_DICOMWEB_CORS_ORIGINS = [origin]
    r = api.get("/dicomweb/studies", {"limit": 1}, HTTP_ACCEPT=JSON, HTTP_ORIGIN=origin)
    assert r["Access-Control-Allow-Origin"] == origin and "Origin" in r["Vary"]
    assert "Warning" in r["Access-Control-Expose-Headers"]
    # A preflight is answered before authentication.
    pre = Client().options(
        "/dicomweb/studies",
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    assert pre.status_code == 204 and pre["Access-Control-Allow-Origin"] == origin
    assert "Authorization" in pre["Access-Control-Allow-Headers"]
    # Another origin, or a path outside DICOMweb: no CORS headers.
    other = api.get("/dicomweb/studies", HTTP_ACCEPT=JSON, HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in other
    assert "Access-Control-Allow-Origin" not in api.get("/api/v1/", HTTP_ORIGIN=origin)
    # Refusals carry the headers too, so the viewer can read the status.
    anon = Client().get("/dicomweb/studies", HTTP_ACCEPT=JSON, HTTP_ORIGIN=origin)
    assert anon.status_code in (401, 403) and anon["Access-Control-Allow-Origin"] == origin


def test_base_url_setting_is_used_in_retrieve_urls(api, studies, settings):
    settings.RIS_DICOMWEB_BASE_URL = "https://pacs.example.org/dicomweb"
    r = _get(api, "/dicomweb/studies", PatientID="MRN1")
    url = r.json()[0]["00081190"]["Value"][0]
    assert url == f"https://pacs.example.org/dicomweb/studies/{studies['wang'].study_instance_uid}"
