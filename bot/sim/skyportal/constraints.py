"""The constraints of POST /api/followup_request in the SkyPortal stand-in (not_if_duplicates,
source_group_ids, ignore_source_group_ids, not_if_classified, not_if_spectra_exist, not_if_tns_classified,
not_if_tns_reported): a constraint that holds skips the request (HTTP 200 `ignored: true`).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from bot.sim.skyportal.context import Ctx, parse_date
from bot.sim.skyportal.errors import Fail
from bot.sim.skyportal.schema import loads
from bot.sim.skyportal.visibility import visible_request


def check_constraints(ctx: Ctx, data: dict, c: dict) -> None:
    """post_followup_request constraints; a skip raises Fail('... not submitting request ...')."""
    st = ctx.store
    acc = set(ctx.accessible())

    def visible_sources(where: str, params: list) -> list:
        return [s for s in st.q(f"SELECT * FROM sources WHERE {where}", params)
                if ctx.admin or s["group_id"] in acc]

    obj_id = data["obj_id"]
    if len(c.get("source_group_ids") or []) > 0:
        gids = c["source_group_ids"]
        marks = ",".join("?" * len(gids))
        found = visible_sources(f"obj_id = ? AND active = 1 AND group_id IN ({marks})", [obj_id, *gids])
        if len(found) != len(gids):
            raise Fail("There is no source for one or more of the source_group_ids specified as a constraint,"
                       " not submitting request.")
    radius = c.get("radius", 0.5) / 3600
    obj = st.obj(obj_id)
    if obj is None:
        raise Fail(f"Could not find source with ID {obj_id}.")
    near = st.objs_within(obj["ra"], obj["dec"], radius)
    near_ids = [o["id"] for o in near]
    if c.get("not_if_duplicates", False):
        alloc_ids = set([data["allocation_id"]] + [int(i) for i in c.get("ignore_allocation_ids") or []])
        for r in st.q("SELECT * FROM followup_requests ORDER BY id"):
            s = r["status"].lower()
            if (r["allocation_id"] in alloc_ids and ("submitted" in s or "completed" in s)
                    and r["obj_id"] in near_ids and visible_request(ctx, r)):
                if r["allocation_id"] == data["allocation_id"]:
                    raise Fail("There is already a follow-up request for this source and allocation, not "
                               "submitting request.")
                raise Fail("There is already a follow-up request for this source and one of the "
                           "ignore_allocation_ids, not submitting request.")
    if len(c.get("ignore_source_group_ids") or []) > 0:
        gids = c["ignore_source_group_ids"]
        for oid in near_ids:
            marks = ",".join("?" * len(gids))
            if visible_sources(f"obj_id = ? AND active = 1 AND group_id IN ({marks})", [oid, *gids]):
                raise Fail("There is a source for one or more of the ignore_source_group_ids specified as a "
                           "constraint, not submitting request.")
    # a non-ML Classification within the radius (SP handlers/api/followup_request.py:598-611)
    if c.get("not_if_classified", False) and any(not cl["ml"] for oid in near_ids for cl in st.classifications(oid)):
        raise Fail("Source has already been classified, not submitting request (as per constraint).")
    if c.get("not_if_spectra_exist", False) and any((st.flags(oid) or {"spectra": 0})["spectra"]
                                                      for oid in near_ids):
        raise Fail("Source has already been observed spectroscopically, not submitting request (as per "
                   "constraint).")
    if c.get("not_if_tns_classified", False) and any((o["tns_name"] or "").startswith("SN") for o in near):
        raise Fail(f"Source within {radius} arcsec has already been classified in TNS, not submitting "
                   "request (as per constraint).")
    hours = c.get("not_if_tns_reported")
    if isinstance(hours, (int, float)) and not isinstance(hours, bool):
        for o in near:
            info = loads(o["data"]).get("tns_info")
            if not o["tns_name"] or not info:
                continue
            try:
                if isinstance(info, str):
                    info = json.loads(info)
                phot = info.get("photometry", [])
                if phot and all(isinstance(p, dict) and isinstance(p.get("jd"), (int, float, str)) for p in phot):
                    jd = max(float(p["jd"]) for p in phot)
                    when = datetime(1858, 11, 17) + timedelta(days=jd - 2400000.5)
                else:
                    when = parse_date(str(info.get("discoverydate")))
            except Exception:
                continue
            delta = (datetime.utcnow() - when).total_seconds() / 3600
            if delta > float(hours):
                raise Fail(f"A Source within {radius} arcsec ({o['id']}) has already been reported to TNS "
                           f"{delta} hours ago, not submitting request (as per constraint).")
