"""Ingest benchmark (not a test): our durable Storage SCP vs DCMTK storescp vs Orthanc.

    .venv/bin/python bench/ingest.py [--instances 200] [--runs 3] [--studies 20] [--rss-instances 10000]
        [--skip node,storescp,orthanc,link,rss] [--baseline-root DIR]

Environment: RIS_BENCH_INGEST_DATABASE (default ris_bench_ingest; dropped and re-created),
RIS_BENCH_REDIS (default redis://127.0.0.1:6379/5), RIS_BENCH_PG, RIS_BENCH_TMP.

1. Throughput: one ``storescu`` association sends a synthetic CT (512×512, 16-bit, Explicit VR
   Little Endian, ``--instances`` slices, fresh UIDs per run) to
   * our node (``manage.py rundicom`` on 127.0.0.1, PostgreSQL database ``ris_bench_ingest``;
     every object fsync'd, renamed, directory fsync'd and recorded before 0x0000),
   * DCMTK ``storescp`` (writes files, no fsync),
   * Orthanc (SQLite index, fsyncs),
   instances/s, median of ``--runs``; the rounds interleave the peers (node, storescp, Orthanc,
   node, …) so load on the shared machine hits them alike, and the load average is printed.
   ``--baseline-root DIR`` adds another checkout's node to every round (before/after).
   DCMTK and Orthanc bind every interface, so each of them
   and its client run inside a loopback-only network namespace (``unshare -n`` + ``ip link set
   lo up``); ``TCP_NODELAY=1`` for the DCMTK peers (else they measure Nagle).
2. Link latency: ``--studies`` studies (one order each, 10 instances of 256×256) sent at 2
   studies/s with a Celery worker running: time from association release (``storescu`` exit)
   to the procedure showing ``images_available_at``, p50/p95.
3. Memory: node RSS before/after ``--rss-instances`` small instances (64×64) in associations
   of 500.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BENCH_DB = os.environ.get("RIS_BENCH_INGEST_DATABASE", "ris_bench_ingest")
PG = os.environ.get("RIS_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("RIS_BENCH_REDIS", "redis://127.0.0.1:6379/5")
PY = str(ROOT / ".venv" / "bin" / "python")
CELERY = str(ROOT / ".venv" / "bin" / "celery")
CALLING_AE = "BENCHCT"
NODELAY_ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened")


def make_series(out: Path, n: int, size: int, *, study_uid=None, accession="", patient_id="BENCH1") -> Path:
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    out.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    rng = np.random.default_rng(7)
    pixels = (rng.integers(0, 2000, size=(size, size), dtype=np.uint16)).tobytes()
    for i in range(n):
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyDate, ds.StudyTime = "20260101", "101500"
        ds.AccessionNumber = accession
        ds.Modality = "CT"
        ds.PatientName = "Bench^Patient"
        ds.PatientID = patient_id
        ds.SeriesNumber, ds.InstanceNumber = 1, i + 1
        ds.ImagePositionPatient = [0, 0, i * 1.0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = pixels
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(out / f"{i:05d}.dcm", enforce_file_format=True)
    return out


def storescu_cmd(port: int, aec: str, folder: Path) -> list[str]:
    return ["storescu", "-aet", CALLING_AE, "-aec", aec, "+sd", "-xs", "127.0.0.1", str(port), str(folder)]


def timed(cmd: list[str], env=None) -> float:
    env = {**(env or os.environ), "TCP_NODELAY": "1"}  # DCMTK client: no Nagle
    t0 = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, env=env)
    elapsed = time.perf_counter() - t0
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {result.stderr.decode()[-500:]}")
    return elapsed


def in_netns(script: str, env: dict) -> str:
    """Run a shell script inside a fresh loopback-only network namespace; return its stdout."""
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up\n" + script],
        capture_output=True,
        env=env,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-1000:])
    return result.stdout


# ------------------------------------------------------------------------------------------
# Our node


def django_env(storage: Path, port: int | None = None, broker: bool = True, db: str = BENCH_DB) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ris.settings",
        "DATABASE_URL": f"{PG}/{db}",
        "RIS_STORAGE_ROOT": str(storage),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": os.environ.get(
            "DJANGO_SECRET_KEY", "bench-only-" + "k3y" * 16
        ),  # as in production (no per-query debug cursor)
        "RIS_LOG_LEVEL": "WARNING",
    }
    if broker:
        env["CELERY_BROKER_URL"] = REDIS
    else:
        env.pop("CELERY_BROKER_URL", None)
    if port:
        env["RIS_DICOM_PORT"] = str(port)
    return env


def prepare_database(env: dict, db: str = BENCH_DB) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    subprocess.run([PY, "manage.py", "migrate", "-v0", "--no-input"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [
            PY,
            "manage.py",
            "shell",
            "-c",
            "from scheduling.models import Station; from datetime import time;"
            f"Station.objects.update_or_create(ae_title='{CALLING_AE}', defaults=dict(name='BENCH', modality='CT',"
            " room='R1', active=True, work_start=time(0,0), work_end=time(23,59)))",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )


def start_node(env: dict, port: int, root: Path = ROOT) -> subprocess.Popen:
    proc = subprocess.Popen(
        [PY, "manage.py", "rundicom", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc


def start_worker(env: dict) -> subprocess.Popen:
    import redis

    redis.Redis.from_url(REDIS).delete("ingest", "default")
    proc = subprocess.Popen(
        [
            CELERY,
            "-A",
            "ris",
            "worker",
            "-Q",
            "ingest,default",
            "-c",
            "1",
            "-l",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(6)  # Django + Celery boot
    return proc


def stop(proc: subprocess.Popen, group: bool = False) -> None:
    if proc.poll() is None:
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class NodePeer:
    """Our node, started once and warmed up (one small association), then timed per round.

    A long-running service is what a modality talks to: the first association of a fresh
    process (database connection, lazy imports) is not part of the steady state. The
    baseline node (``--baseline-root``) has its own database: the same objects must be new
    to each node.
    """

    def __init__(self, work: Path, root: Path = ROOT):
        baseline = root != ROOT
        suffix = "-baseline" if baseline else ""
        env = django_env(
            work / f"ris-storage{suffix}", broker=True, db=f"{BENCH_DB}_baseline" if baseline else BENCH_DB
        )
        self.port = free_port()
        self.proc = start_node(env, self.port, root)
        warm = make_series(work / f"warm{suffix}", 2, 512)
        timed(storescu_cmd(self.port, "RIS", warm))

    def __call__(self, work: Path, sets: list[Path], tag: str = "") -> list[float]:
        return [timed(storescu_cmd(self.port, "RIS", s)) for s in sets]

    def stop(self) -> None:
        stop(self.proc)


def bench_storescp(work: Path, sets: list[Path], tag: str = "") -> list[float]:
    out = work / f"storescp-out{tag}"
    out.mkdir()
    env = {**os.environ, "TCP_NODELAY": "1"}
    lines = []
    for s in sets:
        lines.append(
            f"storescp -od {out} -fe .dcm 11112 & P=$!; sleep 0.5\n"
            f"S=$(date +%s.%N); {' '.join(storescu_cmd(11112, 'ANY-SCP', s))} >/dev/null 2>&1; E=$(date +%s.%N)\n"
            f'kill $P; wait $P 2>/dev/null; echo "$S $E"\n'
        )
    stdout = in_netns("".join(lines), env)
    return [float(e) - float(s) for s, e in (ln.split() for ln in stdout.split("\n") if ln.strip())]


def bench_orthanc(work: Path, sets: list[Path], tag: str = "") -> list[float]:
    exe = shutil.which("Orthanc")
    if exe is None:
        return []
    timings = []
    env = {**os.environ, "TCP_NODELAY": "1"}
    for i, s in enumerate(sets):
        base = work / f"orthanc{tag}-{i}"
        base.mkdir()
        config = {
            "Name": "bench",
            "StorageDirectory": str(base / "db"),
            "IndexDirectory": str(base / "db"),
            "DicomAet": "ORTHANC",
            "DicomPort": 4242,
            "HttpPort": 8042,
            "RemoteAccessAllowed": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "UnknownSopClassAccepted": True,
            "StorageCompression": False,
            "HttpServerEnabled": True,
        }
        (base / "orthanc.json").write_text(json.dumps(config))
        script = (
            f"{exe} {base / 'orthanc.json'} >/dev/null 2>&1 & P=$!\n"
            "for k in $(seq 100); do (echo > /dev/tcp/127.0.0.1/4242) 2>/dev/null && break; sleep 0.1; done\n"
            f"S=$(date +%s.%N); {' '.join(storescu_cmd(4242, 'ORTHANC', s))} >/dev/null 2>&1; E=$(date +%s.%N)\n"
            'kill $P; wait $P 2>/dev/null; echo "$S $E"\n'
        )
        out = subprocess.run(
            ["unshare", "-n", "bash", "-c", "ip link set lo up\n" + script],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        start, end = out.stdout.split()[-2:]
        timings.append(float(end) - float(start))
    return timings


# ------------------------------------------------------------------------------------------
# Link latency and memory


def bench_link_latency(work: Path, studies: int) -> list[float]:
    storage = work / "ris-storage-link"
    env = django_env(storage, broker=True)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "CELERY_BROKER_URL", "RIS_STORAGE_ROOT")})
    import django

    django.setup()
    from registration.models import Patient
    from scheduling.models import ProcedureType, RequestedProcedure, Station
    from scheduling.services import order_create

    station = Station.objects.get(ae_title=CALLING_AE)
    ptype, _ = ProcedureType.objects.get_or_create(
        coding_scheme="99RIS", code_value="BCT", defaults={"code_meaning": "Bench CT", "modality": "CT"}
    )
    from datetime import timedelta

    from django.utils import timezone

    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=2)
    plans = []
    for i in range(studies):
        patient = Patient.objects.create(
            patient_id=f"BL{i:04d}", issuer="RIS", family_name="Bench", given_name=str(i)
        )
        order = order_create(
            patient=patient, procedure_type=ptype, station=station, start=start + timedelta(minutes=15 * i)
        )
        proc = order.procedures.get()
        folder = make_series(
            work / f"link{i}",
            10,
            256,
            study_uid=proc.study_instance_uid,
            accession=order.accession_number,
            patient_id=patient.patient_id,
        )
        plans.append((proc.pk, folder))
    port = free_port()
    node = start_node(env, port)
    worker = start_worker(env)
    released: dict[int, float] = {}
    latencies: list[float] = []
    try:
        threads: list[threading.Thread] = []

        def send(pk, folder):
            subprocess.run(
                storescu_cmd(port, "RIS", folder), capture_output=True, check=True, env=NODELAY_ENV
            )
            released[pk] = time.perf_counter()

        def pace():
            for pk, folder in plans:
                t = threading.Thread(target=send, args=(pk, folder))
                t.start()
                threads.append(t)
                time.sleep(0.5)  # 2 studies/s

        pacer = threading.Thread(target=pace)
        pacer.start()
        seen: dict[int, float] = {}
        deadline = time.monotonic() + 120
        while len(seen) < len(plans) and time.monotonic() < deadline:
            done = RequestedProcedure.objects.filter(
                pk__in=[pk for pk, _ in plans], images_available_at__isnull=False
            ).values_list("pk", flat=True)
            now = time.perf_counter()
            for pk in done:
                seen.setdefault(pk, now)
            time.sleep(0.01)
        pacer.join()
        for t in threads:
            t.join()
        latencies = [seen[pk] - released[pk] for pk, _ in plans if pk in seen and pk in released]
        if os.environ.get("RIS_BENCH_VERBOSE"):
            print(
                "latencies in send order:",
                [round(seen[pk] - released[pk], 2) for pk, _ in plans if pk in seen],
            )
    finally:
        stop(worker, group=True)
        stop(node)
    return latencies


def bench_rss(work: Path, total: int, per_assoc: int = 500) -> tuple[int, int, float]:
    storage = work / "ris-storage-rss"
    env = django_env(storage, broker=False)  # no worker: measure the node alone
    env["CELERY_BROKER_URL"] = REDIS  # enqueue to a queue nobody drains (then purged)
    port = free_port()
    node = start_node(env, port)
    try:
        warm = make_series(work / "rss-warm", 50, 64)
        subprocess.run(storescu_cmd(port, "RIS", warm), capture_output=True, check=True, env=NODELAY_ENV)
        before = rss_kib(node.pid)
        t0 = time.perf_counter()
        sent = 0
        while sent < total:
            n = min(per_assoc, total - sent)
            folder = make_series(work / f"rss{sent}", n, 64)
            result = subprocess.run(storescu_cmd(port, "RIS", folder), capture_output=True, env=NODELAY_ENV)
            if result.returncode != 0:
                raise RuntimeError(f"storescu failed: {result.stderr.decode()[-800:]}")
            shutil.rmtree(folder)
            sent += n
        elapsed = time.perf_counter() - t0
        after = rss_kib(node.pid)
    finally:
        stop(node)
        import redis

        redis.Redis.from_url(REDIS).delete("ingest", "default")
    return before, after, total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--rss-instances", type=int, default=10000)
    parser.add_argument("--skip", default="", help="comma list of: node,storescp,orthanc,link,rss")
    parser.add_argument(
        "--baseline-root",
        type=Path,
        default=None,
        help="another checkout (e.g. `git archive REV | tar -x -C DIR`) whose node runs as an extra "
        "peer in the same rounds: before/after on the same conditions (same database schema)",
    )
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ris.settings")
    work = Path(tempfile.mkdtemp(prefix="ris-bench-ingest-", dir=os.environ.get("RIS_BENCH_TMP")))
    try:
        env = django_env(work / "ris-storage")
        prepare_database(env)
        sets = [make_series(work / f"set{r}", args.instances, 512) for r in range(args.runs)]
        nodes: list[NodePeer] = []
        peers: list = []
        if "node" not in skip:
            nodes.append(NodePeer(work))
            peers.append(("RIS node (fsync + PostgreSQL row)", "node", nodes[-1]))
        if args.baseline_root:
            baseline = args.baseline_root.resolve()
            db = f"{BENCH_DB}_baseline"
            prepare_database(django_env(work / "ris-storage-baseline", db=db), db=db)
            nodes.append(NodePeer(work, root=baseline))
            peers.append((f"RIS node, baseline {baseline.name}", "baseline", nodes[-1]))
        if "storescp" not in skip:
            peers.append(("DCMTK storescp (no fsync)", "storescp", bench_storescp))
        if "orthanc" not in skip:
            peers.append(("Orthanc (fsync, SQLite)", "orthanc", bench_orthanc))
        # Rounds interleave the peers (node, storescp, Orthanc, node, …): on a shared machine
        # a load spike then hits every peer alike instead of one peer's three runs.
        load_before = os.getloadavg()
        timings: dict[str, list[float]] = {key: [] for _name, key, _fn in peers}
        try:
            for r, s in enumerate(sets):
                for _name, key, fn in peers:
                    # storescp leaves ~100 MB of dirty pages; on ext4 (data=ordered) the next
                    # peer's first fsync would write them out. Every peer starts clean.
                    os.sync()
                    time.sleep(0.5)
                    timings[key] += fn(work, [s], tag=f"-{r}")
        finally:
            for node in nodes:
                node.stop()
        load_after = os.getloadavg()
        rows = []
        for name, key, _fn in peers:
            if timings[key]:
                rates = [args.instances / t for t in timings[key]]
                rows.append((name, statistics.median(rates), rates))
        print(f"\nThroughput: one storescu association, {args.instances} × CT 512×512×16 bit, Explicit VR LE")
        print(
            f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
            f"({os.cpu_count()} CPUs; rounds interleave the peers)"
        )
        print(f"{'peer':40} {'median inst/s':>14}   runs")
        for name, med, rates in rows:
            print(f"{name:40} {med:14.0f}   {', '.join(f'{r:.0f}' for r in rates)}")
        if "link" not in skip:
            lat = sorted(bench_link_latency(work, args.studies))
            if lat:
                p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
                print(
                    f"\nLink latency, {len(lat)} studies at 2/s with a worker: "
                    f"p50 {statistics.median(lat):.2f} s, p95 {p95:.2f} s, max {lat[-1]:.2f} s"
                )
        if "rss" not in skip:
            before, after, rate = bench_rss(work, args.rss_instances)
            print(
                f"\nNode RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after "
                f"{args.rss_instances} instances (+{(after - before) / 1024:.1f} MiB; {rate:.0f} inst/s 64×64)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
