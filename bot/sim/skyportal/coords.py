"""Sky geometry of the SkyPortal stand-in: angular separation (duplicate/constraint radius) and galactic l, b."""

from __future__ import annotations

import math


def angular_sep_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance in degrees (haversine)."""
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def galactic(ra: float, dec: float) -> tuple[float, float]:
    """ICRS (J2000) -> galactic (l, b) in degrees."""
    ra_gp, dec_gp, l_ncp = math.radians(192.85948), math.radians(27.12825), math.radians(122.93192)
    r, d = math.radians(ra), math.radians(dec)
    sin_b = math.sin(d) * math.sin(dec_gp) + math.cos(d) * math.cos(dec_gp) * math.cos(r - ra_gp)
    b = math.asin(max(-1.0, min(1.0, sin_b)))
    y = math.cos(d) * math.sin(r - ra_gp)
    x = math.sin(d) * math.cos(dec_gp) - math.cos(d) * math.sin(dec_gp) * math.cos(r - ra_gp)
    gl = (l_ncp - math.atan2(y, x)) % (2 * math.pi)
    return math.degrees(gl), math.degrees(b)
