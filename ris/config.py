"""Parsing of settings that have a syntax of their own (pure functions, no Django imports).

Called from ``ris/settings.py``: a bad value stops the process at startup with
``ImproperlyConfigured`` naming the variable, never a 500 later.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

# Requested Procedure Priority (0040,1003) values, as in scheduling.models.Priority (settings
# cannot import models); URGENT is accepted as the common name for HIGH.
PRIORITIES = ("STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW")
PRIORITY_ALIASES = {"URGENT": "HIGH"}
# Steps of department.selectors.STEPS a target may name; a bare priority sets the report TAT.
TAT_STEPS = (
    "order_to_scheduled",
    "scheduled_to_arrived",
    "arrived_to_started",
    "started_to_completed",
    "completed_to_images",
    "images_to_preliminary",
    "preliminary_to_final",
    "order_to_completed",
    "completed_to_preliminary",
    "completed_to_final",
    "order_to_final",
)
DEFAULT_TAT_STEP = "completed_to_final"

DEV_SECRET_KEY = "django-insecure-dev-only-key-change-me-0123456789abcdefghijklmnop"  # noqa: S105 (dev only, refused without DEBUG)


def parse_tat_targets(value: str, *, name: str = "RIS_TAT_TARGETS") -> dict[str, dict[str, int]]:
    """``STAT=60,URGENT=240,ROUTINE=1440`` → ``{"STAT": {"completed_to_final": 60}, …}``.

    ``PRIORITY=minutes`` sets the report turnaround (completed → final);
    ``PRIORITY.step=minutes`` sets another step, e.g. ``STAT.order_to_completed=60``.
    """
    targets: dict[str, dict[str, int]] = {}
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, minutes = item.partition("=")
        if not sep:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not PRIORITY=minutes (e.g. STAT=60,ROUTINE=1440)"
            )
        priority, _dot, step = key.strip().partition(".")
        priority = priority.strip().upper()
        priority = PRIORITY_ALIASES.get(priority, priority)
        step = step.strip() or DEFAULT_TAT_STEP
        if priority not in PRIORITIES:
            raise ImproperlyConfigured(
                f"{name}: unknown priority {key.strip()!r} (one of {', '.join(PRIORITIES)}, or URGENT)"
            )
        if step not in TAT_STEPS:
            raise ImproperlyConfigured(f"{name}: unknown step {step!r} (one of {', '.join(TAT_STEPS)})")
        try:
            number = int(minutes.strip())
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {minutes.strip()!r} for {key.strip()} is not a whole number of minutes"
            ) from None
        if number <= 0:
            raise ImproperlyConfigured(f"{name}: the target for {key.strip()} must be positive minutes")
        targets.setdefault(priority, {})[step] = number
    if not targets:
        raise ImproperlyConfigured(f"{name} is set but empty (e.g. STAT=60,HIGH=240,ROUTINE=1440)")
    return targets


def check_secret_key(secret_key: str, *, debug: bool) -> None:
    """Refuse to run without DEBUG on the development key or an obvious placeholder."""
    if debug:
        return
    weak = (
        not secret_key
        or secret_key == DEV_SECRET_KEY
        or secret_key.startswith("django-insecure")
        or "change-me" in secret_key
        or len(secret_key) < 32
    )
    if weak:
        raise ImproperlyConfigured(
            "DJANGO_DEBUG is false but DJANGO_SECRET_KEY is unset, the development key or a "
            "placeholder: set DJANGO_SECRET_KEY to a long random value (at least 32 characters; "
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
