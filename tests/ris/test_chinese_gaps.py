"""简体中文: no internal codes or English left where a person reads (issue 9 item 19)."""

from __future__ import annotations

import json
import re

import pytest
from django.apps import apps
from django.conf import settings as dj
from django.contrib import admin
from django.urls import reverse
from django.utils import translation
from django.utils.text import capfirst

from department.models import MaterialItem
from department.services import material_item_upsert
from reports import services as rep
from scheduling import services as sched
from scheduling.management.commands.seed_demo import CATALOG, CATALOG_ZH, Command
from scheduling.models import ProcedureType
from tests.factories import make_order
from tests.reports.conftest import PASSWORD

OUR_APPS = ["ris", "audit", "registration", "scheduling", "worklist", "imaging", "reports", "department"]
CJK = re.compile(r"[\u4e00-\u9fff]")


def zh(client):
    client.cookies[dj.LANGUAGE_COOKIE_NAME] = "zh-hans"
    return client


def test_every_model_and_app_has_a_chinese_name():
    with translation.override("zh-hans"):
        for label in OUR_APPS:
            config = apps.get_app_config(label)
            assert CJK.search(str(config.verbose_name)), label
            for model in config.get_models():
                meta = model._meta
                assert CJK.search(str(meta.verbose_name)), model
                assert CJK.search(str(meta.verbose_name_plural)), model
    with translation.override("en"):
        assert str(apps.get_app_config("reports").verbose_name) == "Reports"
        assert str(ProcedureType._meta.verbose_name_plural) == "procedure types"


@pytest.mark.django_db
def test_admin_index_is_chinese(client_for):
    html = zh(client_for("admin")).get(reverse("admin:index")).content.decode()
    from ris.admin import RoleAdminMixin

    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label in OUR_APPS and isinstance(model_admin, RoleAdminMixin):
            with translation.override("zh-hans"):
                assert capfirst(str(model._meta.verbose_name_plural)) in html, model


@pytest.mark.django_db
def test_histories_show_words_not_codes(client_for, users):
    proc = make_order().procedures.get()
    sched.procedure_start(procedure=proc, source="console")
    sched.procedure_complete(procedure=proc, source="console")
    html = zh(client_for("technologist")).get(reverse("worklist:exam", args=[proc.pk])).content.decode()
    assert "in_progress" not in html and "(console)" not in html
    assert "技师工作台" in html
    report = rep.report_claim(procedure=proc, actor=users["radiologist"])
    rep.report_save_draft(report=report, actor=users["radiologist"], findings="f", impression="i")
    rep.report_submit(report=report, actor=users["radiologist"])
    rep.report_sign(report=report, actor=users["reviewer"], password=PASSWORD)
    html = zh(client_for("reviewer")).get(reverse("reports:detail", args=[report.pk])).content.decode()
    assert "preliminary → final" not in html and "draft →" not in html


@pytest.mark.django_db
def test_charts_get_priority_and_material_words(client_for):
    material_item_upsert(
        code="FILM1417", name="Dry film", kind="film", unit="sheet", low_stock_threshold=10, initial_stock=1
    )
    c = zh(client_for("dept_head"))
    html = c.get(reverse("department:dashboard")).content.decode()
    codes = json.loads(
        re.search(r'<script id="chart-code-labels" type="application/json">(.*?)</script>', html).group(1)
    )
    assert codes["STAT"] == "急诊" and codes["ROUTINE"] == "常规"
    assert codes["film"] != "film" and codes["sheet"] == "张"
    assert 'data-empty-text="此期间没有数据。"' in html
    page = c.get(reverse("department:materials")).content.decode()
    assert "1 张" in page or "1.00 张" in page
    assert MaterialItem.objects.get().unit == "sheet"  # stored as entered


@pytest.mark.django_db
def test_api_figure_csv_has_a_bom(api_for):
    resp = api_for("dept_head").get("/api/v1/department/figures/backlog/csv/")
    assert resp.status_code == 200 and resp.content.startswith("\ufeff".encode())


@pytest.mark.django_db
def test_demo_catalog_reads_in_chinese():
    Command()._catalog()
    assert set(CATALOG_ZH) == {row[0] for row in CATALOG}
    head = ProcedureType.objects.get(code_value="CTHEAD")
    with translation.override("zh-hans"):
        assert head.display_name == "头颅CT平扫" and "头颅CT平扫" in str(head)
    with translation.override("en"):
        assert head.display_name == "CT Head without contrast"
    assert head.code_meaning == "CT Head without contrast"  # what the MWL sends
    # a catalogue seeded before is completed on the next run
    ProcedureType.objects.filter(code_value="MRKNEE").update(name_zh="")
    Command()._catalog()
    assert ProcedureType.objects.get(code_value="MRKNEE").name_zh == "膝关节MR"
