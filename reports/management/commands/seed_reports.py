"""Demo data for reporting: templates, snippets, readable exams and reports in each state.

Idempotent. Run after ``seed_demo`` (``make run`` does). Marks today's started/completed demo
exams as having images (the imaging app does this on ingest), then takes a few of them through
the report lifecycle so the reading worklist, review queue, search and release pages have
something to show: one signed Chinese report (search for 肺结节), one amended, one preliminary;
the rest stay unread for the demo radiologist.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from reports import services
from reports.models import Report, ReportSnippet, ReportTemplate
from ris.errors import ApplicationError
from scheduling.models import ProcedureStatus, RequestedProcedure
from scheduling.services import procedure_images_available

TEMPLATES = [
    # name, modality, body part, language, findings, impression
    (
        "CT 胸部平扫 (中文)",
        "CT",
        "CHEST",
        "zh-hans",
        "胸廓对称，气管居中。双肺纹理清晰，走行自然，双肺野内未见明显异常密度影。\n"
        "双侧肺门不大，纵隔内未见肿大淋巴结。心影大小形态未见异常。双侧胸膜未见增厚，胸腔内未见积液。",
        "胸部CT平扫未见明显异常。",
    ),
    (
        "CT Chest (English)",
        "CT",
        "CHEST",
        "en",
        "Lungs: clear, no nodules or consolidation.\nPleura: no effusion or pneumothorax.\n"
        "Mediastinum: no lymphadenopathy. Heart size normal.",
        "No acute cardiopulmonary abnormality.",
    ),
    (
        "CT 头颅平扫",
        "CT",
        "HEAD",
        "zh-hans",
        "脑实质内未见异常密度影，灰白质分界清楚。脑室系统大小形态正常，中线结构居中。颅骨未见骨折。",
        "头颅CT平扫未见明显异常。",
    ),
    (
        "CT Abdomen/Pelvis",
        "CT",
        "ABDOMEN",
        "en",
        "Liver, spleen, pancreas, adrenal glands and kidneys: unremarkable.\nBowel: normal calibre.\n"
        "No free fluid or lymphadenopathy.",
        "No acute abdominal or pelvic abnormality.",
    ),
    (
        "MR Brain",
        "MR",
        "HEAD",
        "en",
        "No restricted diffusion. No mass effect or midline shift. Ventricles normal in size.\n"
        "No abnormal enhancement.",
        "Normal MR brain.",
    ),
    (
        "MR 腰椎",
        "MR",
        "LSPINE",
        "zh-hans",
        "腰椎生理曲度存在，各椎体信号未见异常。L4/5椎间盘向后突出，硬膜囊受压。",
        "L4/5椎间盘突出。",
    ),
    (
        "DX 胸部正侧位",
        "DX",
        "CHEST",
        "zh-hans",
        "双肺纹理清晰，未见实变影。心影不大，双膈面光整，肋膈角锐利。",
        "心肺膈未见明显异常。",
    ),
    (
        "US 腹部",
        "US",
        "ABDOMEN",
        "zh-hans",
        "肝脏大小形态正常，实质回声均匀。胆囊壁光滑，腔内未见异常回声。胰腺、脾脏、双肾未见异常。",
        "腹部超声未见明显异常。",
    ),
    ("Generic", "", "", "en", "", ""),
]

SNIPPETS = [
    ("肺结节随访建议", "impression", "CT", "建议12个月后低剂量CT复查（参照Fleischner指南）。"),
    (
        "Fleischner follow-up",
        "impression",
        "CT",
        "Follow-up low-dose CT in 12 months (Fleischner Society 2017).",
    ),
    ("No pneumothorax", "findings", "", "No pneumothorax."),
    ("未见骨折", "findings", "", "所见骨质未见明确骨折征象。"),
    ("Compared with prior", "findings", "", "Compared with the prior examination, "),
]

DEMO_PASSWORD = "demo-{username}"  # noqa: S105 - seed_demo's published demo passwords


class Command(BaseCommand):
    help = "Load idempotent demo data for reporting (templates, snippets, readable exams, demo reports)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="seed even when RIS_DEMO_MODE is off")

    def handle(self, *args, **options):
        if not settings.RIS_DEMO_MODE and not options["force"]:
            raise CommandError("RIS_DEMO_MODE is off; refusing to create demo reports (use --force).")
        with transaction.atomic():
            n_templates = self._templates()
            self._snippets()
        readable = self._images_available()
        made = self._reports(readable)
        self.stdout.write(
            self.style.SUCCESS(
                f"Reporting demo ready: {n_templates} templates, {len(readable)} readable exams, "
                f"{made} demo reports. Log in as radiologist/demo-radiologist and reviewer/demo-reviewer."
            )
        )

    def _templates(self) -> int:
        for name, modality, body_part, language, findings, impression in TEMPLATES:
            ReportTemplate.objects.get_or_create(
                name=name,
                defaults={
                    "modality": modality,
                    "body_part": body_part,
                    "language": language,
                    "findings": findings,
                    "impression": impression,
                },
            )
        return ReportTemplate.objects.count()

    def _snippets(self) -> None:
        for label, section, modality, text in SNIPPETS:
            ReportSnippet.objects.get_or_create(
                label=label, defaults={"section": section, "modality": modality, "text": text}
            )

    def _images_available(self) -> list[RequestedProcedure]:
        """Demo exams that started or completed get images (as the ingest would record)."""
        procs = list(
            RequestedProcedure.objects.filter(
                order__placer_order_number__startswith="DEMO",
                status__in=[ProcedureStatus.IN_PROGRESS, ProcedureStatus.COMPLETED],
            ).order_by("pk")
        )
        now = timezone.now()
        for proc in procs:
            if not proc.images_available_at:
                procedure_images_available(
                    procedure=proc, at=proc.ended_at or proc.started_at or now, source="seed"
                )
        return procs

    def _reports(self, readable: list[RequestedProcedure]) -> int:
        if Report.objects.filter(requested_procedure__order__placer_order_number__startswith="DEMO").exists():
            return 0
        rad = User.objects.filter(username="radiologist").first()
        rev = User.objects.filter(username="reviewer").first()
        if not rad or not rev:
            self.stderr.write("demo users missing: run seed_demo first")
            return 0
        completed = [p for p in readable if p.status == ProcedureStatus.COMPLETED]
        plans = [
            (
                "final",
                "右肺上叶尖段见一实性肺结节，大小约8mm×6mm，边界清楚，未见分叶及毛刺。余肺野清晰。",
                "右肺上叶肺结节（8mm），建议12个月后低剂量CT复查。",
            ),
            ("amended", "Lungs clear. Heart normal in size. No effusion.", "No acute abnormality."),
            ("preliminary", "双肺纹理增多，右下肺见少许斑片影。", "右下肺少许炎症可能，建议治疗后复查。"),
        ]
        made = 0
        rev_password = DEMO_PASSWORD.format(username=rev.username)
        for proc, (state, findings, impression) in zip(completed, plans, strict=False):
            try:
                report = services.report_claim(procedure=proc, actor=rad)
                services.report_save_draft(report=report, actor=rad, findings=findings, impression=impression)
                services.report_submit(report=report, actor=rad)
                if state in ("final", "amended"):
                    services.report_sign(report=report, actor=rev, password=rev_password)
                if state == "amended":
                    services.report_add_addendum(
                        report=report,
                        actor=rev,
                        password=rev_password,
                        text="Addendum: compared with the outside chest X-ray of last month, no change.",
                    )
                made += 1
            except ApplicationError as exc:
                self.stderr.write(f"skipped one demo report: {exc.message}")
        return made
