from django.urls import path

from . import views

app_name = "registration"

urlpatterns = [
    path("patients/", views.patient_search_view, name="patient_search"),
    path("patients/new/", views.patient_register_view, name="patient_register"),
    path("patients/pinyin/", views.pinyin_preview, name="pinyin"),
    path("patients/<int:pk>/", views.patient_detail_view, name="patient_detail"),
    path("patients/<int:pk>/edit/", views.patient_edit_view, name="patient_edit"),
]
