from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse

from .context_processors import NAV
from .roles import Role, has_permission, user_roles

# The page each role lives on; falls back to the first page the user may open.
ROLE_HOME = [
    (Role.TECHNOLOGIST, "worklist:console"),
    (Role.REVIEWER, "reports:review_queue"),
    (Role.RADIOLOGIST, "reports:reading_worklist"),
    (Role.DEPT_HEAD, "department:dashboard"),
    (Role.FRONT_DESK, "registration:patient_search"),
]


@login_required
def home(request):
    roles = user_roles(request.user)
    candidates = [name for role, name in ROLE_HOME if role in roles]
    candidates += [name for _label, name, action in NAV if has_permission(request.user, action)]
    for name in candidates:
        try:
            return redirect(reverse(name))
        except NoReverseMatch:
            continue
    return redirect("admin:index")


def healthz(request):
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def favicon(request):
    """``/favicon.ico``, which browsers ask for on their own: the RIS icon instead of a 404."""
    from django.conf import settings
    from django.http import HttpResponse

    data = (settings.BASE_DIR / "static" / "favicon.svg").read_bytes()
    response = HttpResponse(data, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    return response
