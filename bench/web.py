"""Benchmark every daily page and REST list over HTTP, at 100k and 1M procedures (not a test).

For each size, a PostgreSQL database (``ris_bench_web_<N>``) is seeded once by set-based SQL
(``bench.dashboard``'s seed: two years of orders, steps, events, reports, peer reviews, critical
results and audit rows, consistent with the models), then gunicorn is started on it with
production settings (``DJANGO_DEBUG=false``, collected static files, 2 workers, as the README's
deployment runs it), each role logs in through the login form, and every daily page and REST
list is requested ``--runs`` times over HTTP (median and p95, after one warm-up). The sizes are
interleaved: each round times every target once at every size, so both sizes see the same
machine. The number of SQL queries per page is counted once in-process (Django test client).

    .venv/bin/python bench/web.py                              # 100k and 1M (seeded once, reused)
    .venv/bin/python bench/web.py --sizes 100000 --runs 10
    .venv/bin/python bench/web.py --only api                   # targets whose label contains "api"

Each figure is printed with the 1-minute load average at the time. The last line reads
``worst daily page p95: <ms> ms at <N> procedures (<page>)``.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = "postgres://postgres@127.0.0.1:5432/"
PASSWORD = "bench-Passw0rd!"

# role -> username (the radiologists, reviewers and head come from bench.dashboard's seed)
USERS = {
    "front_desk": "bench_fd",
    "technologist": "bench_tech",
    "radiologist": "bench_rad01",
    "reviewer": "bench_rev01",
    "dept_head": "bench_head",
    "admin": "bench_admin",
}


def targets() -> list[tuple[str, str, str]]:
    """(label, role, path) of every daily page and REST list."""
    return [
        ("front desk: patient search", "front_desk", "/patients/?q=family42"),
        ("front desk: patient search (pinyin)", "front_desk", "/patients/?q=family4242given"),
        ("front desk: calendar (one station, today)", "front_desk", "/calendar/"),
        ("front desk: board", "front_desk", "/board/"),
        ("tech: console (all stations)", "technologist", "/console/"),
        ("tech: console board fragment", "technologist", "/console/board/"),
        ("radiologist: reading worklist", "radiologist", "/reading/"),
        ("reviewer: review queue", "reviewer", "/review/"),
        ("reviewer: report search", "reviewer", "/reports/search/?q=bench"),
        ("head: department dashboard", "dept_head", "/department/"),
        ("head: turnaround", "dept_head", "/department/turnaround/"),
        ("head: audit viewer", "dept_head", "/audit/"),
        ("api: /api/v1/patients/?q=", "front_desk", "/api/v1/patients/?q=family42"),
        ("api: /api/v1/orders/ page 1", "front_desk", "/api/v1/orders/"),
        ("api: /api/v1/orders/ page 2000", "front_desk", "/api/v1/orders/?page=2000"),
        ("api: /api/v1/procedures/", "front_desk", "/api/v1/procedures/"),
        ("api: /api/v1/reports/", "reviewer", "/api/v1/reports/"),
    ]


# ---------------------------------------------------------------------------------------------
# Seeding (in a child process: one Django setup per database)


def _ensure_database(db: str) -> None:
    import psycopg

    with psycopg.connect(PG + "postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
            conn.execute(f'CREATE DATABASE "{db}"')


def _seed_child(db: str, n: int) -> None:
    os.environ["DATABASE_URL"] = PG + db
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ris.settings")
    os.environ.setdefault("RIS_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    from bench import dashboard

    call_command("migrate", verbosity=0)
    have = dashboard._procedure_count()
    if have == 0:
        print(f"seeding {n:,} procedures into {db} …", flush=True)
        dashboard._seed(n)
    elif have != n:
        print(f"note: {db} holds {have:,} procedures", flush=True)
    from department.models import ProcedureMilestone

    if not ProcedureMilestone.objects.exists():
        from department.services import milestones_rebuild

        milestones_rebuild()
    for role, username in USERS.items():
        user, _ = User.objects.get_or_create(username=username)
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        user.first_name, user.last_name = "Bench", role
        user.set_password(PASSWORD)
        user.save()


# ---------------------------------------------------------------------------------------------
# Query counts (in a child process, in-process test client)


def _count_child(db: str) -> None:
    os.environ["DATABASE_URL"] = PG + db
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ris.settings")
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("RIS_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    clients: dict[str, Client] = {}
    for label, role, path in targets():
        client = clients.get(role)
        if client is None:
            client = clients[role] = Client()
            client.force_login(User.objects.get(username=USERS[role]))
        client.get(path)  # warm caches that a running server would have warm
        with CaptureQueriesContext(connection) as ctx:
            r = client.get(path)
        print(f"{label}\t{r.status_code}\t{len(ctx.captured_queries)}", flush=True)


# ---------------------------------------------------------------------------------------------
# The server and the HTTP client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db: str, static_root: Path, workers: int):
        self.db, self.static_root, self.workers = db, static_root, workers
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.env = {
            **os.environ,
            "DATABASE_URL": PG + db,
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "bench-" + "k" * 60,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "RIS_VAR_DIR": str(static_root.parent),
            "RIS_LOG_LEVEL": "WARNING",
            "RIS_DEMO_MODE": "false",
        }

    def start(self) -> Server:
        bin_dir = Path(sys.executable).parent
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        self.proc = subprocess.Popen(
            [
                str(bin_dir / "gunicorn"),
                "ris.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/accounts/login/", timeout=30)
                return self
            except OSError:  # refused while booting, or a read timeout on a loaded machine
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("gunicorn did not answer within 120 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Session:
    """A logged-in browser-like session over plain HTTP (behind a TLS proxy in production:
    X-Forwarded-Proto says https, so the secure cookies are sent as a proxy would)."""

    def __init__(self, base: str, username: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        login = self.request("/accounts/login/").decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login).group(1)
        body = urllib.parse.urlencode(
            {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token}
        )
        self.request("/accounts/login/", data=body.encode(), referer=True)
        if "sessionid" not in self.cookies():
            raise RuntimeError(f"login of {username} failed")

    def cookies(self) -> dict[str, str]:
        return {c.name: c.value for c in self.jar}

    def request(self, path: str, data: bytes | None = None, referer: bool = False) -> bytes:
        req = urllib.request.Request(self.base + path, data=data)  # noqa: S310
        req.add_header("X-Forwarded-Proto", "https")
        # The jar holds the Secure cookies but would send them only over https: send them here.
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies().items())
        if cookie:
            req.add_header("Cookie", cookie)
        if referer:
            req.add_header("Referer", "https://" + urllib.parse.urlsplit(self.base).netloc + path)
        with self.opener.open(req, timeout=120) as r:
            return r.read()


def _p95(samples: list[float]) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", default="")
    ap.add_argument("--seed-into", help=argparse.SUPPRESS)
    ap.add_argument("--count-queries", help=argparse.SUPPRESS)
    ap.add_argument("--procedures", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.seed_into:
        _seed_child(args.seed_into, args.procedures)
        return 0
    if args.count_queries:
        _count_child(args.count_queries)
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    chosen = [t for t in targets() if args.only in t[0]]
    tmp = Path(tempfile.mkdtemp(prefix="ris-bench-web-"))
    servers: dict[int, Server] = {}
    sessions: dict[tuple[int, str], Session] = {}
    queries: dict[tuple[int, str], str] = {}
    try:
        for n in sizes:
            db = f"ris_bench_web_{n}"
            _ensure_database(db)
            subprocess.run(
                [sys.executable, __file__, "--seed-into", db, "--procedures", str(n)], cwd=ROOT, check=True
            )
            out = subprocess.run(
                [sys.executable, __file__, "--count-queries", db],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            for line in out.splitlines():
                label, status, count = line.split("\t")
                queries[(n, label)] = count if status == "200" else f"{count} (HTTP {status})"
            (tmp / str(n)).mkdir()
            servers[n] = Server(db, tmp / str(n) / "staticfiles", args.workers).start()
            base = f"http://127.0.0.1:{servers[n].port}"
            for role in {t[1] for t in chosen}:
                sessions[(n, role)] = Session(base, USERS[role])

        samples: dict[tuple[int, str], list[float]] = {(n, t[0]): [] for n in sizes for t in chosen}
        loads: dict[tuple[int, str], list[float]] = {k: [] for k in samples}
        sizes_bytes: dict[tuple[int, str], int] = {}
        for round_no in range(args.runs + 1):  # round 0 warms up
            for label, role, path in chosen:
                for n in sizes:  # interleaved: every size in every round
                    t = time.perf_counter()
                    try:
                        body = sessions[(n, role)].request(path)
                    except urllib.error.HTTPError as e:
                        print(f"{label} at {n:,}: HTTP {e.code}", file=sys.stderr)
                        body = b""
                    ms = (time.perf_counter() - t) * 1000
                    if round_no:
                        samples[(n, label)].append(ms)
                        loads[(n, label)].append(os.getloadavg()[0])
                    sizes_bytes[(n, label)] = len(body)
            if round_no:
                print(f"round {round_no}/{args.runs} done, load {os.getloadavg()[0]:.2f}", flush=True)

        print(
            f"\n{args.runs} requests per target over HTTP, gunicorn --workers {args.workers}, "
            "DJANGO_DEBUG=false, sizes interleaved\n"
        )
        header = "| page | procedures | p50 ms | p95 ms | SQL queries | KB | load avg |"
        print(header + "\n|---|---:|---:|---:|---:|---:|---:|")
        worst = None
        for label, _role, _path in chosen:
            for n in sizes:
                s = samples[(n, label)]
                p50, p95 = statistics.median(s), _p95(s)
                load = statistics.mean(loads[(n, label)])
                print(
                    f"| {label} | {n:,} | {p50:.0f} | {p95:.0f} | {queries.get((n, label), '?')} "
                    f"| {sizes_bytes[(n, label)] / 1024:.0f} | {load:.2f} |"
                )
                if worst is None or p95 > worst[0]:
                    worst = (p95, n, label)
        if len(sizes) > 1:
            print("\n| page | p95 ratio largest/smallest |\n|---|---:|")
            for label, _role, _path in chosen:
                a, b = _p95(samples[(sizes[0], label)]), _p95(samples[(sizes[-1], label)])
                print(f"| {label} | {b / a:.2f} |")
        if worst:
            print(f"\nworst daily page p95: {worst[0]:.0f} ms at {worst[1]:,} procedures ({worst[2]})")
    finally:
        for server in servers.values():
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
