"""Modality Worklist benchmark (not a test): the RIS node vs DCMTK wlmscpfs.

    .venv/bin/python bench/mwl.py --sizes 10000,100000 [--wlmscpfs-sizes 10000,100000] [--runs 20]

For each size N it seeds N scheduled procedure steps into PostgreSQL (database ``ris_bench``,
COPY bulk inserts), starts ``manage.py rundicom`` on a free port, and measures with DCMTK
``findscu`` — one association per query, as a modality does:

* C-ECHO floor (``echoscu``),
* typical query: one station + today + CT (~14 matches, the station's day),
* broad query: every station, a 7-day start-date range (1,000 matches),

median and p95 over ``--runs`` runs, queries/second with 4 concurrent clients (typical query),
and the node's peak RSS (VmHWM). The same entries, written as ``.wl`` files, are served by
DCMTK ``wlmscpfs`` at the ``--wlmscpfs-sizes`` (it needs ``TCP_NODELAY=1``, a ``lockfile`` in
the AE folder and ``-csk``); wlmscpfs binds every interface, so it and its client run inside a
loopback-only network namespace (``unshare -n`` + ``ip link set lo up``). One table at the end.

The data: N - 1,000 historical steps (COMPLETED, before the window) and 1,000 active steps in
a 7-day window around today across 10 stations (8 CT, 2 MR), so the typical and broad queries
return the same counts at every N.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = os.environ.get("RIS_BENCH_DATABASE", "ris_bench")
PG = os.environ.get("RIS_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
WINDOW_MATCHES = 1000
STATIONS = [(f"CT{i:02d}", "CT") for i in range(1, 9)] + [("MR01", "MR"), ("MR02", "MR")]
BROAD_AE = "BENCHALL"  # a station whose worklist scope is "all"
RETURN_KEYS = [
    "SpecificCharacterSet",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "MedicalAlerts",
    "Allergies",
    "PregnancyStatus",
    "StudyInstanceUID",
    "RequestingPhysician",
    "RequestedProcedureDescription",
    "RequestedProcedureCodeSequence",
    "AdmissionID",
    "RequestedProcedureID",
    "RequestedProcedurePriority",
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
    "ScheduledProcedureStepSequence[0].ScheduledStationName",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepLocation",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
    "ScheduledProcedureStepSequence[0].ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence",
]
SURNAMES = [
    ("Wang", "王"),
    ("Li", "李"),
    ("Zhang", "张"),
    ("Liu", "刘"),
    ("Chen", "陈"),
    ("Yang", "杨"),
    ("Zhao", "赵"),
    ("Huang", "黄"),
    ("Zhou", "周"),
    ("Wu", "吴"),
    ("Xu", "徐"),
    ("Sun", "孙"),
]
GIVEN = [
    ("XiaoDong", "小东"),
    ("Wei", "伟"),
    ("Fang", "芳"),
    ("Na", "娜"),
    ("Min", "敏"),
    ("Jing", "静"),
    ("Lei", "磊"),
    ("Qiang", "强"),
    ("Yang", "洋"),
    ("Yan", "艳"),
    ("Jun", "军"),
    ("Jie", "杰"),
]


# ---------------------------------------------------------------------------------------
# Django against the bench database.


def setup_django() -> None:
    os.environ["DATABASE_URL"] = f"{PG}/{BENCH_DB}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ris.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def ensure_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", "--no-input", verbosity=0)


# ---------------------------------------------------------------------------------------
# Seeding with COPY.


def _copy(cursor, model, rows: list[dict]) -> None:
    fields = [f for f in model._meta.concrete_fields]
    columns = [f.column for f in fields]
    now = datetime.now().astimezone()
    defaults = {}
    for f in fields:
        if f.null:
            defaults[f.column] = None
        elif f.get_internal_type() in ("BooleanField",):
            defaults[f.column] = False
        elif f.get_internal_type() in ("DateTimeField",):
            defaults[f.column] = now
        elif f.get_internal_type() == "JSONField":
            defaults[f.column] = "[]"
        elif f.has_default():
            defaults[f.column] = f.get_default()
        else:
            defaults[f.column] = ""
    table = model._meta.db_table
    quoted = ", ".join(f'"{c}"' for c in columns)
    with cursor.copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row.get(c, defaults[c]) for c in columns])


def seed(n: int) -> dict:
    from django.db import connection
    from django.utils import timezone

    from registration.models import Patient
    from scheduling.models import Order, ProcedureType, RequestedProcedure, ScheduledProcedureStep, Station

    rnd = random.Random(42)
    started = time.monotonic()
    with connection.cursor() as c:
        c.execute(
            "TRUNCATE registration_patient, scheduling_order, scheduling_requestedprocedure, "
            "scheduling_scheduledprocedurestep, scheduling_station, scheduling_proceduretype, "
            "scheduling_procedureevent, audit_auditevent RESTART IDENTITY CASCADE"
        )
    stations = {}
    for ae, modality in STATIONS:
        stations[ae] = Station.objects.create(
            ae_title=ae,
            name=ae,
            modality=modality,
            room=f"R-{ae}",
            charset_profile="ISO_IR 192",
            worklist_scope="station",
        )
    stations[BROAD_AE] = Station.objects.create(
        ae_title=BROAD_AE, name=BROAD_AE, modality="CT", room="-", worklist_scope="all"
    )
    ptypes = {
        "CT": ProcedureType.objects.create(
            code_value="CTCHEST", code_meaning="CT chest 胸部平扫", modality="CT"
        ),
        "MR": ProcedureType.objects.create(
            code_value="MRBRAIN", code_meaning="MR brain 头颅平扫", modality="MR"
        ),
    }
    tz = timezone.get_current_timezone()
    today = timezone.localdate()
    window_start = datetime.combine(today - timedelta(days=3), datetime.min.time(), tzinfo=tz)
    history_days = max(30, n // 400)
    n_patients = max(1, n // 2)
    scheduled_aes = [ae for ae, _m in STATIONS]

    with connection.cursor() as cur:
        raw = cur.cursor if hasattr(cur, "cursor") else cur
        patients = []
        for i in range(1, n_patients + 1):
            (fam, ifam), (giv, igiv) = rnd.choice(SURNAMES), rnd.choice(GIVEN)
            patients.append(
                {
                    "id": i,
                    "patient_id": f"BP{i:08d}",
                    "issuer": "RIS",
                    "family_name": fam,
                    "given_name": giv,
                    "ideographic_family": ifam,
                    "ideographic_given": igiv,
                    "pn_alphabetic": f"{fam}^{giv}",
                    "pn_ideographic": f"{ifam}^{igiv}",
                    "search_compact": f"{fam}{giv}".lower(),
                    "birth_date": date(1940, 1, 1) + timedelta(days=rnd.randrange(0, 25000)),
                    "sex": rnd.choice("MF"),
                }
            )
        _copy(raw, Patient, patients)
        del patients
        orders, procs, steps = [], [], []
        for i in range(1, n + 1):
            active = i > n - WINDOW_MATCHES
            ae = scheduled_aes[i % len(scheduled_aes)]
            modality = "MR" if ae.startswith("MR") else "CT"
            if active:
                k = i - (n - WINDOW_MATCHES)
                start = window_start + timedelta(minutes=(k * 7 * 24 * 60) // WINDOW_MATCHES)
                status_sps, status_rp = "SCHEDULED", "scheduled"
            else:
                start = window_start - timedelta(minutes=rnd.randrange(1, history_days * 24 * 60))
                status_sps, status_rp = "COMPLETED", "completed"
            orders.append(
                {
                    "id": i,
                    "patient_id": rnd.randrange(1, n_patients + 1),
                    "accession_number": f"BA{i:09d}",
                    "priority": "ROUTINE",
                    "referring_physician": "Li^Ming=李^明",
                }
            )
            procs.append(
                {
                    "id": i,
                    "order_id": i,
                    "procedure_type_id": ptypes[modality].id,
                    "requested_procedure_id": f"BR{i:09d}",
                    "study_instance_uid": f"1.2.826.0.1.3680043.10.999.{i}",
                    "description": ptypes[modality].code_meaning,
                    "status": status_rp,
                }
            )
            steps.append(
                {
                    "id": i,
                    "requested_procedure_id": i,
                    "sps_id": f"BS{i:09d}",
                    "station_id": stations[ae].id,
                    "modality": modality,
                    "start": start,
                    "end": start + timedelta(minutes=15),
                    "status": status_sps,
                    "description": ptypes[modality].code_meaning,
                    "exclusive_slot": False,
                }
            )
            if len(orders) >= 50_000:
                _copy(raw, Order, orders)
                _copy(raw, RequestedProcedure, procs)
                _copy(raw, ScheduledProcedureStep, steps)
                orders, procs, steps = [], [], []
        _copy(raw, Order, orders)
        _copy(raw, RequestedProcedure, procs)
        _copy(raw, ScheduledProcedureStep, steps)
        for table in (
            "registration_patient",
            "scheduling_order",
            "scheduling_requestedprocedure",
            "scheduling_scheduledprocedurestep",
        ):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))"  # noqa: S608 - fixed names
            )
    connection.close()
    import psycopg

    with psycopg.connect(f"{PG}/{BENCH_DB}", autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return {"seconds": time.monotonic() - started, "today": today, "window_start": window_start}


def step_count() -> int:
    from scheduling.models import ScheduledProcedureStep

    return ScheduledProcedureStep.objects.count()


def seeded_window() -> dict:
    """The window of an existing seed (it is always centred on today)."""
    from django.utils import timezone

    today = timezone.localdate()
    tz = timezone.get_current_timezone()
    window_start = datetime.combine(today - timedelta(days=3), datetime.min.time(), tzinfo=tz)
    return {"seconds": 0.0, "today": today, "window_start": window_start}


# ---------------------------------------------------------------------------------------
# Worklist files for wlmscpfs (same entries, encoded with the RIS's own response encoder).


def write_wl_files(folder: Path, ae: str, limit: int) -> int:
    from pydicom.uid import ExplicitVRLittleEndian

    from worklist.mwl import TOP_KEYS, MWLQuery, ReturnKey
    from worklist.mwl_response import ResponseEncoder
    from worklist.selectors import mwl_query

    aedir = folder / ae
    if aedir.exists():
        shutil.rmtree(aedir)
    aedir.mkdir(parents=True)
    (aedir / "lockfile").write_text("")
    query = MWLQuery(returns=[ReturnKey(s) for s in TOP_KEYS.values()])
    encoder = ResponseEncoder(query, charset_profile="ISO_IR 192", explicit_vr=True)
    result = mwl_query(query=query, include_final=True, cap=limit)
    meta = _file_meta(ExplicitVRLittleEndian)
    for i, row in enumerate(result.rows):
        (aedir / f"wl{i:07d}.wl").write_bytes(meta + encoder.encode(row))
    return len(result.rows)


def _file_meta(transfer_syntax: str) -> bytes:
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"  # DCMTK's worklist file class
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.10.999.1"
    meta.TransferSyntaxUID = transfer_syntax
    buf = io.BytesIO()
    buf.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buf, meta, enforce_standard=True)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------
# Measuring.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def findscu_args(port: int, calling: str, called: str, keys: list[str]) -> list[str]:
    # -q: a modality does not print what it receives; findscu's dump would dominate the timing.
    args = ["findscu", "-q", "-W", "-aet", calling, "-aec", called, "127.0.0.1", str(port)]
    for key in keys:
        args += ["-k", key]
    return args


def queries(today: date, window_start: datetime) -> dict[str, tuple[str, list[str]]]:
    d = today.strftime("%Y%m%d")
    lo = window_start.strftime("%Y%m%d")
    hi = (window_start + timedelta(days=6)).strftime("%Y%m%d")
    typical = [
        *RETURN_KEYS,
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT02",
        f"ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate={d}",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
        "ScheduledProcedureStepSequence[0].Modality=CT",
    ]
    broad = [
        *RETURN_KEYS,
        f"ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate={lo}-{hi}",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
        "ScheduledProcedureStepSequence[0].Modality",
    ]
    return {"typical": ("CT02", typical), "broad": (BROAD_AE, broad)}


def timed(args: list[str], env=None) -> float:
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, env=env, timeout=60)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {result.stderr.decode(errors='replace')[-400:]}")
    return elapsed * 1000


def count_matches(args: list[str], env=None) -> int:
    verbose = [a for a in args if a != "-q"]
    result = subprocess.run([*verbose[:1], "-v", *verbose[1:]], capture_output=True, env=env, timeout=60)
    text = result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")
    return text.count("(Pending)")


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def throughput(args: list[str], clients: int = 4, seconds: float = 5.0, env=None) -> float:
    stop = time.monotonic() + seconds
    counts = [0] * clients

    def worker(k):
        while time.monotonic() < stop:
            subprocess.run(args, capture_output=True, env=env, timeout=60, check=True)
            counts[k] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - began)


def measure(port: int, called: str, qs, runs: int, env=None) -> dict:
    echo = ["echoscu", "-aet", "CT02", "-aec", called, "127.0.0.1", str(port)]
    out = {}
    for _ in range(3):  # warm-up
        timed(echo, env)
        timed(findscu_args(port, qs["typical"][0], called, qs["typical"][1]), env)
    out["echo"] = stats([timed(echo, env) for _ in range(runs)])
    for name, (calling, keys) in qs.items():
        args = findscu_args(port, calling, called, keys)
        out[f"{name}_matches"] = count_matches(args, env)
        out[name] = stats([timed(args, env) for _ in range(runs)])
    calling, keys = qs["typical"]
    out["qps4"] = throughput(findscu_args(port, calling, called, keys), env=env)
    return out


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_node(n: int, seeded: dict, runs: int) -> dict:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{BENCH_DB}",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only-" + "k3y" * 16),
        "RIS_LOG_LEVEL": "WARNING",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "rundicom", "--port", str(port), "--skip-checks"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        client_env = {**os.environ, "TCP_NODELAY": "1"}  # the same DCMTK client settings as for wlmscpfs
        result = measure(port, "RIS", queries(seeded["today"], seeded["window_start"]), runs, env=client_env)
        result["rss_mb"] = peak_rss_mb(proc.pid)
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


INNER = "--inner-wlmscpfs"


def run_wlmscpfs(n: int, seeded: dict, runs: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="wlbench-"))
    try:
        written = write_wl_files(folder, "WLMSCP", n)
        spec = {
            "folder": str(folder),
            "runs": runs,
            "today": seeded["today"].isoformat(),
            "window_start": seeded["window_start"].isoformat(),
            "written": written,
        }
        result = subprocess.run(
            ["unshare", "-n", sys.executable, __file__, INNER, json.dumps(spec)],
            capture_output=True,
            timeout=3600,
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr.decode(errors="replace")[-2000:])
        out = json.loads(result.stdout.decode().strip().splitlines()[-1])
        out["files"] = written
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def inner_wlmscpfs(spec: dict) -> None:
    """Runs inside ``unshare -n``: loopback only; start wlmscpfs, measure, print JSON."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    port = 11112
    env = {**os.environ, "TCP_NODELAY": "1"}
    server = subprocess.Popen(
        ["wlmscpfs", "-q", "-dfp", spec["folder"], "-csk", "--max-associations", "50", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        qs = queries(date.fromisoformat(spec["today"]), datetime.fromisoformat(spec["window_start"]))
        # wlmscpfs answers every calling AE; its AE folder is the called AE title.
        out = measure(port, "WLMSCP", qs, spec["runs"], env=env)
        out["rss_mb"] = float("nan")
        print(json.dumps(out))
    finally:
        server.terminate()
        server.wait(timeout=10)


# ---------------------------------------------------------------------------------------


def fmt(pair) -> str:
    return f"{pair[0]:7.1f} / {pair[1]:7.1f}"


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == INNER:
        inner_wlmscpfs(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--wlmscpfs-sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--reuse-seed", action="store_true", help="skip seeding when ris_bench already holds exactly N steps"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    wl_sizes = {int(s) for s in args.wlmscpfs_sizes.split(",") if s}
    for tool in ("findscu", "echoscu", "wlmscpfs", "unshare"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (apt install dcmtk util-linux)")
    ensure_database()
    setup_django()
    migrate()
    rows = []
    for n in sorted(set(sizes) | wl_sizes):
        seeded = seeded_window() if args.reuse_seed and step_count() == n else seed(n)
        print(f"seeded {n:,} SPS in {seeded['seconds']:.1f} s", flush=True)
        if n in sizes:
            result = run_node(n, seeded, args.runs)
            rows.append(("RIS node", n, result))
            print(f"  RIS node: {json.dumps(result, default=str)}", flush=True)
        if n in wl_sizes:
            result = run_wlmscpfs(n, seeded, args.runs)
            rows.append(("wlmscpfs", n, result))
            print(f"  wlmscpfs: {json.dumps(result, default=str)}", flush=True)
    print()
    print(f"findscu, one association per query; median / p95 in ms over {args.runs} runs; q/s with 4 clients")
    header = (
        f"| {'server':9} | {'SPS':>9} | {'C-ECHO floor':>17} | {'typical (n)':>11} | {'typical query':>17} "
        f"| {'broad (n)':>9} | {'broad query':>17} | {'q/s x4':>6} | {'RSS MB':>6} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for server, n, r in rows:
        print(
            f"| {server:9} | {n:>9,} | {fmt(r['echo']):>17} | {r['typical_matches']:>11} | {fmt(r['typical']):>17} "
            f"| {r['broad_matches']:>9} | {fmt(r['broad']):>17} | {r['qps4']:>6.1f} | {r['rss_mb']:>6.0f} |"
        )


if __name__ == "__main__":
    main()
