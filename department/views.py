"""Department pages: dashboards (charts filled from the figure JSON), equipment, materials.

Pages render quickly with empty chart cards; each card fetches its figure's JSON, so one slow
figure never holds up the page. The CSV link of a card serves the same figure's rows.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from ris.errors import ApplicationError
from ris.permissions import role_required
from ris.roles import has_permission
from scheduling.models import Modality

from . import registry, selectors
from .figures import Period, period_from_params
from .forms import DowntimeForm, ReceiptForm
from .models import MaterialReceipt
from .services import material_receive

logger = logging.getLogger(__name__)

TABS = [
    ("dashboard", "department:dashboard", gettext_lazy("Overview")),
    ("turnaround", "department:turnaround", gettext_lazy("Turnaround")),
    ("workload", "department:workload", gettext_lazy("Volumes and workload")),
    ("quality", "department:quality", gettext_lazy("Error statistics")),
    ("equipment", "department:equipment", gettext_lazy("Equipment")),
    ("materials", "department:materials", gettext_lazy("Materials")),
]


def _period(request) -> tuple[Period, dict]:
    try:
        return period_from_params(request.GET), {}
    except ApplicationError as exc:
        return period_from_params({}), exc.fields


def _context(request, page: str, **extra) -> dict:
    period, errors = _period(request)
    query = urlencode(period.as_query())
    step = request.GET.get("step", "")
    cards = []
    for name in registry.PAGES[page]:
        q = query + (f"&step={step}" if step and name in registry.STEP_FIGURES else "")
        cards.append(
            {
                "name": name,
                "json_url": reverse("department:figure_json", args=[name]) + "?" + q,
                "csv_url": reverse("department:figure_csv", args=[name]) + "?" + q,
            }
        )
    return {
        "page": page,
        "tabs": [{"key": k, "url": reverse(u), "label": label} for k, u, label in TABS],
        "period": period,
        "period_errors": errors,
        "query": query,
        "modalities": Modality.values,
        "cards": cards,
        "steps": selectors.STEPS,
        "step": step,
        **extra,
    }


def _page(page: str, template: str = "department/dashboard.html"):
    @role_required("dashboard.view")
    def view(request):
        return render(request, template, _context(request, page))

    view.__name__ = f"{page}_view"
    return view


dashboard = _page("dashboard")
turnaround = _page("turnaround")
workload = _page("workload")
quality = _page("quality")


def _figure(request, name: str):
    if name not in registry.FIGURES:
        raise Http404
    period = period_from_params(request.GET)
    return registry.build(name, period, request.GET)


@role_required("dashboard.view")
def figure_json(request, name: str):
    try:
        fig = _figure(request, name)
    except ApplicationError as exc:
        return JsonResponse({"detail": exc.message, "errors": exc.fields}, status=400)
    return JsonResponse(fig.as_dict(), json_dumps_params={"ensure_ascii": False})


@role_required("dashboard.view")
def figure_csv(request, name: str):
    try:
        fig = _figure(request, name)
    except ApplicationError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    period = period_from_params(request.GET)
    # A BOM so that spreadsheet programs open the UTF-8 (Chinese) text correctly.
    response = HttpResponse("\ufeff" + fig.csv(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}_{period.first}_{period.last}.csv"'
    return response


@role_required("dashboard.view")
@require_http_methods(["GET", "POST"])
def equipment(request):
    can_manage = has_permission(request.user, "station.manage")
    form = DowntimeForm(request.POST or None)
    overlaps = []
    if request.method == "POST":
        if not can_manage:
            return HttpResponse(status=403)
        if form.is_valid():
            from scheduling.services import DowntimeOverlapsBookings, station_add_downtime

            try:
                station_add_downtime(
                    station=form.cleaned_data["station"],
                    start=form.cleaned_data["start"],
                    end=form.cleaned_data["end"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                    confirm_overlaps=form.cleaned_data["confirm_overlaps"],
                )
            except DowntimeOverlapsBookings as exc:
                overlaps = exc.overlaps  # listed above the form; saved only once confirmed
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, _("Downtime recorded; the calendar no longer offers those slots."))
                return redirect("department:equipment")
    since = timezone.now() - timezone.timedelta(days=90)
    ctx = _context(
        request,
        "equipment",
        stations=selectors.station_status_list(),
        downtimes=selectors.downtime_list(since=since),
        form=form,
        overlaps=overlaps,
        can_manage=can_manage,
        can_end=_end_downtime_service() is not None,
        now=timezone.now(),
    )
    return render(request, "department/equipment.html", ctx)


def _end_downtime_service():
    from scheduling import services

    return getattr(services, "station_end_downtime", None)


@role_required("station.manage")
@require_POST
def downtime_end(request, pk: int):
    end_service = _end_downtime_service()
    if end_service is None:  # pragma: no cover - scheduling ships it
        raise Http404
    from scheduling.models import StationDowntime

    downtime = StationDowntime.objects.filter(pk=pk).first()
    if downtime is None:
        raise Http404
    try:
        end_service(downtime=downtime, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Downtime ended."))
    return redirect("department:equipment")


@role_required("dashboard.view")
@require_http_methods(["GET", "POST"])
def materials(request):
    form = ReceiptForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            material_receive(
                item=data["item"],
                quantity=data["quantity"],
                lot_number=data["lot_number"],
                expiry_date=data["expiry_date"],
                supplier=data["supplier"],
                actor=request.user,
                request=request,
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Stock received."))
            return redirect(reverse("department:materials") + "?" + request.GET.urlencode())
    ctx = _context(
        request,
        "materials",
        form=form,
        low_stock=list(selectors.material_low_stock()),
        receipts=MaterialReceipt.objects.select_related("item", "actor")[:30],
    )
    return render(request, "department/materials.html", ctx)
