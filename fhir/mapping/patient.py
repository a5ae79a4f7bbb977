"""Patient <- registration.Patient (DICOM PN groups as HumanNames, PS3.5 Annex J / ISO 21090)."""

from __future__ import annotations

from django.db.models import Q

from fhir.resources.R4B.patient import Patient as FhirPatient
from registration.models import Patient
from registration.selectors import patient_list

from .. import systems
from ..errors import BadRequest
from ..search import Param, date_param_q, id_q, parse_token
from .base import Context, ResourceType, clean, fhir_date, meta, ref

GENDER = {"M": "male", "F": "female", "O": "other"}
GENDER_CODES = {"male": "M", "female": "F", "other": "O", "unknown": ""}


def _name(representation: str, family: str, given: list[str], text: str, **extra) -> dict | None:
    given = [g for g in given if g]
    if not (family or given):
        return None
    return clean(
        {
            "extension": [{"url": systems.EN_REPRESENTATION, "valueCode": representation}],
            "use": "official",
            "text": text,
            "family": family,
            "given": given,
            **extra,
        }
    )


def human_names(p: Patient) -> list[dict]:
    """Characters first (what a Chinese reader expects in name[0]), then pinyin/Latin, then phonetic."""
    names = [
        _name(
            "IDE",
            p.ideographic_family,
            [p.ideographic_given],
            f"{p.ideographic_family}{p.ideographic_given}",
        ),
        _name(
            "ABC",
            p.family_name,
            [p.given_name, p.middle_name],
            " ".join(x for x in [p.family_name, p.given_name, p.middle_name] if x),
            prefix=[p.name_prefix] if p.name_prefix else None,
            suffix=[p.name_suffix] if p.name_suffix else None,
        ),
        _name(
            "SYL",
            p.phonetic_family,
            [p.phonetic_given],
            " ".join(x for x in [p.phonetic_family, p.phonetic_given] if x),
        ),
    ]
    return [n for n in names if n]


def _identifier_q(raw: str, modifier: str | None) -> Q:
    token = parse_token(raw)
    if token.system == "" or not (token.code or token.system):
        return Q(pk__in=[])  # every patient identifier has a system
    q = Q(patient_id=token.code) if token.code else Q()
    if token.system:
        issuer = systems.issuer_for_system(token.system)
        if issuer is None:
            return Q(pk__in=[])
        q &= Q(issuer=issuer)
    return q


def _name_q(fields: tuple[str, ...], compact: bool):
    def build(raw: str, modifier: str | None) -> Q:
        term = raw.strip()
        squeezed = "".join(term.replace("^", " ").split()).lower()
        if modifier == "exact":
            q = Q()
            for f in fields:
                q |= Q(**{f: term})
            if compact:
                q |= Q(search_compact=squeezed) | Q(search_compact__startswith=squeezed + " ")
                q |= Q(search_compact__endswith=" " + squeezed) | Q(search_compact__contains=f" {squeezed} ")
            return q
        lookup = "icontains" if modifier == "contains" else "istartswith"
        q = Q()
        for f in fields:
            q |= Q(**{f"{f}__{lookup}": term})
        if compact and squeezed:
            if modifier == "contains":
                q |= Q(search_compact__icontains=squeezed)
            else:
                q |= Q(search_compact__istartswith=squeezed) | Q(search_compact__icontains=" " + squeezed)
        return q

    return build


def _gender_q(raw: str, modifier: str | None) -> Q:
    token = parse_token(raw)
    if token.code not in GENDER_CODES:
        raise BadRequest(
            f"Search parameter 'gender': unknown code {token.code!r} (male, female, other, unknown).",
            expression="gender",
            code="code-invalid",
        )
    return Q(sex=GENDER_CODES[token.code])


NAME_FIELDS = (
    "family_name",
    "given_name",
    "middle_name",
    "ideographic_family",
    "ideographic_given",
    "phonetic_family",
    "phonetic_given",
)


class PatientType(ResourceType):
    name = "Patient"
    model = FhirPatient
    read_action = "patient.view"
    audit_object_type = "patient"
    ordering = ("pk",)
    params = {
        "_id": Param("_id", "token", "Logical id of the patient.", id_q()),
        "identifier": Param(
            "identifier",
            "token",
            "Patient ID with its issuer: system|value (system urn:ris:patient-id:<issuer> or a "
            "configured one) or a bare value.",
            _identifier_q,
        ),
        "name": Param(
            "name",
            "string",
            "Any part of any name group: characters (王小东, 王), pinyin (Wang, XiaoDong, "
            "wangxiaodong), case-insensitive, starts-with; :contains and :exact supported.",
            _name_q(NAME_FIELDS, compact=True),
            modifiers=("exact", "contains"),
        ),
        "family": Param(
            "family",
            "string",
            "Family name in any group (王, Wang).",
            _name_q(("family_name", "ideographic_family", "phonetic_family"), compact=False),
            modifiers=("exact", "contains"),
        ),
        "given": Param(
            "given",
            "string",
            "Given name in any group (小东, XiaoDong).",
            _name_q(("given_name", "middle_name", "ideographic_given", "phonetic_given"), compact=False),
            modifiers=("exact", "contains"),
        ),
        "birthdate": Param(
            "birthdate",
            "date",
            "Birth date; prefixes eq, ge, gt, le, lt.",
            date_param_q("birth_date", "birthdate", is_date_field=True),
        ),
        "gender": Param("gender", "token", "male | female | other | unknown.", _gender_q),
    }

    def queryset(self, user):
        # Merged records stay readable (active=false, link replaced-by) but are not found by search.
        return Patient.objects.all()

    def search_queryset(self, user):
        return patient_list()

    def patient_pk(self, obj):
        return obj.pk

    def to_fhir(self, p: Patient, ctx: Context) -> dict:
        identifiers = [
            {
                "use": "usual",
                "type": systems.identifier_type("MR", "Medical record number"),
                "system": systems.issuer_system(p.issuer),
                "value": p.patient_id,
            }
        ]
        for other in p.other_ids or []:
            if isinstance(other, dict) and (other.get("id") or other.get("value")):
                identifiers.append(
                    clean(
                        {
                            "use": "secondary",
                            "system": systems.issuer_system(other["issuer"]) if other.get("issuer") else None,
                            "value": str(other.get("id") or other.get("value")),
                        }
                    )
                )
        out = {
            "resourceType": "Patient",
            "id": str(p.pk),
            "meta": meta(p.updated_at),
            "identifier": identifiers,
            "active": p.merged_into_id is None,
            "name": human_names(p),
            "telecom": [{"system": "phone", "value": p.phone, "use": "home"}] if p.phone else None,
            "gender": GENDER.get(p.sex, "unknown"),
            "birthDate": fhir_date(p.birth_date),
            "address": [{"text": p.address}] if p.address else None,
        }
        if p.merged_into_id:
            out["link"] = [{"other": ref("Patient", p.merged_into_id), "type": "replaced-by"}]
        return clean(out)


def patient_display(p: Patient) -> str:
    return p.display_name
