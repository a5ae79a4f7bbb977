"""A small MLLP client for the outbox: one connection, one message at a time, ACK read to the
end of its block (python-hl7's ``MLLPClient`` reads one ``recv`` only)."""

from __future__ import annotations

import contextlib
import socket

from hl7.mllp.streams import END_BLOCK, START_BLOCK

CR = b"\r"


class MLLPError(OSError):
    pass


class MLLPConnection:
    def __init__(self, host: str, port: int, *, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buffer = b""

    def exchange(self, payload: bytes, *, max_bytes: int = 1 << 20) -> bytes:
        self.sock.sendall(START_BLOCK + payload + END_BLOCK + CR)
        while True:
            end = self.buffer.find(END_BLOCK + CR)
            if end >= 0:
                block, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
                start = block.find(START_BLOCK)
                if start < 0:
                    raise MLLPError("the acknowledgement is not framed")
                return block[start + 1 :]
            chunk = self.sock.recv(65536)
            if not chunk:
                raise MLLPError("the peer closed the connection before acknowledging")
            self.buffer += chunk
            if len(self.buffer) > max_bytes:
                raise MLLPError("the acknowledgement is too long")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
