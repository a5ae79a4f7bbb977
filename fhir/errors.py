"""Errors of the facade and their OperationOutcome (every error the facade answers is one)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir.resources.R4B.operationoutcome import OperationOutcome


@dataclass
class Issue:
    code: str  # IssueType (R4 valueset issue-type): invalid, required, value, not-found, ...
    diagnostics: str
    expression: list[str] = field(default_factory=list)
    severity: str = "error"

    def as_dict(self) -> dict:
        issue = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = self.expression
        return issue


class FhirError(Exception):
    """An error answered with an OperationOutcome and an HTTP status."""

    status = 400
    code = "invalid"

    def __init__(
        self,
        diagnostics: str = "",
        *,
        expression: str | list[str] | None = None,
        status: int | None = None,
        code: str | None = None,
        issues: list[Issue] | None = None,
    ):
        super().__init__(diagnostics or (issues[0].diagnostics if issues else ""))
        if status is not None:
            self.status = status
        if issues is None:
            expr = [expression] if isinstance(expression, str) else list(expression or [])
            issues = [Issue(code or self.code, diagnostics, expr)]
        self.issues = issues


class BadRequest(FhirError):
    status = 400


class NotFound(FhirError):
    status = 404
    code = "not-found"


class Unprocessable(FhirError):
    """A body that is not a valid resource, or one the RIS cannot act on (422)."""

    status = 422
    code = "invalid"


def operation_outcome(issues: list[Issue]) -> dict:
    """A validated OperationOutcome as a JSON-ready dict."""
    outcome = OperationOutcome.model_validate(
        {"resourceType": "OperationOutcome", "issue": [i.as_dict() for i in issues]}
    )
    return outcome.model_dump(mode="json", exclude_none=True)
