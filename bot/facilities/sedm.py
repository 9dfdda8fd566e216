"""SEDM, the facility behind BTS's follow-up requests: its payload model (pure).

One module per facility, as SkyPortal keeps one file per facility API (``facility_apis/sedm.py``).
The payload schema is SP 3.7 (``facility_apis/sedm.py:480-598``); a configured payload is validated
when the config loads (:class:`bot.actions.followup.FollowupAction`) and again, with its dates, each
time a request is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.core.followup_rules import format_date, is_number, to_utc_naive

__all__ = ["SEDM_OBSERVATION_CHOICES", "SEDM_OBSERVATION_TYPES", "sedm_payload"]

# SP 3.7: SEDM observation_type enum and Mix 'n Match choices.
SEDM_OBSERVATION_TYPES: tuple[str, ...] = (
    "3-shot (gri)",
    "4-shot (ugri)",
    "IFU",
    "4-shot+IFU",
    "3-shot+IFU",
    "Mix 'n Match",
)
SEDM_OBSERVATION_CHOICES: tuple[str, ...] = ("u", "g", "r", "i", "IFU")
SEDM_PRIORITY_MIN, SEDM_PRIORITY_MAX = 1, 5
# Fields SEDM's prepare_payload defaults (SP 3.7) with the UI ranges; the server never range-checks
# them, so we do it at config time.
_SEDM_NUMERIC_RANGES: dict[str, tuple[float, float]] = {
    "exposure_time": (-1.0, 3600.0),
    "maximum_airmass": (1.0, 3.0),
    "maximum_fwhm": (1.0, 10.0),
}
_SEDM_CONFIG_KEYS = frozenset(
    {"observation_type", "observation_choices", "priority", "advanced", *_SEDM_NUMERIC_RANGES}
)

# ------------------------------------------------------------------------------------------------
# SEDM payload
# ------------------------------------------------------------------------------------------------
def sedm_payload(payload: Mapping[str, Any], validity_days: float, now: datetime) -> dict[str, Any]:
    """Validate a configured SEDM payload and return it with ``start_date``/``end_date`` added.

    Rules (SP 3.7): ``observation_type`` required, in the enum; ``observation_choices`` required for
    "Mix 'n Match" (unique items from u,g,r,i,IFU, at least one) and otherwise optional but checked;
    ``priority`` required, an integer 1..5 (0 and 6 are 400s on Fritz); ``advanced`` bool;
    ``exposure_time``/``maximum_airmass``/``maximum_fwhm`` numbers within the UI ranges. Unknown keys
    are refused (a typo such as "prority" would otherwise silently drop the priority), and so are
    ``start_date``/``end_date``: they are computed here from ``now`` and ``validity_days``.

    Raises ValueError naming the offending key.
    """
    if not isinstance(payload, Mapping):
        raise ValueError(f"payload must be a mapping, got {type(payload).__name__}")
    for k in payload:
        if not isinstance(k, str):
            raise ValueError(f"payload key {k!r} is not a string")
        if k in ("start_date", "end_date"):
            raise ValueError(f"payload key {k!r} must not be configured: it is set from validity_days")
        if k not in _SEDM_CONFIG_KEYS:
            raise ValueError(
                f"payload key {k!r} is not an SEDM field (allowed: {', '.join(sorted(_SEDM_CONFIG_KEYS))})"
            )

    out: dict[str, Any] = {}

    obs = payload.get("observation_type")
    if obs is None:
        raise ValueError("payload key 'observation_type' is required")
    if obs not in SEDM_OBSERVATION_TYPES:
        raise ValueError(
            f"payload key 'observation_type': {obs!r} is not one of {list(SEDM_OBSERVATION_TYPES)}"
        )
    out["observation_type"] = obs

    if "observation_choices" in payload or obs == "Mix 'n Match":
        choices = payload.get("observation_choices")
        if not isinstance(choices, (list, tuple)) or len(choices) == 0:
            raise ValueError(
                "payload key 'observation_choices' must be a non-empty list"
                + (" (required for \"Mix 'n Match\")" if obs == "Mix 'n Match" else "")
            )
        for c in choices:
            if c not in SEDM_OBSERVATION_CHOICES:
                raise ValueError(
                    f"payload key 'observation_choices': {c!r} is not one of {list(SEDM_OBSERVATION_CHOICES)}"
                )
        if len(set(choices)) != len(choices):
            raise ValueError("payload key 'observation_choices' has duplicate items")
        out["observation_choices"] = list(choices)

    if "priority" not in payload:
        raise ValueError("payload key 'priority' is required (SEDM: integer 1-5)")
    prio = payload["priority"]
    if not is_number(prio) or float(prio) != int(prio):
        raise ValueError(f"payload key 'priority': {prio!r} is not an integer")
    prio = int(prio)
    if not SEDM_PRIORITY_MIN <= prio <= SEDM_PRIORITY_MAX:
        raise ValueError(
            f"payload key 'priority': {prio} is outside {SEDM_PRIORITY_MIN}-{SEDM_PRIORITY_MAX}"
        )
    out["priority"] = prio

    if "advanced" in payload:
        if not isinstance(payload["advanced"], bool):
            raise ValueError(f"payload key 'advanced': {payload['advanced']!r} is not a boolean")
        out["advanced"] = payload["advanced"]

    for k, (lo, hi) in _SEDM_NUMERIC_RANGES.items():
        if k in payload:
            v = payload[k]
            if not is_number(v):
                raise ValueError(f"payload key {k!r}: {v!r} is not a number")
            if not lo <= float(v) <= hi:
                raise ValueError(f"payload key {k!r}: {v} is outside {lo:g}..{hi:g}")
            out[k] = v

    if not is_number(validity_days) or float(validity_days) <= 0:
        raise ValueError(f"validity_days must be a positive number, got {validity_days!r}")
    start = to_utc_naive(now)
    out["start_date"] = format_date(start)
    out["end_date"] = format_date(start + timedelta(days=float(validity_days)))
    return out


