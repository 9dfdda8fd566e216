"""The local Kowalski stand-in, exercised with the real penquins client and real ZTF alert packets."""

from __future__ import annotations

import gzip
import io
import math
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import requests
from penquins import Kowalski

from bot.alert_files import iter_alert_files
from bot.sim.clock import SimClock, jd_to_datetime, parse_time
from bot.sim.kowalski import KowalskiSim

REPO = Path(__file__).resolve().parents[1]
ALERT_DIR = Path(__file__).resolve().parents[2] / "shared" / "alerts" / "ztf"
CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
NO_CUTOUTS = {"_id": 0, **{c: 0 for c in CUTOUTS}}



@pytest.fixture(scope="module", autouse=True)
def _reference_alerts():
    """Missing reference data fails these tests (as conftest does), never skips them silently."""
    if not ALERT_DIR.is_dir():
        pytest.fail(f"reference data missing: {ALERT_DIR} (tests read ../shared from the repository root)")


@pytest.fixture(scope="module")
def packets() -> list[dict]:
    return [a for f in iter_alert_files([ALERT_DIR]) for a in f.alerts]


@pytest.fixture(scope="module")
def sim(packets):
    with KowalskiSim() as s:
        assert s.load_paths([ALERT_DIR]) == len(packets) == 36
        yield s


@pytest.fixture(scope="module")
def k(sim) -> Kowalski:
    return client(sim)


@pytest.fixture
def faults(sim):
    yield sim.faults
    sim.faults.clear()
    sim.faults.retry_after_s, sim.faults.hang_s = 1.0, 30.0


def client(sim: KowalskiSim, **kw) -> Kowalski:
    kw.setdefault("token", sim.token)
    return Kowalski(protocol="http", host=sim.host, port=sim.port, **kw)


def query(k: Kowalski, query_type: str, kwargs: dict | None = None, **q) -> dict:
    body = {"query_type": query_type, "query": q}
    if kwargs is not None:
        body["kwargs"] = kwargs
    return k.query(query=body)["default"]


def post(sim, path, body=None, token=None, method="POST", **kw):
    headers = {"Authorization": token} if token else {}
    return requests.request(method, sim.url + path, json=body, headers=headers, timeout=5, **kw)


# ---- basics -----------------------------------------------------------------------------------------
def test_ping_and_catalogs(sim, k):
    assert k.ping() is True
    assert {"ZTF_alerts", "ZTF_alerts_aux"} <= set(k.instances["default"]["catalogs"])
    r = post(sim, "/", token=f"Bearer {sim.token}", method="GET")
    assert r.status_code == 200 and r.json() == {"status": "success", "message": "greetings from Kowalski!"}


def test_login_with_username_password(sim):
    k = client(sim, token=None, username="admin", password="admin")
    assert k.ping() and k.instances["default"]["token"].count(".") == 2  # an HS256 JWT
    with pytest.raises(ValueError, match="Unauthorized"):  # Kowalski's 401 "wrong credentials" after error_middleware
        client(sim, token=None, username="admin", password="nope")
    r = post(sim, "/api/auth", {"username": "admin", "password": "admin", "penquins.__version__": "1.0.0"})
    assert r.status_code == 400 and r.json()["message"] == "unsupported version of penquins: 1.0.0"
    assert post(sim, "/api/auth", {"username": "admin"}).json() == {"status": "error", "message": "missing password"}


def test_jd_window_find_excludes_cutouts(k, packets):
    lo, hi = 2458881.0, 2458883.0
    expected = {a["candid"] for a in packets if lo <= a["candidate"]["jd"] < hi and a["candidate"]["programid"] in (1, 2)}
    assert 0 < len(expected) < len(packets)
    r = query(k, "find", catalog="ZTF_alerts",
              filter={"candidate.jd": {"$gte": lo, "$lt": hi}, "candidate.programid": {"$in": [1, 2]}},
              projection=NO_CUTOUTS, kwargs={"max_time_ms": 10000, "limit": 10000, "sort": [["candidate.jd", 1]]})
    assert r["status"] == "success", r
    data = r["data"]
    assert {d["candid"] for d in data} == expected and len(data) == len(expected)
    assert all(isinstance(d["candid"], int) and d["candid"] > 2**53 for d in data)
    jds = [d["candidate"]["jd"] for d in data]
    assert jds == sorted(jds)
    for d in data:
        assert not set(d) & {*CUTOUTS, "_id", "prv_candidates", "fp_hists"}
        assert d["coordinates"]["radec_geojson"]["coordinates"] == [d["candidate"]["ra"] - 180, d["candidate"]["dec"]]
    assert query(k, "count_documents", catalog="ZTF_alerts", filter={"candidate.jd": {"$gte": lo, "$lt": hi}})[
        "data"] == len(expected)
    assert query(k, "estimated_document_count", catalog="ZTF_alerts")["data"] == len(packets)


def test_unknown_catalog_and_empty_results(sim, k):
    # a catalog penquins does not know about is refused client-side; the server answers [] for it
    with pytest.raises(ValueError, match="not available"):
        query(k, "find", catalog="NOT_A_CATALOG", filter={})
    r = post(sim, "/api/queries", {"query_type": "find", "query": {"catalog": "NOPE", "filter": {}}}, sim.token)
    assert r.json()["data"] == []
    assert query(k, "find", catalog="ZTF_alerts", filter={"candid": {"$lt": 0}}, kwargs={"limit": 1})["data"] == []


def test_cutouts_by_candid_are_63x63_fits(k, packets):
    from astropy.io import fits

    candids = [packets[0]["candid"], packets[15]["candid"], packets[-1]["candid"]]
    r = query(k, "find", catalog="ZTF_alerts", filter={"candid": {"$in": candids}},
              projection={"_id": 0, "candid": 1, "objectId": 1, **{c: 1 for c in CUTOUTS}})
    assert sorted(d["candid"] for d in r["data"]) == sorted(candids)
    for d in r["data"]:
        for c in CUTOUTS:
            raw = d[c]["stampData"]
            assert isinstance(raw, bytes) and raw[:2] == b"\x1f\x8b"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = fits.getheader(io.BytesIO(gzip.decompress(raw)))
            assert (header["NAXIS1"], header["NAXIS2"]) == (63, 63)


def test_aux_history_is_merged_and_deduplicated(k, packets):
    oid = "ZTF20aajcdad"  # two alerts in the samples
    mine = [a for a in packets if a["objectId"] == oid]
    assert len(mine) == 2
    expected = {(p["jd"], p["fid"]) for a in mine for p in a["prv_candidates"] or []}
    r = query(k, "find", catalog="ZTF_alerts_aux", filter={"_id": oid})
    (aux,) = r["data"]
    assert all(v == [] for v in aux["cross_matches"].values()) and aux["fp_hists"] == []  # 3.3: no forced photometry
    keys = [(p["jd"], p["fid"]) for p in aux["prv_candidates"]]
    assert len(keys) == len(set(keys)) and set(keys) == expected
    assert all(None not in p.values() for p in aux["prv_candidates"])
    assert any("magpsf" not in p for p in aux["prv_candidates"])  # non-detections lose their null fields
    # BTSbot-style projection
    r = query(k, "find", catalog="ZTF_alerts_aux", filter={"_id": oid},
              projection={"_id": 0, "prv_candidates.jd": 1, "prv_candidates.magpsf": 1})
    assert set().union(*(p.keys() for p in r["data"][0]["prv_candidates"])) == {"jd", "magpsf"}
    # every object has an aux document
    assert query(k, "count_documents", catalog="ZTF_alerts_aux", filter={})["data"] == len({a["objectId"] for a in packets})


def test_aggregate(k, packets):
    pipeline = [{"$match": {"candidate.jd": {"$gt": 2458870}}},
                {"$project": {"_id": 0, "candid": 1, "objectId": 1, "jd": "$candidate.jd", "magpsf": "$candidate.magpsf"}},
                {"$sort": {"magpsf": 1}}, {"$skip": 1}, {"$limit": 5}]
    r = query(k, "aggregate", catalog="ZTF_alerts", pipeline=pipeline, kwargs={"max_time_ms": 2000})
    expected = sorted((a for a in packets if a["candidate"]["jd"] > 2458870), key=lambda a: a["candidate"]["magpsf"])
    assert [d["candid"] for d in r["data"]] == [a["candid"] for a in expected[1:6]]
    assert set(r["data"][0]) == {"candid", "objectId", "jd", "magpsf"}
    # Fritz's permission-aware $filter on the aux history
    r = query(k, "aggregate", catalog="ZTF_alerts_aux", pipeline=[
        {"$match": {"_id": "ZTF20aajcdad"}},
        {"$project": {"_id": 1, "prv_candidates": {"$filter": {
            "input": "$prv_candidates", "as": "item", "cond": {"$in": ["$$item.programid", [1]]}}}}}])
    assert r["data"][0]["prv_candidates"] and all(p["programid"] == 1 for p in r["data"][0]["prv_candidates"])


def test_batch_query_matched_by_candid(k, packets):
    candids = [a["candid"] for a in packets[:6]]
    queries = [{"query_type": "find", "query": {"catalog": "ZTF_alerts", "filter": {"candid": c},
                                                 "projection": {"_id": 0, "candid": 1, "objectId": 1}}}
               for c in candids]
    r = k.query(queries=queries, use_batch_query=True, max_n_threads=4)["default"]
    assert isinstance(r, list) and len(r) == len(candids)
    by_candid = {resp["data"][0]["candid"]: resp["data"][0]["objectId"] for resp in r}
    assert by_candid == {a["candid"]: a["objectId"] for a in packets[:6]}


def test_find_one(k, packets):
    r = query(k, "find_one", catalog="ZTF_alerts", filter={"candid": 1})
    assert r["status"] == "success" and "data" not in r
    r = query(k, "find_one", catalog="ZTF_alerts", filter={"candid": packets[3]["candid"]}, projection={"candid": 1})
    assert r["data"]["candid"] == packets[3]["candid"] and isinstance(r["data"]["cutoutScience"]["stampData"], bytes)
    assert type(r["data"]["_id"]).__name__ == "ObjectId"


# ---- errors -----------------------------------------------------------------------------------------
def test_bad_and_missing_token(sim):
    bad = client(sim, token="not-a-token")
    assert bad.instances["default"]["catalogs"] == [] and bad.ping() is False
    with pytest.raises(ValueError, match="not available"):
        query(bad, "find", catalog="ZTF_alerts", filter={})
    body = {"query_type": "info", "query": {"command": "catalog_names"}}
    r = post(sim, "/api/queries", body)
    assert r.status_code == 401 and r.json() == {"status": "error", "message": "Unauthorized"}
    r = post(sim, "/api/queries", body, token="Bearer nope")
    assert r.status_code == 400 and r.json() == {"status": "error", "message": "token is invalid"}
    assert post(sim, "/api/nowhere", body, token="nope").status_code == 400


def test_http_errors(sim):
    r = post(sim, "/api/nowhere", {}, sim.token)
    assert r.status_code == 404 and r.json() == {"status": "error", "message": "Not Found"}
    r = post(sim, "/api/queries", {}, sim.token, method="PUT")
    assert r.status_code == 405 and r.headers["Content-Type"].startswith("text/plain")
    r = requests.post(sim.url + "/api/queries", data=b"x" * (1024**2 + 10), timeout=5,
                      headers={"Authorization": sim.token, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.headers["Content-Type"].startswith("text/plain")
    assert post(sim, "/", token=sim.token, method="GET").status_code == 200  # server still fine


def test_bad_queries_are_400(sim, k):
    r = post(sim, "/api/queries", {"query_type": "nope", "query": {}}, sim.token)
    assert r.status_code == 400 and r.json()["message"].startswith("KeyError: ")
    r = query(k, "find", catalog="ZTF_alerts", filter={}, projection={"candid": 1, "cutoutScience": 0})
    assert r["status"] == "error" and r["message"].startswith("OperationFailure: ")
    r = query(k, "find", catalog="ZTF_alerts")
    assert r == {"status": "error", "message": "ValidationError: 1 validation error for Query\n__root__\n"
                                               "  Unsupported filter specification (type=value_error)"}
    r = query(k, "aggregate", catalog="ZTF_alerts", pipeline=[{"$out": "x"}])
    assert r["status"] == "error" and r["message"].startswith("ValidationError: ")


# ---- clock ------------------------------------------------------------------------------------------
def test_clock():
    c = SimClock()
    assert c.now_jd() == math.inf
    c = SimClock(start_jd=2460000.0, speed=0)
    assert c.now_jd() == 2460000.0 and c.advance(0.5) == 2460000.5
    c.speed = 86400 * 10  # ten days per second
    time.sleep(0.05)
    assert 2460000.9 < c.now_jd() < 2460010
    assert parse_time("2023-10-12T12:00:00Z") == 2460230.0 and parse_time("2460230.5") == 2460230.5
    assert jd_to_datetime(2460230.0).isoformat() == "2023-10-12T12:00:00+00:00"


def test_clock_visibility(packets):
    alert = packets[0]
    jd = alert["candidate"]["jd"]
    clock = SimClock(start_jd=jd - 1, speed=0)
    with KowalskiSim(clock=clock) as s:
        s.load_alerts([alert])
        s.load_alerts([packets[1]], visible_at=[jd + 10])  # ingested late, whatever its exposure jd
        k = client(s)
        count = lambda cat: query(k, "count_documents", catalog=cat, filter={})["data"]  # noqa: E731
        assert count("ZTF_alerts") == 0 and count("ZTF_alerts_aux") == 0
        clock.set(jd)
        assert count("ZTF_alerts") == 1 and count("ZTF_alerts_aux") == 1
        clock.advance(10)
        assert count("ZTF_alerts") == 2 and s.staged_count == 0


# ---- faults -----------------------------------------------------------------------------------------
def test_fault_500_then_success(sim, faults):
    k = client(sim, max_retries=2, backoff_factor=0.01)
    sim.reset_counts()
    faults.push("500", match="POST /api/queries")
    r = query(k, "count_documents", catalog="ZTF_alerts", filter={})
    assert r["data"] == 36 and sim.request_count == 2 and faults.pending() == 0
    faults.push("500", "503", "500", match="POST /api/queries")
    with pytest.raises(requests.exceptions.RetryError):
        query(k, "count_documents", catalog="ZTF_alerts", filter={})


def test_fault_429_html_latency_and_timeouts(sim, faults):
    k = client(sim, max_retries=2, backoff_factor=0.01, timeout=0.5)
    faults.retry_after_s, faults.hang_s = 0, 1.0
    faults.push("429")
    r = post(sim, "/", token=sim.token, method="GET")
    assert r.status_code == 429 and r.headers["Retry-After"] == "0"
    faults.push("429", "html:502", match="POST /api/queries")
    assert query(k, "count_documents", catalog="ZTF_alerts", filter={})["data"] == 36
    faults.push("html")
    r = post(sim, "/", token=sim.token, method="GET")
    assert r.status_code == 502 and "<html>" in r.text
    faults.push("timeout_after", match="POST /api/queries")  # processed, answer too late, retried
    sim.reset_counts()
    assert query(k, "count_documents", catalog="ZTF_alerts", filter={})["data"] == 36
    assert sim.request_count == 2
    faults.latency_s = 0.2
    t0 = time.monotonic()
    assert k.ping()
    assert time.monotonic() - t0 >= 0.2


# ---- CLI --------------------------------------------------------------------------------------------
def test_cli_ready_line_and_sigterm():
    code = ("import argparse, sys; from bot.sim.kowalski import register_cli; p = argparse.ArgumentParser(); "
            "register_cli(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")
    proc = subprocess.Popen([sys.executable, "-c", code, "kowalski", "--alerts", str(ALERT_DIR), "--port", "0",
                             "--start", "2023-10-13", "--speed", "0", "--latency-ms", "1"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"kowalski sim ready on (http://127\.0\.0\.1:\d+) token=(\S+) alerts=36\n", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        host, port = m.group(1).rsplit("//", 1)[1].split(":")
        k = Kowalski(token=m.group(2), protocol="http", host=host, port=int(port))
        assert k.ping()
        # 2023-10-13 00:00: the 2020 alerts and the 2023-10-12 night are visible
        assert query(k, "count_documents", catalog="ZTF_alerts", filter={})["data"] == 36
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_help_says_loopback_test_tool():
    import argparse

    from bot.sim.kowalski import register_cli

    p = argparse.ArgumentParser()
    sub = register_cli(p.add_subparsers())
    text = sub.format_help()
    assert "test/demo tool" in text and "loopback" in text
    args = p.parse_args(["kowalski", "--alerts", "x.avro"])
    assert (args.host, args.port, args.func.__name__) == ("127.0.0.1", 4000, "run_cli")


# ---- the stand-ins stay out of the daemon's way --------------------------------------------------------
STANDIN_CHECK = """
import importlib, json, pkgutil, sys
import bot, bot.cli
bot.cli.build_parser()
# every module of `btsbot run` / `btsbot score` (all of bot/ except the stand-ins and the demo that drives them)
def walk(path, prefix):  # pkgutil.walk_packages would import bot.sim to look inside it
    for m in pkgutil.iter_modules(path, prefix):
        if m.name in ("bot.sim", "bot.demo", "bot.__main__"):
            continue
        mod = importlib.import_module(m.name)
        if m.ispkg:
            walk(mod.__path__, m.name + ".")
walk(bot.__path__, "bot.")
print(json.dumps(sorted(m for m in sys.modules if m == "bot.sim" or m.startswith(("bot.sim.", "mongomock")))))
"""


def test_run_and_score_do_not_import_the_stand_ins():
    import json

    out = subprocess.run([sys.executable, "-c", STANDIN_CHECK], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []
    # and the check can fail: the stand-in's own package does load them
    probe = STANDIN_CHECK.replace("bot.cli.build_parser()", "import bot.sim.kowalski")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "mongomock" in out.stdout and "bot.sim.kowalski" in out.stdout


def test_btsbot_sim_kowalski_parses_without_loading_it():
    from bot.cli import build_parser

    args = build_parser().parse_args(["sim", "kowalski", "--alerts", str(ALERT_DIR), "--port", "0"])
    assert args.func.__name__ == "run_cli" and args.port == 0 and args.latency_ms == 0.0
