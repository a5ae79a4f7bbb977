from django.apps import AppConfig


class FhirConfig(AppConfig):
    name = "fhir"
    label = "fhir"
    verbose_name = "FHIR R4 facade"
