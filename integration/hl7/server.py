"""The MLLP listener: python-hl7's asyncio MLLP streams, one message at a time per connection
(so each connection's messages are applied in order), processing in a thread pool because
the Django ORM is synchronous. The ACK is written only after ``inbound.handle`` returned, i.e.
after its transaction committed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connections
from hl7.mllp import InvalidBlockError, start_hl7_server

from . import codec, inbound

logger = logging.getLogger("integration.hl7")


def _framing_nak(text: str) -> bytes:
    return codec.build_ack(
        code="AR", msh={}, text=text, error_code="100", location="", control_id="ARIS"
    ).encode("ascii")


class MLLPServer:
    """Run with ``start()`` (a background thread with its own event loop) and ``stop()``."""

    def __init__(self, *, host: str, port: int, workers: int | None = None, handler=None):
        self.host = host
        self.port = port
        self.handler = handler or inbound.handle
        self.pool = ThreadPoolExecutor(
            max_workers=workers or settings.RIS_HL7_WORKERS, thread_name_prefix="hl7"
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server = None
        self.thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.connections: set = set()

    async def _client(self, reader, writer):
        peer = (writer.get_extra_info("peername") or ("", 0))[0]
        self.connections.add(writer)
        idle = settings.RIS_HL7_IDLE_TIMEOUT
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    block = await asyncio.wait_for(reader.readblock(), timeout=idle)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        # Connection closed in the middle of a message: nobody to answer.
                        await loop.run_in_executor(self.pool, _log_truncated, exc.partial, peer)
                    break
                except InvalidBlockError:
                    writer.writeblock(
                        _framing_nak("Malformed MLLP framing: the block does not start with <VT>.")
                    )
                    await writer.drain()
                    continue
                except ValueError:
                    writer.writeblock(_framing_nak("The message is longer than the listener accepts."))
                    await writer.drain()
                    continue
                except (TimeoutError, ConnectionError):
                    break
                result = await loop.run_in_executor(self.pool, self._handle, block, peer)
                writer.writeblock(result)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.connections.discard(writer)
            writer.close()

    def _handle(self, block: bytes, peer: str) -> bytes:
        # Drop a connection that broke (database restart) before using it; a pooled or
        # persistent connection is otherwise kept across messages.
        connections["default"].close_if_unusable_or_obsolete() if connections[
            "default"
        ].errors_occurred else None
        try:
            return self.handler(block, peer=peer).ack
        except Exception:
            logger.exception("hl7: message from %s could not be processed", peer)
            return codec.build_ack(
                code="AE",
                msh=_safe_msh(block),
                text="Internal error; the message was not applied.",
                error_code="207",
                location="",
                control_id="ARIS",
            ).encode("ascii")

    def _run(self):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(
                start_hl7_server(self._client, self.host, self.port, limit=settings.RIS_HL7_MAX_MESSAGE_BYTES)
            )
            self.port = self.server.sockets[0].getsockname()[1]
        except BaseException as exc:  # bind failure
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def start(self) -> MLLPServer:
        self.thread = threading.Thread(target=self._run, name="mllp", daemon=True)
        self.thread.start()
        self.ready.wait(10)
        if self.error is not None:
            raise self.error
        return self

    def stop(self, grace: float = 5.0) -> None:
        loop = self.loop
        if loop is None or not loop.is_running():
            return

        async def _close():
            self.server.close()
            for w in list(self.connections):
                w.close()
            await asyncio.sleep(0)

        fut = asyncio.run_coroutine_threadsafe(_close(), loop)
        with contextlib.suppress(Exception):  # shutting down anyway
            fut.result(timeout=grace)
        # Each pool thread holds its own database connection: close them on their threads.
        n = self.pool._max_workers
        barrier = threading.Barrier(n)
        futures = [self.pool.submit(_close_db, barrier) for _ in range(n)]
        for f in futures:
            with contextlib.suppress(Exception):
                f.result(timeout=grace)
        self.pool.shutdown(wait=True, cancel_futures=True)
        loop.call_soon_threadsafe(loop.stop)
        if self.thread is not None:
            self.thread.join(grace)


def _close_db(barrier: threading.Barrier) -> None:
    from django.db import connections

    connections.close_all()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=5)


def _safe_msh(block: bytes) -> dict:
    try:
        return codec.sniff_msh(block)
    except codec.HL7Reject:
        return {}


def _log_truncated(partial: bytes, peer: str) -> None:
    from django.utils import timezone

    from ..models import Direction, InterfaceMessage, LogStatus

    msh = _safe_msh(partial.lstrip(b"\x0b"))
    InterfaceMessage.objects.create(
        direction=Direction.INBOUND,
        sending_application=msh.get("sending_application", "")[:64],
        sending_facility=msh.get("sending_facility", "")[:64],
        peer=peer[:64],
        message_type=msh.get("message_type", "")[:16],
        control_id=msh.get("control_id", "")[:64],
        status=LogStatus.AR,
        error="Connection closed before the end of the message (truncated MLLP block).",
        raw=partial.decode("latin-1"),
        received_at=timezone.now(),
        processed_at=timezone.now(),
    )
    logger.info("hl7: truncated block from %s", peer)
