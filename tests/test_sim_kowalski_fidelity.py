"""The local Kowalski answers as Kowalski's own code does (skyportal/kowalski at 51d0078; contract
shared/reference/kowalski-api.md), driven by the real penquins 2.4.2 client, on the 36 real ZTF alerts:

1. a wrong password: `401 {"status": "error", "message": "Unauthorized"}` (the login handler's 401
   "wrong credentials" rewritten by error_middleware), which the bot's client reports as refused credentials;
2. a string `limit` (pymongo's TypeError) and a non-admin query on `users` (the Query model's ValidationError)
   are 400s with Kowalski's messages; the Query model's validation errors read `ValidationError: ...`;
3. `ZTF_alerts_aux.fp_hists` as the ingester stores them (None/-99999 dropped, format_fp_hists' fields, kept
   only for objects new at their first alert, merged by later alerts only where present, sorted by jd);
4. `cross_matches` is an empty list per configured catalog;
5. `ZTF_alerts._id` is a Mongo ObjectId (`{"$oid": ...}` on the wire), not the candid.
"""

from __future__ import annotations

import copy
import json
import math
from urllib.parse import urljoin

import pytest
from bson import ObjectId
from penquins import Kowalski

from bot.kowalski import queries as Q
from bot.kowalski.client import KowalskiClient, KowalskiError
from bot.sim.kowalski import KowalskiSim

ADMIN, USER = ("admin", "admin-pw"), ("scanner", "scanner-pw")  # Kowalski's admin is the user "admin"
# shared/reference/kowalski-api.md 3.3 (Kowalski's config.defaults.yaml database.xmatch.ZTF)
XMATCH = {"2MASS_PSC", "AllWISE", "Gaia_DR2", "Gaia_EDR3", "Gaia_DR2_WD", "PS1_STRM", "galaxy_redshifts_20200522",
          "GALEX", "IGAPS_DR2", "LAMOST_DR5_v3", "PS1_DR1", "CLU_20190625", "NED_BetaV3", "milliquas"}
COMPUTED = {"mag", "magerr", "snr", "limmag3sig", "limmag5sig"}
ROOT_ERROR = "ValidationError: 1 validation error for Query\n__root__\n  {} (type=value_error)"


@pytest.fixture(scope="module")
def sim(real_alerts):
    with KowalskiSim(users=dict([ADMIN, USER])) as s:
        assert s.load_alerts(real_alerts) == 36
        yield s


def penquins(sim: KowalskiSim, user=ADMIN) -> Kowalski:
    """A penquins client logged in with a username and password (user=None: with the stand-in's token)."""
    if user is None:
        return Kowalski(protocol="http", host=sim.host, port=sim.port, token=sim.token)
    return Kowalski(protocol="http", host=sim.host, port=sim.port, username=user[0], password=user[1])


def post(k: Kowalski, path: str, body: dict):
    """A POST through penquins' own session and headers, to see the HTTP status penquins hides."""
    inst = k.instances["default"]
    return inst["session"].post(urljoin(inst["base_url"], path), json=body, headers=inst["headers"])


def find(k: Kowalski, catalog: str, filt: dict, projection: dict | None = None, **kwargs) -> dict:
    q = {"catalog": catalog, "filter": filt}
    if projection is not None:
        q["projection"] = projection
    return k.query(query={"query_type": "find", "query": q, "kwargs": kwargs})["default"]


def aux_docs(k: Kowalski) -> dict[str, dict]:
    r = find(k, "ZTF_alerts_aux", {})
    assert r["status"] == "success", r
    return {d["_id"]: d for d in r["data"]}


# ---- 1. a wrong password ---------------------------------------------------------------------------
def test_wrong_password_is_401_unauthorized(sim):
    k = penquins(sim)  # the right password logs in
    r = post(k, "/api/auth", {"username": "admin", "password": "nope", "penquins.__version__": "2.4.2"})
    assert r.status_code == 401 and r.json() == {"status": "error", "message": "Unauthorized"}
    r = post(k, "/api/auth", {"username": "nobody", "password": "nope"})
    assert r.status_code == 401 and r.json() == {"status": "error", "message": "Unauthorized"}
    # 400s pass error_middleware as the handler wrote them
    r = post(k, "/api/auth", {"username": "admin"})
    assert r.status_code == 400 and r.json() == {"status": "error", "message": "missing password"}
    with pytest.raises(ValueError) as ei:
        penquins(sim, ("admin", "nope"))
    assert str(ei.value) == ("Failed to add instance default: Authentication failed for default: "
                             "{'status': 'error', 'message': 'Unauthorized'}")


def test_the_bot_client_says_the_credentials_were_refused(sim):
    def client(password):
        return KowalskiClient(protocol="http", host=sim.host, port=sim.port, username="admin", password=password,
                              timeout_s=5.0, max_time_ms=4000, sleep=lambda s: None)

    with pytest.raises(KowalskiError, match="refused the username/password") as ei:
        client("nope-secret").connect()
    assert not ei.value.transient and "Unauthorized" in str(ei.value) and "nope-secret" not in str(ei.value)
    client(ADMIN[1]).connect().close()


# ---- 2. a string limit, a protected collection, validation errors -----------------------------------
def test_string_limit_is_400_type_error(sim):
    k = penquins(sim)
    body = {"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {}, "projection": {"candid": 1}},
            "kwargs": {"limit": "3"}}
    r = post(k, "/api/queries", body)  # pymongo 4.8 Cursor.__init__ (cursor.py:226) under error_middleware
    assert r.status_code == 400 and r.json() == {"status": "error", "message": "TypeError: limit must be an instance of int"}
    assert k.query(query=body)["default"]["message"] == "TypeError: limit must be an instance of int"
    body["kwargs"] = {"skip": "1", "limit": "x"}  # pymongo checks skip first
    assert k.query(query=body)["default"]["message"] == "TypeError: skip must be an instance of int"
    assert len(find(k, "ZTF_alerts", {}, {"candid": 1}, limit=3)["data"]) == 3  # an int limit is fine
    # count_documents and aggregate never hand kwargs.limit to pymongo (query.py:859-883)
    r = k.query(query={"query_type": "count_documents", "query": {"catalog": "ZTF_alerts", "filter": {}},
                       "kwargs": {"limit": "3"}})["default"]
    assert r["status"] == "success" and r["data"] == 36


def test_users_collection_is_protected_from_non_admins(sim):
    body = {"query_type": "find", "query": {"catalog": "users", "filter": {}}}
    user = penquins(sim, USER)
    assert "users" not in user.instances["default"]["catalogs"]  # catalog_names leaves system collections out
    with pytest.raises(ValueError, match="not available"):
        user.query(query=body)  # so penquins refuses it client-side; api() sends it as it is
    assert user.api("post", "api/queries", data=body) == {"status": "error", "message": ROOT_ERROR.format("Protected collection")}
    r = post(user, "/api/queries", body)
    assert r.status_code == 400 and r.json()["message"] == ROOT_ERROR.format("Protected collection")
    for q in ({"query_type": "count_documents", "query": {"catalog": " filters ", "filter": {}}},
              {"query_type": "aggregate", "query": {"catalog": "queries", "pipeline": [{"$match": {}}]}}):
        assert user.api("post", "api/queries", data=q)["message"] == ROOT_ERROR.format("Protected collection")
    assert find(user, "ZTF_alerts", {"candid": {"$lt": 0}})["status"] == "success"  # other catalogs are fine
    admin = penquins(sim, ADMIN)  # the admin may (is_admin, handlers/base.py)
    assert admin.api("post", "api/queries", data=body)["status"] == "success"


def test_query_model_errors_read_validation_error(sim):
    k = penquins(sim)

    def message(query_type, **q):
        return k.query(query={"query_type": query_type, "query": {"catalog": "ZTF_alerts", **q}})["default"]["message"]

    assert message("find") == ROOT_ERROR.format("Unsupported filter specification")
    assert message("find_one", filter=5) == ROOT_ERROR.format("Unsupported filter specification")
    assert message("count_documents", filter=[1]) == ROOT_ERROR.format("Unsupported filter specification")
    assert message("find", filter={}, projection=3) == ROOT_ERROR.format("Unsupported projection specification")
    assert message("aggregate", pipeline=[]) == ROOT_ERROR.format("Pipeline must contain at least one stage")
    assert message("aggregate", pipeline=5) == ROOT_ERROR.format("Unsupported pipeline specification")
    assert message("aggregate", pipeline=[{"$match": {}}, {"$out": "x"}]) == \
        ROOT_ERROR.format("Pipeline uses forbidden stages: {'$out'}")
    r = post(k, "/api/queries", {"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {}}, "kwargs": [1]})
    assert r.status_code == 400 and r.json()["message"] == (  # (penquins itself chokes on such kwargs)
        "ValidationError: 2 validation errors for Query\nkwargs\n  value is not a valid dict (type=type_error.dict)\n"
        "__root__\n  'NoneType' object does not support item assignment (type=type_error)")
    # what pydantic does not catch comes through as it is, as on Kowalski
    r = post(k, "/api/queries", {"query_type": "nope", "query": {}})
    assert r.status_code == 400 and r.json()["message"].startswith('KeyError: "query_type nope not in (\'cone_search\'')
    r = k.query(query={"query_type": "info", "query": {"command": "nope"}})["default"]
    assert r["message"].startswith('KeyError: "command nope not in (\'catalog_names\'')
    # and a valid query still runs
    assert find(k, "ZTF_alerts", {"candid": {"$lt": 0}})["data"] == []


# ---- 3. fp_hists -----------------------------------------------------------------------------------
def expected_fp_hists(alert: dict) -> list[dict]:
    """Kowalski's ingestion of one packet's fp_hists, written out here from alert_broker_ztf.py:121-133 and
    format_fp_hists/flux_to_mag (alert_broker_ztf.py:579-638), independently of the stand-in's code."""
    out = []
    for fp in sorted(alert["fp_hists"], key=lambda f: f["jd"]):
        e = {k: v for k, v in fp.items() if v is not None and v != -99999}
        if out and out[-1]["jd"] == e["jd"]:
            continue
        flux, unc, zp = e.get("forcediffimflux"), e.get("forcediffimfluxunc"), e["magzpsci"]
        if flux is not None and unc is not None:
            e.update(snr=flux / unc, magerr=1.0857 * unc / flux, limmag3sig=zp - 2.5 * math.log10(3 * unc),
                     limmag5sig=zp - 2.5 * math.log10(5 * unc))
            if flux > 0:
                e["mag"] = zp - 2.5 * math.log10(flux)
        c = alert["candidate"]
        e.update(alert_mag=c["magpsf"], alert_ra=c["ra"], alert_dec=c["dec"])
        out.append(e)
    return out


def first_alert(alerts: list[dict]) -> dict:
    return min(alerts, key=lambda a: (a["candidate"]["jd"], a["candid"]))


def kept(candidate: dict) -> bool:  # alert_broker_ztf.py:160-171
    return candidate["ndethist"] <= 1 or candidate["jd"] - candidate["jdstarthist"] < 30


def assert_fp_hists_equal(got: list[dict], want: list[dict]) -> None:
    assert [f["jd"] for f in got] == [f["jd"] for f in want]
    for g, w in zip(got, want):
        assert set(g) == set(w)
        for key, value in w.items():
            assert g[key] == (pytest.approx(value, rel=1e-12) if key in COMPUTED else value), key


def test_fp_hists_as_kowalski_stores_them(sim, real_alerts):
    docs = aux_docs(penquins(sim))
    by_object: dict[str, list[dict]] = {}
    for a in real_alerts:
        by_object.setdefault(a["objectId"], []).append(a)
    assert len(docs) == len(by_object) == 35
    with_fp = {oid for oid, d in docs.items() if "fp_hists" in d}
    assert len(with_fp) == 23  # measured: 15 schema-4.01 objects new at their alert (9-21 entries each) and
    # 8 schema-3.3 objects first detected < 30 days before (their packets carry no fp_hists: an empty list)
    assert sum(1 for oid in with_fp if docs[oid]["fp_hists"]) == 15
    assert with_fp == {oid for oid, alerts in by_object.items() if kept(first_alert(alerts)["candidate"])}
    assert "ZTF17aadcuwj" not in with_fp  # 21 fp_hists in the packet, but ndethist 894, first seen 2186 d before
    n_flux = n_negative = 0
    for oid in with_fp:
        alerts = by_object[oid]
        assert len(alerts) == 1 or all(not a.get("fp_hists") for a in alerts)  # the samples: nothing to merge
        first = first_alert(alerts)
        want = expected_fp_hists(first) if first.get("fp_hists") else []
        got = docs[oid]["fp_hists"]
        assert_fp_hists_equal(got, want)
        for fp in got:
            assert -99999 not in fp.values() and None not in fp.values()
            n_flux += "snr" in fp
            n_negative += "snr" in fp and "mag" not in fp
            assert "mag" not in fp or fp["snr"] > 0
    assert n_flux > 0 and n_negative > 0  # both kinds occur in the samples
    # the bot's poller projects aux prv_candidates only: fp_hists are never fetched
    r = k_query(sim, Q.history_aux(sorted(with_fp), max_time_ms=4000))
    assert r and all(set(d) == {"_id", "prv_candidates"} for d in r)


def k_query(sim, body: dict) -> list:
    r = penquins(sim).query(query=body)["default"]
    assert r["status"] == "success", r
    return r["data"]


def later(alert: dict, dt: float, dmag: float, fp_hists: list[dict], candid_offset: int = 1) -> dict:
    a = copy.deepcopy(alert)
    a["candid"] += candid_offset
    a["candidate"]["candid"] = a["candid"]
    a["candidate"]["jd"] += dt
    a["candidate"]["magpsf"] += dmag
    a["candidate"]["ndethist"] += 1
    a["fp_hists"] = copy.deepcopy(fp_hists)
    return a


def test_later_alerts_merge_fp_hists_only_where_stored(real_alerts):
    new = next(a for a in real_alerts if a["objectId"] == "ZTF23abjjnqm")  # ndethist 1: kept
    old = next(a for a in real_alerts if a["objectId"] == "ZTF17aadcuwj")  # ndethist 894: not kept
    fps = sorted(new["fp_hists"], key=lambda f: f["jd"])
    assert len(fps) == 21
    extra = [dict(fps[-1], jd=fps[-1]["jd"] + 1 + i, forcediffimflux=100.0 + i) for i in range(2)]
    brighter = later(new, 1.0, -0.5, fps[-10:] + extra)  # brighter alert: its entries win on shared jds
    fainter = later(new, 2.0, +0.5, fps[:5], candid_offset=2)  # fainter: changes nothing
    with KowalskiSim() as s:
        s.load_alerts([new, old, brighter, fainter, later(old, 1.0, 0.0, old["fp_hists"])])
        docs = aux_docs(penquins(s, None))
    got = docs["ZTF23abjjnqm"]["fp_hists"]
    assert len(got) == 23 and [f["jd"] for f in got] == sorted(f["jd"] for f in got)
    from_brighter = expected_fp_hists(brighter)
    want = expected_fp_hists(new)[:11] + from_brighter  # the 10 shared jds now carry the brighter alert's
    assert_fp_hists_equal(got, want)
    assert {f["alert_mag"] for f in got[11:]} == {brighter["candidate"]["magpsf"]}
    assert "fp_hists" not in docs["ZTF17aadcuwj"]


@pytest.mark.parametrize("age, stored", [(29.0, True), (40.0, False)])
def test_fp_hists_kept_only_for_objects_first_seen_under_30_days(real_alerts, age, stored):
    a = copy.deepcopy(next(a for a in real_alerts if a["objectId"] == "ZTF23abjjnqm"))
    a["candidate"]["ndethist"] = 5
    a["candidate"]["jdstarthist"] = a["candidate"]["jd"] - age
    with KowalskiSim() as s:
        s.load_alerts([a])
        doc = aux_docs(penquins(s, None))["ZTF23abjjnqm"]
    assert ("fp_hists" in doc) is stored
    if stored:
        assert_fp_hists_equal(doc["fp_hists"], expected_fp_hists(a))


# ---- 4. cross_matches ------------------------------------------------------------------------------
def test_cross_matches_are_an_empty_list_per_catalog(sim):
    docs = aux_docs(penquins(sim))
    assert len(docs) == 35
    for doc in docs.values():
        assert set(doc["cross_matches"]) == XMATCH and len(doc["cross_matches"]) == 14
        assert all(v == [] for v in doc["cross_matches"].values())
    # Fritz-style projection of one catalog works on it
    r = find(penquins(sim), "ZTF_alerts_aux", {"_id": "ZTF20aajcdad"}, {"_id": 0, "cross_matches.CLU_20190625": 1})
    assert r["data"] == [{"cross_matches": {"CLU_20190625": []}}]


# ---- 5. _id ----------------------------------------------------------------------------------------
def test_alert_id_is_an_objectid(sim, real_alerts):
    k = penquins(sim)
    data = find(k, "ZTF_alerts", {}, {"candid": 1})["data"]
    assert len(data) == 36
    assert all(type(d["_id"]) is ObjectId for d in data) and len({d["_id"] for d in data}) == 36
    assert {d["candid"] for d in data} == {a["candid"] for a in real_alerts}
    one = real_alerts[3]
    r = k.query(query={"query_type": "find_one", "query": {"catalog": "ZTF_alerts", "filter": {"candid": one["candid"]}}})
    assert isinstance(r["default"]["data"]["_id"], ObjectId) and r["default"]["data"]["candid"] == one["candid"]
    assert find(k, "ZTF_alerts", {"_id": one["candid"]})["data"] == []  # the candid is not the _id
    # on the wire: relaxed extended JSON, {"$oid": "<24 hex>"}
    raw = post(k, "/api/queries", {"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"candid": one["candid"]},
                                                                   "projection": {"candid": 1}}})
    (doc,) = json.loads(raw.text)["data"]
    assert set(doc["_id"]) == {"$oid"} and len(doc["_id"]["$oid"]) == 24 and doc["candid"] == one["candid"]
    # the aux _id stays the objectId
    assert set(aux_docs(k)) == {a["objectId"] for a in real_alerts}
