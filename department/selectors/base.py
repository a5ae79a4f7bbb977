"""Shared pieces of the department reads: steps, labels, targets, units, the cache, names."""

from __future__ import annotations

import hashlib
import logging
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..figures import Figure

logger = logging.getLogger(__name__)

MILESTONES = ["ordered", "scheduled", "arrived", "started", "completed", "images", "prelim", "final"]


@dataclass(frozen=True)
class Step:
    key: str
    start: str
    end: str

    @property
    def label(self) -> str:
        return str(STEP_LABELS[self.key])

    def sql(self, alias: str = "m") -> str:
        """Seconds from start to end milestone, floored at zero (the process may run ahead)."""
        a, b = f"{alias}.{self.start}", f"{alias}.{self.end}"
        # Not greatest(…, 0): PostgreSQL's greatest() ignores NULL, a missing milestone must stay NULL.
        return f"(CASE WHEN {b} >= {a} THEN extract(epoch FROM ({b} - {a})) WHEN {b} < {a} THEN 0 END)"


STEPS = [
    Step("order_to_scheduled", "ordered", "scheduled"),
    Step("scheduled_to_arrived", "scheduled", "arrived"),
    Step("arrived_to_started", "arrived", "started"),
    Step("started_to_completed", "started", "completed"),
    Step("completed_to_images", "completed", "images"),
    Step("images_to_preliminary", "images", "prelim"),
    Step("preliminary_to_final", "prelim", "final"),
    Step("order_to_completed", "ordered", "completed"),
    Step("completed_to_preliminary", "completed", "prelim"),
    Step("completed_to_final", "completed", "final"),
    Step("order_to_final", "ordered", "final"),
]
STEP_BY_KEY = {s.key: s for s in STEPS}
STEP_LABELS = {
    "order_to_scheduled": gettext_lazy("order → scheduled"),
    "scheduled_to_arrived": gettext_lazy("scheduled → arrived"),
    "arrived_to_started": gettext_lazy("arrived → started"),
    "started_to_completed": gettext_lazy("started → completed"),
    "completed_to_images": gettext_lazy("completed → images"),
    "images_to_preliminary": gettext_lazy("images → preliminary"),
    "preliminary_to_final": gettext_lazy("preliminary → final"),
    "order_to_completed": gettext_lazy("order → completed"),
    "completed_to_preliminary": gettext_lazy("completed → preliminary"),
    "completed_to_final": gettext_lazy("completed → final"),
    "order_to_final": gettext_lazy("order → final"),
}
DIMENSION_LABELS = {
    "modality": (gettext_lazy("Modality"), gettext_lazy("modality")),
    "station": (gettext_lazy("Station"), gettext_lazy("station")),
    "priority": (gettext_lazy("Priority"), gettext_lazy("priority")),
    "radiologist": (gettext_lazy("Radiologist"), gettext_lazy("radiologist")),
}
BUCKET_LABELS = {"day": gettext_lazy("day"), "week": gettext_lazy("week")}
DIMENSIONS = ["modality", "station", "priority", "radiologist"]

# Turnaround targets in minutes per priority (configurable: settings.RIS_TAT_TARGETS).
DEFAULT_TAT_TARGETS = {
    "STAT": {"order_to_completed": 60, "completed_to_preliminary": 30, "completed_to_final": 60},
    "HIGH": {"order_to_completed": 240, "completed_to_final": 240},
    "ROUTINE": {"completed_to_final": 24 * 60},
}
BACKLOG_BUCKETS = [
    (0, 1, "< 1 h"),
    (1, 4, "1–4 h"),
    (4, 24, "4–24 h"),
    (24, 72, "1–3 d"),
    (72, None, "> 3 d"),
]
NO_SHOW_GRACE = timedelta(hours=2)


def tat_targets() -> dict[str, dict[str, int]]:
    return getattr(settings, "RIS_TAT_TARGETS", DEFAULT_TAT_TARGETS)


def use_sql() -> bool:
    """The PostgreSQL path (the milestone table and SQL aggregates); else the portable ORM path."""
    return connection.vendor == "postgresql"


def sql_path() -> bool:
    """``use_sql`` as the package exports it: what every module asks, so a test (or a caller)
    that swaps ``department.selectors.use_sql`` switches every figure to the other path."""
    return bool(sys.modules["department.selectors"].use_sql())


def people_names(usernames) -> dict[str, str]:
    """username → the name people know: the printed name, else the full name, else the username.

    The figures keep usernames as their stable keys; this is applied when a row is labelled.
    Two people with the same name are told apart by their username.
    """

    wanted = {u for u in usernames if u}
    if not wanted:
        return {}
    names = {}
    for user in get_user_model().objects.filter(username__in=wanted).select_related("ris_profile"):
        profile = getattr(user, "ris_profile", None)
        printed = (profile.printed_name if profile is not None else "").strip()
        names[user.username] = printed or user.get_full_name().strip() or user.username
    taken = Counter(names.values())
    return {u: (f"{n} ({u})" if taken[n] > 1 and n != u else n) for u, n in names.items()}


CACHE_SECONDS_DEFAULT = 60


def _cached(key, compute):
    """Short-lived cache of a heavy aggregate (settings.RIS_DASHBOARD_CACHE_SECONDS, 0 = off):
    a page's five turnaround charts share one computation, and reloads within a minute are free."""

    seconds = getattr(settings, "RIS_DASHBOARD_CACHE_SECONDS", CACHE_SECONDS_DEFAULT)
    if not seconds:
        return compute()
    cache_key = "ris.department." + hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    value = cache.get(cache_key)
    if value is None:
        value = compute()
        cache.set(cache_key, value, seconds)
    return value


def _f(v):
    return None if v is None else float(v)


# Durations are shown in the unit their magnitude calls for (one unit per figure, so a chart
# has one axis): minutes below 2 h, hours below 2 days, days beyond.
UNIT_SECONDS = {"min": 60, "h": 3600, "d": 86400}
UNIT_SYMBOLS = {"min": gettext_lazy("min"), "h": gettext_lazy("h"), "d": gettext_lazy("d")}
UNIT_WORDS = {"min": gettext_lazy("minutes"), "h": gettext_lazy("hours"), "d": gettext_lazy("days")}


def duration_unit(seconds) -> str:
    """The unit for a figure whose largest duration is max(seconds)."""
    largest = max((abs(v) for v in seconds if v is not None), default=0)
    if largest >= 2 * 86400:
        return "d"
    if largest >= 2 * 3600:
        return "h"
    return "min"


def _in_unit(seconds, unit: str):
    if seconds is None:
        return None
    return round(seconds / UNIT_SECONDS[unit], 1 if unit == "min" else 2)


def _duration_figure(*, rows_s: list[list], title, label_column_name: str, **kw) -> Figure:
    """rows_s: [label, n, p50 s, p90 s] → a Figure in the unit the largest value calls for.

    ``title(unit_word)`` builds the title, e.g. "Turnaround per step (hours)".
    """
    unit = duration_unit([v for r in rows_s for v in r[2:]])
    symbol = str(UNIT_SYMBOLS[unit])
    return Figure(
        title=title(UNIT_WORDS[unit]),
        columns=[
            label_column_name,
            _("Procedures"),
            _("Median (%(unit)s)") % {"unit": symbol},
            _("90th percentile (%(unit)s)") % {"unit": symbol},
        ],
        rows=[[r[0], r[1], _in_unit(r[2], unit), _in_unit(r[3], unit)] for r in rows_s],
        series_columns=[2, 3],
        unit=symbol,
        **kw,
    )
