"""OpenAPI schema additions: every operation documents its problem-details error responses."""

from __future__ import annotations

from .errors import PROBLEM_CONTENT_TYPE

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details; `code` and `errors` are extension members.",
    "properties": {
        "type": {"type": "string", "description": "A URI reference naming the problem type."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request path."},
        "code": {"type": "string", "description": "Stable machine-readable error code."},
        "errors": {
            "type": "object",
            "description": "Input errors by field: {field: [messages]} (nested for nested input).",
            "additionalProperties": {},
        },
    },
    "required": ["type", "title", "status", "detail", "instance", "code"],
}

_DESCRIPTIONS = {
    "400": "Invalid input (the field is named in `errors`).",
    "401": "Not authenticated (send a token or log in).",
    "403": "Authenticated, but your role may not do this.",
    "404": "Not found, or not visible to you.",
    "406": "The Accept header asks for a representation that is not offered.",
    "409": "Conflict with the current state (transition, booking, duplicate).",
    "415": "Unsupported request media type.",
    "422": "The Idempotency-Key was used before with a different request.",
}
_ALWAYS = ("400", "401", "403", "404", "406")
_WRITE_METHODS = {"post", "put", "patch", "delete"}


_PARTIAL_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?$"


def _local_times(node) -> None:
    """DRF's TimeField answers a local time without offset ("08:00:00"), which JSON Schema's
    ``format: time`` (RFC 3339 full-time) does not allow: document it as a partial-time."""
    if isinstance(node, dict):
        if node.get("format") == "time" and node.get("type") == "string":
            node["format"] = "partial-time"
            node.setdefault("pattern", _PARTIAL_TIME)
        for value in node.values():
            _local_times(value)
    elif isinstance(node, list):
        for value in node:
            _local_times(value)


def add_problem_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    _local_times(schemas)
    schemas["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes = list(_ALWAYS)
            if method in _WRITE_METHODS:
                codes += ["409", "415"]
            if any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", [])):
                codes.append("422")
            responses = operation["responses"]
            for code in codes:
                entry = responses.setdefault(code, {"description": _DESCRIPTIONS[code]})
                entry.setdefault("content", {}).setdefault(PROBLEM_CONTENT_TYPE, {"schema": ref})
    return result
