"""The durable write path: temp file → fsync → atomic rename → fsync directory.

Objects live under ``settings.RIS_STORAGE_ROOT/objects/YYYY/MM/DD/<uuid4>.dcm``; the name
is ours, never derived from a received value, so no UID can traverse paths or collide. A
crash at any point leaves either no file or a complete one; a complete file without a
``ReceivedObject`` row was never acknowledged and is harmless (``manage.py
imaging_storage_check`` lists such orphans).

Every object is written in the same Part 10 layout (preamble, the File Meta Information
pynetdicom writes for chunked receives, then the dataset bytes exactly as received), so the
same object sent twice, by C-STORE or STOW-RS, has the same sha256.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.utils import timezone
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import UID
from pynetdicom.dsutils import create_file_meta

from ris.errors import PermanentError, RetriableError

CHUNK = 1024 * 1024
logger = logging.getLogger(__name__)


class StorageError(RetriableError):
    """The storage root cannot take the object now (I/O error)."""


class StorageFull(StorageError):
    """No space (or quota) left on the storage root."""


class ObjectTooLarge(PermanentError):
    """Larger than RIS_STORAGE_MAX_OBJECT_BYTES."""


@dataclass(frozen=True)
class StoredFile:
    relpath: str
    sha256: str
    size: int


def storage_root() -> Path:
    return Path(settings.RIS_STORAGE_ROOT)


def path_for(relpath: str) -> Path:
    """Absolute path of a stored file; refuses anything that would leave the root."""
    root = storage_root().resolve()
    full = (root / relpath).resolve()
    if root not in full.parents:
        raise ValueError("path outside the storage root")
    return full


def tmp_dir() -> Path:
    path = storage_root() / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_relpath(subdir: str = "objects") -> str:
    """A fresh name of ours for a stored object (never derived from a received value)."""
    return f"{subdir}/{timezone.now().strftime('%Y/%m/%d')}/{uuid.uuid4().hex}.dcm"


class ReceiveFile:
    """pynetdicom's chunked-receive temporary file, created inside the storage root.

    Installed in place of ``NamedTemporaryFile`` for C-STORE datasets (``install_receive_file``),
    so the received Part 10 file is already on the storage file system: once checked it is
    fsync'd and *renamed* into place (``adopt``) instead of being copied. The sha256 and the
    size are computed while pynetdicom writes. A write error (disk full) or an object over
    ``RIS_STORAGE_MAX_OBJECT_BYTES`` is remembered, the partial file removed at once, and
    the handler refuses the object (0xA700/0xA702) — the DUL thread never sees an exception.
    """

    def __init__(self, delete: bool = False, mode: str = "wb", suffix: str = ".dcm", **_ignored) -> None:
        self.error: OSError | None = None
        self.too_large = False
        self.size = 0
        self._digest = hashlib.sha256()
        self._limit = settings.RIS_STORAGE_MAX_OBJECT_BYTES
        self._fd: int | None = None
        try:
            self._fd, self.name = tempfile.mkstemp(dir=tmp_dir(), prefix="rx-", suffix=".part")
            hold_lock(self._fd)
        except OSError as exc:
            self.error = exc
            self.name = str(storage_root() / "tmp" / f"rx-{uuid.uuid4().hex}.failed")

    @property
    def file(self) -> ReceiveFile:  # pynetdicom calls ``.file.flush()`` after each fragment
        return self

    def flush(self) -> None:
        """Writes go straight to the file descriptor: nothing is buffered."""

    def write(self, data: bytes) -> int:
        n = len(data)
        if self._fd is None:
            return n
        if self.size + n > self._limit:
            self.too_large = True
            self._discard()
            return n
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.error = exc
            self._discard()
            return n
        self._digest.update(data)
        self.size += n
        return n

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def _discard(self) -> None:
        self.close()
        with contextlib.suppress(OSError):
            os.unlink(self.name)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def raise_if_failed(self) -> None:
        if self.too_large:
            raise ObjectTooLarge("object exceeds the configured maximum size")
        if self.error is not None:
            _raise_os_error(self.error)

    def adopt(self, relpath: str) -> StoredFile:
        """fsync the received file, rename it to ``relpath``, fsync the directory.

        Raises ``StorageFull``/``StorageError``; the file stays where it was (pynetdicom
        deletes it when the handler returns).
        """
        self.raise_if_failed()
        if self._fd is None:
            raise StorageError("received file already closed")
        try:
            os.fsync(self._fd)
            dest = storage_root() / relpath
            _ensure_dir(dest.parent)
            os.rename(self.name, dest)
            _fsync_dir(dest.parent)
        except OSError as exc:
            _raise_os_error(exc)
        return StoredFile(relpath=relpath, sha256=self.sha256, size=self.size)


TMP_MAX_AGE_SECONDS = 3600  # far longer than any receive (network timeout 120 s)
# A temporary file is locked (flock) by the process writing it from a moment after its
# creation until it is renamed into place or removed; an unlocked one older than this
# belongs to no live receive (its process died: the kernel drops the lock with it).
TMP_ORPHAN_GRACE_SECONDS = 2.0


def hold_lock(fd: int) -> None:
    """Mark the temporary file open on ``fd`` as in use (an exclusive flock, never waited for)."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _in_use(path: str) -> bool:
    """Whether a live process holds the file's lock (``hold_lock``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return True  # gone, or not ours to judge: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def tmp_cleanup(*, older_than: float = TMP_MAX_AGE_SECONDS) -> int:
    """Remove temporary files a crash left in ``tmp/`` (never acknowledged); returns how many.

    Only regular files directly in ``tmp/`` that are older than ``older_than`` seconds and
    that no live process holds (``hold_lock``): never a receive in progress, never a stored
    object (those live under ``objects/``).
    """
    directory = storage_root() / "tmp"
    cutoff = time.time() - max(older_than, TMP_ORPHAN_GRACE_SECONDS)
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        with contextlib.suppress(OSError):
            if not entry.is_file(follow_symlinks=False) or entry.stat().st_mtime >= cutoff:
                continue
            if _in_use(entry.path):
                continue
            os.unlink(entry.path)
            removed += 1
    return removed


def tmp_cleanup_at_startup() -> int:
    """At node start: remove the temporary files of receives a crash interrupted (issue 9 item 6).

    Without waiting for the hourly sweep; a file still locked by a live process (another node
    or the web process's STOW-RS) is kept.
    """
    removed = tmp_cleanup(older_than=TMP_ORPHAN_GRACE_SECONDS)
    if removed:
        logger.info("removed %d temporary file(s) of interrupted receives", removed)
    return removed


def install_receive_file() -> None:
    """Make pynetdicom's chunked C-STORE receive write ``ReceiveFile``s (see its docstring)."""
    from ris.dicom import patches

    patches.use_receive_file(ReceiveFile)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(path: Path) -> None:
    """mkdir -p, fsyncing each parent whose entry we created (the new name must survive a crash)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        _fsync_dir(d.parent)


def file_meta_bytes(*, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> bytes:
    meta = create_file_meta(
        sop_class_uid=UID(sop_class_uid),
        sop_instance_uid=UID(sop_instance_uid),
        transfer_syntax=UID(transfer_syntax_uid),
    )
    buf = DicomBytesIO()
    buf.is_little_endian = True
    buf.is_implicit_VR = False
    write_file_meta_info(buf, meta, enforce_standard=True)
    return b"\x00" * 128 + b"DICM" + buf.getvalue()


def _raise_os_error(exc: OSError) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise StorageFull("storage root is full") from exc
    raise StorageError(f"storage write failed: {exc.strerror}") from exc


def fsync_dir(relpath: str) -> None:
    """Make the rename of a stored file durable (fsync its directory)."""
    try:
        _fsync_dir(path_for(relpath).parent)
    except OSError as exc:
        _raise_os_error(exc)


def store(
    *,
    header: bytes,
    source: BinaryIO,
    length: int | None = None,
    subdir: str = "objects",
    sync_dir: bool = True,
    relpath: str | None = None,
) -> StoredFile:
    """Write ``header`` + ``source`` (up to ``length`` bytes) durably and return where and what.

    With ``sync_dir=False`` the caller must call ``fsync_dir(relpath)`` before relying on the
    name (the receive path overlaps it with the database commit). Raises
    ``StorageFull``/``StorageError`` (nothing is left behind) or ``ObjectTooLarge``.
    """
    limit = settings.RIS_STORAGE_MAX_OBJECT_BYTES
    if length is not None and length + len(header) > limit:
        raise ObjectTooLarge("object exceeds the configured maximum size")
    root = storage_root()
    tmp_path: str | None = None
    lock_fd: int | None = None
    try:
        fd, tmp_path = tempfile.mkstemp(dir=tmp_dir(), prefix="in-", suffix=".part")
        # A duplicate descriptor keeps the file's lock until it has been renamed into place.
        lock_fd = os.dup(fd)
        hold_lock(lock_fd)
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            out.write(header)
            digest.update(header)
            size += len(header)
            remaining = length
            while remaining is None or remaining > 0:
                chunk = source.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise ObjectTooLarge("object exceeds the configured maximum size")
                digest.update(chunk)
                out.write(chunk)
                if remaining is not None:
                    remaining -= len(chunk)
            if remaining:
                raise StorageError("source ended early")
            out.flush()
            os.fsync(out.fileno())
        relpath = relpath or new_relpath(subdir)
        dest = root / relpath
        _ensure_dir(dest.parent)
        os.rename(tmp_path, dest)
        tmp_path = None
        if sync_dir:
            _fsync_dir(dest.parent)
    except OSError as exc:
        _raise_os_error(exc)
    finally:
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_path)
        if lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(lock_fd)
    return StoredFile(relpath=relpath, sha256=digest.hexdigest(), size=size)


def remove(relpath: str) -> None:
    """Best-effort removal of a file that was never acknowledged (or a same-bytes duplicate)."""
    try:
        full = path_for(relpath)
        full.unlink()
        _fsync_dir(full.parent)
    except (OSError, ValueError):
        pass


def sha256_of(relpath: str) -> str:
    digest = hashlib.sha256()
    with path_for(relpath).open("rb") as fp:
        while chunk := fp.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
