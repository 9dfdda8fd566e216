"""A busy synthesized night from the real ZTF packets, for the benchmarks and the tests that need one.

`busy_night(n, alert_dir)`: n alerts that pass the pre-filter (positive, programid 1, magpsf < 19) over
~n/6.5 new objects, 6-7 alerts each, each a copy of one of the real packets (its cutouts and candidate
fields) moved to the night starting at `NIGHT_JD`; candids consistent with their jd as ZTF's are (what
BOOM's `_id`-bounded scan relies on); each alert's prv_candidates = the base packet's history, shifted to
end the night before, plus the object's earlier alerts of the night. Deterministic for a seed.
"""

from __future__ import annotations

import math
import random
import string
from pathlib import Path

NIGHT_JD = 2460600.65  # the synthesized night starts here
CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
ZTF_NID0 = 2457754.5  # a ZTF candid / 1e15 is within 1e-5 day of jd - ZTF_NID0 (bot.boom.poller)


def ztf_candid(jd: float, seq: int) -> int:
    """A candid consistent with its jd as ZTF's are."""
    return math.floor((jd - ZTF_NID0) * 1e6) * 10**9 + seq


def busy_night(n_alerts: int, alert_dir: str | Path, seed: int = 1) -> list[dict]:
    """n_alerts passing alerts over ~n_alerts/6.5 objects (see the module docstring)."""
    from bot.alert_files import iter_alert_files

    rng = random.Random(seed)
    packets = [a for f in iter_alert_files([Path(alert_dir)]) for a in f.alerts]
    if not packets:
        raise ValueError(f"no alert packets in {alert_dir}")
    alerts: list[dict] = []
    obj = 0
    while len(alerts) < n_alerts:
        base = packets[obj % len(packets)]
        oid = "ZTF24" + "".join(rng.choice(string.ascii_lowercase) for _ in range(7))
        n = min(rng.choice((6, 7)), n_alerts - len(alerts))
        shift = NIGHT_JD - base["candidate"]["jd"]
        history = []
        for p in base["prv_candidates"] or []:
            h = dict(p)
            h["jd"] = p["jd"] + shift - 1.0  # the base packet's history, ending the night before
            if h.get("candid") is not None:
                h["candid"] = ztf_candid(h["jd"], 5 * 10**8 + len(alerts) * 100 + len(history))
            history.append(h)
        for k in range(n):
            c = dict(base["candidate"])
            c["jd"] = NIGHT_JD + 0.04 * k + rng.random() * 0.03
            c["candid"] = ztf_candid(c["jd"], len(alerts))
            c["isdiffpos"], c["programid"] = "t", 1
            c["magpsf"] = 16.0 + rng.random() * 2.9
            c["fid"] = 1 + k % 2
            alert = {"schemavsn": base["schemavsn"], "publisher": base["publisher"], "objectId": oid,
                     "candid": c["candid"], "candidate": c, "prv_candidates": list(history),
                     **{name: dict(base[name]) for name in CUTOUTS}}
            alerts.append(alert)
            history.append({k2: v for k2, v in c.items() if k2 in (base["prv_candidates"] or [c])[0]})
        obj += 1
    return alerts
