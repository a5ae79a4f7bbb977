"""Typed application errors and their mapping to HTTP responses.

Every error the API answers is an RFC 9457 problem details object
(``application/problem+json``): ``type``, ``title``, ``status``, ``detail``, ``instance``,
plus two extension members kept from the first release so existing clients keep working:
``code`` (a stable machine-readable string) and ``errors`` (``{field: [messages]}``, only for
input errors). DICOM handlers map the same errors to DIMSE status codes in their own adapters.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder


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


class PossibleDuplicate(Conflict):
    """A new registration looks like an existing patient; the client must confirm (409).

    ``candidates`` (the likely duplicates) is answered as an extension member.
    """

    code = "possible_duplicate"

    def __init__(self, message: str, *, candidates: list[dict], fields=None):
        super().__init__(message, fields=fields)
        self.extra = {"candidates": candidates}


class NotFound(ApplicationError):
    http_status = status.HTTP_404_NOT_FOUND
    code = "not_found"


class RetriableError(Exception):
    """Transient failure (database, broker, disk): the caller may retry."""


class PermanentError(Exception):
    """The input can never succeed; do not retry."""


class IdempotencyKeyReused(ApplicationError):
    """The same Idempotency-Key was sent before with a different request body."""

    http_status = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "idempotency_key_reused"


PROBLEM_CONTENT_TYPE = "application/problem+json"
# ``type`` URIs are relative references resolved against the API (RFC 9457 §3.1.1); they name
# the code, and are stable: clients may switch on them or on ``code``.
PROBLEM_TYPE_BASE = "/api/problems/"


def problem_body(
    *,
    status_code: int,
    detail: str,
    code: str,
    instance: str = "",
    errors: dict | None = None,
    title: str | None = None,
    **extra,
) -> dict:
    try:
        default_title = HTTPStatus(status_code).phrase
    except ValueError:
        default_title = "Error"
    body = {
        "type": f"{PROBLEM_TYPE_BASE}{code}",
        "title": title or default_title,
        "status": status_code,
        "detail": str(detail),
        "instance": instance,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def problem_http_response(*, status_code: int, headers: dict | None = None, **kwargs) -> HttpResponse:
    """A plain Django response (for middleware and non-DRF views such as DICOMweb)."""
    body = problem_body(status_code=status_code, **kwargs)
    response = HttpResponse(
        json.dumps(body, cls=JSONEncoder, ensure_ascii=False),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    for key, value in (headers or {}).items():
        response[key] = value
    return response


class ProblemJSONRenderer(JSONRenderer):
    media_type = PROBLEM_CONTENT_TYPE
    format = "problem+json"


class ProblemResponse(Response):
    """A DRF response that is always rendered as problem+json, whatever the Accept header
    negotiated (a browser's text/html, DICOMweb's */*): the error format does not depend on
    content negotiation, which may itself be what failed (406)."""

    @property
    def rendered_content(self):
        self.accepted_renderer = ProblemJSONRenderer()
        self.accepted_media_type = PROBLEM_CONTENT_TYPE
        self.content_type = PROBLEM_CONTENT_TYPE
        return super().rendered_content


def _field_errors(detail) -> dict:
    if isinstance(detail, dict):
        return {k: (v if isinstance(v, list | dict) else [v]) for k, v in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": detail}
    return {"non_field_errors": [detail]}


def _first_message(errors: dict) -> str:
    """A one-line detail naming the first field: "start: This time has already passed." """
    for field, messages in errors.items():
        message = messages
        while isinstance(message, list | dict) and message:
            message = message[0] if isinstance(message, list) else next(iter(message.values()))
        if message in ([], {}):
            continue
        return str(message) if field == "non_field_errors" else f"{field}: {message}"
    return "Invalid input."


def exception_to_problem(exc, request=None) -> tuple[int, dict, dict] | None:
    """(status, body kwargs, headers) for an exception the API answers, or None (a 500)."""
    headers: dict = {}
    if isinstance(exc, ApplicationError):
        extra = getattr(exc, "extra", None) or {}
        return exc.http_status, {"detail": exc.message, "code": exc.code, "errors": exc.fields, **extra}, {}
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return 400, {"detail": _first_message(errors), "code": "invalid", "errors": errors}, {}
    if isinstance(exc, drf_exceptions.ValidationError):
        errors = _field_errors(exc.detail)
        return 400, {"detail": _first_message(errors), "code": "invalid", "errors": errors}, {}
    if isinstance(exc, Http404):
        return 404, {"detail": "Not found.", "code": "not_found"}, {}
    if isinstance(exc, DjangoPermissionDenied):
        return (
            403,
            {"detail": "You do not have permission to perform this action.", "code": "permission_denied"},
            {},
        )
    if isinstance(exc, drf_exceptions.APIException):
        # APIView.handle_exception set auth_header for a 401 (else it coerced the status to 403).
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        detail = exc.detail
        code = exc.get_codes() if not isinstance(detail, dict | list) else exc.default_code
        if isinstance(detail, dict | list):
            errors = _field_errors(detail)
            return (
                exc.status_code,
                {"detail": _first_message(errors), "code": code, "errors": errors},
                headers,
            )
        return exc.status_code, {"detail": str(detail), "code": str(code)}, headers
    return None


def api_exception_handler(exc, context):
    request = context.get("request")
    mapped = exception_to_problem(exc, request)
    if mapped is None:
        return None
    status_code, body, headers = mapped
    if request is not None:
        body.setdefault("instance", request.path)
    response = ProblemResponse(problem_body(status_code=status_code, **body), status=status_code)
    for key, value in headers.items():
        response[key] = value
    return response


def page_not_found(request, exception=None):
    """handler404: an unknown URL under /api/ is a problem too; pages keep Django's 404."""
    if request.path_info.startswith("/api/"):
        return problem_http_response(
            status_code=404, detail="Not found.", code="not_found", instance=request.path
        )
    from django.views.defaults import page_not_found as django_page_not_found

    return django_page_not_found(request, exception)


def server_error(request):
    """handler500: the API's clients get a problem (without internals), pages keep Django's."""
    if request.path_info.startswith("/api/"):
        return problem_http_response(
            status_code=500,
            detail="The server could not complete the request.",
            code="server_error",
            instance=request.path,
        )
    from django.views.defaults import server_error as django_server_error

    return django_server_error(request)
