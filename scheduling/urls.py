from django.urls import path

from . import views

app_name = "scheduling"

urlpatterns = [
    path("patients/<int:patient_pk>/order/", views.order_create_view, name="order_create"),
    path("orders/<int:pk>/", views.order_detail_view, name="order_detail"),
    path("scheduling/slots/", views.slot_picker, name="slots"),
    path("procedures/<int:pk>/arrive/", views.procedure_arrive_view, name="procedure_arrive"),
    path("procedures/<int:pk>/cancel/", views.procedure_cancel_view, name="procedure_cancel"),
    path("procedures/<int:pk>/reschedule/", views.procedure_reschedule_view, name="procedure_reschedule"),
    path("procedures/<int:pk>/book/", views.procedure_book_view, name="procedure_book"),
    path("scheduling/to-book/", views.to_book_view, name="to_book"),
    path("calendar/", views.calendar_view, name="calendar"),
    path("calendar/downtime/", views.downtime_add_view, name="downtime_add"),
    path("board/", views.board_view, name="board"),
]
