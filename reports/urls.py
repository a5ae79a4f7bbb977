from django.urls import path

from . import views

app_name = "reports"

urlpatterns = [
    path("reading/", views.reading_worklist, name="reading_worklist"),
    path("reading/next/", views.claim_next, name="claim_next"),
    path("reading/claim/<int:procedure_pk>/", views.claim, name="claim"),
    path("reports/<int:pk>/edit/", views.edit, name="edit"),
    path("reports/<int:pk>/autosave/", views.autosave, name="autosave"),
    path("reports/<int:pk>/unclaim/", views.unclaim, name="unclaim"),
    path("reports/<int:pk>/break-lock/", views.break_lock, name="break_lock"),
    path("reading/claims/", views.claims, name="claims"),
    path("review/", views.review_queue, name="review_queue"),
    path("reports/<int:pk>/review/", views.review, name="review"),
    path("reports/<int:pk>/", views.detail, name="detail"),
    path("reports/<int:pk>/addendum/", views.addendum, name="addendum"),
    path("reports/<int:pk>/pdf/", views.pdf, name="pdf"),
    path("reports/<int:pk>/release/", views.release, name="release"),
    path("reports/<int:pk>/critical/", views.critical_flag, name="critical_flag"),
    path("reports/search/", views.search, name="search"),
    path("reports/verify/<str:code>/", views.verify, name="verify"),
    path("critical/", views.critical_list, name="critical_list"),
    path("critical/<int:pk>/notify/", views.critical_notify, name="critical_notify"),
    path("critical/<int:pk>/acknowledge/", views.critical_acknowledge, name="critical_acknowledge"),
    path("peer-review/", views.peer_review_list, name="peer_review_list"),
    path("peer-review/<int:pk>/", views.peer_review_score, name="peer_review_score"),
    path("peer-review/results/", views.peer_review_results, name="peer_review_results"),
]
