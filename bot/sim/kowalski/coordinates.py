"""The `coordinates` Kowalski's ingester adds to an alert (alert_mongify, without the ecliptic ones)."""

from __future__ import annotations

import math

# ICRS (J2000) -> galactic rotation matrix
_GAL = ((-0.0548755604162154, -0.8734370902348850, -0.4838350155487132),
        (0.4941094278755837, -0.4448296299600112, 0.7469822444972189),
        (-0.8676661490190047, -0.1980763734312015, 0.4559837761750669))


def coordinates(ra: float, dec: float) -> dict:
    """radec_str (sexagesimal), radec_geojson (ra - 180, dec) and galactic l, b in degrees."""
    h = ra / 15.0
    hh, hm = int(h), int((h - int(h)) * 60)
    hs = ((h - hh) * 60 - hm) * 60
    a = abs(dec)
    dd, dm = int(a), int((a - int(a)) * 60)
    ds = ((a - dd) * 60 - dm) * 60
    r, d = math.radians(ra), math.radians(dec)
    v = (math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d))
    x, y, z = (sum(row[i] * v[i] for i in range(3)) for row in _GAL)
    return {
        "radec_str": [f"{hh:02d}:{hm:02d}:{hs:06.3f}", f"{'-' if dec < 0 else '+'}{dd:02d}:{dm:02d}:{ds:05.2f}"],
        "radec_geojson": {"type": "Point", "coordinates": [ra - 180.0, dec]},
        "l": math.degrees(math.atan2(y, x)) % 360.0,
        "b": math.degrees(math.asin(max(-1.0, min(1.0, z)))),
    }
