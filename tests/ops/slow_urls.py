"""A URLconf for the teardown test: one page, one slow view that uses the database."""

from __future__ import annotations

import threading
import time

from django.http import HttpResponse, JsonResponse
from django.urls import path

finished = threading.Event()
started = threading.Event()


def blank(request):
    return HttpResponse("<!doctype html><title>blank</title><p>blank</p>")


def slow(request):
    from django.contrib.auth import get_user_model

    started.set()
    time.sleep(1.5)
    n = get_user_model().objects.count()  # the database, as the dashboards' chart requests do
    finished.set()
    return JsonResponse({"users": n})


urlpatterns = [path("blank/", blank), path("slow/", slow)]
