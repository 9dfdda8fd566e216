"""What a reviewer sees of a source at the alert where a policy fired, kept small at decision time so the
night report needs no network (pure; no I/O):

- `thumbnails(alert)`: the science, reference and difference cutouts zscaled as scanners see them
  (astropy's ZScaleInterval, the DS9/Fritz default), each a 63x63 uint8 image; a cutout that cannot be
  read becomes None (the report says so);
- `lightcurve(candidate, history)`: the detections (jd, fid, magpsf, sigmapsf) and the upper limits
  (jd, fid, diffmaglim) the bot had at that alert, positive and negative subtractions told apart, and the
  alert itself flagged.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from bot.core.triplets import CUTOUT_KEYS, SENTINEL_ABS, CutoutError, decode_stamp

THUMB = 63


def _zscale_interval():
    """astropy's ZScaleInterval; astropy.visualization imports matplotlib, whose per-user config must land
    in the btsbot cache (as every import of it does here), not under ~."""
    from bot.artifacts import cache_root
    from bot.scoring.quiet import cache_env

    with cache_env(cache_root()):
        from astropy.visualization import ZScaleInterval
    return ZScaleInterval()


def _zscale(img: np.ndarray) -> np.ndarray:
    data = np.array(img, dtype=np.float64)
    bad = ~np.isfinite(data) | (np.abs(data) >= SENTINEL_ABS)
    good = data[~bad]
    if good.size == 0:
        return np.zeros(data.shape, np.uint8)
    lo, hi = _zscale_interval().get_limits(good)
    if not hi > lo:
        lo, hi = float(good.min()), float(good.max()) or 1.0
    scaled = np.clip((data - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    scaled[bad] = 0.0
    return np.round(scaled * 255).astype(np.uint8)


def thumbnails(alert: Mapping) -> dict[str, np.ndarray | None]:
    """cutout key -> its zscaled 8-bit image (63x63 or smaller, as ZTF sent it), or None if unreadable."""
    out: dict[str, np.ndarray | None] = {}
    for key in CUTOUT_KEYS:
        stamp = alert.get(key)
        data = stamp.get("stampData") if isinstance(stamp, Mapping) else None
        try:
            out[key] = _zscale(decode_stamp(data)) if data else None
        except CutoutError:
            out[key] = None
    return out


def lightcurve(candidate: Mapping, history: Iterable[Mapping]) -> dict:
    """The points the bot had at the alert (its history up to it, the alert included), by kind."""
    jd0 = float(candidate["jd"])
    det, lim = [], []
    seen = set()
    for p in [{**candidate, "_this": True}, *history]:  # the alert first: its own point wins over a copy
        jd = p.get("jd")
        if jd is None or float(jd) > jd0 + 1e-9:
            continue
        key = (round(float(jd), 6), p.get("fid"))
        if p.get("magpsf") is not None:
            if key in seen:
                continue
            seen.add(key)
            det.append({"jd": float(jd), "fid": p.get("fid"), "magpsf": float(p["magpsf"]),
                        "sigmapsf": None if p.get("sigmapsf") is None else float(p["sigmapsf"]),
                        "negative": str(p.get("isdiffpos")) in ("f", "0", "False"), "this": bool(p.get("_this"))})
        elif p.get("diffmaglim") is not None:
            lim.append({"jd": float(jd), "fid": p.get("fid"), "diffmaglim": float(p["diffmaglim"])})
    return {"detections": sorted(det, key=lambda d: d["jd"]), "upper_limits": sorted(lim, key=lambda d: d["jd"]),
            "jd": jd0}
