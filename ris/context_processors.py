from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from .roles import Role, has_permission, user_roles

# (label, url name, action needed). Apps' pages appear once their URL exists.
NAV = [
    (_("Patients"), "registration:patient_search", "patient.view"),
    (_("Calendar"), "scheduling:calendar", "station.view"),
    (_("Board"), "scheduling:board", "board.view"),
    (_("To book"), "scheduling:to_book", "procedure.book"),
    (_("Console"), "worklist:console", "console.use"),
    (_("Reconciliation"), "imaging:reconciliation", "imaging.reconcile"),
    (_("Reading"), "reports:reading_worklist", "report.write"),
    (_("Review"), "reports:review_queue", "report.sign"),
    (_("Reports"), "reports:search", "report.view"),
    (_("Dashboard"), "department:dashboard", "dashboard.view"),
    (_("Audit"), "audit:event_list", "audit.view"),
    (_("Interfaces"), "integration:monitor", "interface.view"),
]


def navigation(request):
    user = getattr(request, "user", None)
    if not user or not user.is_authenticated:
        return {"nav_items": [], "user_role_labels": []}
    items = []
    for label, name, action in NAV:
        if not has_permission(user, action):
            continue
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        items.append({"label": label, "url": url, "active": request.path.startswith(url)})
    labels = [str(Role.LABELS[r]) for r in sorted(user_roles(user))]
    return {"nav_items": items, "user_role_labels": labels}
