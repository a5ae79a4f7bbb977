"""Request guards that apply to every endpoint and page, before any view runs."""

from __future__ import annotations

from django.http import HttpResponseBadRequest
from django.utils.translation import gettext as _

from .errors import problem_http_response

NUL = "\x00"


class RejectNulBytesMiddleware:
    """A NUL byte in the path or in a query parameter (name or value) is a 400 naming it.

    PostgreSQL text cannot hold NUL, so such a value would otherwise reach a query and end
    as a server error; no legitimate client sends one. Bodies are validated where they are
    parsed (Django and DRF CharFields both prohibit NUL).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        bad = self._offending(request)
        if bad is not None:
            message = _("must not contain a NUL character.")
            if request.path_info.startswith("/api/"):
                return problem_http_response(
                    status_code=400,
                    detail=f"{bad}: {message}",
                    code="invalid",
                    instance=request.path.replace(NUL, ""),
                    errors={bad: [message]},
                )
            return HttpResponseBadRequest(f"{bad}: {message}", content_type="text/plain; charset=utf-8")
        return self.get_response(request)

    @staticmethod
    def _offending(request) -> str | None:
        if NUL in request.path_info:
            return "path"
        for key, values in request.GET.lists():
            if NUL in key:
                return key.replace(NUL, "\\0")
            if any(NUL in v for v in values):
                return key
        return None
