"""CORS for the DICOMweb and WADO-URI resources, so a viewer served from another origin can use them.

``RIS_DICOMWEB_CORS_ORIGINS``: the allowed origins (``https://viewer.example.org``; ``*`` for
any); empty (the default) sends no CORS headers at all. Only ``/dicomweb/`` and ``/wado`` are
concerned; a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered here,
before authentication, with 204. Credentials are a token (``Authorization`` header), not
cookies, so ``Access-Control-Allow-Credentials`` is not sent.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse

PREFIXES = ("/dicomweb/", "/dicomweb", "/wado")
ALLOW_METHODS = "GET, HEAD, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Accept, Content-Type, Cache-Control"
EXPOSE_HEADERS = "Warning, Content-Type, Content-Length, Content-Location"


class DicomwebCorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        origins = settings.RIS_DICOMWEB_CORS_ORIGINS
        origin = request.headers.get("Origin")
        if not origins or not origin or not request.path.startswith(PREFIXES):
            return self.get_response(request)
        allowed = "*" if "*" in origins else (origin if origin in origins else None)
        if allowed is None:
            return self.get_response(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = ALLOW_METHODS
            response["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response["Access-Control-Max-Age"] = "600"
        else:
            response = self.get_response(request)
            response["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response["Access-Control-Allow-Origin"] = allowed
        if allowed != "*":
            response["Vary"] = ", ".join(v for v in (response.get("Vary"), "Origin") if v)
        return response
