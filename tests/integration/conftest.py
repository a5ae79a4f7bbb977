"""HL7 fixtures: the MLLP listener in-process on a free port, a registered sender, a real
client (python-hl7's MLLPClient / mllp_send), and a throwaway MLLP destination."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from integration.models import Destination, Sender
from tests.factories import ProcedureTypeFactory, StationFactory

SB, EB, CR = b"\x0b", b"\x1c", b"\r"


def wait_for(predicate, timeout=30.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def hl7_server(transactional_db):
    from integration.hl7.server import MLLPServer

    server = MLLPServer(host="127.0.0.1", port=0, workers=2).start()
    yield server
    server.stop(grace=2.0)


@pytest.fixture
def his(transactional_db):
    return Sender.objects.create(application="HIS", facility="HOSPITAL", host="127.0.0.1")


@pytest.fixture
def catalog(transactional_db):
    station = StationFactory(ae_title="CT1", modality="CT", name="CT1")
    ptype = ProcedureTypeFactory(
        code_value="CTCHEST", code_meaning="CT chest", modality="CT", duration_minutes=15
    )
    return station, ptype


def frame(payload: bytes) -> bytes:
    return SB + payload + EB + CR


def read_block(sock: socket.socket, timeout: float = 20.0) -> bytes:
    sock.settimeout(timeout)
    buf = b""
    while EB + CR not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    block = buf[: buf.index(EB + CR)]
    return block[block.index(SB) + 1 :]


class Client:
    """python-hl7's MLLPClient, reading the ACK to the end of its block."""

    def __init__(self, port: int, encoding: str = "utf-8"):
        import hl7.client

        self.encoding = encoding
        self.client = hl7.client.MLLPClient("127.0.0.1", port, encoding=encoding)

    def send(self, text: str, *, encoding: str | None = None) -> str:
        enc = encoding or self.encoding
        payload = text.replace("\n", "\r").encode(enc)
        self.client.socket.sendall(frame(payload))
        return read_block(self.client.socket).decode(enc)

    def send_raw(self, data: bytes) -> bytes:
        self.client.socket.sendall(data)
        return read_block(self.client.socket)

    def close(self):
        self.client.close()


@pytest.fixture
def hl7_client(hl7_server):
    clients = []

    def make(encoding="utf-8"):
        c = Client(hl7_server.port, encoding)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def msa(ack: str) -> tuple[str, str]:
    import hl7

    m = hl7.parse(ack.replace("\n", "\r"))
    seg = m.segment("MSA")
    return str(seg(1)), str(seg(2))


def err_location(ack: str) -> str:
    import hl7

    m = hl7.parse(ack.replace("\n", "\r"))
    try:
        seg = m.segment("ERR")
    except KeyError:
        return ""
    return str(seg(2))


_counter = iter(range(1, 10**9))


def control_id() -> str:
    return f"C{int(time.time() * 1000) % 10**9}{next(_counter)}"


def msh(
    mtype: str,
    *,
    cid: str | None = None,
    charset: str = "UNICODE UTF-8",
    version="2.5.1",
    app="HIS",
    fac="HOSPITAL",
):
    return f"MSH|^~\\&|{app}|{fac}|RIS|RADIOLOGY|20250101120000||{mtype}|{cid or control_id()}|P|{version}||||||{charset}"


def adt(
    trigger="A01",
    *,
    pid="MRN1",
    name="王^小东",
    birth="19800506",
    sex="M",
    cid=None,
    charset="UNICODE UTF-8",
    extra_pid="",
):
    return "\r".join(
        [
            msh(f"ADT^{trigger}^ADT_A01", cid=cid, charset=charset),
            "EVN||20250101120000",
            f"PID|1||{pid}^^^HOSPITAL^MR{extra_pid}||{name}||{birth}|{sex}|||1 Main St^^Beijing^^100000^CN||(010)5555",
            "PV1|1|O|RAD^^^HOSPITAL",
        ]
    )


def orm(
    control="NW",
    *,
    placer="PL1",
    pid="MRN1",
    code="CTCHEST",
    start="",
    cid=None,
    ipc="",
    omi=False,
    station="",
    priority="R",
    name="王^小东",
    charset="UNICODE UTF-8",
):
    tq = f"^^^{start}^^{priority}"
    segs = [
        msh(
            "OMI^O23^OMI_O23" if omi else "ORM^O01^ORM_O01",
            cid=cid,
            charset=charset,
            version="2.5.1" if omi else "2.3.1",
        ),
        f"PID|1||{pid}^^^HOSPITAL^MR||{name}||19800506|M",
        "PV1|1|O|WARD3^^^HOSPITAL|||||1234^Li^Ming|||||||||||V100",
        f"ORC|{control}|{placer}^HIS|||||{'' if omi else tq}||20250101120000|||5678^Zhang^Wei",
    ]
    if omi:
        segs.append(f"TQ1|1||||||{start}||{priority}")
    segs.append(
        f"OBR|1|{placer}^HIS||{code}^CT chest^99RIS|||||||||cough|||||||||||CT|||||||^suspected pneumonia"
    )
    if ipc or station:
        segs.append(f"IPC|{ipc}||||CT||||{station}")
    return "\r".join(segs)


def hl7_ts(dt) -> str:
    return timezone.localtime(dt).strftime("%Y%m%d%H%M%S")


def tomorrow_at(hour=10, minute=0):
    base = timezone.localtime() + timedelta(days=1)
    return base.replace(hour=hour, minute=minute, second=0, microsecond=0)


class Listener:
    """A throwaway MLLP destination: records each message (raw bytes) and answers ``mode``
    ("AA", "AE", "AR") with MSA-2 = the message's control ID; ``down()`` closes the port."""

    def __init__(self, port: int = 0, mode: str = "AA", encoding: str = "utf-8"):
        self.mode = mode
        self.delay = 0.0
        self.encoding = encoding
        self.received: list[bytes] = []
        self.port = port
        self._sock = None
        self._threads = []
        self._stop = threading.Event()
        self.lock = threading.Lock()

    def up(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        self.port = s.getsockname()[1]
        s.listen(8)
        s.settimeout(0.2)
        self._sock = s
        self._stop.clear()
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def down(self):
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._threads = []
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _accept(self):
        conns = []
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(0.2)
            conns.append([conn, b""])
            self._serve_some(conns)
        for c, _ in conns:
            c.close()

    def _serve_some(self, conns):
        pass

    def control_ids(self) -> list[str]:
        out = []
        for raw in list(self.received):
            first = raw.split(b"\r", 1)[0].decode("latin-1")
            out.append(first.split("|")[9])
        return out

    def texts(self) -> list[str]:
        return [r.decode(self.encoding) for r in list(self.received)]


class ThreadedListener(Listener):
    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            t = threading.Thread(target=self._conn, args=(conn,), daemon=True)
            t.start()

    def _conn(self, conn):
        conn.settimeout(0.2)
        buf = b""
        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while EB + CR in buf:
                    block, buf = buf.split(EB + CR, 1)
                    payload = block[block.index(SB) + 1 :]
                    with self.lock:
                        self.received.append(payload)
                    cid = payload.split(b"\r", 1)[0].split(b"|")[9]
                    if self.delay:
                        time.sleep(self.delay)
                    ack = (
                        b"MSH|^~\\&|HISRECV|HOSPITAL|RIS|RADIOLOGY|20250101||ACK|A"
                        + cid
                        + b"|P|2.5.1\rMSA|"
                        + self.mode.encode()
                        + b"|"
                        + cid
                        + b"\r"
                    )
                    conn.sendall(frame(ack))
        finally:
            conn.close()


@pytest.fixture
def destination_listener(transactional_db):
    listeners = []

    def make(
        mode="AA", *, types=("ORU^R01", "ORM^O01"), charset="UNICODE UTF-8", encoding="utf-8", name="HIS"
    ):
        lst = ThreadedListener(mode=mode, encoding=encoding).up()
        listeners.append(lst)
        dest = Destination.objects.create(
            name=name,
            host="127.0.0.1",
            port=lst.port,
            message_types=list(types),
            charset=charset,
            receiving_application="HIS",
            receiving_facility="HOSPITAL",
        )
        return lst, dest

    yield make
    for lst in listeners:
        lst.down()
