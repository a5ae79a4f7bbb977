"""Typed application errors and their mapping to HTTP (DRF) responses.

DICOM handlers map the same errors to DIMSE status codes in their own adapters.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """Base for errors the user can act on; carries a message and optional field errors."""

    http_status = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class InvalidTransition(ApplicationError):
    """The object is not in a state from which the requested transition is allowed."""

    http_status = status.HTTP_409_CONFLICT
    code = "invalid_transition"


class Conflict(ApplicationError):
    """A concurrent change or a uniqueness/booking clash."""

    http_status = status.HTTP_409_CONFLICT
    code = "conflict"


class NotFound(ApplicationError):
    http_status = status.HTTP_404_NOT_FOUND
    code = "not_found"


class RetriableError(Exception):
    """Transient failure (database, broker, disk): the caller may retry."""


class PermanentError(Exception):
    """The input can never succeed; do not retry."""


def api_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        body = {"detail": exc.message, "code": exc.code}
        if exc.fields:
            body["errors"] = exc.fields
        return Response(body, status=exc.http_status)
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "message_dict"):
            body = {"detail": "Invalid input.", "code": "invalid", "errors": exc.message_dict}
        else:
            body = {"detail": "; ".join(exc.messages), "code": "invalid"}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DRFValidationError):
        # One error shape for the whole API: detail + code + field errors.
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return Response(
            {"detail": "Invalid input.", "code": "invalid", "errors": errors},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, DjangoPermissionDenied):
        return Response({"detail": "Forbidden."}, status=status.HTTP_403_FORBIDDEN)
    return exception_handler(exc, context)
