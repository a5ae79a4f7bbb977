from django.urls import path

from . import views

app_name = "integration"

urlpatterns = [
    path("interfaces/", views.monitor_view, name="monitor"),
    path("interfaces/messages/<int:pk>/", views.message_detail_view, name="message_detail"),
    path("interfaces/outbox/<int:pk>/retry/", views.outbox_retry_view, name="outbox_retry"),
]
