"""The local BOOM answers as BOOM's API does (its auth, envelopes, errors and documents), driven over HTTP."""

from __future__ import annotations

import pytest
import requests

from bot.boom import documents as B
from bot.sim.boom.server import BoomSim


@pytest.fixture(scope="module")
def boom(real_alerts):
    with BoomSim(users={"bot": "secret"}) as sim:
        sim.load_alerts(real_alerts)
        yield sim


@pytest.fixture(scope="module")
def session(boom):
    s = requests.Session()
    r = s.post(f"{boom.url}/auth", data={"username": "bot", "password": "secret"})
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer" and r.json()["expires_in"] == 604800
    assert r.headers["Cache-Control"] == "no-store"
    s.headers["Authorization"] = "Bearer " + r.json()["access_token"]
    yield s
    s.close()


def test_auth_is_form_encoded_and_errors_are_boom_shaped(boom):
    assert requests.post(f"{boom.url}/auth", json={"username": "bot", "password": "secret"}).status_code == 415
    wrong = requests.post(f"{boom.url}/auth", data={"username": "bot", "password": "nope"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid_client",
                                                         "error_description": "Invalid username or password"}
    assert requests.get(f"{boom.url}/").json() == {"status": "success", "message": "Greetings from BOOM!"}
    find = f"{boom.url}/queries/find"
    assert requests.post(find, json={}).text == "Missing or invalid Authorization header"
    assert requests.post(find, json={}, headers={"Authorization": "raw"}).text == "Invalid Authorization header"
    bad = requests.post(find, json={}, headers={"Authorization": "Bearer forged"})
    assert bad.status_code == 401 and bad.text == "Invalid token" and bad.headers["Content-Type"].startswith("text/plain")


def test_window_scan_keyset_on_id_with_boolean_isdiffpos(boom, session, real_alerts):
    positive = sorted(int(a["candid"]) for a in real_alerts if a["candidate"]["isdiffpos"] in ("t", "1"))
    seen, last = [], 0
    while True:
        r = session.post(f"{boom.url}/queries/find", json={
            "catalog_name": "ZTF_alerts", "filter": {"_id": {"$gt": last}, "candidate.isdiffpos": True},
            "projection": {"objectId": 1, "candidate.jd": 1}, "sort": {"_id": 1}, "limit": 5, "max_time_ms": 1000})
        body = r.json()
        assert r.status_code == 200 and set(body) == {"message", "data"} and body["message"] == "success"
        seen += [d["_id"] for d in body["data"]]
        if len(body["data"]) < 5:
            break
        last = body["data"][-1]["_id"]
    assert seen == positive
    none = session.post(f"{boom.url}/queries/find", json={"catalog_name": "ZTF_alerts",
                                                           "filter": {"candidate.isdiffpos": "t"}})
    assert none.json()["data"] == []  # a Kowalski pre-filter matches nothing in BOOM


def test_query_errors_as_boom_answers_them(session, boom):
    find = f"{boom.url}/queries/find"
    lst = session.post(find, json={"catalog_name": "ZTF_alerts", "filter": {}, "sort": [["_id", 1]]})
    assert lst.status_code == 400 and lst.json()["message"].startswith("Invalid find options")
    for name in ("nope", "users"):
        r = session.post(find, json={"catalog_name": name, "filter": {}})
        assert r.status_code == 404 and r.json() == {"message": f"Catalog {name} does not exist"}
    r = session.post(find, json={"catalog_name": "ZTF_alerts", "filter": {"_id": {"$bogus": 1}}})
    assert r.status_code == 500 and r.json()["message"].startswith("Error finding documents")
    r = session.post(find, json={"catalog_name": "ZTF_alerts"})
    assert r.status_code == 400 and "missing field `filter`" in r.text
    names = [c["name"] for c in session.get(f"{boom.url}/catalogs").json()["data"]]
    assert names == ["ZTF_alerts", "ZTF_alerts_aux", "ZTF_alerts_cutouts"]


def test_cutouts_in_both_forms_decode_to_the_packet_stamps(session, boom, real_alerts):
    packet = real_alerts[0]
    r = session.get(f"{boom.url}/surveys/ztf/cutouts", params={"candid": packet["candid"]})
    assert r.status_code == 200 and r.json()["message"] == f"cutouts found for candid: {packet['candid']}"
    served = r.json()["data"]
    rows = session.post(f"{boom.url}/queries/find", json={"catalog_name": "ZTF_alerts_cutouts",
                                                          "filter": {"_id": {"$in": [packet["candid"]]}}}).json()["data"]
    for key in B.STAMPS:
        assert B.stamp_bytes(served[key]) == packet[key]["stampData"]
        assert isinstance(rows[0][key], list) and B.stamp_bytes(rows[0][key]) == packet[key]["stampData"]
    missing = session.get(f"{boom.url}/surveys/ztf/cutouts", params={"candid": 1})
    assert missing.status_code == 404 and missing.json() == {"message": "no cutouts found for candid 1"}


def test_proxy_faults_and_token_expiry(boom, session):
    boom.faults.push("429", match="POST /queries/count")
    r = session.post(f"{boom.url}/queries/count", json={"catalog_name": "ZTF_alerts", "filter": {}})
    assert r.status_code == 429 and r.text == "Too Many Requests" and "Retry-After" in r.headers
    r = session.post(f"{boom.url}/queries/count", json={"catalog_name": "ZTF_alerts", "filter": {}})
    assert r.json() == {"message": "success", "data": 36}
    fresh = requests.post(f"{boom.url}/auth", data={"username": "bot", "password": "secret"}).json()["access_token"]
    boom.expire_tokens()
    r = requests.get(f"{boom.url}/catalogs", headers={"Authorization": f"Bearer {fresh}"})
    assert r.status_code == 401 and r.text == "Invalid token"


def test_btsbot_sim_boom_serves_the_alerts_until_sigterm(alerts_dir):
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "bot", "sim", "boom", "--alerts", str(alerts_dir), "--port", "0",
                             "--user", "bot", "--password", "pw"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("boom sim ready on http://127.0.0.1:") and line.strip().endswith("alerts=36")
        url = line.split()[4]
        token = requests.post(f"{url}/auth", data={"username": "bot", "password": "pw"}).json()["access_token"]
        n = requests.post(f"{url}/queries/count", json={"catalog_name": "ZTF_alerts", "filter": {}},
                          headers={"Authorization": f"Bearer {token}"}).json()["data"]
        assert n == 36
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
