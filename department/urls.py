from django.urls import path

from . import views

app_name = "department"

urlpatterns = [
    path("department/", views.dashboard, name="dashboard"),
    path("department/turnaround/", views.turnaround, name="turnaround"),
    path("department/workload/", views.workload, name="workload"),
    path("department/quality/", views.quality, name="quality"),
    path("department/equipment/", views.equipment, name="equipment"),
    path("department/equipment/downtime/<int:pk>/end/", views.downtime_end, name="downtime_end"),
    path("department/materials/", views.materials, name="materials"),
    path("department/figures/<slug:name>.json", views.figure_json, name="figure_json"),
    path("department/figures/<slug:name>.csv", views.figure_csv, name="figure_csv"),
]
