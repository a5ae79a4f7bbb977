"""HL7 benchmark (not a test): ORM^O01 over one MLLP connection into ``runhl7`` (every
message committed before its ACK) side by side with a no-op MLLP server built on the same
library (python-hl7 asyncio streams: parse, ACK — the floor); then outbox delivery.

    .venv/bin/python bench/hl7.py [--messages 500] [--rounds 3] [--outbox 2000]

Environment: RIS_BENCH_HL7_DATABASE (default ris_bench_hl7; dropped and re-created),
RIS_BENCH_PG (default postgres://postgres@127.0.0.1:5432).

1. Inbound: per round, the floor then runhl7 (interleaved), each ``--messages`` ORM^O01 NW
   orders (new placer number each, no time: placed awaiting booking) sent one after the other
   on one connection; msgs/s and p50/p95 ACK latency; load average beside each figure.
2. Outbox: ``--outbox`` pending ORM^O01 status messages for one destination and one ordering
   key (strict order, the worst case) delivered by ``deliver_key`` to the no-op server; msgs/s.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file is named hl7.py: keep its directory off the path so "import hl7" is python-hl7.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
BENCH_DB = os.environ.get("RIS_BENCH_HL7_DATABASE", "ris_bench_hl7")
PG = os.environ.get("RIS_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
PY = str(ROOT / ".venv" / "bin" / "python")
REDIS = os.environ.get("RIS_BENCH_REDIS", "redis://127.0.0.1:6379/5")
SB, EB, CR = b"\x0b", b"\x1c", b"\r"

NOOP_SERVER = r"""
import asyncio, sys, hl7
from hl7.mllp import start_hl7_server
async def client(reader, writer):
    try:
        while True:
            block = await reader.readblock()
            msg = hl7.parse(block.decode("utf-8"))
            writer.writeblock(str(msg.create_ack("AA")).encode("utf-8"))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await start_hl7_server(client, "127.0.0.1", int(sys.argv[1]))
    print("listening", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def django_env(port: int | None = None, broker: bool = False) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ris.settings",
        "DATABASE_URL": f"{PG}/{BENCH_DB}",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "RIS_LOG_LEVEL": "WARNING",
    }
    env.pop("CELERY_BROKER_URL", None)
    if broker:
        env["CELERY_BROKER_URL"] = REDIS  # as in production: side effects are queued, not run inline
    if port:
        env["RIS_HL7_PORT"] = str(port)
    return env


def prepare_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    env = django_env()
    subprocess.run([PY, "manage.py", "migrate", "-v0", "--no-input"], cwd=ROOT, env=env, check=True)
    code = (
        "from integration.models import Sender; from scheduling.models import ProcedureType;"
        "Sender.objects.get_or_create(application='HIS', facility='HOSPITAL');"
        "ProcedureType.objects.get_or_create(code_value='CTCHEST', coding_scheme='99RIS',"
        " defaults=dict(code_meaning='CT chest', modality='CT'))"
    )
    subprocess.run([PY, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True)


def wait_listening(proc: subprocess.Popen, log: Path, needle: bytes, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in log.read_bytes():
            return
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.1)
    raise RuntimeError(f"not listening: {log.read_text()}")


def orm(n: int, tag: str) -> bytes:
    cid = f"{tag}{n}"
    return "\r".join(
        [
            f"MSH|^~\\&|HIS|HOSPITAL|RIS|RADIOLOGY|20250101120000||ORM^O01^ORM_O01|{cid}|P|2.3.1||||||UNICODE UTF-8",
            f"PID|1||B{n % 200}^^^HOSPITAL^MR||王^小东||19800506|M",
            "PV1|1|O|WARD3^^^HOSPITAL|||||1234^Li^Ming",
            f"ORC|NW|{cid}^HIS|||||^^^^^R||20250101120000|||5678^Zhang^Wei",
            f"OBR|1|{cid}^HIS||CTCHEST^CT chest^99RIS",
        ]
    ).encode("utf-8")


def read_block(sock: socket.socket, buf: bytearray) -> bytes:
    while True:
        end = buf.find(EB + CR)
        if end >= 0:
            block = bytes(buf[:end])
            del buf[: end + 2]
            return block
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk


def run_batch(port: int, count: int, tag: str) -> tuple[float, list[float]]:
    lat = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray()
        t0 = time.perf_counter()
        for n in range(count):
            payload = SB + orm(n, tag) + EB + CR
            t = time.perf_counter()
            sock.sendall(payload)
            ack = read_block(sock, buf)
            lat.append(time.perf_counter() - t)
            if b"MSA|AA|" not in ack:
                raise RuntimeError(f"not accepted: {ack[:300]!r}")
        elapsed = time.perf_counter() - t0
    return count / elapsed, lat


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p * (len(values) - 1)))] * 1000


def outbox_bench(noop_port: int, count: int) -> tuple[float, str]:
    os.environ.update({k: v for k, v in django_env().items() if k.startswith(("DJANGO", "DATABASE", "RIS_"))})
    import django

    django.setup()
    from django.db import transaction

    from integration.models import Destination, OutboxMessage
    from integration.services.delivery import deliver_key
    from integration.services.outbox import outbox_enqueue
    from scheduling.models import RequestedProcedure

    dest = Destination.objects.create(
        name="bench", host="127.0.0.1", port=noop_port, message_types=["ORM^O01"]
    )
    procs = list(RequestedProcedure.objects.values_list("pk", flat=True)[:count])
    if not procs:
        raise RuntimeError("no procedures to announce (run the inbound part first)")
    with transaction.atomic():
        for i in range(count):
            outbox_enqueue(
                message_type="ORM^O01",
                event="scheduled",
                facts={"procedure_id": procs[i % len(procs)], "status": "scheduled", "action": "book"},
                patient_id=None,
            )
    # outbox_enqueue's on_commit wake-up ran deliver in-process? No broker and eager: it did.
    OutboxMessage.objects.filter(destination=dest).update(state="pending", attempts=0, sent_at=None)
    before = load()
    t0 = time.perf_counter()
    sent = deliver_key(destination_id=dest.pk, ordering_key="none", budget=count)
    elapsed = time.perf_counter() - t0
    assert sent == count, sent
    return sent / elapsed, before


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--outbox", type=int, default=2000)
    args = ap.parse_args()

    prepare_database()
    tmp = Path(tempfile.mkdtemp(prefix="bench-hl7-"))
    ris_port, noop_port = free_port(), free_port()
    ris_log, noop_log = tmp / "runhl7.log", tmp / "noop.log"
    ris = subprocess.Popen(
        [PY, "manage.py", "runhl7", "--bind", "127.0.0.1"],
        cwd=ROOT,
        env=django_env(ris_port),
        stdout=ris_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    noop = subprocess.Popen(
        [PY, "-c", NOOP_SERVER, str(noop_port)], stdout=noop_log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        wait_listening(ris, ris_log, b"listening on")
        wait_listening(noop, noop_log, b"listening")
        run_batch(ris_port, 50, "W")  # warm-up (connections, caches)
        run_batch(noop_port, 50, "W")
        rows = {"floor (python-hl7 no-op)": [], "runhl7 (commit before ACK)": []}
        for r in range(args.rounds):
            for name, port in (
                ("floor (python-hl7 no-op)", noop_port),
                ("runhl7 (commit before ACK)", ris_port),
            ):
                before = load()
                rate, lat = run_batch(port, args.messages, f"R{r}{'N' if port == noop_port else 'S'}")
                rows[name].append((rate, pct(lat, 0.5), pct(lat, 0.95), before))
                print(
                    f"round {r + 1} {name:28s} {rate:8.1f} msg/s  p50 {pct(lat, 0.5):6.2f} ms  p95 {pct(lat, 0.95):6.2f} ms  load {before}"
                )
        print()
        print("| peer | msgs/s (median of rounds) | p50 ACK ms | p95 ACK ms | load avg (1/5/15) |")
        print("|---|--:|--:|--:|---|")
        med = {}
        for name, vals in rows.items():
            rate = statistics.median(v[0] for v in vals)
            med[name] = rate
            print(
                f"| {name} | {rate:.0f} | {statistics.median(v[1] for v in vals):.2f} | "
                f"{statistics.median(v[2] for v in vals):.2f} | {vals[-1][3]} |"
            )
        ratio = med["runhl7 (commit before ACK)"] / med["floor (python-hl7 no-op)"]
        print(f"\nrunhl7 / floor = {ratio:.0%} (goal >= 50 % and >= 200 msg/s)")
        rate, before = outbox_bench(noop_port, args.outbox)
        print(f"| outbox delivery (one destination, one ordering key) | {rate:.0f} msg/s | | | {before} |")
        print("(goal >= 200 msg/s)")
    finally:
        import redis

        redis.Redis.from_url(REDIS).delete("default", "ingest")  # the queued side effects
        for p in (ris, noop):
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
