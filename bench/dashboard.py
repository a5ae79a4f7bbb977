"""Benchmark the department dashboards at a million procedures (not a test).

Seeds N procedures (default 1,000,000) with realistic event histories over two years into a
separate PostgreSQL database (default ``ris_bench_dash``) by set-based SQL
(``INSERT … SELECT … FROM generate_series``: the whole seed runs inside PostgreSQL), then
times every dashboard page, figure JSON, CSV and REST call with Django's test client
(median and p95 of ``--runs`` requests, after one warm-up).

    .venv/bin/python -m bench.dashboard                    # seed once (reused), then time
    .venv/bin/python -m bench.dashboard --reseed           # drop and rebuild the database
    .venv/bin/python -m bench.dashboard --procedures 100000 --runs 5

Target: p95 ≤ 500 ms per page and call at 1M procedures (default 30-day period).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

DEFAULT_DB = "ris_bench_dash"
PG = "postgres://postgres@127.0.0.1:5432/"
DAYS = 730

# 20 stations: (AE, modality, procedure code)
STATIONS = [
    *[(f"BCT{i}", "CT", "BCT") for i in range(1, 6)],
    *[(f"BMR{i}", "MR", "BMR") for i in range(1, 5)],
    *[(f"BDX{i}", "DX", "BDX") for i in range(1, 6)],
    *[(f"BUS{i}", "US", "BUS") for i in range(1, 5)],
    *[(f"BMG{i}", "MG", "BMG") for i in range(1, 3)],
]
RADIOLOGISTS = [f"bench_rad{i:02d}" for i in range(1, 13)]
REVIEWERS = [f"bench_rev{i:02d}" for i in range(1, 5)]
CANCEL_REASONS = ["patient request", "clinical change", "duplicate order", "contraindication"]


def _setup(db: str) -> None:
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", PG + db)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ris.settings")
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,localhost,127.0.0.1"
    os.environ.setdefault("RIS_LOG_LEVEL", "WARNING")
    import django

    django.setup()


def _ensure_database(db: str, reseed: bool) -> None:
    import psycopg

    with psycopg.connect(PG + "postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone()
        if exists and reseed:
            conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{db}"')


def _seed(n: int) -> None:
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from scheduling.models import ProcedureType, Station

    t_start = time.perf_counter()
    stations = []
    for ae, modality, code in STATIONS:
        pt, _ = ProcedureType.objects.get_or_create(
            coding_scheme="99RIS",
            code_value=code,
            defaults={"code_meaning": f"Bench {modality}", "modality": modality, "duration_minutes": 15},
        )
        st, _ = Station.objects.get_or_create(
            ae_title=ae, defaults={"name": ae, "modality": modality, "room": ae, "work_start": "07:00"}
        )
        stations.append((st.pk, pt.pk, modality))
    rad_group, _ = Group.objects.get_or_create(name="radiologist")
    rev_group, _ = Group.objects.get_or_create(name="reviewer")
    head_group, _ = Group.objects.get_or_create(name="dept_head")
    rads, revs = [], []
    for name in RADIOLOGISTS:
        u, _ = User.objects.get_or_create(username=name)
        u.groups.add(rad_group)
        rads.append(u.pk)
    for name in REVIEWERS:
        u, _ = User.objects.get_or_create(username=name)
        u.groups.add(rev_group)
        revs.append(u.pk)
    head, _ = User.objects.get_or_create(username="bench_head")
    head.groups.add(head_group)

    n_patients = max(n // 8, 1)
    st_values = ",".join(f"({i},{s},{p},'{m}')" for i, (s, p, m) in enumerate(stations))
    rad_values = ",".join(f"({i},{u})" for i, u in enumerate(rads))
    rev_values = ",".join(f"({i},{u})" for i, u in enumerate(revs))
    params = {
        "n": n,
        "np": n_patients,
        "nst": len(stations),
        "nrad": len(rads),
        "nrev": len(revs),
        "days": DAYS,
        "st_values": st_values,
        "rad_values": rad_values,
        "rev_values": rev_values,
    }
    steps = [
        (
            "patients",
            """
        INSERT INTO registration_patient (id, patient_id, issuer, family_name, given_name, middle_name,
            name_prefix, name_suffix, ideographic_family, ideographic_given, phonetic_family, phonetic_given,
            pn_alphabetic, pn_ideographic, pn_phonetic, search_compact, birth_date, sex, phone, address,
            other_ids, medical_alerts, allergies, is_temporary, created_at, updated_at)
        SELECT g, 'BP' || g, 'BENCH', 'Family' || g, 'Given', '', '', '', '', '', '', '',
            'Family' || g || '^Given', '', '', 'family' || g || 'given', DATE '1950-01-01' + (g %% 25000),
            CASE WHEN g %% 2 = 0 THEN 'F' ELSE 'M' END, '', '', '[]'::jsonb, '', '', false, now(), now()
        FROM generate_series(1, %(np)s) g
        """,
        ),
        (
            "plan",
            """
        CREATE UNLOGGED TABLE bench_p AS
        WITH st(idx, station_id, pt_id, modality) AS (VALUES %(st_values)s),
        rad(idx, user_id) AS (VALUES %(rad_values)s),
        rev(idx, user_id) AS (VALUES %(rev_values)s),
        g AS (
            SELECT g AS id,
                now() - interval '%(days)s days' + (g - 1) * (interval '%(days)s days' / %(n)s) AS ordered,
                random() AS r_prio, random() AS r_out, random() AS r_lead, random() AS r_arr,
                random() AS r_start, random() AS r_dur, random() AS r_img, random() AS r_pre,
                random() AS r_fin, random() AS r_err
            FROM generate_series(1, %(n)s) g
        )
        SELECT g.id, g.ordered, g.r_out, g.r_err, g.r_img, st.station_id, st.pt_id, st.modality,
            rad.user_id AS author_id, rev.user_id AS signer_id,
            p.priority, s.scheduled, a.arrived, b.started, c.completed,
            c.completed - interval '2 min' + g.r_img * interval '8 min' AS images,
            pr.prelim, pr.prelim + interval '5 min' + g.r_fin * g.r_fin * interval '10 hours' AS final,
            CASE WHEN g.r_out < 0.03 THEN 'cancelled' WHEN g.r_out < 0.05 THEN 'noshow'
                 WHEN g.r_out < 0.06 THEN 'discontinued' ELSE 'completed' END AS outcome
        FROM g
        JOIN st ON st.idx = g.id %% %(nst)s
        JOIN rad ON rad.idx = (g.id / 3) %% %(nrad)s
        JOIN rev ON rev.idx = (g.id / 5) %% %(nrev)s
        CROSS JOIN LATERAL (SELECT CASE WHEN g.r_prio < 0.06 THEN 'STAT' WHEN g.r_prio < 0.18 THEN 'HIGH'
                                        ELSE 'ROUTINE' END AS priority) p
        CROSS JOIN LATERAL (SELECT g.ordered + CASE
                WHEN p.priority = 'STAT' THEN interval '5 min' + g.r_lead * interval '20 min'
                WHEN p.priority = 'HIGH' THEN interval '1 hour' + g.r_lead * interval '6 hours'
                ELSE interval '2 hours' + g.r_lead * interval '3 days' END AS scheduled) s
        CROSS JOIN LATERAL (SELECT s.scheduled - interval '20 min' + g.r_arr * interval '35 min' AS arrived) a
        CROSS JOIN LATERAL (SELECT a.arrived + interval '3 min' + g.r_start * interval '25 min' AS started) b
        CROSS JOIN LATERAL (SELECT b.started + interval '8 min' + g.r_dur * interval '30 min' AS completed) c
        CROSS JOIN LATERAL (SELECT c.completed + CASE WHEN p.priority = 'STAT'
                THEN interval '10 min' + g.r_pre * interval '40 min'
                ELSE interval '20 min' + g.r_pre * g.r_pre * interval '30 hours' END AS prelim) pr
        """,
        ),
        (
            "flags",
            """
        CREATE UNLOGGED TABLE bench_f AS
        SELECT p.*,
            (p.outcome = 'cancelled' AND p.ordered + (p.scheduled - p.ordered) / 2 <= now()) AS is_cancelled,
            (p.outcome IN ('completed', 'discontinued') AND p.arrived <= now()) AS has_arrive,
            (p.outcome IN ('completed', 'discontinued') AND p.started <= now()) AS has_start,
            (p.outcome = 'completed' AND p.completed <= now()) AS has_complete,
            (p.outcome = 'discontinued' AND p.started + interval '10 min' <= now()) AS has_disc,
            (p.outcome = 'completed' AND p.completed <= now() AND p.images <= now() AND p.r_img > 0.02) AS has_images,
            (p.outcome = 'completed' AND p.completed <= now() AND p.prelim <= now()) AS has_prelim,
            (p.outcome = 'completed' AND p.completed <= now() AND p.final <= now()) AS has_final
        FROM bench_p p;
        ALTER TABLE bench_f ADD PRIMARY KEY (id)
        """,
        ),
        (
            "orders",
            """
        INSERT INTO scheduling_order (id, accession_number, priority, referring_physician, requesting_physician,
            requesting_service, reason, clinical_info, placer_order_number, filler_order_number, admission_id,
            created_at, patient_id)
        SELECT id, 'B' || id, priority, 'Ref^Doctor', '', '', 'bench', '', '', '', '', ordered,
            1 + (id::bigint * 7919) %% %(np)s
        FROM bench_f
        """,
        ),
        (
            "procedures",
            """
        INSERT INTO scheduling_requestedprocedure (id, requested_procedure_id, study_instance_uid, description,
            status, arrived_at, started_at, ended_at, images_available_at, status_reason, notes, updated_at,
            order_id, procedure_type_id)
        SELECT id, 'BRP' || id, '2.25.' || (1000000000000 + id), '',
            CASE WHEN is_cancelled THEN 'cancelled' WHEN has_complete THEN 'completed'
                 WHEN has_disc THEN 'discontinued' WHEN has_start THEN 'in_progress'
                 WHEN has_arrive THEN 'arrived' ELSE 'scheduled' END,
            CASE WHEN has_arrive THEN arrived END, CASE WHEN has_start THEN started END,
            CASE WHEN has_complete THEN completed WHEN has_disc THEN started + interval '10 min' END,
            CASE WHEN has_images THEN images END,
            CASE WHEN is_cancelled THEN 'patient request' ELSE '' END, '', now(), id, pt_id
        FROM bench_f
        """,
        ),
        (
            "steps",
            """
        INSERT INTO scheduling_scheduledprocedurestep (id, sps_id, modality, start, "end", status, description,
            performing_physician, pre_medication, contrast_agent, requested_procedure_id, station_id,
            exclusive_slot)
        SELECT id, 'BS' || id, modality, scheduled, scheduled + interval '15 min',
            CASE WHEN is_cancelled THEN 'CANCELED' WHEN has_complete THEN 'COMPLETED'
                 WHEN has_disc THEN 'DISCONTINUED' WHEN has_start THEN 'STARTED'
                 WHEN has_arrive THEN 'ARRIVED' ELSE 'SCHEDULED' END,
            '', '', '', '', id, station_id, false
        FROM bench_f
        """,
        ),
        (
            "procedure events",
            """
        INSERT INTO scheduling_procedureevent (action, from_status, to_status, at, source, reason, detail,
            requested_procedure_id)
        SELECT action, from_s, to_s, at, src, reason, '{}'::jsonb, id FROM (
            SELECT id, 'order' AS action, '' AS from_s, 'scheduled' AS to_s, ordered AS at, 'ui' AS src,
                '' AS reason FROM bench_f
            UNION ALL SELECT id, 'cancel', 'scheduled', 'cancelled', ordered + (scheduled - ordered) / 2, 'ui',
                (ARRAY['patient request','clinical change','duplicate order','contraindication'])[1 + id %% 4]
                FROM bench_f WHERE is_cancelled
            UNION ALL SELECT id, 'arrive', 'scheduled', 'arrived', arrived, 'ui', '' FROM bench_f WHERE has_arrive
            UNION ALL SELECT id, 'start', 'arrived', 'in_progress', started, 'mpps:' || modality, ''
                FROM bench_f WHERE has_start
            UNION ALL SELECT id, 'complete', 'in_progress', 'completed', completed, 'mpps:' || modality, ''
                FROM bench_f WHERE has_complete
            UNION ALL SELECT id, 'discontinue', 'in_progress', 'discontinued', started + interval '10 min',
                'mpps:' || modality, 'patient unwell' FROM bench_f WHERE has_disc
            UNION ALL SELECT id, 'images_available', 'completed', 'completed', images, 'ingest', ''
                FROM bench_f WHERE has_images
        ) e ORDER BY at
        """,
        ),
        (
            "reports",
            """
        INSERT INTO reports_report (id, status, findings, impression, created_at, updated_at, submitted_at,
            signed_at, amended_at, return_comment, revision, verification_code, search_text, author_id,
            requested_procedure_id, signed_by_id)
        SELECT id,
            CASE WHEN has_final AND r_err BETWEEN 0.04 AND 0.06 AND final + interval '1 day' <= now() THEN 'amended'
                 WHEN has_final THEN 'final' ELSE 'preliminary' END,
            '', '', prelim - interval '10 min', now(), prelim, CASE WHEN has_final THEN final END,
            CASE WHEN has_final AND r_err BETWEEN 0.04 AND 0.06 AND final + interval '1 day' <= now()
                 THEN final + interval '1 day' END,
            '', 1, '', '', author_id, id, CASE WHEN has_final THEN signer_id END
        FROM bench_f WHERE has_prelim
        """,
        ),
        (
            "report events",
            """
        INSERT INTO reports_reportevent (action, from_status, to_status, at, detail, actor_id, report_id)
        SELECT action, from_s, to_s, at, '{}'::jsonb, actor, id FROM (
            SELECT id, 'submitted' AS action, 'draft' AS from_s, 'preliminary' AS to_s, prelim AS at,
                author_id AS actor FROM bench_f WHERE has_prelim
            UNION ALL SELECT id, 'returned', 'preliminary', 'draft', prelim + (final - prelim) * 0.3, signer_id
                FROM bench_f WHERE has_final AND r_err < 0.04
            UNION ALL SELECT id, 'submitted', 'draft', 'preliminary', prelim + (final - prelim) * 0.6, author_id
                FROM bench_f WHERE has_final AND r_err < 0.04
            UNION ALL SELECT id, 'signed', 'preliminary', 'final', final, signer_id FROM bench_f WHERE has_final
            UNION ALL SELECT id, 'addendum', 'final', 'amended', final + interval '1 day', author_id
                FROM bench_f WHERE has_final AND r_err BETWEEN 0.04 AND 0.06 AND final + interval '1 day' <= now()
        ) e ORDER BY at
        """,
        ),
        (
            "peer reviews",
            """
        WITH rad(idx, user_id) AS (VALUES %(rad_values)s)
        INSERT INTO reports_peerreview (score, comment, assigned_at, scored_at, radiologist_id, reviewer_id,
            report_id)
        SELECT CASE WHEN final + interval '2 days' > now() THEN ''
                    ELSE (ARRAY['1','1','1','1','1','1','1','1','1','1','1','1','1','1','2a','2a','2b','3a',
                                '1','3b'])[1 + (f.id / 33) %% 20] END,
            '', final + interval '1 day',
            CASE WHEN final + interval '2 days' <= now() THEN final + interval '2 days' END,
            f.author_id, rad.user_id, f.id
        FROM bench_f f JOIN rad ON rad.idx = (f.id / 3 + 1) %% %(nrad)s
        WHERE f.has_final AND f.id %% 33 = 0
        """,
        ),
        (
            "critical results",
            """
        INSERT INTO reports_criticalresult (category, finding, created_at, due_at, notified_at, recipient, method,
            acknowledged_at, acknowledged_by, read_back, note, report_id)
        SELECT c.cat, 'bench finding', prelim,
            prelim + CASE c.cat WHEN '1' THEN interval '1 hour' WHEN '2' THEN interval '12 hours'
                                ELSE interval '3 days' END,
            CASE WHEN id %% 10 = 0 THEN NULL
                 ELSE prelim + (CASE c.cat WHEN '1' THEN interval '1 hour' WHEN '2' THEN interval '12 hours'
                                ELSE interval '3 days' END) * (0.2 + r_err * 12) END,
            '', 'phone', NULL, '', false, '', id
        FROM bench_f CROSS JOIN LATERAL (SELECT (1 + id %% 3)::text AS cat) c
        WHERE has_prelim AND id %% 97 = 0
        """,
        ),
        (
            "audit events",
            """
        INSERT INTO audit_auditevent (at, actor_id, actor_username, role, source_ip, source_ae, action,
            object_type, object_id, patient_ref, outcome, detail)
        SELECT ordered + interval '1 min', NULL, 'bench_rad' || lpad((1 + id %% 12)::text, 2, '0'), 'radiologist',
            '10.0.0.1', '', (ARRAY['patient.view','order.create','report.view','procedure.start'])[1 + id %% 4],
            'procedure', id::text, 1 + (id::bigint * 7919) %% %(np)s, 'success', '{}'::jsonb
        FROM bench_f
        """,
        ),
        (
            "sequences",
            """
        SELECT setval(pg_get_serial_sequence('registration_patient', 'id'), (SELECT max(id) FROM registration_patient));
        SELECT setval(pg_get_serial_sequence('scheduling_order', 'id'), (SELECT max(id) FROM scheduling_order));
        SELECT setval(pg_get_serial_sequence('scheduling_requestedprocedure', 'id'),
            (SELECT max(id) FROM scheduling_requestedprocedure));
        SELECT setval(pg_get_serial_sequence('scheduling_scheduledprocedurestep', 'id'),
            (SELECT max(id) FROM scheduling_scheduledprocedurestep));
        SELECT setval(pg_get_serial_sequence('reports_report', 'id'), (SELECT max(id) FROM reports_report));
        DROP TABLE bench_p; DROP TABLE bench_f
        """,
        ),
    ]
    with connection.cursor() as cur:
        for label, sql in steps:
            t = time.perf_counter()
            # Only integers we computed are interpolated; no input reaches this SQL.
            cur.execute(sql % params)
            print(f"  seeded {label:<18} {time.perf_counter() - t:7.1f} s", flush=True)
    _material_usage()
    with connection.cursor() as cur:
        t = time.perf_counter()
        cur.execute("VACUUM ANALYZE")
        print(f"  vacuum analyze         {time.perf_counter() - t:7.1f} s", flush=True)
    print(f"seeded {n:,} procedures in {time.perf_counter() - t_start:.0f} s", flush=True)


def _material_usage() -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("seed_department", stdout=open(os.devnull, "w"))  # noqa: SIM115
    with connection.cursor() as cur:
        cur.execute("""
            INSERT INTO department_materialusage (procedure_id, item_id, quantity, notes, source, source_ae, at)
            SELECT e.requested_procedure_id, i.id, 80, '', 'mpps', '', e.at
            FROM scheduling_procedureevent e
            JOIN department_materialitem i ON i.code = 'IOHEXOL350'
            WHERE e.action = 'complete' AND e.requested_procedure_id % 4 = 0
        """)


def _procedure_count() -> int:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM scheduling_requestedprocedure")
        return cur.fetchone()[0]


def _targets() -> list[tuple[str, str]]:
    from django.urls import reverse

    from department import registry

    out = [
        (f"page {name}", reverse(f"department:{name}"))
        for name in ["dashboard", "turnaround", "workload", "quality", "equipment", "materials"]
    ]
    out += [(f"json {n}", reverse("department:figure_json", args=[n])) for n in registry.FIGURES]
    out += [(f"api  {n}", f"/api/v1/department/figures/{n}/") for n in registry.FIGURES]
    out += [
        ("csv  tat_steps", reverse("department:figure_csv", args=["tat_steps"])),
        ("page audit (latest)", reverse("audit:event_list")),
        ("page audit (user)", reverse("audit:event_list") + "?user=bench_rad03"),
        ("page audit (patient)", reverse("audit:event_list") + "?patient=BP4242"),
        (
            "page audit (action+day)",
            reverse("audit:event_list") + "?action=report.&since=2026-01-01&until=2026-01-02",
        ),
        ("api  audit (user)", "/api/v1/audit/events/?user=bench_rad03"),
    ]
    return out


def _time(runs: int, only: str) -> list[tuple[str, float, float, int]]:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username="bench_head"))
    results = []
    for label, url in _targets():
        if only and only not in label:
            continue
        first = client.get(url)
        if first.status_code != 200:
            print(f"{label}: HTTP {first.status_code}", file=sys.stderr)
        samples = []
        for _ in range(runs):
            t = time.perf_counter()
            r = client.get(url)
            samples.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (label, r.status_code)
        samples.sort()
        p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
        results.append((label, statistics.median(samples), p95, first.status_code))
        print(f"  {label:<34} median {statistics.median(samples):7.1f} ms   p95 {p95:7.1f} ms", flush=True)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=DEFAULT_DB)
    ap.add_argument("--procedures", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--reseed", action="store_true")
    ap.add_argument("--only", default="", help="time only targets whose label contains this")
    ap.add_argument(
        "--cache", action="store_true", help="keep the 60 s figure cache on (default: every request computes)"
    )
    args = ap.parse_args(argv)

    _ensure_database(args.db, args.reseed)
    _setup(args.db)
    from django.conf import settings

    if not args.cache:
        settings.RIS_DASHBOARD_CACHE_SECONDS = 0
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    have = _procedure_count()
    if have == 0:
        print(f"seeding {args.procedures:,} procedures into {args.db} …", flush=True)
        _seed(args.procedures)
    elif have != args.procedures:
        print(f"note: {args.db} holds {have:,} procedures (use --reseed to rebuild)", flush=True)
    from department.models import ProcedureMilestone

    if not ProcedureMilestone.objects.exists():
        from department.services import milestones_rebuild

        t = time.perf_counter()
        n = milestones_rebuild()
        print(
            f"milestone table built from the event logs: {n:,} procedures in {time.perf_counter() - t:.0f} s"
        )
    print(f"timing ({args.runs} runs each, default 30-day period) against {_procedure_count():,} procedures")
    results = _time(args.runs, args.only)
    worst = max(results, key=lambda r: r[2])
    print("\n| target | median ms | p95 ms |\n|---|---:|---:|")
    for label, med, p95, _status in results:
        print(f"| {label.strip()} | {med:.0f} | {p95:.0f} |")
    print(f"\nworst p95: {worst[0].strip()} {worst[2]:.0f} ms (target ≤ 500 ms)")
    return 0 if worst[2] <= 500 else 1


if __name__ == "__main__":
    sys.exit(main())
