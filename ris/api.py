"""The REST API root (/api/v1/): each app contributes its own router."""

from django.urls import include, path
from rest_framework.authtoken.views import ObtainAuthToken

from .api_views import TokenView, WhoAmIView

urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="api-token"),
    path("auth/me/", WhoAmIView.as_view(), name="api-me"),
    path("", include("registration.api.urls")),
    path("", include("scheduling.api.urls")),
    path("", include("worklist.api.urls")),
    path("", include("imaging.api.urls")),
    path("", include("reports.api.urls")),
    path("", include("department.api.urls")),
    path("", include("audit.api.urls")),
    path("", include("integration.api.urls")),
]

__all__ = ["ObtainAuthToken", "urlpatterns"]
