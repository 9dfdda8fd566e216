"""The Kowalski poller, with real penquins against the local stand-in and real ZTF alert packets."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest

from bot.kowalski import queries as Q
from bot.kowalski.client import KowalskiClient, KowalskiError
from bot.kowalski.poller import MemoryPollState, Poller
from bot.sim.clock import SimClock
from bot.sim.kowalski import KowalskiSim

ALERT_DIR = Path(__file__).resolve().parents[2] / "shared" / "alerts" / "ztf"
CUTOUTS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
ALL = dict(mag_max=None)  # no magnitude cut; with `packets` (all positive) every alert passes
WIDE = dict(since_jd=2458000.0, until_jd=2461000.0)  # a window covering every sample packet

pytestmark = pytest.mark.usefixtures("alerts_dir")  # fails, as conftest does, when ../shared is missing


@pytest.fixture(scope="module")
def packets(real_alerts) -> list[dict]:
    """The 36 real packets, the 3 negative subtractions among them turned positive (so that all pass the
    pre-filter's positive cut, which the bot always applies)."""
    alerts = copy.deepcopy(real_alerts)
    for a in alerts:
        a["candidate"]["isdiffpos"] = "t"
    return alerts


@pytest.fixture
def sim():
    with KowalskiSim() as s:
        yield s


def connect(sim: KowalskiSim, **kw) -> KowalskiClient:
    kw.setdefault("sleep", lambda s: None)
    return KowalskiClient(protocol="http", host=sim.host, port=sim.port, token=sim.token, timeout_s=5,
                          max_time_ms=4000, **kw).connect()


def by_candid(alerts) -> dict[int, dict]:
    return {int(a["candid"]): a for a in alerts}


def night(packets: list[dict], jd0: float, step: float) -> list[dict]:
    """The 24 packets of 2023-10-12 (all from one exposure) spread over a night, one exposure each."""
    out = []
    for i, p in enumerate(a for a in packets if a["candidate"]["jd"] > 2460000):
        a = copy.deepcopy(p)
        a["candidate"]["jd"] = jd0 + i * step
        out.append(a)
    return out


# ---- query builders ---------------------------------------------------------------------------------
def test_prefilter_default_and_extra_cuts():
    f = Q.prefilter((1, 2), 19.0)
    assert f == {"candidate.isdiffpos": {"$in": ["t", "1"]}, "candidate.programid": {"$in": [1, 2]},
                 "candidate.magpsf": {"$lt": 19.0}}
    f = Q.prefilter((1,), 18.5, {"candidate.drb": {"$gt": 0.5}, "candidate.magpsf": {"$gt": 12}})
    assert f == {"$and": [{"candidate.isdiffpos": {"$in": ["t", "1"]}, "candidate.programid": {"$in": [1]},
                           "candidate.magpsf": {"$lt": 18.5}},
                          {"candidate.drb": {"$gt": 0.5}, "candidate.magpsf": {"$gt": 12}}]}
    page = Q.poll_page(10.0, 11.0, f, limit=100, after=(10.5, 7), max_time_ms=8000)
    assert page["kwargs"] == {"sort": [["candidate.jd", 1], ["candid", 1]], "limit": 100, "max_time_ms": 8000}
    # the scan reads only the keys; documents and cutouts are fetched chunk by chunk
    assert page["query"]["projection"] == {"_id": 0, "candid": 1, "objectId": 1, "candidate.jd": 1}
    with pytest.raises(ValueError):
        Q.jd_window(2.0, 2.0)


def test_cutout_request_body_stays_small():
    body = Q.alerts_by_candid([2**63 - 1 - i for i in range(500)], max_time_ms=8000)
    assert Q.body_size(body) < 64 * 1024  # far below Kowalski's 1 MiB request limit


# ---- finding alerts ----------------------------------------------------------------------------------
def test_every_real_alert_found_once_with_cutouts(sim, packets):
    sim.load_alerts(packets)
    state = MemoryPollState()
    p = Poller(connect(sim), state, **ALL)
    batch = p.poll(**WIDE)
    assert batch.n_found == batch.n_new == len(batch.alerts) == 36
    assert batch.window == (2458000.0, 2461000.0) and batch.missing_cutouts == []
    got = by_candid(batch.alerts)
    assert len(got) == 36
    for pk in packets:
        a = got[pk["candid"]]
        assert a["objectId"] == pk["objectId"] and a["candidate"] == pk["candidate"]
        assert "prv_candidates" not in a and "_id" not in a
        for c in CUTOUTS:
            assert a[c]["stampData"] == pk[c]["stampData"]  # bytes, identical to the packet's
    assert set(batch.histories) == {pk["objectId"] for pk in packets}
    assert [a["candidate"]["jd"] for a in batch.alerts] == sorted(a["candidate"]["jd"] for a in batch.alerts)

    p.commit(batch)
    state.mark_handled(batch.candids)
    again = p.poll(**WIDE)
    assert again.n_found == 36 and again.n_new == 0 and again.alerts == [] and again.histories == {}
    assert again.n_requests == 1  # one page, nothing to fetch


def test_default_prefilter(sim, real_alerts):
    packets = real_alerts
    sim.load_paths([ALERT_DIR])
    batch = Poller(connect(sim), MemoryPollState()).poll(**WIDE)
    expected = {pk["candid"] for pk in packets if pk["candidate"]["isdiffpos"] in ("t", "1")
                and pk["candidate"]["programid"] in (1, 2) and pk["candidate"]["magpsf"] < 19.0}
    assert 0 < len(expected) < 36
    assert set(by_candid(batch.alerts)) == expected

    extra = Poller(connect(sim), MemoryPollState(), prefilter={"candidate.drb": {"$gt": 0.99}}).poll(**WIDE)
    assert set(by_candid(extra.alerts)) == {c for c in expected
                                            if (next(p for p in packets if p["candid"] == c)["candidate"]
                                                .get("drb") or 0) > 0.99}
    assert Poller(connect(sim), MemoryPollState(), programids=(2,), **ALL).poll(**WIDE).n_found == 0


def test_paging_over_more_alerts_than_a_page(sim, packets):
    sim.load_alerts(packets)  # 24 of the 36 share one exposure jd: pages must split inside a jd
    client = connect(sim)
    p = Poller(client, MemoryPollState(), page_size=5, cutout_batch=7, history_batch=4, **ALL)
    batch = p.poll(**WIDE)
    assert batch.n_pages == math.ceil(36 / 5)
    assert batch.n_found == 36 and len(by_candid(batch.alerts)) == 36 and not batch.missing_cutouts
    assert len(batch.histories) == 35
    # exactly a multiple of the page size: one extra (empty) page
    assert Poller(client, MemoryPollState(), page_size=6, **ALL).poll(**WIDE).n_pages == 7


def test_window_cursor_and_commit(sim, packets):
    sim.load_alerts(night(packets, 2460230.60, 0.01))  # jds 2460230.60 .. 2460230.83
    state = MemoryPollState()
    p = Poller(connect(sim), state, overlap_days=0.5, **ALL)
    assert p.cursor is None
    first = p.poll(until_jd=2460230.70)
    assert first.window == (2460230.20, 2460230.70) and first.n_new == 10
    assert state.get_state("kowalski.cursor") is None  # nothing stored before commit
    p.commit(first)
    state.mark_handled(first.candids)
    assert p.cursor == 2460230.70
    second = p.poll(until_jd=2460231.0)
    assert second.window == (2460230.20, 2460231.0)  # overlap: cursor - 0.5
    assert second.n_found == 24 and second.n_new == 14
    assert not set(first.candids) & set(second.candids)
    p.commit(second)
    p.commit(first)  # an older batch never moves the cursor back
    assert p.cursor == 2460231.0
    # --since overrides the cursor
    replay = p.poll(since_jd=2460230.0, until_jd=2460230.65)
    assert replay.window == (2460230.0, 2460230.65) and replay.n_found == 5 and replay.n_new == 0


def test_no_alert_lost_or_repeated_when_ingestion_is_out_of_jd_order(sim, packets):
    clock = SimClock(start_jd=2460230.55, speed=0)  # stepped clock
    sim.clock = clock
    alerts = night(packets, 2460230.60, 0.01)
    # every third alert reaches Kowalski 0.2 d (~5 h) after its exposure, the others after ~1 min
    late = {a["candid"] for i, a in enumerate(alerts) if i % 3 == 1}
    visible = [a["candidate"]["jd"] + (0.2 if a["candid"] in late else 0.001) for a in alerts]
    sim.load_alerts(alerts, visible_at=visible)

    state = MemoryPollState()
    p = Poller(connect(sim), state, overlap_days=0.25, now_jd=clock.now_jd, **ALL)
    seen: list[int] = []
    naive_last, naive_seen = None, set()  # what a plain "jd > last" poller would have seen
    while clock.now_jd() < 2460231.2:
        clock.advance(0.05)
        batch = p.poll()
        assert batch.window[1] == clock.now_jd()
        seen.extend(batch.candids)
        p.commit(batch)
        state.mark_handled(batch.candids)
        for a in batch.alerts:
            if naive_last is None or a["candidate"]["jd"] > naive_last:
                naive_seen.add(a["candid"])
        naive_last = max([naive_last or 0] + [a["candidate"]["jd"] for a in batch.alerts])
    assert len(seen) == len(set(seen)) == 24  # every alert exactly once
    assert set(seen) == {a["candid"] for a in alerts}
    assert late - naive_seen  # the scenario does lose alerts with a plain "jd > last" cursor


def test_alerts_later_than_the_overlap_are_lost(sim, packets):
    """The documented limit: an alert ingested more than overlap_days after its exposure is missed."""
    clock = SimClock(start_jd=2460230.55, speed=0)
    sim.clock = clock
    alerts = night(packets, 2460230.60, 0.01)[:3]
    sim.load_alerts(alerts, visible_at=[alerts[0]["candidate"]["jd"] + 0.3, 2460230.6, 2460230.6])
    p = Poller(connect(sim), MemoryPollState(), overlap_days=0.1, now_jd=clock.now_jd, **ALL)
    seen = []
    for _ in range(10):
        clock.advance(0.1)
        b = p.poll()
        p.commit(b)
        p.state.mark_handled(b.candids)
        seen += b.candids
    assert sorted(seen) == sorted(a["candid"] for a in alerts[1:])


# ---- failures -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["page", "cutouts"])
def test_recovery_after_the_server_fails_mid_poll(sim, packets, stage):
    sim.load_alerts(packets)
    client = connect(sim, retries=1)
    state = MemoryPollState()
    p = Poller(client, state, page_size=10, **ALL)
    state.set_state("kowalski.cursor", "2458900.0")

    # the first page goes through, then every request fails (500/503) until the poll gives up
    original = client.query if stage == "page" else client.batch
    calls = []

    def failing_after_first(*args, **kw):
        calls.append(1)
        if len(calls) == (2 if stage == "page" else 1):
            sim.faults.error_rate = 1.0
        return original(*args, **kw)

    setattr(client, "query" if stage == "page" else "batch", failing_after_first)
    with pytest.raises(KowalskiError, match="gave up"):
        p.poll(since_jd=2458000.0, until_jd=2461000.0)
    assert state.get_state("kowalski.cursor") == "2458900.0"  # nothing committed
    assert state.handled == set()

    sim.faults.error_rate = 0.0
    setattr(client, "query" if stage == "page" else "batch", original)
    batch = p.poll(since_jd=2458000.0, until_jd=2461000.0)
    assert batch.n_new == 36 and not batch.missing_cutouts and len(batch.histories) == 35


def test_transient_errors_during_a_poll_are_absorbed(sim, packets):
    sim.load_alerts(packets)
    sim.faults.push("500", "503", "502", "html:502", "500", match="POST /api/queries")
    batch = Poller(connect(sim), MemoryPollState(), page_size=8, cutout_batch=5, **ALL).poll(**WIDE)
    assert batch.n_new == 36 and not batch.missing_cutouts


def test_missing_cutouts_are_reported_not_dropped(sim, packets):
    broken = copy.deepcopy(packets[0])
    broken["cutoutTemplate"] = None  # the packet itself lacks a cutout
    sim.load_alerts([broken] + packets[1:])
    client = connect(sim)
    p = Poller(client, MemoryPollState(), **ALL)

    vanished = packets[5]["candid"]  # and one alert's document disappears between the scan and the fetch
    original = client.batch

    def delete_then_batch(bodies):
        sim.db["ZTF_alerts"].delete_one({"candid": vanished})
        return original(bodies)

    client.batch = delete_then_batch
    batch = p.poll(**WIDE)
    assert sorted(batch.missing_cutouts) == sorted([broken["candid"], vanished])
    got = by_candid(batch.alerts)
    assert len(got) == 36  # kept, so that scoring marks them unscorable with a reason
    assert got[broken["candid"]]["cutoutTemplate"] is None
    assert got[broken["candid"]]["cutoutScience"]["stampData"] == broken["cutoutScience"]["stampData"]
    assert all(got[vanished][c] is None for c in CUTOUTS)


def test_max_new_truncates_and_the_next_poll_continues(sim, packets):
    sim.load_alerts(night(packets, 2460230.60, 0.01))
    state = MemoryPollState()
    p = Poller(connect(sim), state, chunk_alerts=10, overlap_days=0.1, **ALL)
    state.set_state("kowalski.cursor", "2460230.5")
    seen, polls = [], 0
    for _ in range(4):
        b = p.poll(until_jd=2460231.0)
        polls += 1
        assert b.n_new <= 10
        seen += b.candids
        p.commit(b)
        state.mark_handled(b.candids)
        if not b.truncated:
            break
    assert len(seen) == len(set(seen)) == 24 and polls == 3
    assert p.cursor == 2460231.0


# ---- histories -----------------------------------------------------------------------------------------
def later_alerts(packet: dict, n: int, step: float = 1.02) -> list[dict]:
    """n later alerts of the same object, as ZTF would emit them: new candid/jd/magpsf, prv_candidates =
    the previous packet's prv_candidates + its candidate (+ a non-detection in between)."""
    out, prev = [], packet
    for i in range(1, n + 1):
        a = copy.deepcopy(prev)
        c = a["candidate"]
        c["jd"] = prev["candidate"]["jd"] + step
        c["fid"] = 1 + (i % 2)
        c["magpsf"] = prev["candidate"]["magpsf"] - 0.3 * i
        c["candid"] = a["candid"] = prev["candid"] + 10**9 * i
        c["ndethist"] = (prev["candidate"]["ndethist"] or 0) + 1
        keys = set(prev["prv_candidates"][-1]) if prev["prv_candidates"] else set(prev["candidate"])
        as_prv = {k: v for k, v in prev["candidate"].items() if k in keys}
        nondet = {k: None for k in keys} | {"jd": prev["candidate"]["jd"] + step / 2, "fid": 1, "programid": 1,
                                           "diffmaglim": 20.1, "pid": 1}
        a["prv_candidates"] = list(prev["prv_candidates"] or []) + [as_prv, nondet]
        out.append(a)
        prev = a
    return out


def test_history_equivalence_with_the_packets(sim, packets):
    from bot.core.features import history_until, packet_history

    base = next(p for p in packets if p["objectId"] == "ZTF23abjjnqm")
    synth = later_alerts(base, 3)
    every = packets + synth
    # ingest them in reverse jd order: the aux union must not depend on it
    sim.load_alerts(sorted(every, key=lambda a: -a["candidate"]["jd"]))
    batch = Poller(connect(sim), MemoryPollState(), **ALL).poll(**WIDE)
    assert batch.n_new == len(every) == 39

    def key(history):
        return [(d["jd"], d["magpsf"], d["fid"]) for d in history]

    lost = lost_by_standin(sim, every)
    for alert in every:
        jd = alert["candidate"]["jd"]
        kow = history_until(batch.histories[alert["objectId"]], jd)
        pkt = history_until(packet_history(alert), jd)
        assert [(j, f) for j, _, f in key(kow)] == [(j, f) for j, _, f in key(pkt)], alert["objectId"]
        # ZTF itself republishes a detection in later packets' prv_candidates with magpsf rounded to
        # ~1e-4 mag (ZTF20aajcdad: 17.546560 as a candidate, 17.546600 as a prv_candidate); the history
        # keeps the alert's own candidate values, so the alert's own magpsf is always exact
        assert [m for _, m, _ in key(kow)] == pytest.approx([m for _, m, _ in key(pkt)], abs=1e-3)
        assert kow[-1]["jd"] == jd and kow[-1]["magpsf"] == alert["candidate"]["magpsf"]
    for alert in [base] + synth:  # synthesized consistently: exact on (jd, magpsf, fid)
        jd = alert["candidate"]["jd"]
        assert key(history_until(batch.histories[alert["objectId"]], jd)) == \
            key(history_until(packet_history(alert), jd))
    # the object with several alerts: its Kowalski history holds every detection and non-detection
    hist = batch.histories["ZTF23abjjnqm"]
    assert len(hist) == len(synth[-1]["prv_candidates"]) + 1
    assert sum(1 for d in hist if d.get("magpsf") is None) == \
        sum(1 for d in synth[-1]["prv_candidates"] if d.get("magpsf") is None)
    assert [d["jd"] for d in hist] == sorted(d["jd"] for d in hist)
    # an earlier alert never sees the later detections
    assert key(history_until(hist, base["candidate"]["jd"])) == key(history_until(packet_history(base),
                                                                                  base["candidate"]["jd"]))
    assert not lost


def test_standin_aux_keeps_every_prv_detection(sim, packets):
    """Kowalski's aux keeps every distinct prv_candidate ($addToSet, kowalski-api.md 3.1 step 6)."""
    sim.load_alerts(packets)
    assert lost_by_standin(sim, packets) == {}  # e.g. ZTF17aadcuwj: two detections in one exposure


def lost_by_standin(sim: KowalskiSim, alerts: list[dict]) -> dict[str, list[int]]:
    """Detections (candids) of the packets' prv_candidates that the stand-in's aux does not hold."""
    sim.ingest_due()
    lost: dict[str, list[int]] = {}
    for a in alerts:
        aux = sim.db["ZTF_alerts_aux"].find_one({"_id": a["objectId"]}) or {}
        held = {p.get("candid") for p in aux.get("prv_candidates") or []}
        for p in a.get("prv_candidates") or []:
            if p.get("candid") is not None and p["candid"] not in held:
                lost.setdefault(a["objectId"], []).append(p["candid"])
    return lost


def test_two_detections_of_one_exposure_are_both_kept(sim, packets):
    """ZTF17aadcuwj has two detections (two candids) in one exposure and filter: a (jd, fid) dedupe
    would drop one. Kowalski's aux keeps both ($addToSet); so must the history."""
    pk = next(p for p in packets if p["objectId"] == "ZTF17aadcuwj")
    twins = [p for p in pk["prv_candidates"] if p["jd"] == 2460201.9350347 and p["fid"] == 2]
    assert len(twins) == 2 and twins[0]["candid"] != twins[1]["candid"]
    sim.load_alerts([pk])
    sim.ingest_due()
    aux = sim.db["ZTF_alerts_aux"]
    # make the stand-in's aux hold what Kowalski's would (whatever its own dedupe did)
    doc = aux.find_one({"_id": pk["objectId"]})
    held = {p.get("candid") for p in doc["prv_candidates"]}
    extra = [{k: v for k, v in t.items() if v is not None} for t in twins if t["candid"] not in held]
    aux.update_one({"_id": pk["objectId"]}, {"$set": {"prv_candidates": doc["prv_candidates"] + extra}})

    batch = Poller(connect(sim), MemoryPollState(), **ALL).poll(**WIDE)
    hist = batch.histories[pk["objectId"]]
    assert {t["candid"] for t in twins} <= {d.get("candid") for d in hist}
    assert len(hist) == len(pk["prv_candidates"]) + 1


def test_history_is_filtered_to_the_allowed_programids(sim, packets):
    base = copy.deepcopy(next(p for p in packets if p["objectId"] == "ZTF23abjjnqm"))
    for i, prv in enumerate(base["prv_candidates"]):
        if i % 2:
            prv["programid"] = 3  # Caltech data we are not entitled to
    sim.load_alerts([base])
    batch = Poller(connect(sim), MemoryPollState(), **ALL).poll(**WIDE)
    hist = batch.histories[base["objectId"]]
    assert {d["programid"] for d in hist} == {1}
    assert len(hist) == len([p for p in base["prv_candidates"] if p["programid"] == 1]) + 1


def test_history_of_an_object_with_more_alerts_than_a_page(sim, packets):
    base = next(p for p in packets if p["objectId"] == "ZTF23abjjnqm")
    synth = later_alerts(base, 6, step=0.3)
    sim.load_alerts([base] + synth)
    batch = Poller(connect(sim), MemoryPollState(), page_size=3, **ALL).poll(**WIDE)
    hist = batch.histories["ZTF23abjjnqm"]
    from_alerts = {d["candid"] for d in hist if "jdstarthist" in d}
    assert from_alerts == {base["candid"]} | {a["candid"] for a in synth}


def test_chunk_cursor_with_no_overlap_loses_and_repeats_nothing(sim, packets):
    """overlap_days 0: the next poll starts exactly at the committed cursor, so a chunk that takes one alert
    too many or too few, or a cursor past the first alert left out, loses or repeats an alert here."""
    alerts = night(packets, 2460230.60, 0.01)
    alerts[10]["candidate"]["jd"] = alerts[9]["candidate"]["jd"]  # a chunk boundary inside one exposure jd
    sim.load_alerts(alerts)
    order = sorted(alerts, key=lambda a: (a["candidate"]["jd"], a["candid"]))
    state = MemoryPollState()
    p = Poller(connect(sim), state, chunk_alerts=10, overlap_days=0.0, **ALL)
    state.set_state("kowalski.cursor", "2460230.60")  # exactly the first alert's jd
    sizes, seen = [], []
    for _ in range(5):
        b = p.poll(until_jd=2460231.0)
        sizes.append(b.n_new)
        assert b.candids == [a["candid"] for a in order[len(seen):len(seen) + b.n_new]]
        seen += b.candids
        expected = order[len(seen)]["candidate"]["jd"] if b.truncated else 2460231.0
        assert b.cursor == expected  # the first alert left out
        p.commit(b)
        state.mark_handled(b.candids)
        if not b.truncated:
            break
    assert sizes == [10, 10, 4] and seen == [a["candid"] for a in order]

    # the same through one lazy poll, committing between chunks (what the cycle does)
    state2 = MemoryPollState()
    p2 = Poller(connect(sim), state2, chunk_alerts=10, overlap_days=0.0, **ALL)
    state2.set_state("kowalski.cursor", "2460230.60")
    got = []
    for b in p2.chunks(until_jd=2460231.0):
        assert b.n_new <= 10
        got += b.candids
        p2.commit(b)
        state2.mark_handled(b.candids)
    assert got == [a["candid"] for a in order] and p2.cursor == 2460231.0
