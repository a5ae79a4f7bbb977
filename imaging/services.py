"""Writes for imaging: receiving (durable), indexing, linking, reconciliation.

Receiving (``object_receive``) is the only code between the network and the
acknowledgement: validate → durable file → one ``ReceivedObject`` row → caller answers.
Everything else runs later in Celery from the rows (``study_ingest``), so a lost broker
message costs latency, never data (the sweeper re-enqueues ``received`` rows).
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.translation import gettext
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from audit.services import audit_record
from ris.errors import ApplicationError, Conflict, PermanentError, RetriableError
from ris.lifecycle import Lifecycle, Transition
from ris.vr import validate_ui

from . import dicomfile, indexing, storage
from .models import (
    DuplicateConflict,
    Instance,
    LinkMethod,
    ObjectState,
    ReceivedObject,
    ReconciliationItem,
    ReconciliationReason,
    Series,
    Study,
    StudyLink,
)

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------
# The ingest-row lifecycle (one declared table, one guarded mutator: ris/lifecycle.py)
#
#   received ──index──► indexed
#      │ ▲
#    bury│ │revive (a resend repaired the lost file) / retry (someone fixed the cause)
#      ▼ │
#     dead

INGEST_TRANSITIONS: dict[str, Transition] = {
    "index": Transition(sources=(ObjectState.RECEIVED,), target=ObjectState.INDEXED),
    "bury": Transition(sources=(ObjectState.RECEIVED,), target=ObjectState.DEAD),
    "revive": Transition(sources=(ObjectState.DEAD,), target=ObjectState.RECEIVED),
    "retry": Transition(sources=(ObjectState.DEAD,), target=ObjectState.RECEIVED),
}
INGEST_LIFECYCLE = Lifecycle(
    model=ReceivedObject, transitions=INGEST_TRANSITIONS, status_field="state", name="received object"
)


def _ingest_transition(*, action: str, filters: dict, updates: dict | None = None) -> int:
    """Move the ``ReceivedObject`` rows matching ``filters`` that may take ``action``; returns how many.

    The one place an ingest row's state changes (a conditional UPDATE guarded by the table's
    source states). Callers audit (``imaging.ingest_retry``) and log; the rows themselves are
    the event record (``attempts``, ``last_error``, ``indexed_at``).
    """
    return INGEST_LIFECYCLE.advance_where(action=action, filters=filters, updates=updates)


class ReceiveRefused(Exception):
    """The object is refused and nothing of it is kept; the adapters (C-STORE, STOW-RS) map the
    subclass to their status (``imaging.dicom.receive_status``)."""


class ObjectInvalid(ReceiveRefused):
    """A required UID is missing or invalid, or the object contradicts its command/request."""


class ObjectUndecodable(ReceiveRefused):
    """The data set cannot be parsed."""


class SOPClassNotStorage(ReceiveRefused):
    """Not a storage SOP class."""


class StorageOutOfSpace(ReceiveRefused):
    """The storage root is full, or the object is over ``RIS_STORAGE_MAX_OBJECT_BYTES``."""


class StorageUnavailable(ReceiveRefused):
    """The storage root cannot take the object now (I/O error)."""


class RecordUnavailable(ReceiveRefused):
    """The database cannot record the object now."""


class DatabaseUnavailable(RetriableError):
    pass


@dataclass(frozen=True)
class ReceiveResult:
    outcome: str  # stored | duplicate | conflict
    received_object_id: int
    study_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str


def _check_uid(value: str | None, what: str) -> str:
    if not value:
        raise ObjectInvalid(f"{what} is missing")
    try:
        validate_ui(value)
    except ValidationError as exc:
        raise ObjectInvalid(f"{what} is not a valid UID") from exc
    return value


def _is_storage_sop_class(uid: str) -> bool:
    try:
        return uid_to_service_class(uid) is StorageServiceClass
    except Exception:
        return False


def object_receive(
    *,
    path: Path | str,
    calling_ae: str = "",
    source: str = "dimse",
    command_sop_class_uid: str | None = None,
    command_sop_instance_uid: str | None = None,
    expected_study_uid: str | None = None,
    received_file: storage.ReceiveFile | None = None,
) -> ReceiveResult:
    """Make one received Part 10 file durable and recorded; the caller may then answer success.

    ``path`` is a file the caller owns and deletes (pynetdicom's chunked-receive temp file, or
    a STOW-RS part). When it is a ``storage.ReceiveFile`` (``received_file``: already inside
    the storage root, sha256 computed while written) and its bytes are exactly our layout, it
    is fsync'd and renamed into place; otherwise it is copied. Raises a ``ReceiveRefused``
    subclass (the adapter maps it to its status).
    """
    if received_file is not None:
        try:
            received_file.raise_if_failed()
        except (storage.StorageError, storage.ObjectTooLarge) as exc:
            raise _refusal(exc) from exc
    try:
        header = dicomfile.inspect_file(path)
    except dicomfile.MalformedObject as exc:
        raise ObjectUndecodable(f"malformed dataset: {exc}") from exc
    except OSError as exc:
        raise StorageUnavailable("received file unreadable") from exc

    sop_instance_uid = _check_uid(header.sop_instance_uid, "SOP Instance UID")
    sop_class_uid = _check_uid(header.sop_class_uid, "SOP Class UID")
    study_uid = _check_uid(header.study_instance_uid, "Study Instance UID")
    _check_uid(header.series_instance_uid, "Series Instance UID")
    if command_sop_instance_uid is not None:
        _check_uid(command_sop_instance_uid, "Affected SOP Instance UID")
        if command_sop_instance_uid != sop_instance_uid:
            raise ObjectInvalid("Affected SOP Instance UID differs from the dataset's")
    if command_sop_class_uid is not None and command_sop_class_uid != sop_class_uid:
        raise ObjectInvalid("Affected SOP Class UID differs from the dataset's")
    if not _is_storage_sop_class(sop_class_uid):
        raise SOPClassNotStorage("not a storage SOP class")
    if expected_study_uid and study_uid != expected_study_uid:
        raise ObjectInvalid("object belongs to another study")
    _check_uid(header.transfer_syntax_uid, "Transfer Syntax UID")
    if header.missing_pixel_data:
        raise ObjectInvalid("image without Pixel Data")

    relpath = storage.new_relpath()
    # The file's durability (fsync, rename, directory fsync) runs in a helper thread while
    # this thread records the row; both must succeed before the caller may answer. A crash
    # in between leaves a row without a file (never acknowledged: the resend repairs it) or
    # a file without a row (an orphan), never an acknowledged object that is missing.
    try:
        if received_file is not None and _adoptable(header):
            stored = storage.StoredFile(relpath=relpath, sha256=received_file.sha256, size=received_file.size)
            file_job = _FILE_SYNC.submit(received_file.adopt, relpath)
        else:
            meta = storage.file_meta_bytes(
                sop_class_uid=sop_class_uid,
                sop_instance_uid=sop_instance_uid,
                transfer_syntax_uid=header.transfer_syntax_uid,
            )
            with Path(path).open("rb") as src:
                src.seek(header.dataset_offset)
                stored = storage.store(
                    header=meta, source=src, length=header.dataset_size, sync_dir=False, relpath=relpath
                )
            file_job = _FILE_SYNC.submit(_dir_synced, stored)
    except storage.StorageError as exc:  # raised before anything was renamed into place
        raise _refusal(exc) from exc
    except storage.ObjectTooLarge as exc:
        raise StorageOutOfSpace(str(exc)) from exc

    try:
        pk = _insert_received(stored=stored, header=header, calling_ae=calling_ae, source=source)
    except DatabaseError as exc:
        # Not acknowledged: the file must not outlive the refusal.
        _wait_quietly(file_job)
        storage.remove(relpath)
        logger.warning("database unavailable while recording an object: %s", type(exc).__name__)
        raise RecordUnavailable("database unavailable") from exc
    except BaseException:
        _wait_quietly(file_job)
        storage.remove(relpath)
        raise
    try:
        file_job.result()
    except (storage.StorageError, storage.ObjectTooLarge) as exc:
        # The object is not durable: undo the row (if it is ours) and refuse.
        if pk is not None:
            with contextlib.suppress(DatabaseError):
                ReceivedObject.objects.filter(pk=pk, relpath=relpath).delete()
        storage.remove(relpath)
        raise _refusal(exc) from exc
    if pk is not None:
        return ReceiveResult("stored", pk, study_uid, sop_instance_uid, sop_class_uid)
    return _record_duplicate(stored=stored, header=header, calling_ae=calling_ae, source=source)


# Threads that make files durable while the receiving thread records the row.
_FILE_SYNC = ThreadPoolExecutor(max_workers=8, thread_name_prefix="imaging-fsync")


def _refusal(exc: Exception) -> ReceiveRefused:
    if isinstance(exc, (storage.StorageFull, storage.ObjectTooLarge)):
        return StorageOutOfSpace(str(exc))
    return StorageUnavailable(str(exc))


def _dir_synced(stored: storage.StoredFile) -> storage.StoredFile:
    storage.fsync_dir(stored.relpath)
    return stored


def _adoptable(header: dicomfile.ObjectHeader) -> bool:
    """A ``ReceiveFile`` is already our layout when its meta names the dataset's UIDs.

    pynetdicom wrote its File Meta Information with ``create_file_meta`` and
    ``write_file_meta_info`` from the command's UIDs and the accepted transfer syntax — the
    same functions ``storage.file_meta_bytes`` uses — so equal UIDs mean equal bytes (and
    the same sha256 as a STOW-RS copy of the object).
    """
    return (
        header.media_sop_instance_uid == header.sop_instance_uid
        and header.media_sop_class_uid == header.sop_class_uid
    )


def _wait_quietly(future) -> None:
    with contextlib.suppress(Exception):
        future.result()


_INSERT_SQL: str | None = None
_INSERT_FIELDS: list = []


def _insert_sql() -> tuple[str, list]:
    """``INSERT … ON CONFLICT (sop_instance_uid) DO NOTHING RETURNING id`` for ReceivedObject.

    One statement, one round trip, committed on its own (autocommit): no SELECT before it,
    no BEGIN/COMMIT around it. PostgreSQL and SQLite (>= 3.35) both understand it.
    """
    global _INSERT_SQL, _INSERT_FIELDS
    if _INSERT_SQL is None:
        qn = connection.ops.quote_name
        fields = [f for f in ReceivedObject._meta.concrete_fields if not f.primary_key]
        _INSERT_FIELDS = fields
        # Table and column names come from the model's meta, never from input.
        table = qn(ReceivedObject._meta.db_table)
        columns = ", ".join(qn(str(f.column)) for f in fields)
        values = ", ".join(["%s"] * len(fields))
        _INSERT_SQL = " ".join(
            [
                f"INSERT INTO {table} ({columns}) VALUES ({values})",  # noqa: S608
                f"ON CONFLICT ({qn('sop_instance_uid')}) DO NOTHING RETURNING {qn('id')}",
            ]
        )
    return _INSERT_SQL, _INSERT_FIELDS


def _insert_received(*, stored: storage.StoredFile, header, calling_ae: str, source: str) -> int | None:
    """Insert the row; ``None`` when the SOP Instance UID is already known (nothing written)."""
    obj = ReceivedObject(
        sop_instance_uid=header.sop_instance_uid,
        sop_class_uid=header.sop_class_uid,
        study_instance_uid=header.study_instance_uid,
        series_instance_uid=header.series_instance_uid,
        transfer_syntax_uid=header.transfer_syntax_uid,
        relpath=stored.relpath,
        sha256=stored.sha256,
        size=stored.size,
        calling_ae=calling_ae[:16],
        source=source,
        received_at=timezone.now(),
    )
    sql, fields = _insert_sql()
    params = [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    return row[0] if row else None


def _record_duplicate(
    *, stored: storage.StoredFile, header: dicomfile.ObjectHeader, calling_ae: str, source: str
) -> ReceiveResult:
    """The SOP Instance UID is known: same bytes → idempotent success; else keep the first."""
    now = timezone.now()
    existing = ReceivedObject.objects.get(sop_instance_uid=header.sop_instance_uid)
    result = ReceiveResult(
        "duplicate",
        existing.pk,
        existing.study_instance_uid,
        existing.sop_instance_uid,
        existing.sop_class_uid,
    )
    if existing.sha256 == stored.sha256:
        if _file_intact(existing):
            storage.remove(stored.relpath)
            return result
        # The earlier copy is gone (e.g. a crash lost its name before it was acknowledged):
        # the resend repairs the row instead of being answered on the strength of a ghost;
        # a row the ingest gave up on because its file was missing gets another chance.
        repaired = ReceivedObject.objects.filter(pk=existing.pk, relpath=existing.relpath).update(
            relpath=stored.relpath, size=stored.size
        )
        if repaired:
            _ingest_transition(
                action="revive",
                filters={"pk": existing.pk},
                updates={"attempts": 0, "last_error": "", "enqueued_at": None},
            )
        else:
            storage.remove(stored.relpath)
        logger.warning("object %s: stored file was missing; replaced by the resend", existing.pk)
        return result
    with transaction.atomic():
        conflict, created = DuplicateConflict.objects.get_or_create(
            original=existing,
            sha256=stored.sha256,
            defaults={
                "relpath": stored.relpath,
                "size": stored.size,
                "transfer_syntax_uid": header.transfer_syntax_uid,
                "calling_ae": calling_ae[:16],
                "source": source,
                "received_at": now,
            },
        )
        if created:
            study = Study.objects.filter(study_instance_uid=existing.study_instance_uid).first()
            audit_record(
                action="imaging.duplicate_conflict",
                object_type="received_object",
                object_id=existing.pk,
                patient_id=study.patient_id if study else None,
                source_ae=calling_ae,
                outcome="failure",
                detail={"sop_instance_uid": existing.sop_instance_uid, "conflict": conflict.pk},
            )
    if not created:
        storage.remove(stored.relpath)
    logger.warning(
        "SOP Instance %s resent with different content (kept the first)", existing.sop_instance_uid
    )
    return ReceiveResult(
        "conflict",
        existing.pk,
        existing.study_instance_uid,
        existing.sop_instance_uid,
        existing.sop_class_uid,
    )


def _file_intact(obj: ReceivedObject) -> bool:
    try:
        return storage.path_for(obj.relpath).stat().st_size == obj.size
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------------------------------
# Enqueueing (after an association or a STOW-RS request)


def _send_ingest(study_uid: str) -> None:
    from .tasks import ingest_study

    try:
        ingest_study.apply_async(
            args=[study_uid],
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
        )
    except Exception as exc:
        # The broker only wakes workers: the sweeper finds the rows after the lease.
        logger.warning(
            "could not enqueue ingest of a study (%s: %s); the sweeper will", type(exc).__name__, exc
        )


def studies_enqueue(*, study_uids, source_ae: str = "", counts: dict | None = None, actor=None, request=None):
    """Mark the studies' received rows as enqueued and send one task per study after commit."""
    study_uids = sorted(set(study_uids))
    if not study_uids:
        return
    now = timezone.now()
    with transaction.atomic():
        ReceivedObject.objects.filter(study_instance_uid__in=study_uids, state=ObjectState.RECEIVED).update(
            enqueued_at=now
        )
        for uid in study_uids:
            audit_record(
                action="imaging.receive",
                actor=actor,
                request=request,
                object_type="study",
                object_id=uid,
                source_ae=source_ae,
                detail={"instances": (counts or {}).get(uid, 0)},
            )
            transaction.on_commit(partial(_send_ingest, uid))


# ---------------------------------------------------------------------------------------
# Indexing (Celery)


def _lock_study(uid: str) -> None:
    """Serialise indexing of one study across workers (transaction-scoped advisory lock)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"imaging.study:{uid}"])


def _patient_fields_differ(study: Study, patient: dict) -> bool:
    return bool(patient["dicom_patient_id"]) and study.dicom_patient_id != patient["dicom_patient_id"]


def study_ingest(*, study_instance_uid: str, chunk_size: int | None = None) -> dict:
    """Index every ``received`` object of the study, then link the study. Idempotent."""
    max_attempts = settings.RIS_INGEST_MAX_ATTEMPTS
    chunk_size = chunk_size or int(getattr(settings, "RIS_INGEST_CHUNK_SIZE", 50))
    now = timezone.now()
    with transaction.atomic():
        dead = _ingest_transition(
            action="bury",
            filters={"study_instance_uid": study_instance_uid, "attempts__gte": max_attempts},
            updates={"last_error": f"gave up after {max_attempts} attempts"},
        )
        # Counted before the work, in its own commit: a worker killed mid-task still counts.
        ReceivedObject.objects.filter(
            study_instance_uid=study_instance_uid, state=ObjectState.RECEIVED
        ).update(attempts=F("attempts") + 1, enqueued_at=now)
    if dead:
        logger.error("%d objects of a study marked dead after %d attempts", dead, max_attempts)
    pending = list(
        ReceivedObject.objects.filter(study_instance_uid=study_instance_uid, state=ObjectState.RECEIVED)
        .order_by("id")
        .values_list("id", flat=True)
    )
    indexed = 0
    touched_series: set[int] = set()
    for start in range(0, len(pending), chunk_size):
        n, series_ids = _index_chunk(study_instance_uid, pending[start : start + chunk_size])
        indexed += n
        touched_series |= series_ids
    study = Study.objects.filter(study_instance_uid=study_instance_uid).first()
    if study is None:
        return {"indexed": indexed, "linked": False}
    # Counts, QC and the link in one transaction: one commit (one WAL flush) instead of many.
    with transaction.atomic():
        if touched_series:
            _lock_study(study_instance_uid)
            _refresh_counts(study, touched_series)
            from .qc import series_qc_refresh

            for series_id in touched_series:
                series_qc_refresh(series_id=series_id)
            transaction.on_commit(partial(_send_previews, study.pk))
        linked = study_link_auto(study=study)
    return {"indexed": indexed, "linked": linked}


def _read_headers(obj: ReceivedObject) -> indexing.Headers:
    path = storage.path_for(obj.relpath)
    try:
        ds = indexing.read_dataset(path)
        return indexing.extract(ds)
    except FileNotFoundError as exc:
        raise PermanentError("stored file is missing") from exc
    except OSError as exc:
        raise RetriableError(f"cannot read stored file: {exc.strerror}") from exc
    except (ValueError, TypeError, AttributeError, KeyError, EOFError, zlib.error) as exc:
        raise PermanentError(f"stored file does not parse: {type(exc).__name__}") from exc


def _index_chunk(study_uid: str, ids: list[int]) -> tuple[int, set[int]]:
    objects = list(ReceivedObject.objects.filter(pk__in=ids, state=ObjectState.RECEIVED).order_by("id"))
    parsed: list[tuple[ReceivedObject, indexing.Headers]] = []
    for obj in objects:
        try:
            parsed.append((obj, _read_headers(obj)))
        except PermanentError as exc:
            _ingest_transition(action="bury", filters={"pk": obj.pk}, updates={"last_error": str(exc)[:255]})
            logger.error("object %s dead: %s", obj.pk, exc)
    if not parsed:
        return 0, set()
    series_ids: set[int] = set()
    count = 0
    with transaction.atomic():
        _lock_study(study_uid)
        # Another worker may have indexed some of them meanwhile.
        still = set(
            ReceivedObject.objects.select_for_update()
            .filter(pk__in=[o.pk for o, _ in parsed], state=ObjectState.RECEIVED)
            .values_list("pk", flat=True)
        )
        parsed = [(o, h) for o, h in parsed if o.pk in still]
        if not parsed:
            return 0, set()
        first_obj, first = parsed[0]
        study, created = Study.objects.get_or_create(
            study_instance_uid=study_uid,
            defaults={
                **first.patient,
                **first.study,
                "source_ae": first_obj.calling_ae,
                "first_received_at": first_obj.received_at,
                "last_received_at": first_obj.received_at,
            },
        )
        if created and study.dicom_patient_id:
            study.patient = _registered_patient(study.dicom_patient_id, study.issuer_of_patient_id)
            if study.patient is not None:
                study.save(update_fields=["patient"])
        inconsistent = []
        series_cache: dict[str, Series] = {}
        new_instances = []
        for obj, h in parsed:
            if _patient_fields_differ(study, h.patient) or (
                h.study["accession_number"] and h.study["accession_number"] != study.accession_number
            ):
                inconsistent.append(obj.sop_instance_uid)
            series = series_cache.get(obj.series_instance_uid)
            if series is None:
                series, _ = Series.objects.get_or_create(
                    series_instance_uid=obj.series_instance_uid, defaults={"study": study, **h.series}
                )
                if series.study_id != study.pk:
                    # A series UID reused across studies: index under the first study, flag it.
                    inconsistent.append(obj.sop_instance_uid)
                series_cache[obj.series_instance_uid] = series
            series_ids.add(series.pk)
            new_instances.append(
                Instance(
                    series=series,
                    received_object=obj,
                    sop_instance_uid=obj.sop_instance_uid,
                    sop_class_uid=obj.sop_class_uid,
                    transfer_syntax_uid=obj.transfer_syntax_uid,
                    **h.instance,
                )
            )
        Instance.objects.bulk_create(new_instances, ignore_conflicts=True)
        # The rows are locked above and still ``received``: the guard is the same condition.
        count = _ingest_transition(
            action="index",
            filters={"pk__in": [o.pk for o, _ in parsed]},
            updates={"indexed_at": timezone.now(), "last_error": ""},
        )
        last = max(o.received_at for o, _ in parsed)
        Study.objects.filter(pk=study.pk).update(last_received_at=last, updated_at=timezone.now())
        if inconsistent:
            _open_item(
                study=study,
                reason=ReconciliationReason.INCONSISTENT,
                detail={"sop_instance_uids": inconsistent[:20]},
            )
    return count, series_ids


def _refresh_counts(study: Study, series_ids: set[int]) -> None:
    with transaction.atomic():
        for row in Series.objects.filter(pk__in=series_ids).annotate(n=Count("instances")).values("pk", "n"):
            Series.objects.filter(pk=row["pk"]).update(num_instances=row["n"])
        agg = Series.objects.filter(study=study).aggregate(s=Count("id", distinct=True), i=Count("instances"))
        modalities = sorted(
            set(Series.objects.filter(study=study).exclude(modality="").values_list("modality", flat=True))
        )
        Study.objects.filter(pk=study.pk).update(
            num_series=agg["s"], num_instances=agg["i"], modalities="\\".join(modalities)[:64]
        )


def _send_previews(study_id: int) -> None:
    from .tasks import render_previews

    try:
        render_previews.apply_async(
            args=[study_id], retry=True, retry_policy={"max_retries": 1, "interval_start": 0}
        )
    except Exception as exc:
        logger.warning("could not enqueue preview rendering (%s)", type(exc).__name__)


def _registered_patient(patient_id: str, issuer: str):
    from registration.models import Patient

    qs = Patient.objects.filter(patient_id=patient_id)
    if issuer:
        qs = qs.filter(issuer=issuer)
    matches = list(qs[:2])
    if len(matches) != 1:
        return None
    patient = matches[0]
    # Follow merges to the surviving record (IHE PIR).
    seen = set()
    while patient.merged_into_id and patient.pk not in seen:
        seen.add(patient.pk)
        patient = patient.merged_into  # type: ignore[assignment]  # merged_into_id is set
    return patient


# ---------------------------------------------------------------------------------------
# Linking


@dataclass
class LinkDecision:
    procedure: object | None
    method: str = ""
    reason: str = ""
    detail: dict | None = None


def _patient_agrees(study: Study, order_patient) -> bool:
    """The study's Patient ID (+ issuer) names the order's patient or a record merged into it."""
    if not study.dicom_patient_id:
        return False
    same_issuer = not study.issuer_of_patient_id or study.issuer_of_patient_id == order_patient.issuer
    if same_issuer and study.dicom_patient_id == order_patient.patient_id:
        return True
    # Otherwise only a registered record merged into the order's patient makes it the same person.
    registered = _registered_patient(study.dicom_patient_id, study.issuer_of_patient_id)
    return registered is not None and registered.pk == order_patient.pk


def link_decide(*, study: Study) -> LinkDecision:
    """Pure decision (reads only): which procedure this study belongs to, or why none."""
    from scheduling.models import Order, ProcedureStatus, RequestedProcedure

    ours = settings.RIS_ISSUER_OF_ACCESSION_NUMBER
    if study.accession_issuer and ours and study.accession_issuer != ours:
        return LinkDecision(
            None, reason=ReconciliationReason.ISSUER_MISMATCH, detail={"issuer": study.accession_issuer}
        )
    by_uid = (
        RequestedProcedure.objects.select_related("order__patient")
        .filter(study_instance_uid=study.study_instance_uid)
        .first()
    )
    if not study.accession_number:
        if by_uid is not None and _patient_agrees(study, by_uid.order.patient):
            return _check_procedure(study, by_uid, LinkMethod.STUDY_UID)
        return LinkDecision(None, reason=ReconciliationReason.NO_ACCESSION)
    order = Order.objects.select_related("patient").filter(accession_number=study.accession_number).first()
    if order is None:
        detail = {"study_uid_matches_procedure": by_uid.pk} if by_uid else {}
        return LinkDecision(None, reason=ReconciliationReason.UNKNOWN_ACCESSION, detail=detail)
    procedures = list(order.procedures.all())
    # The patient first: a wrong patient is the reason that matters most to the reviewer.
    if not _patient_agrees(study, order.patient):
        return LinkDecision(
            None,
            reason=ReconciliationReason.PATIENT_MISMATCH,
            detail={"order": order.pk, "procedures": [p.pk for p in procedures]},
        )
    procedure = next((p for p in procedures if p.study_instance_uid == study.study_instance_uid), None)
    if procedure is None:
        if settings.RIS_INGEST_REQUIRE_STUDY_UID_MATCH or len(procedures) != 1:
            reason = (
                ReconciliationReason.AMBIGUOUS
                if len(procedures) > 1 and not settings.RIS_INGEST_REQUIRE_STUDY_UID_MATCH
                else ReconciliationReason.STUDY_UID_MISMATCH
            )
            return LinkDecision(
                None,
                reason=reason,
                detail={
                    "order": order.pk,
                    "procedures": [p.pk for p in procedures],
                    **({"study_uid_matches_procedure": by_uid.pk} if by_uid else {}),
                },
            )
        procedure = procedures[0]
    if procedure.status == ProcedureStatus.CANCELLED:
        return LinkDecision(
            None, reason=ReconciliationReason.PROCEDURE_CLOSED, detail={"procedure": procedure.pk}
        )
    procedure.order = order
    return _check_procedure(study, procedure, LinkMethod.ACCESSION)


def _check_procedure(study: Study, procedure, method: str) -> LinkDecision:
    other = (
        Study.objects.filter(requested_procedure=procedure).exclude(pk=study.pk).values_list("pk", flat=True)
    )
    if other:
        return LinkDecision(
            None,
            reason=ReconciliationReason.ALREADY_LINKED,
            detail={"procedure": procedure.pk, "studies": list(other)[:5]},
        )
    return LinkDecision(procedure, method=method)


def study_link_auto(*, study: Study, method_override: str | None = None) -> bool:
    """Link automatically when everything agrees; otherwise queue for reconciliation."""
    study.refresh_from_db()
    if study.requested_procedure_id is not None:
        return True
    if study.reconciliation_items.filter(
        resolved_at__isnull=True,
        reason__in=[ReconciliationReason.INCONSISTENT, ReconciliationReason.UNLINKED],
    ).exists():
        # A person has to look at this one.
        return False
    decision = link_decide(study=study)
    if decision.procedure is None:
        _open_item(study=study, reason=decision.reason, detail=decision.detail or {})
        return False
    _link(
        study=study,
        procedure=decision.procedure,
        method=method_override or decision.method,
        actor=None,
        note="",
    )
    return True


def _link(*, study: Study, procedure, method: str, actor=None, request=None, note: str = "") -> StudyLink:
    from scheduling.models import RequestedProcedure

    with transaction.atomic():
        proc = RequestedProcedure.objects.select_related("order__patient").get(pk=procedure.pk)
        patient = proc.order.patient
        updated = Study.objects.filter(pk=study.pk, requested_procedure__isnull=True).update(
            requested_procedure=proc, patient=patient, updated_at=timezone.now()
        )
        if not updated:
            current = (
                Study.objects.filter(pk=study.pk).values_list("requested_procedure_id", flat=True).first()
            )
            if current == proc.pk:
                # Linked to this procedure already: its open link row exists.
                return cast(
                    StudyLink, StudyLink.objects.filter(study=study, unlinked_at__isnull=True).first()
                )
            raise Conflict("The study is already linked to another procedure.")
        now = timezone.now()
        link = StudyLink.objects.create(
            study=study,
            requested_procedure=proc,
            method=method,
            linked_at=now,
            linked_by=actor if getattr(actor, "is_authenticated", False) else None,
            note=note[:255],
        )
        ReconciliationItem.objects.filter(study=study, resolved_at__isnull=True).update(
            resolved_at=now,
            resolved_by=actor if getattr(actor, "is_authenticated", False) else None,
            resolution=f"linked to {proc.requested_procedure_id} ({method})",
        )
        audit_record(
            action="study.link",
            actor=actor,
            request=request,
            object_type="study",
            object_id=study.pk,
            patient_id=patient.pk,
            detail={
                "procedure": proc.pk,
                "accession_number": proc.order.accession_number,
                "method": method,
                **({"note": note} if note else {}),
            },
        )
        first_at = study.first_received_at or now
        procedure_images_available(procedure=proc, at=max(first_at, now), study=study)
    logger.info("study %s linked to procedure %s (%s)", study.pk, proc.pk, method)
    return link


def procedure_images_available(*, procedure, at: datetime, study: Study | None = None) -> bool:
    """Images are available for the procedure: the scheduling service records it (once)."""
    from scheduling.services import procedure_images_available as record

    return record(procedure=procedure, at=at, study_instance_uid=study.study_instance_uid if study else "")


def _procedure_images_withdrawn(*, procedure_id: int, study: Study, actor=None, request=None) -> None:
    """The study was unlinked: when no other study remains linked, images are no longer available."""
    from scheduling.services import procedure_images_withdrawn

    if Study.objects.filter(requested_procedure_id=procedure_id).exists():
        return
    procedure_images_withdrawn(
        procedure=procedure_id, actor=actor, request=request, study_instance_uid=study.study_instance_uid
    )


def _open_item(*, study: Study, reason: str, detail: dict) -> ReconciliationItem:
    with transaction.atomic():
        item = ReconciliationItem.objects.filter(study=study, resolved_at__isnull=True).first()
        if item is not None:
            if item.reason != reason or item.detail != detail:
                ReconciliationItem.objects.filter(pk=item.pk).update(reason=reason, detail=detail)
                item.reason, item.detail = reason, detail
            return item
        try:
            with transaction.atomic():
                item = ReconciliationItem.objects.create(
                    study=study, reason=reason, detail=detail, source_ae=study.source_ae
                )
        except IntegrityError:
            return ReconciliationItem.objects.get(study=study, resolved_at__isnull=True)
        audit_record(
            action="reconciliation.open",
            object_type="study",
            object_id=study.pk,
            patient_id=study.patient_id,
            detail={"reason": reason},
        )
    logger.info("study %s queued for reconciliation: %s", study.pk, reason)
    return item


# ---------------------------------------------------------------------------------------
# Reconciliation actions (people)


def study_link_manual(*, study: Study, procedure, actor, request=None, note: str = "") -> StudyLink:
    """Link a study to a procedure chosen on the workbench (after confirmation)."""
    from scheduling.models import ProcedureStatus

    if procedure.status == ProcedureStatus.CANCELLED:
        raise ApplicationError("The procedure is cancelled; it cannot receive images.")
    return _link(
        study=study, procedure=procedure, method=LinkMethod.MANUAL, actor=actor, request=request, note=note
    )


def study_unlink(*, study: Study, actor, reason: str, request=None) -> None:
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("A reason is required.", fields={"reason": ["This field is required."]})
    with transaction.atomic():
        current = Study.objects.select_for_update().get(pk=study.pk)
        if current.requested_procedure_id is None:
            raise Conflict("The study is not linked.")
        procedure_id = current.requested_procedure_id
        patient_id = current.patient_id
        Study.objects.filter(pk=study.pk).update(
            requested_procedure=None,
            patient=_registered_patient(current.dicom_patient_id, current.issuer_of_patient_id)
            if current.dicom_patient_id
            else None,
            updated_at=timezone.now(),
        )
        now = timezone.now()
        StudyLink.objects.filter(study=study, unlinked_at__isnull=True).update(
            unlinked_at=now, unlinked_by=actor if getattr(actor, "is_authenticated", False) else None
        )
        ReconciliationItem.objects.create(
            study=study, reason=ReconciliationReason.UNLINKED, detail={"reason": reason[:255]}
        )
        audit_record(
            action="study.unlink",
            actor=actor,
            request=request,
            object_type="study",
            object_id=study.pk,
            patient_id=patient_id,
            detail={"procedure": procedure_id, "reason": reason[:255]},
        )
        _procedure_images_withdrawn(procedure_id=procedure_id, study=study, actor=actor, request=request)


def reconciliation_dismiss(*, item: ReconciliationItem, actor, resolution: str, request=None) -> None:
    """Close an item without linking (e.g. a test or QA phantom study)."""
    resolution = (resolution or "").strip()
    if not resolution:
        raise ApplicationError("A reason is required.", fields={"resolution": ["This field is required."]})
    with transaction.atomic():
        updated = ReconciliationItem.objects.filter(pk=item.pk, resolved_at__isnull=True).update(
            resolved_at=timezone.now(),
            resolved_by=actor if getattr(actor, "is_authenticated", False) else None,
            resolution=resolution[:255],
        )
        if not updated:
            raise Conflict("The item is already resolved.")
        audit_record(
            action="reconciliation.dismiss",
            actor=actor,
            request=request,
            object_type="study",
            object_id=item.study_id,
            patient_id=item.study.patient_id,
            detail={"item": item.pk, "resolution": resolution[:255]},
        )


def reconciliation_merge_and_link(*, study: Study, procedure, actor, request=None) -> StudyLink:
    """Temporary/trauma registration: merge it into the other patient, then link (IHE PIR)."""
    from registration.services import patient_merge

    order_patient = procedure.order.patient
    study_patient = _registered_patient(study.dicom_patient_id, study.issuer_of_patient_id)
    if study_patient is None or study_patient.pk == order_patient.pk:
        raise ApplicationError("The study's patient is not a different registered patient.")
    if order_patient.is_temporary and not study_patient.is_temporary:
        source, target = order_patient, study_patient
    elif study_patient.is_temporary and not order_patient.is_temporary:
        source, target = study_patient, order_patient
    else:
        raise ApplicationError("Only a temporary registration can be merged from the workbench.")
    with transaction.atomic():
        patient_merge(source=source, target=target, actor=actor, request=request)
        Study.objects.filter(patient=source).update(patient=target)
        return _link(
            study=study,
            procedure=procedure,
            method=LinkMethod.MANUAL,
            actor=actor,
            request=request,
            note=f"merged temporary patient {source.pk} into {target.pk}",
        )


def conflict_resolve(*, conflict: DuplicateConflict, actor, request=None) -> None:
    with transaction.atomic():
        updated = DuplicateConflict.objects.filter(pk=conflict.pk, resolved_at__isnull=True).update(
            resolved_at=timezone.now(),
            resolved_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        if not updated:
            raise Conflict("Already resolved.")
        audit_record(
            action="imaging.conflict_resolve",
            actor=actor,
            request=request,
            object_type="received_object",
            object_id=conflict.original_id,
            detail={"conflict": conflict.pk},
        )


def received_object_retry(*, received_object: ReceivedObject | int, actor, request=None) -> None:
    """Give a ``dead`` object another round of ingest (after someone fixed the cause).

    One conditional UPDATE (dead → received, attempts reset), an audit event, and the
    study's ingest task sent after commit. Raises ``Conflict`` if it is no longer dead.
    """
    pk = received_object if isinstance(received_object, int) else received_object.pk
    with transaction.atomic():
        updated = _ingest_transition(
            action="retry",
            filters={"pk": pk},
            updates={"attempts": 0, "last_error": "", "enqueued_at": timezone.now()},
        )
        if not updated:
            raise Conflict(gettext("This object is no longer waiting for a retry."))
        obj = ReceivedObject.objects.get(pk=pk)
        study = Study.objects.filter(study_instance_uid=obj.study_instance_uid).only("patient_id").first()
        audit_record(
            action="imaging.ingest_retry",
            actor=actor,
            request=request,
            object_type="received_object",
            object_id=pk,
            patient_id=study.patient_id if study else None,
            detail={"study_instance_uid": obj.study_instance_uid},
        )
        transaction.on_commit(partial(_send_ingest, obj.study_instance_uid))


# ---------------------------------------------------------------------------------------
# Late orders and the sweeper


def studies_match_order(*, order_id: int) -> int:
    """An order created after its study arrived: link the waiting studies now."""
    from scheduling.models import Order

    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return 0
    uids = list(order.procedures.values_list("study_instance_uid", flat=True))
    studies = Study.objects.filter(
        Q(accession_number=order.accession_number) | Q(study_instance_uid__in=uids),
        requested_procedure__isnull=True,
        reconciliation_items__resolved_at__isnull=True,
        reconciliation_items__reason__in=[
            ReconciliationReason.UNKNOWN_ACCESSION,
            ReconciliationReason.NO_ACCESSION,
        ],
    ).distinct()
    linked = 0
    for study in studies:
        if study_link_auto(study=study, method_override=LinkMethod.ORDER_CREATED):
            linked += 1
    return linked


def sweep_received(*, now: datetime | None = None, limit: int = 500) -> dict:
    """Re-enqueue studies whose ``received`` rows outlived their lease; wake late-order matches."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.RIS_INGEST_LEASE_SECONDS)
    stale = ReceivedObject.objects.filter(state=ObjectState.RECEIVED).filter(
        Q(enqueued_at__lt=cutoff) | Q(enqueued_at__isnull=True, received_at__lt=cutoff)
    )
    # ``.order_by()`` clears the model's default ordering (``id``): with it, DISTINCT would be
    # over (study UID, id), i.e. one task per row instead of one per study.
    uids = list(stale.order_by().values_list("study_instance_uid", flat=True).distinct()[:limit])
    with transaction.atomic():
        if uids:
            ReceivedObject.objects.filter(study_instance_uid__in=uids, state=ObjectState.RECEIVED).update(
                enqueued_at=now
            )
        for uid in uids:
            transaction.on_commit(partial(_send_ingest, uid))
    from scheduling.models import Order

    waiting = ReconciliationItem.objects.filter(
        resolved_at__isnull=True,
        reason__in=[ReconciliationReason.UNKNOWN_ACCESSION],
        study__requested_procedure__isnull=True,
    ).values_list("study__accession_number", flat=True)
    order_ids = list(
        Order.objects.filter(accession_number__in=[a for a in waiting if a]).values_list("pk", flat=True)[
            :limit
        ]
    )
    for order_id in order_ids:
        _send_match_order(order_id)
    if uids:
        logger.info("sweeper re-enqueued %d studies", len(uids))
    # Receives a crash interrupted (never acknowledged) leave temporary files behind.
    tmp_removed = storage.tmp_cleanup()
    if tmp_removed:
        logger.info("sweeper removed %d stale temporary files", tmp_removed)
    return {"studies": len(uids), "orders": len(order_ids), "tmp_removed": tmp_removed}


def _send_match_order(order_id: int) -> None:
    from .tasks import match_order

    try:
        match_order.apply_async(
            args=[order_id], retry=True, retry_policy={"max_retries": 1, "interval_start": 0}
        )
    except Exception as exc:
        logger.warning("could not enqueue late-order match (%s); the sweeper will", type(exc).__name__)
