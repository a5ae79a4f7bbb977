from django.urls import path

from . import views

app_name = "viewer"

urlpatterns = [
    path("viewer/studies/<str:uid>/", views.viewer_page, name="study"),
    path("viewer/api/studies/<str:uid>/", views.manifest, name="manifest"),
    path("viewer/api/preferences/", views.preferences, name="preferences"),
]
