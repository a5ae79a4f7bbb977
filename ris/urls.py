from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import health, metrics, views
from .forms import LoginForm

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("health/live", health.live, name="health_live"),
    path("health/ready", health.ready, name="health_ready"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="auth/login.html", redirect_authenticated_user=True, authentication_form=LoginForm
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("api/v1/", include("ris.api")),
    path("fhir/", include("fhir.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include("registration.urls")),
    path("", include("scheduling.urls")),
    path("", include("worklist.urls")),
    path("", include("imaging.urls")),
    path("", include("reports.urls")),
    path("", include("department.urls")),
    path("", include("audit.urls")),
    path("", include("integration.urls")),
    path("", include("viewer.urls")),
]

# Under /api/ an unknown URL or a server error is an RFC 9457 problem like every API error.
handler404 = "ris.errors.page_not_found"
handler500 = "ris.errors.server_error"
