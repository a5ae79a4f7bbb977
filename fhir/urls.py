"""/fhir/ (included from ris/urls.py). Types are resolved against fhir.mapping.REGISTRY."""

from django.urls import path, re_path

from . import views

app_name = "fhir"

TYPE = r"(?P<type_name>[A-Z][A-Za-z]{1,63})"

urlpatterns = [
    path("metadata", views.MetadataView.as_view(), name="metadata"),
    re_path(rf"^{TYPE}/_search/?$", views.TypeView.as_view(), {"search": True}, name="search"),
    re_path(rf"^{TYPE}/?$", views.TypeView.as_view(), name="type"),
    re_path(
        rf"^{TYPE}/(?P<resource_id>[A-Za-z0-9\-.]{{1,64}})/?$", views.InstanceView.as_view(), name="instance"
    ),
    re_path(r"^(?P<path>.*)$", views.not_supported, name="not_supported"),
]
