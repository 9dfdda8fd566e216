"""BOOM's documents (as its ingestion writes them) read back through the adapter give the same alerts, the
same 25 features and the same scores as the packets themselves (what the Kowalski path reads), on the 36
real alerts and on the example night."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from bot.boom import documents as B
from bot.core.features import FEATURES, feature_row, packet_history
from bot.sim.boom import documents as S


def _through_boom(packets):
    """Ingest the packets as BOOM does, then read every alert back as the BOOM poller will: its document,
    its cutouts (base64, as the cutouts endpoint serves them), its object's aux document and the object's
    ZTF_alerts candidates."""
    db = S.ingest(packets)
    by_object: dict[str, list[dict]] = {}
    for doc in db[S.ALERTS].values():
        by_object.setdefault(doc["objectId"], []).append(doc)
    out = []
    for packet in packets:
        doc = db[S.ALERTS][int(packet["candid"])]
        cut = {k: base64.b64encode(v).decode() for k, v in db[S.CUTOUTS][doc["_id"]].items() if k != "_id"}
        cands = [{**d["candidate"], "candid": d["_id"]} for d in by_object[doc["objectId"]]]
        out.append((B.alert(doc, cut), B.history(db[S.AUX].get(doc["objectId"]), cands)))
    return out


def _packet_history(packet, packets):
    """What the Kowalski path sees: the packet's own history plus the object's other alerts."""
    others = [p["candidate"] | {"candid": p["candid"]} for p in packets if p["objectId"] == packet["objectId"]]
    return others + packet_history(packet)


def _features_equal(packets):
    n = 0
    for packet, (alert, hist) in zip(packets, _through_boom(packets)):
        assert alert["candid"] == packet["candid"] and alert["objectId"] == packet["objectId"]
        for key in B.STAMPS:
            assert alert[key]["stampData"] == packet[key]["stampData"]
        try:
            want = feature_row(packet["candidate"], _packet_history(packet, packets), 0.5)
        except ValueError as exc:
            with pytest.raises(ValueError, match=str(exc).split(" (")[0]):
                feature_row(alert["candidate"], hist, 0.5)
            continue
        got = feature_row(alert["candidate"], hist, 0.5)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=f"{packet['candid']}: {FEATURES}")
        n += 1
    return n


def test_real_alerts_give_the_same_features_through_boom(real_alerts):
    assert _features_equal(real_alerts) >= 30


def test_example_night_gives_the_same_features_through_boom(example_packets):
    assert _features_equal(example_packets) == len(example_packets)


def test_boom_documents_are_stored_as_boom_stores_them(real_alerts):
    db = S.ingest(real_alerts)
    doc = next(iter(db[S.ALERTS].values()))
    assert "candid" not in doc and isinstance(doc["_id"], int)
    assert isinstance(doc["candidate"]["isdiffpos"], bool)
    assert "drbversion" not in doc["candidate"] and None not in doc["candidate"].values()
    aux = db[S.AUX][doc["objectId"]]
    assert all(p.get("magpsf") is not None for p in aux["prv_candidates"])
    assert all("magpsf" not in p for p in aux["prv_nondetections"])
    jds = [p["jd"] for p in aux["prv_candidates"]]
    assert jds == sorted(set(jds)) and doc["candidate"]["jd"] in jds  # the alert's own candidate is there


def test_the_same_scores_through_boom(onnx_scorer, real_alerts, example_packets):
    for packets in (real_alerts, example_packets):
        direct = onnx_scorer.score(packets, [_packet_history(p, packets) for p in packets])
        pairs = _through_boom(packets)
        boom = onnx_scorer.score([a for a, _ in pairs], [h for _, h in pairs])
        assert [r.status for r in boom] == [r.status for r in direct]
        for r, d in zip(boom, direct):
            if d.ok:
                assert abs(r.score - d.score) <= 1e-6


def test_stamps_read_in_every_form_boom_serves():
    raw = b"\x1f\x8b\x08 fits"
    assert B.stamp_bytes(base64.b64encode(raw).decode()) == raw
    assert B.stamp_bytes(list(raw)) == raw
    assert B.stamp_bytes(None) is None and B.stamp_bytes("") is None
    with pytest.raises(B.BoomDocumentError, match="base64"):
        B.stamp_bytes("not base64!")
    doc = {"_id": 1, "objectId": "ZTF20aaaaaaa", "candidate": {"jd": 2459000.5, "isdiffpos": True}}
    a = B.alert(doc, {"cutoutScience": "not base64!"})
    assert a["candidate"]["isdiffpos"] == "t" and a["cutoutScience"] is None and a["candid"] == 1
    with pytest.raises(B.BoomDocumentError, match="objectId"):
        B.alert({"_id": 1, "candidate": {}}, None)


def test_history_keeps_the_allowed_programids_only():
    aux = {"prv_candidates": [{"jd": 1.0, "fid": 1, "candid": 5, "magpsf": 18.0, "programid": 3,
                               "isdiffpos": True}],
           "prv_nondetections": [{"jd": 0.5, "fid": 1, "diffmaglim": 20.0, "programid": 1}]}
    assert [p["jd"] for p in B.history(aux)] == [0.5]
    assert [p["isdiffpos"] for p in B.history(aux, programids=None) if "isdiffpos" in p] == ["t"]
