from django.urls import path

from . import views

app_name = "worklist"

urlpatterns = [
    path("console/", views.console, name="console"),
    path("console/board/", views.console_board, name="console_board"),
    path("console/exam/<int:pk>/", views.exam, name="exam"),
    path("console/exam/<int:pk>/status/", views.exam_status, name="exam_status"),
    path("console/exam/<int:pk>/note/", views.exam_note, name="exam_note"),
    path("console/exam/<int:pk>/<slug:action>/", views.exam_action, name="exam_action"),
    path("console/mpps-exceptions/", views.mpps_exceptions, name="mpps_exceptions"),
    path("worklist/import/", views.import_worklists_page, name="import"),
]
