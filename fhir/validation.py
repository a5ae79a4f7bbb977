"""Bodies in: JSON parsing and R4 validation through fhir.resources, errors as FHIRPath."""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from .errors import BadRequest, Issue, Unprocessable

_CHOICE_RE = re.compile(r"expected from this list \[([^\]]*)\], but got multiple")


def expression(resource_type: str, loc: tuple) -> str:
    """pydantic's location ('identifier', 0, 'value') as FHIRPath ServiceRequest.identifier[0].value."""
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("resource_type", "resourceType"):
            path += ".resourceType"
        elif part and not str(part).startswith("__"):
            path += f".{str(part).removesuffix('__ext')}"
    return path


def parse_json(body: bytes) -> dict:
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest("The body is not UTF-8.", code="structure") from exc
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
            code="structure",
        ) from exc
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object (a FHIR resource).", code="structure")
    return data


def validate_resource(data: dict, model, resource_type: str):
    """The body as a validated R4 model instance, or a 422 naming every offending element."""
    got = data.get("resourceType")
    if got != resource_type:
        raise Unprocessable(
            f"resourceType must be {resource_type!r}, not {got!r}.",
            expression=f"{resource_type}.resourceType",
            code="invalid" if got else "required",
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc = tuple(err.get("loc") or ())
            where = expression(resource_type, loc)
            choice = _CHOICE_RE.search(err.get("msg", "")) if not loc else None
            if choice:  # a choice element given twice (occurrence[x]): name the ones present
                names = [n for n in re.findall(r"'(\w+)'", choice.group(1)) if n in data]
                msg = "only one of " + ", ".join(names) + " may be given."
                issues.append(
                    Issue("invariant", f"{resource_type}: {msg}", [f"{resource_type}.{n}" for n in names])
                )
                continue
            kind = err.get("type", "")
            code = "required" if "missing" in kind else "structure" if kind == "extra_forbidden" else "value"
            msg = err.get("msg", "invalid").split("\n")[0]
            if kind == "extra_forbidden":
                msg = "Unknown element (not part of R4)."
            issues.append(Issue(code, f"{where}: {msg}", [where]))
        raise Unprocessable(issues=issues) from exc
