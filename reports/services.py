"""Writes for reports: claim, draft, submit, review, sign, return, addendum, release,
critical results and peer review.

The report lifecycle is a declared table (``REPORT_TRANSITIONS``) performed by one guarded
mutator (``_transition``): a conditional UPDATE through :mod:`ris.lifecycle` (zero rows →
the caller's InvalidTransition/Conflict), one ReportEvent, one audit event, the
``report_transitioned`` signal after commit. Signed text is never updated: the final text
is an insert-only ReportVersion bound to a Signature by the sha256 of its canonical content;
corrections are signed Addenda.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NoReturn

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import Outcome
from audit.services import audit_record
from ris.errors import ApplicationError, Conflict, InvalidTransition, NotFound
from ris.lifecycle import Lifecycle, Transition
from ris.roles import Role, has_permission
from scheduling.models import ProcedureStatus, RequestedProcedure

from . import signals
from .models import (
    SIGNED_STATUSES,
    Addendum,
    CriticalCategory,
    CriticalResult,
    NotificationMethod,
    PeerReview,
    PeerReviewScore,
    ReleaseKind,
    Report,
    ReportEvent,
    ReportRelease,
    ReportStatus,
    ReportTemplate,
    ReportVersion,
    Signature,
    SignatureMeaning,
    VersionKind,
)

logger = logging.getLogger(__name__)

S = ReportStatus
A = ReportEvent.Action


def _rule(sources, target, event: str, audit: str) -> Transition:
    # ``event`` is the ReportEvent action and the report_transitioned signal's action.
    return Transition(sources=sources, target=target, meta={"event": event, "audit": audit})


# The report state machine (DESIGN.md §3): action -> allowed sources, target, event, audit.
# Claim, save, review edit, release and critical results keep the status (no entry here).
REPORT_TRANSITIONS: dict[str, Transition] = {
    "submit": _rule((S.DRAFT,), S.PRELIMINARY, A.SUBMITTED, "report.submit"),
    "return": _rule((S.PRELIMINARY,), S.DRAFT, A.RETURNED, "report.return"),
    "sign": _rule((S.PRELIMINARY,), S.FINAL, A.SIGNED, "report.sign"),
    "addendum": _rule(SIGNED_STATUSES, S.AMENDED, A.ADDENDUM, "report.addendum"),
}
REPORT_LIFECYCLE = Lifecycle(model=Report, transitions=REPORT_TRANSITIONS, name="report")

# Procedures that can be reported: the exam ended, or images are there.
READABLE_PROCEDURE_STATUSES = (
    ProcedureStatus.COMPLETED,
    ProcedureStatus.IN_PROGRESS,
    ProcedureStatus.DISCONTINUED,
)

# Verification codes: unambiguous upper-case letters and digits.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def lock_minutes() -> int:
    return int(getattr(settings, "RIS_REPORT_LOCK_MINUTES", 30))


def critical_targets() -> dict[str, int]:
    """Minutes from flagging to notification per ACR category."""
    default = {"1": 60, "2": 6 * 60, "3": 3 * 24 * 60}
    return {
        **default,
        **{str(k): int(v) for k, v in getattr(settings, "RIS_CRITICAL_RESULT_TARGETS", {}).items()},
    }


# ---------------------------------------------------------------------------------------
# Canonical content and hashes


def canonical_content(*, report: Report, findings: str, impression: str, version_number: int) -> bytes:
    """The bytes a signature's sha256 covers: identifiers of the exam plus the text.

    JSON with sorted keys and no insignificant whitespace; text normalised to ``\\n`` line
    endings so that the same words always hash the same on every platform.
    """
    proc = report.requested_procedure
    doc = {
        "report": report.pk,
        "version": version_number,
        "accession_number": proc.order.accession_number,
        "requested_procedure_id": proc.requested_procedure_id,
        "study_instance_uid": proc.study_instance_uid,
        "patient": proc.order.patient_id,
        "findings": _norm(findings),
        "impression": _norm(impression),
    }
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def canonical_addendum(*, report: Report, number: int, text: str) -> bytes:
    proc = report.requested_procedure
    doc = {
        "report": report.pk,
        "addendum": number,
        "accession_number": proc.order.accession_number,
        "study_instance_uid": proc.study_instance_uid,
        "patient": proc.order.patient_id,
        "text": _norm(text),
    }
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _norm(text: str) -> str:
    return (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def version_hash(version: ReportVersion) -> str:
    return sha256(
        canonical_content(
            report=version.report,
            findings=version.findings,
            impression=version.impression,
            version_number=version.number,
        )
    )


def signature_verify(signature: Signature) -> bool:
    """Recompute the hash of what the signature covers and compare with the stored one."""
    version = signature.version
    if version is not None:
        expected = version_hash(version)
        return secrets.compare_digest(expected, signature.content_hash) and secrets.compare_digest(
            expected, version.content_hash
        )
    addendum = signature.addendum
    if addendum is None:  # a signature covers a version or an addendum (check constraint)
        return False
    expected = sha256(canonical_addendum(report=addendum.report, number=addendum.number, text=addendum.text))
    return secrets.compare_digest(expected, signature.content_hash)


# ---------------------------------------------------------------------------------------
# Helpers


def _pk(obj) -> int:
    return obj.pk if hasattr(obj, "pk") else int(obj)


def _load(report) -> Report:
    try:
        return Report.objects.select_related("requested_procedure__order").get(pk=_pk(report))
    except Report.DoesNotExist as exc:
        raise NotFound(_("No such report.")) from exc


def _event(report: Report, action: str, actor, *, from_status="", to_status="", at=None, detail=None):
    return ReportEvent.objects.create(
        report=report,
        action=action,
        from_status=from_status,
        to_status=to_status,
        at=at or timezone.now(),
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        detail=detail or {},
    )


def _audit(action: str, report: Report, actor, request=None, *, outcome=Outcome.SUCCESS, detail=None):
    audit_record(
        action=action,
        actor=actor,
        request=request,
        object_type="report",
        object_id=report.pk,
        patient_id=report.requested_procedure.order.patient_id,
        outcome=outcome,
        detail=detail,
    )


def _transition(
    report: Report,
    action: str,
    *,
    actor,
    at: datetime,
    updates: dict[str, Any],
    refused: Callable[[], NoReturn],
    record: Callable[[str], tuple[dict, dict | None]] | None = None,
    filters: dict[str, Any] | None = None,
    where: Q | None = None,
    request=None,
) -> str:
    """The one guarded mutator of the report lifecycle; call it inside ``transaction.atomic()``.

    One conditional UPDATE per allowed source (``REPORT_LIFECYCLE.advance``) writing the target
    status, ``updates``, a revision bump and ``updated_at``; when no row matches, ``refused()``
    raises the caller's own error. Then ``record(source)`` writes what the transition creates
    (version snapshot, signature, addendum) and returns the event and audit details; then the
    ReportEvent, the audit record and the ``report_transitioned`` signal on commit. Returns
    the source status.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("report transitions run inside transaction.atomic()")
    rule = REPORT_LIFECYCLE.rule(action)
    values = {**updates, "revision": F("revision") + 1, "updated_at": at}
    try:
        source: str | None = REPORT_LIFECYCLE.advance(
            pk=report.pk, action=action, updates=values, filters=filters, where=where
        )
    except (InvalidTransition, NotFound):
        source = None
    if source is None:
        refused()  # the caller's own error (which condition failed, in its words)
    detail, audit_detail = record(source) if record else ({}, None)
    event = rule.meta["event"]
    _event(report, event, actor, from_status=source, to_status=rule.target, at=at, detail=detail)
    _audit(rule.meta["audit"], report, actor, request, detail=audit_detail)
    # Same transaction: outbox rows (HL7 ORU) commit or roll back with the transition.
    signals.report_recorded.send(sender=Report, report_id=report.pk, action=str(event), to_status=rule.target)
    transaction.on_commit(partial(_send, signals.report_transitioned, report.pk, str(event), rule.target))
    return source


def _require(actor, action: str, *, report: Report | None = None, request=None) -> None:
    if not has_permission(actor, action):
        if report is not None:
            _audit(f"report.{action.split('.')[-1]}", report, actor, request, outcome=Outcome.DENIED)
        raise PermissionDenied(f"Requires {action}.")


def printed_name(user) -> str:
    profile = getattr(user, "ris_profile", None)
    name = (profile.printed_name if profile else "") or user.get_full_name() or user.get_username()
    return name[:128]


def _lock_free_or_mine(actor, now) -> Q:
    return Q(locked_by__isnull=True) | Q(locked_until__lt=now) | Q(locked_by=actor)


def _next_version_number(report_pk: int) -> int:
    return (ReportVersion.objects.filter(report_id=report_pk).aggregate(m=Max("number"))["m"] or 0) + 1


def _snapshot(report: Report, *, kind: str, findings: str, impression: str, author, at) -> ReportVersion:
    number = _next_version_number(report.pk)
    return ReportVersion.objects.create(
        report=report,
        number=number,
        kind=kind,
        findings=findings,
        impression=impression,
        author=author,
        created_at=at,
        content_hash=sha256(
            canonical_content(report=report, findings=findings, impression=impression, version_number=number)
        ),
    )


def _check_password(*, actor, password: str | None, report: Report, request, action: str) -> None:
    """Re-authentication at signing (21 CFR 11.200). A failure is audited and refused.

    Called outside the transaction that signs, so the audit of the refusal is committed.
    """
    if not password:
        _audit(action, report, actor, request, outcome=Outcome.FAILURE, detail={"reason": "password missing"})
        raise ApplicationError(
            _("Re-enter your password to sign."),
            fields={"password": [_("Your password is required to sign.")]},
        )
    if not actor.check_password(password):
        _audit(action, report, actor, request, outcome=Outcome.FAILURE, detail={"reason": "wrong password"})
        raise ApplicationError(_("The password is not correct."), fields={"password": [_("Wrong password.")]})


def _new_verification_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _i in range(12))


def _search_text(report: Report, findings: str, impression: str, addenda: list[str]) -> str:
    proc = report.requested_procedure
    parts = [proc.order.accession_number, proc.procedure_type.code_meaning, findings, impression, *addenda]
    return "\n".join(p for p in parts if p).lower()


# ---------------------------------------------------------------------------------------
# Templates


def template_for(procedure: RequestedProcedure) -> ReportTemplate | None:
    """The most specific active template: procedure type, then modality + body part, then modality."""
    pt = procedure.procedure_type
    qs = ReportTemplate.objects.filter(active=True)
    return (
        qs.filter(procedure_type=pt).first()
        or qs.filter(procedure_type__isnull=True, modality=pt.modality, body_part=pt.body_part).first()
        or qs.filter(procedure_type__isnull=True, modality=pt.modality, body_part="").first()
    )


# ---------------------------------------------------------------------------------------
# Claim / lock


def report_claim(*, procedure, actor, request=None) -> Report:
    """Open (create if needed) the draft report of a procedure and lock it for the actor."""
    _require(actor, "report.write")
    now = timezone.now()
    until = now + timedelta(minutes=lock_minutes())
    with transaction.atomic():
        proc = (
            RequestedProcedure.objects.select_for_update()
            .select_related("order", "procedure_type")
            .filter(pk=_pk(procedure))
            .first()
        )
        if proc is None:
            raise NotFound(_("No such procedure."))
        report = Report.objects.filter(requested_procedure=proc).first()
        if report is None:
            if proc.status == ProcedureStatus.CANCELLED:
                raise InvalidTransition(_("The exam was cancelled."))
            if proc.status not in READABLE_PROCEDURE_STATUSES and not proc.images_available_at:
                raise InvalidTransition(_("The exam has no images yet and is not completed."))
            tpl = template_for(proc)
            report = Report.objects.create(
                requested_procedure=proc,
                status=S.DRAFT,
                findings=tpl.findings if tpl else "",
                impression=tpl.impression if tpl else "",
                template=tpl,
                author=actor,
                locked_by=actor,
                locked_until=until,
            )
            report.requested_procedure = proc
            _event(
                report,
                A.CREATED,
                actor,
                to_status=S.DRAFT,
                at=now,
                detail={"template": tpl.pk if tpl else None},
            )
            _audit("report.create", report, actor, request)
            return report
        report.requested_procedure = proc
        qs = Report.objects.filter(pk=report.pk, status=S.DRAFT).filter(_lock_free_or_mine(actor, now))
        previous = report.locked_by_id if report.locked_until and report.locked_until > now else None
        if not qs.update(locked_by=actor, locked_until=until):
            report.refresh_from_db()
            if report.status != S.DRAFT:
                raise InvalidTransition(
                    _("The report is %(status)s; only drafts can be claimed.") % {"status": report.status}
                )
            owner = printed_name(report.locked_by) if report.locked_by else "?"
            raise Conflict(
                _("The report is being written by %(owner)s until %(time)s.")
                % {"owner": owner, "time": f"{timezone.localtime(report.locked_until):%H:%M}"}
            )
        report.refresh_from_db()
        report.requested_procedure = proc
        if previous != actor.pk:
            _event(report, A.CLAIMED, actor, from_status=S.DRAFT, to_status=S.DRAFT, at=now)
            _audit("report.claim", report, actor, request)
    return report


def report_break_lock(*, report, actor, request=None) -> None:
    """Department head: free a report claimed by someone who is away (the claim is logged)."""
    report = _load(report)
    _require(actor, "report.override_lock", report=report, request=request)
    with transaction.atomic():
        previous = report.locked_by_id
        if not Report.objects.filter(pk=report.pk, locked_by__isnull=False).update(
            locked_by=None, locked_until=None
        ):
            raise InvalidTransition(_("The report is not claimed."))
        _event(
            report,
            A.UNCLAIMED,
            actor,
            from_status=report.status,
            to_status=report.status,
            detail={"override": True, "previous_owner": previous},
        )
        _audit("report.override_lock", report, actor, request, detail={"previous_owner": previous})


def report_unclaim(*, report, actor, request=None) -> None:
    report = _load(report)
    with transaction.atomic():
        if Report.objects.filter(pk=report.pk, locked_by=actor).update(locked_by=None, locked_until=None):
            _event(report, A.UNCLAIMED, actor, from_status=report.status, to_status=report.status)
            _audit("report.unclaim", report, actor, request)


# ---------------------------------------------------------------------------------------
# Writing


def report_save_draft(
    *,
    report,
    actor,
    findings: str,
    impression: str,
    expected_revision: int | None = None,
    template: ReportTemplate | None = None,
    request=None,
    autosave: bool = False,
) -> Report:
    """Save the draft text (autosave or explicit). A changed text becomes a new version."""
    _require(actor, "report.write")
    report = _load(report)
    now = timezone.now()
    with transaction.atomic():
        qs = Report.objects.filter(pk=report.pk, status=S.DRAFT).filter(_lock_free_or_mine(actor, now))
        if expected_revision is not None:
            qs = qs.filter(revision=expected_revision)
        updates = {
            "findings": findings,
            "impression": impression,
            "revision": F("revision") + 1,
            "locked_by": actor,
            "locked_until": now + timedelta(minutes=lock_minutes()),
            "updated_at": now,
        }
        if template is not None:
            updates["template"] = template
        if not qs.update(**updates):
            _raise_write_conflict(report.pk, actor, expected_revision, S.DRAFT)
        last = ReportVersion.objects.filter(report_id=report.pk).order_by("-number").first()
        changed = last is None or (last.findings, last.impression) != (findings, impression)
        version = None
        if changed:
            version = _snapshot(
                report, kind=VersionKind.DRAFT, findings=findings, impression=impression, author=actor, at=now
            )
            _event(
                report,
                A.SAVED,
                actor,
                from_status=S.DRAFT,
                to_status=S.DRAFT,
                at=now,
                detail={"version": version.number, "autosave": autosave},
            )
            _audit(
                "report.edit",
                report,
                actor,
                request,
                detail={"version": version.number, "autosave": autosave},
            )
        report.refresh_from_db()
    return report


def _raise_write_conflict(pk: int, actor, expected_revision, status) -> NoReturn:
    current = Report.objects.select_related("locked_by").filter(pk=pk).first()
    if current is None:
        raise NotFound(_("No such report."))
    if current.status != status:
        raise InvalidTransition(
            _("The report is %(status)s; it cannot be edited here.") % {"status": current.status}
        )
    if expected_revision is not None and current.revision != expected_revision:
        raise Conflict(_("The report was changed meanwhile; reload to see the latest text."))
    owner = printed_name(current.locked_by) if current.locked_by else "?"
    raise Conflict(_("The report is claimed by %(owner)s.") % {"owner": owner})


def report_submit(
    *,
    report,
    actor,
    findings: str | None = None,
    impression: str | None = None,
    expected_revision: int | None = None,
    request=None,
) -> Report:
    """draft → preliminary: the author hands the report to review."""
    _require(actor, "report.write")
    if findings is not None or impression is not None:
        current = _load(report)
        report_save_draft(
            report=current,
            actor=actor,
            findings=current.findings if findings is None else findings,
            impression=current.impression if impression is None else impression,
            expected_revision=expected_revision,
            request=request,
        )
        expected_revision = None
    report = _load(report)
    if not (report.impression.strip() or report.findings.strip()):
        raise ApplicationError(
            _("Write the findings or the impression before submitting."),
            fields={"impression": [_("Required to submit.")]},
        )
    now = timezone.now()

    def refused() -> NoReturn:
        _raise_write_conflict(report.pk, actor, expected_revision, S.DRAFT)

    def record(source: str) -> tuple[dict, dict | None]:
        version = _snapshot(
            report,
            kind=VersionKind.PRELIMINARY,
            findings=report.findings,
            impression=report.impression,
            author=actor,
            at=now,
        )
        return {"version": version.number}, {"version": version.number}

    with transaction.atomic():
        _transition(
            report,
            "submit",
            actor=actor,
            at=now,
            updates={"submitted_at": now, "author": actor, "locked_by": None, "locked_until": None},
            filters={"revision": expected_revision} if expected_revision is not None else None,
            where=_lock_free_or_mine(actor, now),
            refused=refused,
            record=record,
            request=request,
        )
    report.refresh_from_db()
    return report


def report_review_edit(
    *, report, actor, findings: str, impression: str, expected_revision: int | None = None, request=None
) -> Report:
    """The reviewer edits a preliminary report; the submitted version stays for the diff."""
    _require(actor, "report.sign")
    report = _load(report)
    now = timezone.now()
    with transaction.atomic():
        qs = Report.objects.filter(pk=report.pk, status=S.PRELIMINARY)
        if expected_revision is not None:
            qs = qs.filter(revision=expected_revision)
        if not qs.update(
            findings=findings, impression=impression, revision=F("revision") + 1, updated_at=now
        ):
            _raise_write_conflict(report.pk, actor, expected_revision, S.PRELIMINARY)
        last = ReportVersion.objects.filter(report_id=report.pk).order_by("-number").first()
        if last is None or (last.findings, last.impression) != (findings, impression):
            version = _snapshot(
                report,
                kind=VersionKind.REVIEWED,
                findings=findings,
                impression=impression,
                author=actor,
                at=now,
            )
            _event(
                report,
                A.REVIEW_EDITED,
                actor,
                from_status=S.PRELIMINARY,
                to_status=S.PRELIMINARY,
                at=now,
                detail={"version": version.number},
            )
            _audit("report.edit", report, actor, request, detail={"version": version.number, "review": True})
    report.refresh_from_db()
    return report


def report_return(*, report, actor, comment: str, request=None) -> Report:
    """preliminary → draft, back to the author with a comment."""
    report = _load(report)
    _require(actor, "report.sign", report=report, request=request)
    comment = (comment or "").strip()
    if not comment:
        raise ApplicationError(
            _("Say why the report is returned."), fields={"comment": [_("This field is required.")]}
        )
    now = timezone.now()

    def refused() -> NoReturn:
        raise InvalidTransition(
            _("Only a preliminary report can be returned (it is %(status)s).")
            % {"status": _status(report.pk)}
        )

    with transaction.atomic():
        _transition(
            report,
            "return",
            actor=actor,
            at=now,
            updates={"returned_at": now, "returned_by": actor, "return_comment": comment},
            refused=refused,
            record=lambda source: ({"comment": comment}, None),
            request=request,
        )
    report.refresh_from_db()
    return report


def _status(pk: int) -> str:
    return Report.objects.filter(pk=pk).values_list("status", flat=True).first() or "missing"


def report_sign(
    *, report, actor, password: str | None, expected_revision: int | None = None, request=None
) -> Signature:
    """preliminary → final: approve and sign with the password re-entered.

    The text signed is the report's current text at the revision read here; the UPDATE is
    conditional on that revision, so a concurrent edit or a second signer loses (409).
    """
    report = _load(report)
    _require(actor, "report.sign", report=report, request=request)
    _check_password(actor=actor, password=password, report=report, request=request, action="report.sign")
    if report.status != S.PRELIMINARY:
        raise InvalidTransition(
            _("Only a preliminary report can be signed (it is %(status)s).") % {"status": report.status}
        )
    if expected_revision is not None and expected_revision != report.revision:
        raise Conflict(_("The report was changed meanwhile; review the latest text before signing."))
    now = timezone.now()
    with transaction.atomic():
        report = Report.objects.select_related(
            "requested_procedure__order", "requested_procedure__procedure_type"
        ).get(pk=report.pk)
        revision = report.revision if expected_revision is None else expected_revision
        signed: list[tuple[Signature, ReportVersion]] = []

        def refused() -> NoReturn:
            current = _status(report.pk)
            if current != S.PRELIMINARY:
                raise InvalidTransition(_("The report is already %(status)s.") % {"status": current})
            raise Conflict(_("The report was changed meanwhile; review the latest text before signing."))

        def record(source: str) -> tuple[dict, dict | None]:
            version = _snapshot(
                report,
                kind=VersionKind.FINAL,
                findings=report.findings,
                impression=report.impression,
                author=actor,
                at=now,
            )
            signature = Signature.objects.create(
                report=report,
                version=version,
                signer=actor,
                printed_name=printed_name(actor),
                meaning=SignatureMeaning.APPROVED,
                signed_at=now,
                content_hash=version.content_hash,
            )
            signed.append((signature, version))
            detail = {"version": version.number, "sha256": version.content_hash}
            return detail, detail

        _transition(
            report,
            "sign",
            actor=actor,
            at=now,
            updates={
                "signed_by": actor,
                "signed_at": now,
                "verification_code": _new_verification_code(),
                "search_text": _search_text(report, report.findings, report.impression, []),
                "locked_by": None,
                "locked_until": None,
            },
            filters={"revision": revision},
            refused=refused,
            record=record,
            request=request,
        )
    signature, version = signed[0]
    logger.info("report %s signed (version %s)", report.pk, version.number)
    return signature


def report_add_addendum(*, report, actor, text: str, password: str | None, request=None) -> Addendum:
    """A signed addendum to a final (or already amended) report; the report becomes amended."""
    report = _load(report)
    _require(actor, "report.sign", report=report, request=request)
    text = (text or "").strip()
    if not text:
        raise ApplicationError(_("The addendum is empty."), fields={"text": [_("This field is required.")]})
    if report.status not in SIGNED_STATUSES:
        raise InvalidTransition(
            _("An addendum needs a signed report (this one is %(status)s).") % {"status": report.status}
        )
    _check_password(actor=actor, password=password, report=report, request=request, action="report.addendum")
    now = timezone.now()
    with transaction.atomic():
        # Addenda by two signers at once are both kept, one after the other: the row lock
        # serialises the numbering (and the search text that includes every addendum).
        report = (
            Report.objects.select_for_update(of=("self",))
            .select_related("requested_procedure__order", "requested_procedure__procedure_type")
            .get(pk=report.pk)
        )
        existing = list(
            Addendum.objects.filter(report=report).order_by("number").values_list("text", flat=True)
        )
        number = len(existing) + 1
        added: list[Addendum] = []

        def refused() -> NoReturn:
            raise Conflict(_("Another addendum was signed meanwhile; reload and try again."))

        def record(source: str) -> tuple[dict, dict | None]:
            addendum = Addendum.objects.create(
                report=report,
                number=number,
                text=text,
                author=actor,
                created_at=now,
                content_hash=sha256(canonical_addendum(report=report, number=number, text=text)),
            )
            Signature.objects.create(
                report=report,
                addendum=addendum,
                signer=actor,
                printed_name=printed_name(actor),
                meaning=SignatureMeaning.APPROVED,
                signed_at=now,
                content_hash=addendum.content_hash,
            )
            added.append(addendum)
            return {"addendum": number, "sha256": addendum.content_hash}, {"addendum": number}

        _transition(
            report,
            "addendum",
            actor=actor,
            at=now,
            updates={
                "amended_at": now,
                "search_text": _search_text(report, report.findings, report.impression, [*existing, text]),
            },
            refused=refused,
            record=record,
            request=request,
        )
    return added[0]


def _send(signal, report_id: int, action: str, to_status: str) -> None:
    signal.send(sender=Report, report_id=report_id, action=action, to_status=to_status)


# ---------------------------------------------------------------------------------------
# Release (发片)


def report_release(
    *, report, actor, kind: str = ReleaseKind.RELEASE, recipient: str = "", copies: int = 1, request=None
) -> ReportRelease:
    report = _load(report)
    _require(actor, "report.release", report=report, request=request)
    if report.status not in SIGNED_STATUSES:
        raise InvalidTransition(_("Only a signed report can be released."))
    if kind not in ReleaseKind.values:
        raise ApplicationError(_("Unknown release kind."), fields={"kind": [_("Invalid choice.")]})
    recipient = (recipient or "").strip()[:128]
    if kind in (ReleaseKind.RELEASE, ReleaseKind.FILM) and not recipient:
        raise ApplicationError(
            _("Say to whom the report is released."), fields={"recipient": [_("Required.")]}
        )
    if not 1 <= int(copies) <= 20:
        raise ApplicationError(_("Copies must be between 1 and 20."), fields={"copies": [_("Out of range.")]})
    now = timezone.now()
    final = ReportVersion.objects.filter(report=report, kind=VersionKind.FINAL).order_by("-number").first()
    with transaction.atomic():
        release = ReportRelease.objects.create(
            report=report,
            kind=kind,
            at=now,
            actor=actor,
            recipient=recipient,
            copies=int(copies),
            addenda_count=report.addenda.count(),
            content_hash=final.content_hash if final else "",
        )
        _event(
            report,
            A.RELEASED,
            actor,
            from_status=report.status,
            to_status=report.status,
            at=now,
            detail={"kind": kind, "recipient": recipient, "copies": int(copies)},
        )
        _audit("report.release", report, actor, request, detail={"kind": kind, "copies": int(copies)})
    return release


# ---------------------------------------------------------------------------------------
# Critical results (危急值)


def critical_result_flag(*, report, actor, category: str, finding: str, request=None) -> CriticalResult:
    report = _load(report)
    _require(actor, "report.write", report=report, request=request)
    category = str(category)
    if category not in CriticalCategory.values:
        raise ApplicationError(_("Choose category 1, 2 or 3."), fields={"category": [_("Invalid choice.")]})
    finding = (finding or "").strip()
    if not finding:
        raise ApplicationError(
            _("Describe the critical finding."), fields={"finding": [_("This field is required.")]}
        )
    now = timezone.now()
    with transaction.atomic():
        critical = CriticalResult.objects.create(
            report=report,
            category=category,
            finding=finding[:255],
            created_at=now,
            created_by=actor,
            due_at=now + timedelta(minutes=critical_targets()[category]),
        )
        _event(
            report,
            A.CRITICAL,
            actor,
            from_status=report.status,
            to_status=report.status,
            at=now,
            detail={"critical": critical.pk, "category": category, "step": "flagged"},
        )
        _audit(
            "critical.flag", report, actor, request, detail={"critical": critical.pk, "category": category}
        )
    return critical


def critical_result_notify(
    *, critical, actor, recipient: str, method: str, at: datetime | None = None, note: str = "", request=None
) -> CriticalResult:
    critical = CriticalResult.objects.select_related("report__requested_procedure__order").get(
        pk=_pk(critical)
    )
    _require(actor, "report.write", report=critical.report, request=request)
    recipient = (recipient or "").strip()
    if not recipient:
        raise ApplicationError(_("Who was notified?"), fields={"recipient": [_("This field is required.")]})
    if method not in NotificationMethod.values:
        raise ApplicationError(
            _("How was the clinician notified?"), fields={"method": [_("Invalid choice.")]}
        )
    when = at or timezone.now()
    if when > timezone.now() + timedelta(minutes=1):
        raise ApplicationError(
            _("The notification time is in the future."), fields={"at": [_("In the future.")]}
        )
    with transaction.atomic():
        if not CriticalResult.objects.filter(pk=critical.pk, notified_at__isnull=True).update(
            notified_at=when, notified_by=actor, recipient=recipient[:128], method=method, note=note
        ):
            raise InvalidTransition(_("This critical result was already notified."))
        critical.refresh_from_db()
        _event(
            critical.report,
            A.CRITICAL,
            actor,
            at=timezone.now(),
            from_status=critical.report.status,
            to_status=critical.report.status,
            detail={
                "critical": critical.pk,
                "step": "notified",
                "method": method,
                "late": when > critical.due_at,
            },
        )
        _audit(
            "critical.notify",
            critical.report,
            actor,
            request,
            detail={"critical": critical.pk, "method": method},
        )
    return critical


def critical_result_acknowledge(
    *, critical, actor, acknowledged_by: str, read_back: bool = False, request=None
) -> CriticalResult:
    critical = CriticalResult.objects.select_related("report__requested_procedure__order").get(
        pk=_pk(critical)
    )
    _require(actor, "report.write", report=critical.report, request=request)
    acknowledged_by = (acknowledged_by or "").strip()
    if not acknowledged_by:
        raise ApplicationError(
            _("Who acknowledged the result?"), fields={"acknowledged_by": [_("Required.")]}
        )
    now = timezone.now()
    with transaction.atomic():
        if not CriticalResult.objects.filter(
            pk=critical.pk, notified_at__isnull=False, acknowledged_at__isnull=True
        ).update(acknowledged_at=now, acknowledged_by=acknowledged_by[:128], read_back=bool(read_back)):
            critical.refresh_from_db()
            if critical.notified_at is None:
                raise InvalidTransition(_("Record the notification before the acknowledgement."))
            raise InvalidTransition(_("This critical result was already acknowledged."))
        critical.refresh_from_db()
        _event(
            critical.report,
            A.CRITICAL,
            actor,
            at=now,
            from_status=critical.report.status,
            to_status=critical.report.status,
            detail={"critical": critical.pk, "step": "acknowledged", "read_back": bool(read_back)},
        )
        _audit("critical.acknowledge", critical.report, actor, request, detail={"critical": critical.pk})
    return critical


# ---------------------------------------------------------------------------------------
# Peer review (RADPEER)


def peer_review_sample(
    *, share: float | None = None, since: datetime | None = None, rng: random.Random | None = None
) -> list[PeerReview]:
    """Consider every signed report exactly once; select each with probability ``share``.

    A report is *considered* once (``peer_review_considered_at`` is set whether or not it is
    selected), so over any period the sampled share is ``share`` itself, with no minimum per
    run. Concurrent runs skip each other's rows (``SKIP LOCKED``). ``since`` optionally limits
    the run to reports signed from then on (the rest stay for a later run).
    """
    share = float(getattr(settings, "RIS_PEER_REVIEW_SHARE", 0.05) if share is None else share)
    if share <= 0:
        return []
    rng = rng or random.Random()
    User = get_user_model()
    readers = list(
        User.objects.filter(is_active=True, groups__name__in=[Role.RADIOLOGIST, Role.REVIEWER])
        .distinct()
        .order_by("pk")
    )
    created: list[PeerReview] = []
    now = timezone.now()
    with transaction.atomic():
        qs = Report.objects.filter(status__in=SIGNED_STATUSES, peer_review_considered_at__isnull=True)
        if since is not None:
            qs = qs.filter(signed_at__gte=since)
        candidates = list(
            qs.select_related("requested_procedure__order")
            .order_by("signed_at", "pk")
            .select_for_update(skip_locked=True, of=("self",))
        )
        if not candidates:
            return []
        for report in candidates:
            if share < 1 and rng.random() >= share:
                continue
            pool = [u for u in readers if u.pk not in (report.author_id, report.signed_by_id)]
            if not pool:
                logger.warning("peer review: report %s selected but no eligible reviewer", report.pk)
                continue
            reviewer = rng.choice(pool)
            review, was_created = PeerReview.objects.get_or_create(
                report=report,
                reviewer=reviewer,
                defaults={"radiologist_id": report.signed_by_id, "assigned_at": now},
            )
            if was_created:
                audit_record(
                    action="peer_review.assign",
                    object_type="report",
                    object_id=report.pk,
                    patient_id=report.requested_procedure.order.patient_id,
                    detail={"peer_review": review.pk},
                )
                created.append(review)
        Report.objects.filter(pk__in=[r.pk for r in candidates]).update(peer_review_considered_at=now)
    logger.info("peer review: %s of %s newly signed reports assigned", len(created), len(candidates))
    return created


def peer_review_score(*, review, actor, score: str, comment: str = "", request=None) -> PeerReview:
    review = PeerReview.objects.select_related("report__requested_procedure__order").get(pk=_pk(review))
    _require(actor, "peer_review.score", report=review.report, request=request)
    if review.reviewer_id != actor.pk:
        raise PermissionDenied(_("This peer review is assigned to someone else."))
    if score not in PeerReviewScore.values:
        raise ApplicationError(_("Choose a RADPEER score."), fields={"score": [_("Invalid choice.")]})
    comment = (comment or "").strip()
    if score != PeerReviewScore.S1 and not comment:
        raise ApplicationError(
            _("Describe the discrepancy."), fields={"comment": [_("Required for scores 2 and 3.")]}
        )
    now = timezone.now()
    with transaction.atomic():
        if not PeerReview.objects.filter(pk=review.pk, reviewer=actor, scored_at__isnull=True).update(
            score=score, comment=comment, scored_at=now
        ):
            raise InvalidTransition(_("This peer review is already scored."))
        audit_record(
            action="peer_review.score",
            actor=actor,
            request=request,
            object_type="report",
            object_id=review.report_id,
            patient_id=review.report.requested_procedure.order.patient_id,
            detail={"peer_review": review.pk, "score": score},
        )
    review.refresh_from_db()
    return review


def report_review_edit_and_sign(
    *,
    report,
    actor,
    findings: str,
    impression: str,
    password: str | None,
    expected_revision: int | None = None,
    request=None,
) -> Signature:
    """The reviewer signs exactly the text on the screen: their edits are saved and signed at once.

    Either both happen or neither (one transaction); the password is checked first, outside it,
    so a refused attempt is audited and nothing is saved.
    """
    report = _load(report)
    _require(actor, "report.sign", report=report, request=request)
    _check_password(actor=actor, password=password, report=report, request=request, action="report.sign")
    with transaction.atomic():
        if (report.findings, report.impression) != (findings, impression):
            report = report_review_edit(
                report=report,
                actor=actor,
                findings=findings,
                impression=impression,
                expected_revision=expected_revision,
                request=request,
            )
            expected_revision = report.revision
        return report_sign(
            report=report,
            actor=actor,
            password=password,
            expected_revision=expected_revision,
            request=request,
        )
