"""Demo data: stations, catalog, one user per role, ~50 patients, orders today and next days.

Idempotent: running it again adds nothing that is already there (orders are added for a
day only when that day has no demo orders yet, so a re-run tomorrow books tomorrow).
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from registration.models import Patient
from registration.services import patient_register
from ris.errors import ApplicationError
from ris.models import StaffProfile
from ris.roles import Role, ensure_groups
from scheduling import services
from scheduling.models import Order, ProcedureType, Station
from scheduling.selectors import station_day_slots

DEMO_USERS = [
    # username, role, printed name, modalities
    ("frontdesk", Role.FRONT_DESK, "Zhou Min 周敏", ""),
    ("tech", Role.TECHNOLOGIST, "Liu Yang 刘洋", ""),
    ("radiologist", Role.RADIOLOGIST, "Dr. Chen Jing 陈静", ""),
    ("reviewer", Role.REVIEWER, "Dr. Zhang Wei 张伟", ""),
    ("head", Role.DEPT_HEAD, "Prof. Li Hua 李华", ""),
    ("admin", Role.ADMIN, "System Administrator", ""),
]

STATIONS = [
    # ae, name, modality, room, charset
    ("CT1", "CT Scanner 1", "CT", "CT-101", "ISO_IR 192"),
    ("MR1", "MR Scanner 1", "MR", "MR-201", "ISO_IR 192"),
    ("DX1", "DR Room 1", "DX", "DR-001", "GB18030"),
    ("US1", "Ultrasound 1", "US", "US-301", "ASCII"),
]

CATALOG = [
    # code, meaning, modality, body part, minutes, preparation
    ("CTHEAD", "CT Head without contrast", "CT", "HEAD", 15, ""),
    ("CTCHEST", "CT Chest without contrast", "CT", "CHEST", 15, ""),
    (
        "CTCHESTC",
        "CT Chest with contrast",
        "CT",
        "CHEST",
        30,
        "Fasting 4 h; check creatinine; iodinated contrast.",
    ),
    (
        "CTABD",
        "CT Abdomen and Pelvis with contrast",
        "CT",
        "ABDOMEN",
        30,
        "Fasting 4 h; oral contrast 1 h before.",
    ),
    ("CTLDCT", "Low-dose CT lung screening", "CT", "CHEST", 15, ""),
    ("MRBRAIN", "MR Brain", "MR", "HEAD", 30, "Remove metal; screening questionnaire."),
    ("MRLSPINE", "MR Lumbar spine", "MR", "LSPINE", 30, "Remove metal; screening questionnaire."),
    ("MRKNEE", "MR Knee", "MR", "KNEE", 30, "Remove metal."),
    ("DXCHEST", "Chest X-ray PA and lateral", "DX", "CHEST", 15, ""),
    ("DXHAND", "X-ray Hand", "DX", "HAND", 15, ""),
    ("DXLSPINE", "X-ray Lumbar spine", "DX", "LSPINE", 15, ""),
    ("USABD", "Ultrasound Abdomen", "US", "ABDOMEN", 15, "Fasting 8 h."),
    ("USTHYR", "Ultrasound Thyroid", "US", "NECK", 15, ""),
    ("USBREAST", "Ultrasound Breast", "US", "BREAST", 15, ""),
]
# The names Chinese-speaking staff read (ProcedureType.name_zh); DICOM keeps the English meaning.
CATALOG_ZH = {
    "CTHEAD": "头颅CT平扫",
    "CTCHEST": "胸部CT平扫",
    "CTCHESTC": "胸部CT增强",
    "CTABD": "全腹部CT增强",
    "CTLDCT": "低剂量肺癌筛查CT",
    "MRBRAIN": "头颅MR",
    "MRLSPINE": "腰椎MR",
    "MRKNEE": "膝关节MR",
    "DXCHEST": "胸部正侧位X线片",
    "DXHAND": "手部X线片",
    "DXLSPINE": "腰椎X线片",
    "USABD": "腹部超声",
    "USTHYR": "甲状腺超声",
    "USBREAST": "乳腺超声",
}

CHINESE_NAMES = [
    "王小东",
    "李娜",
    "张伟",
    "刘洋",
    "陈静",
    "杨帆",
    "黄磊",
    "赵敏",
    "周杰",
    "吴芳",
    "徐强",
    "孙丽",
    "胡军",
    "朱琳",
    "高峰",
    "林涛",
    "何雪",
    "郭勇",
    "马超",
    "罗平",
    "梁红",
    "宋佳",
    "郑浩",
    "谢婷",
    "韩梅",
    "唐亮",
    "冯刚",
    "于洋",
    "董洁",
    "萧然",
    "欧阳娜娜",
    "司马光明",
    "曹雨",
    "许晴",
    "邓超",
]
WESTERN_NAMES = [
    ("Smith", "John"),
    ("Garcia", "Maria"),
    ("Müller", "Hans"),
    ("Dubois", "Claire"),
    ("Rossi", "Luca"),
    ("Johnson", "Emily"),
    ("Brown", "David"),
    ("Novak", "Petra"),
    ("Kim", "Minji"),
    ("Tanaka", "Yuki"),
    ("Silva", "Ana"),
    ("Nguyen", "Linh"),
    ("O'Brien", "Sean"),
    ("Andersson", "Erik"),
    ("Kowalski", "Jan"),
]
REFERRERS = ["Li^Ming", "Wang^Fang", "Chen^Hui", "Smith^Robert", "Zhao^Lei"]
REASONS = [
    "Headache",
    "Cough for 3 weeks",
    "Abdominal pain",
    "Follow-up nodule",
    "Trauma",
    "Back pain",
    "Screening",
]


class Command(BaseCommand):
    help = "Load idempotent demo data (stations, catalog, users, patients, orders)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=3, help="days of orders from today")
        parser.add_argument("--force", action="store_true", help="seed even when RIS_DEMO_MODE is off")
        parser.add_argument(
            "--history-days", type=int, default=14, help="days of finished exams before today (dashboards)"
        )

    def _hl7_sender(self) -> None:
        """The demo HIS (docs/integration.md): HL7 sender HIS/HOSPITAL from 127.0.0.1."""
        from django.apps import apps

        if not apps.is_installed("integration"):
            return
        from integration.models import Sender

        Sender.objects.get_or_create(
            application="HIS",
            facility="HOSPITAL",
            defaults={"host": "127.0.0.1", "description": "Demo HIS (seed_demo)"},
        )

    def handle(self, *args, **options):
        if not settings.RIS_DEMO_MODE and not options["force"]:
            raise CommandError("RIS_DEMO_MODE is off; refusing to create demo users (use --force).")
        rng = random.Random(20261125)
        with transaction.atomic():
            self._users()
            stations = self._stations()
            catalog = self._catalog()
            patients = self._patients(rng)
            self._hl7_sender()
        today = timezone.localdate()
        created = 0
        for offset in range(options["days"]):
            created += self._orders_for_day(
                today + timedelta(days=offset), stations, catalog, patients, rng, offset == 0
            )
        for offset in range(options["history_days"], 0, -1):
            with transaction.atomic():  # one commit per day: fast on SQLite too
                created += self._history_for_day(
                    today - timedelta(days=offset), stations, catalog, patients, rng
                )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {len(stations)} stations, {len(catalog)} procedures, "
                f"{len(patients)} patients, {created} new orders. "
                "Logins: " + ", ".join(f"{u}/demo-{u}" for u, *_ in DEMO_USERS)
            )
        )

    def _users(self):
        ensure_groups()
        for username, role, printed, modalities in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(f"demo-{username}")
                user.is_staff = role == Role.ADMIN
                user.is_superuser = role == Role.ADMIN
                user.save()
            user.groups.add(Group.objects.get(name=role))
            StaffProfile.objects.update_or_create(
                user=user, defaults={"printed_name": printed, "modalities": modalities}
            )

    def _stations(self):
        out = []
        for ae, name, modality, room, charset in STATIONS:
            st, _ = Station.objects.get_or_create(
                ae_title=ae,
                defaults={
                    "name": name,
                    "modality": modality,
                    "room": room,
                    "charset_profile": charset,
                    "work_start": time(8, 0),
                    "work_end": time(18, 0),
                    "slot_minutes": 15,
                },
            )
            out.append(st)
        return out

    def _catalog(self):
        out = []
        for code, meaning, modality, body, minutes, prep in CATALOG:
            pt, _ = ProcedureType.objects.get_or_create(
                coding_scheme="99RIS",
                code_value=code,
                defaults={
                    "code_meaning": meaning,
                    "name_zh": CATALOG_ZH.get(code, ""),
                    "modality": modality,
                    "body_part": body,
                    "duration_minutes": minutes,
                    "preparation": prep,
                },
            )
            if not pt.name_zh and CATALOG_ZH.get(code):
                # A catalogue seeded before names had a Chinese form gets it now.
                pt.name_zh = CATALOG_ZH[code]
                pt.save(update_fields=["name_zh"])
            out.append(pt)
        return out

    def _patients(self, rng):
        out = []
        people = [("zh", n) for n in CHINESE_NAMES] + [("en", n) for n in WESTERN_NAMES]
        for i, (kind, name) in enumerate(people, start=1):
            pid = f"DEMO{i:04d}"
            existing = Patient.objects.filter(
                issuer=settings.RIS_ISSUER_OF_PATIENT_ID, patient_id=pid
            ).first()
            if existing:
                out.append(existing)
                continue
            fields = {
                "birth_date": date(1940 + rng.randrange(0, 70), rng.randrange(1, 13), rng.randrange(1, 29)),
                "sex": rng.choice(["M", "F"]),
                "phone": f"138{rng.randrange(10**7, 10**8)}",
            }
            if kind == "zh":
                fields["chinese_name"] = name
            else:
                fields["family_name"], fields["given_name"] = name
            if i % 9 == 0:
                fields["allergies"] = "Iodinated contrast"
            if i % 13 == 0:
                fields["medical_alerts"] = "Pacemaker"
            if fields["sex"] == "F" and i % 7 == 0:
                fields["pregnancy_status"] = 2
            out.append(patient_register(actor=None, patient_id=pid, **fields))
        return out

    def _orders_for_day(self, day, stations, catalog, patients, rng, is_today) -> int:
        tz = timezone.get_current_timezone()
        start, end = datetime.combine(day, time.min, tzinfo=tz), datetime.combine(day, time.max, tzinfo=tz)
        if Order.objects.filter(
            placer_order_number__startswith="DEMO", procedures__steps__start__range=(start, end)
        ).exists():
            return 0
        created = 0
        for station in stations:
            types = [pt for pt in catalog if pt.modality == station.modality]
            for n in range(6):
                pt = rng.choice(types)
                # Today's demo fills the whole day, the past hours included, so the board and the
                # worklists have something in every state whenever the demo starts.
                slots = [
                    s
                    for s in station_day_slots(station=station, day=day, duration_minutes=pt.duration_minutes)
                    if s.state in ("free", "past")
                ]
                if not slots:
                    break
                slot = slots[min(len(slots) - 1, n * 5)]
                try:
                    order = services.order_create(
                        patient=rng.choice(patients),
                        procedure_type=pt,
                        station=station,
                        start=slot.start,
                        priority=rng.choice(["ROUTINE"] * 5 + ["STAT", "HIGH"]),
                        referring_physician=rng.choice(REFERRERS),
                        reason=rng.choice(REASONS),
                        placer_order_number=f"DEMO-{day:%Y%m%d}-{station.ae_title}-{n}",
                        source="seed",
                    )
                except ApplicationError as exc:
                    self.stderr.write(f"skipped one demo order: {exc.message}")
                    continue
                created += 1
                if is_today and n < 3:
                    self._advance(order, n)
        return created

    def _history_for_day(self, day, stations, catalog, patients, rng) -> int:
        """Finished exams of a past day with back-dated events, so the dashboards have history."""
        tz = timezone.get_current_timezone()
        start, end = datetime.combine(day, time.min, tzinfo=tz), datetime.combine(day, time.max, tzinfo=tz)
        if Order.objects.filter(
            placer_order_number__startswith="DEMO", procedures__steps__start__range=(start, end)
        ).exists():
            return 0
        created = 0
        for station in stations:
            types = [pt for pt in catalog if pt.modality == station.modality]
            slot_start = datetime.combine(day, station.work_start, tzinfo=tz)
            for n in range(rng.randint(4, 8)):
                pt = rng.choice(types)
                begin = slot_start + timedelta(minutes=45 * n)
                try:
                    order = services.order_create(
                        patient=rng.choice(patients),
                        procedure_type=pt,
                        station=station,
                        start=begin,
                        priority=rng.choice(["ROUTINE"] * 6 + ["STAT", "HIGH"]),
                        referring_physician=rng.choice(REFERRERS),
                        reason=rng.choice(REASONS),
                        placer_order_number=f"DEMO-{day:%Y%m%d}-{station.ae_title}-{n}",
                        source="seed",
                        ordered_at=begin - timedelta(hours=rng.randint(2, 72)),
                    )
                except ApplicationError as exc:
                    self.stderr.write(f"skipped one demo order: {exc.message}")
                    continue
                created += 1
                proc = order.procedures.get()
                fate = rng.random()
                if fate < 0.06:
                    services.procedure_cancel(
                        procedure=proc,
                        reason=rng.choice(["No-show", "Patient cancelled", "Referrer cancelled"]),
                        source="seed",
                        at=begin - timedelta(minutes=30),
                    )
                    continue
                arrived = begin - timedelta(minutes=rng.randint(0, 25))
                started = begin + timedelta(minutes=rng.randint(0, 20))
                services.procedure_mark_arrived(procedure=proc, source="seed", at=arrived)
                services.procedure_start(procedure=proc, source="seed", at=started)
                if fate < 0.09:
                    services.procedure_discontinue(
                        procedure=proc,
                        reason="Patient unable to continue",
                        source="seed",
                        at=started + timedelta(minutes=5),
                    )
                    continue
                ended = started + timedelta(minutes=pt.duration_minutes + rng.randint(-3, 8))
                services.procedure_complete(procedure=proc, source="seed", at=ended)
                services.procedure_images_available(
                    procedure=proc, at=ended + timedelta(minutes=rng.randint(1, 10))
                )
        return created

    def _advance(self, order, n):
        proc = order.procedures.get()
        services.procedure_mark_arrived(procedure=proc, source="seed")
        if n >= 1:
            services.procedure_start(procedure=proc, source="seed")
        if n >= 2:
            services.procedure_complete(procedure=proc, source="seed")
