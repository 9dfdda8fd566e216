"""The BOOM poller against the local BOOM finds the same new alerts as the Kowalski poller against the
local Kowalski, with the same cutouts and histories that give the same 25 features; cursor and chunks
behave alike."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from bot.boom.client import BoomClient
from bot.boom.poller import BoomPoller, candid_floor
from bot.core.features import feature_row
from bot.kowalski.client import KowalskiClient
from bot.kowalski.poller import MemoryPollState, Poller
from bot.sim.boom.server import BoomSim
from bot.sim.kowalski import KowalskiSim

WIDE = dict(since_jd=2458000.0, until_jd=2461000.0)
ALL = dict(mag_max=None)


@pytest.fixture(scope="module")
def packets(real_alerts):
    alerts = copy.deepcopy(real_alerts)
    for a in alerts:
        a["candidate"]["isdiffpos"] = "t"
    return alerts


@pytest.fixture(scope="module")
def both(packets):
    with KowalskiSim() as k, BoomSim(users={"bot": "pw"}) as b:
        k.load_alerts(packets)
        b.load_alerts(packets)
        kc = KowalskiClient(protocol="http", host=k.host, port=k.port, token=k.token, timeout_s=5,
                            max_time_ms=4000, sleep=lambda s: None).connect()
        bc = BoomClient(b.url, "bot", "pw", timeout_s=5, max_time_ms=4000, sleep=lambda s: None).connect()
        yield kc, bc, b


def _features(batch):
    out = {}
    for a in batch.alerts:
        try:
            out[a["candid"]] = feature_row(a["candidate"], batch.histories[a["objectId"]], 0.5)
        except ValueError as exc:
            out[a["candid"]] = str(exc)
    return out


def test_the_same_alerts_cutouts_and_features_through_both_brokers(both):
    kc, bc, _ = both
    kb = Poller(kc, MemoryPollState(), **ALL).poll(**WIDE)
    bb = BoomPoller(bc, MemoryPollState(), **ALL).poll(**WIDE)
    assert bb.candids == kb.candids and len(bb.candids) == 36 and bb.missing_cutouts == kb.missing_cutouts == []
    for x, y in zip(kb.alerts, bb.alerts):
        assert all(x[k]["stampData"] == y[k]["stampData"] for k in ("cutoutScience", "cutoutTemplate", "cutoutDifference"))
    kf, bf = _features(kb), _features(bb)
    for candid, want in kf.items():
        got = bf[candid]
        if isinstance(want, str):
            assert got == want
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert sum(not isinstance(v, str) for v in kf.values()) >= 30


def test_the_default_prefilter_drops_negative_subtractions(real_alerts):
    with BoomSim(users={"bot": "pw"}) as b:
        b.load_alerts(real_alerts)
        client = BoomClient(b.url, "bot", "pw", sleep=lambda s: None).connect()
        batch = BoomPoller(client, MemoryPollState(), **ALL).poll(**WIDE)
    positive = {int(a["candid"]) for a in real_alerts if a["candidate"]["isdiffpos"] in ("t", "1")}
    assert set(batch.candids) == positive and len(positive) < 36


def test_pages_chunks_and_cursor(both):
    _, bc, boom = both
    state = MemoryPollState()
    p = BoomPoller(bc, state, page_size=5, cutout_batch=7, history_batch=4, chunk_alerts=10, **ALL)
    seen = []
    for batch in p.chunks(**WIDE):
        seen += batch.candids
        state.mark_handled(batch.candids)
        p.commit(batch)
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 36
    assert p.cursor == WIDE["until_jd"]
    assert p.poll(until_jd=WIDE["until_jd"]).n_new == 0  # the overlap finds only handled alerts


def test_candid_floor_bounds_every_real_alert(real_alerts):
    for a in real_alerts:
        jd = a["candidate"]["jd"]
        assert candid_floor(jd - 1e-4) <= a["candid"] < candid_floor(jd + 1e-4)


def test_cutouts_one_request_per_alert_where_boom_keeps_them_outside_mongodb(packets):
    with BoomSim(users={"bot": "pw"}, cutout_catalog=False) as b:
        b.load_alerts(packets)
        client = BoomClient(b.url, "bot", "pw", sleep=lambda s: None).connect()
        assert not client.has_cutout_catalog
        batch = BoomPoller(client, MemoryPollState(), **ALL).poll(**WIDE)
        assert b.request_counts["GET /surveys/ztf/cutouts"] == 36 and batch.missing_cutouts == []
    by = {int(p["candid"]): p for p in packets}
    assert all(a["cutoutScience"]["stampData"] == by[a["candid"]]["cutoutScience"]["stampData"] for a in batch.alerts)


def test_documents_and_cutouts_in_one_pipeline_per_chunk_and_a_find_each_where_boom_refuses_it(both):
    _, bc, boom = both
    before = dict(boom.request_counts)
    joined = BoomPoller(bc, MemoryPollState(), cutout_batch=10, history_batch=100, **ALL).poll(**WIDE)
    used = {k: v - before.get(k, 0) for k, v in boom.request_counts.items() if v - before.get(k, 0)}
    assert used == {"POST /queries/find": 3, "POST /queries/pipeline": 4}  # scan + history 2; 36 alerts / 10
    boom.faults.push("500", match="POST /queries/pipeline")  # e.g. a BOOM that refuses $lookup
    poller = BoomPoller(bc, MemoryPollState(), cutout_batch=10, **ALL)
    apart = poller.poll(**WIDE)
    assert not poller._join and apart.candids == joined.candids and apart.missing_cutouts == []
    for x, y in zip(joined.alerts, apart.alerts):
        assert x == y
    assert apart.histories == joined.histories


def test_a_timed_out_query_and_slow_pages_are_survived(packets):
    with BoomSim(users={"bot": "pw"}) as b:
        b.load_alerts(packets)
        client = BoomClient(b.url, "bot", "pw", timeout_s=0.5, max_time_ms=400, backoff_s=0.01).connect()
        want = BoomPoller(client, MemoryPollState(), **ALL).poll(**WIDE)
        b.faults.hang_s = 1.5
        b.faults.push("timeout", match="POST /queries/pipeline")
        b.faults.push("timeout", match="POST /queries/find")
        b.faults.latency_s = 0.05  # every answer slow, each within the timeout
        n = client.requests
        got = BoomPoller(client, MemoryPollState(), **ALL).poll(**WIDE)
        b.faults.clear()
    assert got.candids == want.candids and got.missing_cutouts == [] and got.histories == want.histories
    assert client.requests >= n + 2 + 3  # both timed-out requests were sent again
