"""Writes for the viewer: the per-user preferences (layout, W/L preset per modality, tool)."""

from __future__ import annotations

from ris.errors import ApplicationError

from .models import ViewerPreference

LAYOUTS = {"1x1", "1x2", "2x2", "mpr"}
PRESETS = {"default", "brain", "lung", "bone", "abdomen", "mediastinum", "liver", "stroke"}
TOOLS = {"wl", "pan", "zoom", "scroll", "length", "angle", "ellipse", "crosshairs"}
MODALITY_MAX = 16


class PreferenceInvalid(ApplicationError):
    pass


def _clean(data: dict) -> dict:
    if not isinstance(data, dict):
        raise PreferenceInvalid("preferences must be an object")
    out: dict = {}
    layout = data.get("layout")
    if layout is not None:
        if layout not in LAYOUTS:
            raise PreferenceInvalid(f"unknown layout {layout!r}")
        out["layout"] = layout
    tool = data.get("tool")
    if tool is not None:
        if tool not in TOOLS:
            raise PreferenceInvalid(f"unknown tool {tool!r}")
        out["tool"] = tool
    presets = data.get("presets")
    if presets is not None:
        if not isinstance(presets, dict) or len(presets) > 20:
            raise PreferenceInvalid("presets must map modality to preset")
        clean = {}
        for modality, preset in presets.items():
            if (
                not isinstance(modality, str)
                or not modality
                or len(modality) > MODALITY_MAX
                or preset not in PRESETS
            ):
                raise PreferenceInvalid(f"invalid preset {modality!r}: {preset!r}")
            clean[modality.upper()] = preset
        out["presets"] = clean
    return out


def preference_save(*, user, data: dict) -> dict:
    """Merge the given keys into the user's viewer preferences; unknown values are refused."""
    clean = _clean(data)
    pref, _created = ViewerPreference.objects.get_or_create(user=user)
    merged = {**(pref.data or {}), **clean}
    if "presets" in clean:
        merged["presets"] = {**(pref.data or {}).get("presets", {}), **clean["presets"]}
    pref.data = merged
    pref.save(update_fields=["data", "updated_at"])
    return merged


def preference_get(*, user) -> dict:
    pref = ViewerPreference.objects.filter(user=user).only("data").first()
    return dict(pref.data) if pref else {}
