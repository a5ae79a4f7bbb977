"""HTTP adapter of the facade: content negotiation, auth and role checks (as the REST API),
read, search, create, audit, and an OperationOutcome for every error."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl, urlencode

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpResponse
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.renderers import BaseRenderer
from rest_framework.views import APIView

from audit.services import audit_record
from ris.errors import ApplicationError
from ris.permissions import RolePermission

from . import conf
from .capability import capability_statement
from .errors import FhirError, Issue, NotFound, operation_outcome
from .mapping import REGISTRY, Context, ResourceType
from .search import CONTROL_PARAMS, parse_query
from .validation import parse_json, validate_resource

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
JSON_TYPES = {FHIR_JSON, "application/json", "application/json+fhir"}
ACCEPTABLE = JSON_TYPES | {"*/*", "application/*"}
FORMATS = JSON_TYPES | {"json"}


class FhirJsonRenderer(BaseRenderer):
    media_type = FHIR_JSON
    format = "json"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):  # pragma: no cover - unused
        return json.dumps(data, ensure_ascii=False).encode()


def fhir_response(data: dict | str, status: int = 200, headers: dict | None = None) -> HttpResponse:
    body = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    response = HttpResponse(body.encode(), status=status, content_type=f"{FHIR_JSON}; charset=utf-8")
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def outcome_response(issues: list[Issue], status: int, headers: dict | None = None) -> HttpResponse:
    return fhir_response(operation_outcome(issues), status, headers)


class FhirView(APIView):
    # Token first: an unauthenticated request is answered 401 with WWW-Authenticate: Token.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [RolePermission]
    renderer_classes = [FhirJsonRenderer]
    parser_classes = []
    required_actions: dict[str, str] = {}
    schema = None  # not part of the REST API's OpenAPI document; /fhir/metadata describes it
    resource_type: ResourceType | None = None

    # -- content negotiation: JSON only (Accept and _format) -----------------------------
    def perform_content_negotiation(self, request, force=False):
        fmt = request.GET.get("_format")
        if fmt is not None and fmt.split(";")[0].strip() not in FORMATS:
            raise exceptions.NotAcceptable(f"_format {fmt!r} is not supported; this server speaks JSON only.")
        accept = request.META.get("HTTP_ACCEPT", "")
        if accept and not force:
            offered = {part.split(";")[0].strip() for part in accept.split(",")}
            if not offered & ACCEPTABLE:
                raise exceptions.NotAcceptable(f"Accept {accept!r}: this server answers {FHIR_JSON} only.")
        renderer = self.renderer_classes[0]()
        return renderer, renderer.media_type

    def resolve(self, type_name: str) -> ResourceType:
        rt = REGISTRY.get(type_name)
        if rt is None:
            raise NotFound(
                f"Resource type {type_name!r} is not supported here (supported: {', '.join(REGISTRY)}).",
                code="not-supported",
            )
        return rt

    def initial(self, request, *args, **kwargs):
        type_name = kwargs.get("type_name")
        if type_name is not None:
            self.resource_type = self.resolve(type_name)
            self.required_actions = self.actions_for(self.resource_type)
        super().initial(request, *args, **kwargs)

    def actions_for(self, rt: ResourceType) -> dict[str, str]:
        return {"get": rt.read_action}

    def check_permissions(self, request):
        # An interaction we do not serve is 405 whatever the role (401 first when anonymous).
        method = request.method.lower()
        if method == "head" and "get" in self.required_actions:
            self.required_actions = {**self.required_actions, "head": self.required_actions["get"]}
        if request.user.is_authenticated and method not in self.required_actions:
            raise exceptions.MethodNotAllowed(request.method)
        super().check_permissions(request)

    def context(self, request, *, detail: bool) -> Context:
        site = f"{request.scheme}://{request.get_host()}"
        return Context(base=f"{site}/fhir", site=site, detail=detail)

    # -- every error an OperationOutcome -----------------------------------------------
    def handle_exception(self, exc):
        if isinstance(exc, FhirError):
            return outcome_response(exc.issues, exc.status)
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            header = self.get_authenticate_header(self.request)
            code = 401 if header else 403
            return outcome_response(
                [Issue("login", str(exc.detail))], code, {"WWW-Authenticate": header} if header else None
            )
        if isinstance(exc, exceptions.PermissionDenied):
            detail = str(exc.detail)
            if not detail.startswith("CSRF"):
                detail = "Your role does not allow this interaction."
            return outcome_response([Issue("forbidden", detail)], 403)
        if isinstance(exc, exceptions.MethodNotAllowed):
            return outcome_response(
                [Issue("not-supported", f"{self.request.method} is not supported here.")],
                405,
                {"Allow": ", ".join(m.upper() for m in self.required_actions) or "GET"},
            )
        if isinstance(exc, exceptions.NotAcceptable):
            return outcome_response([Issue("not-supported", str(exc.detail))], 406)
        if isinstance(exc, exceptions.UnsupportedMediaType):
            return outcome_response([Issue("not-supported", str(exc.detail))], 415)
        if isinstance(exc, exceptions.Throttled):
            return outcome_response([Issue("throttled", str(exc.detail))], 429)
        if isinstance(exc, Http404 | exceptions.NotFound):
            return outcome_response([Issue("not-found", "Not found.")], 404)
        if isinstance(exc, exceptions.APIException):
            return outcome_response([Issue("invalid", str(exc.detail))], exc.status_code)
        if isinstance(exc, RequestDataTooBig):
            return outcome_response(
                [Issue("too-costly", "The body is larger than this server accepts.")], 413
            )
        if isinstance(exc, SuspiciousOperation):
            return outcome_response([Issue("security", "The request was refused.")], 400)
        if isinstance(exc, ApplicationError):
            return outcome_response([Issue("business-rule", exc.message)], 422)
        logger.exception("FHIR facade: unexpected error")
        return outcome_response([Issue("exception", "Internal error; it has been logged.")], 500)


class MetadataView(FhirView):
    """GET /fhir/metadata: public, as FHIR expects (a client reads it before authenticating)."""

    authentication_classes = []
    permission_classes = []

    def get(self, request):
        return fhir_response(capability_statement(base=self.context(request, detail=False).base))


def _audit(request, rt: ResourceType, *, action: str, object_id="", patient_id=None, detail=None) -> None:
    audit_record(
        action=f"{rt.audit_object_type}.{action}",
        request=request,
        object_type=rt.audit_object_type,
        object_id=object_id,
        patient_id=patient_id,
        detail={"interface": "fhir", "resource": rt.name, **(detail or {})},
    )


class InstanceView(FhirView):
    """GET /fhir/<type>/<id>."""

    def get(self, request, type_name, resource_id):
        rt = self.resource_type
        obj = None
        if resource_id.isdigit() and len(resource_id) <= 18:
            obj = rt.queryset(request.user).filter(pk=int(resource_id)).first()
        if obj is None:
            raise NotFound(f"{rt.name}/{resource_id} is not known (or not visible to you).")
        ctx = self.context(request, detail=True)
        rt.prepare([obj], ctx)
        resource = rt.model.model_validate(rt.to_fhir(obj, ctx))
        _audit(request, rt, action="view", object_id=obj.pk, patient_id=rt.patient_pk(obj))
        return fhir_response(resource.model_dump_json(exclude_none=True))


class TypeView(FhirView):
    """GET /fhir/<type>?… (search), POST /fhir/<type>/_search (search by form), POST /fhir/<type> (create)."""

    def actions_for(self, rt):
        actions = {"get": rt.read_action}
        if self.kwargs.get("search"):
            actions["post"] = rt.read_action
        elif rt.create_action:
            actions["post"] = rt.create_action
        return actions

    def get(self, request, type_name, search=False):
        return self.search(request, list(request.GET.lists()))

    def post(self, request, type_name, search=False):
        rt = self.resource_type
        if search:
            items = list(request.GET.lists())
            ctype = request.META.get("CONTENT_TYPE", "").split(";")[0].strip()
            if ctype and ctype != "application/x-www-form-urlencoded":
                raise exceptions.UnsupportedMediaType(ctype)
            body = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
            merged: dict[str, list[str]] = {}
            for key, values in items:
                merged.setdefault(key, []).extend(values)
            for key, value in body:
                merged.setdefault(key, []).append(value)
            return self.search(request, list(merged.items()))
        if not rt.create_action:
            raise exceptions.MethodNotAllowed("POST")
        return self.create(request)

    def search(self, request, lists: list[tuple[str, list[str]]]):
        rt = self.resource_type
        items = [(key, value) for key, values in lists for value in values]
        query = parse_query(
            items,
            rt.params,
            resource_type=rt.name,
            default_count=conf.get("RIS_FHIR_DEFAULT_COUNT"),
            max_count=conf.get("RIS_FHIR_MAX_COUNT"),
        )
        qs = rt.search_queryset(request.user)
        for q in query.filters:
            qs = qs.filter(q)
        qs = qs.order_by(*rt.ordering)
        total = qs.count()
        page = list(qs[query.offset : query.offset + query.count]) if query.count else []
        ctx = self.context(request, detail=False)
        rt.prepare(page, ctx)
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": total,
            "link": self.links(ctx, rt, query, total),
            "entry": [
                {
                    "fullUrl": f"{ctx.base}/{rt.name}/{obj.pk}",
                    "resource": rt.to_fhir(obj, ctx),
                    "search": {"mode": "match"},
                }
                for obj in page
            ],
        }
        if not bundle["entry"]:
            del bundle["entry"]
        from fhir.resources.R4B.bundle import Bundle

        validated = Bundle.model_validate(bundle)
        patients = {rt.patient_pk(obj) for obj in page} - {None}
        _audit(
            request,
            rt,
            action="search",
            patient_id=patients.pop() if len(patients) == 1 else None,
            detail={
                "query": [[k, v] for k, v in query.params],
                "total": total,
                "returned": [obj.pk for obj in page][:100],
            },
        )
        return fhir_response(validated.model_dump_json(exclude_none=True))

    def links(self, ctx, rt, query, total) -> list[dict]:
        def url(offset: int) -> str:
            params = [*query.params, ("_count", str(query.count)), ("_offset", str(offset))]
            return f"{ctx.base}/{rt.name}?{urlencode(params)}"

        links = [{"relation": "self", "url": url(query.offset)}]
        if query.count and query.offset + query.count < total:
            links.append({"relation": "next", "url": url(query.offset + query.count)})
        if query.offset > 0 and query.count:
            links.append({"relation": "previous", "url": url(max(0, query.offset - query.count))})
        return links

    def create(self, request):
        from .ordering import service_request_create

        rt = self.resource_type
        if not request.body.strip():
            raise FhirError("The body is empty; send a ServiceRequest.", code="structure")
        ctype = request.META.get("CONTENT_TYPE", "").split(";")[0].strip()
        if ctype not in JSON_TYPES:
            raise exceptions.UnsupportedMediaType(
                ctype or "(none)", detail=f"Content-Type must be {FHIR_JSON}."
            )
        data = parse_json(request.body)
        sr = validate_resource(data, rt.model, rt.name)
        match = None
        condition = request.META.get("HTTP_IF_NONE_EXIST")
        if condition is not None:
            match = self.condition(request, rt, condition)
        proc, created = service_request_create(sr=sr, match=match, actor=request.user, request=request)
        obj = rt.queryset(request.user).get(pk=proc.pk)
        ctx = self.context(request, detail=True)
        resource = rt.model.model_validate(rt.to_fhir(obj, ctx))
        location = f"{ctx.base}/{rt.name}/{obj.pk}"
        if not created:
            _audit(
                request,
                rt,
                action="view",
                object_id=obj.pk,
                patient_id=rt.patient_pk(obj),
                detail={"conditional_create": "matched"},
            )
        prefer = request.META.get("HTTP_PREFER", "")
        body = "" if "return=minimal" in prefer else resource.model_dump_json(exclude_none=True)
        response = fhir_response(body, 201 if created else 200, {"Location": location} if created else None)
        if not body:
            response.content = b""
        return response

    def condition(self, request, rt, condition: str):
        """If-None-Exist as a search of this type; identifiers must use a system we know."""
        from . import systems

        items = parse_qsl(condition.lstrip("?"), keep_blank_values=True)
        if not items:
            raise FhirError("If-None-Exist is empty.", expression="If-None-Exist", code="invalid")
        known = {systems.placer(), systems.accession(), systems.filler(), systems.rp_id()}
        for key, value in items:
            if key in CONTROL_PARAMS:
                raise FhirError(
                    f"If-None-Exist: {key} is not a matching criterion.", expression="If-None-Exist"
                )
            if key == "identifier" and "|" in value and value.split("|", 1)[0] not in known:
                raise FhirError(
                    f"If-None-Exist: identifier system {value.split('|', 1)[0]!r} is not one this RIS keeps "
                    f"(placer: {systems.placer()!r}); the condition could never match.",
                    expression="If-None-Exist",
                    code="code-invalid",
                )
        query = parse_query(items, rt.params, resource_type=rt.name, default_count=2, max_count=2)

        def match():
            qs = rt.queryset(request.user)
            for q in query.filters:
                qs = qs.filter(q)
            return qs.order_by("pk")

        return match


def not_supported(request, path=""):
    """Anything under /fhir/ that is not an interaction we serve (history, operations, …)."""
    return outcome_response(
        [Issue("not-supported", f"{request.method} /fhir/{path} is not supported (see /fhir/metadata).")],
        404,
    )
