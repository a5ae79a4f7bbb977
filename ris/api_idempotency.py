"""``Idempotency-Key`` for creating POSTs (draft-ietf-httpapi-idempotency-key-header).

Same key + same request from the same user → the original answer, replayed (with
``Idempotent-Replayed: true``); same key + a different request → 422 problem. Keys are rows in
PostgreSQL (``ris.IdempotencyKey``) holding the answer, kept ``RIS_IDEMPOTENCY_KEY_HOURS``.

Race safety: the key row is inserted (``ON CONFLICT DO NOTHING``) in the same transaction as
the object it creates. A concurrent request with the same key blocks on the unique index until
the first commits, then reads the committed answer. Only a 2xx answer is kept: an error rolls
the key back with everything else, so a retry runs again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from .errors import ApplicationError, IdempotencyKeyReused
from .models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    HEADER,
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "A unique value (e.g. a UUID) per intended creation. Retrying with the same key and body "
        "replays the first answer instead of creating a second object; the same key with a "
        "different body is refused (422). Keys are kept 24 hours."
    ),
)


def _fingerprint(request) -> str:
    data = request.data
    if hasattr(data, "lists"):
        data = {k: v for k, v in data.lists()}
    canonical = json.dumps(
        {"method": request.method, "path": request.path, "body": data},
        cls=JSONEncoder,
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _hours() -> int:
    return getattr(settings, "RIS_IDEMPOTENCY_KEY_HOURS", 24)


def idempotent(view_method):
    """Decorate a creating view method (``create``) to honour an ``Idempotency-Key`` header."""

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view_method(self, request, *args, **kwargs)
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ApplicationError(
                f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters.",
                fields={HEADER: ["Invalid key."]},
            )
        fingerprint = _fingerprint(request)
        now = timezone.now()
        with transaction.atomic():
            IdempotencyKey.objects.filter(created_at__lt=now - timedelta(hours=_hours())).delete()
            claim = uuid.uuid4()
            IdempotencyKey.objects.bulk_create(
                [
                    IdempotencyKey(
                        user=request.user, key=key, fingerprint=fingerprint, claim=claim, created_at=now
                    )
                ],
                ignore_conflicts=True,
            )
            row = IdempotencyKey.objects.select_for_update().get(user=request.user, key=key)
            if row.claim != claim:
                if row.fingerprint != fingerprint:
                    raise IdempotencyKeyReused(
                        f"This {HEADER} was used for a different request.", fields={HEADER: ["Already used."]}
                    )
                replay = Response(row.response_body, status=row.response_status)
                replay["Idempotent-Replayed"] = "true"
                return replay
            response = view_method(self, request, *args, **kwargs)
            if 200 <= response.status_code < 300:
                row.response_status = response.status_code
                row.response_body = json.loads(json.dumps(response.data, cls=JSONEncoder))
                row.save(update_fields=["response_status", "response_body"])
            else:
                transaction.set_rollback(True)
            return response

    return wrapper
