"""`btsbot labels` against the local SkyPortal (answering as SkyPortal 8bd346c0 does), and `backtest --labels` on
the 36 real alerts of ../shared reading what it wrote."""

from __future__ import annotations

import csv
import io
import json
import re
import time

import pytest
import requests
import yaml

from bot.backtest.labels import read_labels
from bot.cli import main
from bot.sim.skyportal import SkyPortalSim
from bot.sim.skyportal.seed import load_seed
from bot.skyportal.labels import FRITZ_POSITIVE_TYPES, label_rows
from bot.timeutil import parse_time

BOT, SCANNER, RCF, AUTOSAVE = 1, 2, 4, 5  # user ids: the bot (the token's user), two humans, a bot-flagged user
BTS = 1003  # the BTS group ("Redshift Completeness Factor" in the seed)
FILLERS = 150  # sources beyond the real alerts' objects: more than SkyPortal's page of 100

# objects of the real alerts (positions from their packets), and what happened to them on "Fritz"
SN_IA, SN_II, CV, ML_ONLY, AGN, UNSAVED, EARLY = ("ZTF20aajcdad", "ZTF17aadcuwj", "ZTF23abjjnhj", "ZTF19aciwwya",
                                                   "ZTF20aaelulu", "ZTF23abjjncy", "ZTF17aacymkh")
POS = {SN_IA: (201.6235643, 36.0086571), SN_II: (47.1080664, 8.0839276), CV: (44.9155781, 9.3801671),
       ML_ONLY: (45.4794917, 9.6670359), AGN: (185.7288484, 15.8236168), UNSAVED: (46.6054123, 8.7166359),
       EARLY: (47.3641868, 9.7002819), "ZTF23abjjncz": (47.1543554, 8.0495331)}
SN_SAVED = "2020-02-02T14:00:00.500000"  # a human saves SN_IA 3 h after its first alert (11:53:23)


def fritz_seed(bot_reads_bts: bool = True) -> dict:
    s = load_seed(None)
    s["objs"] = []  # only the objects below
    if bot_reads_bts:
        s["users"][0]["groups"].append({"id": BTS, "can_save": False})
    s["users"] += [{"id": RCF, "username": "rcf-scanner", "groups": [1, BTS]},
                   {"id": AUTOSAVE, "username": "autosave", "is_bot": True, "groups": [1, BTS]}]

    def obj(oid, saves=(), classes=()):
        ra, dec = POS.get(oid, (100.0 + len(s["objs"]) * 0.01, 20.0))
        s["objs"].append({"id": oid, "ra": ra, "dec": dec, "saves": list(saves), "classifications": list(classes)})

    def save(by, at, group=BTS, **kw):
        return {"group_id": group, "saved_by": by, "saved_at": at, **kw}

    def cls(name, by=SCANNER, at="2020-02-10T00:00:00", **kw):
        return {"classification": name, "author_id": by, "created_at": at, **kw}

    obj(SN_IA, [save(SCANNER, SN_SAVED)], [cls("Ia", probability=0.9)])
    obj(SN_II, [save(BOT, "2023-10-12T11:00:00")], [cls("II", by=RCF)])  # the bot saved it: no human save time
    obj(CV, [save(RCF, "2023-10-12T12:00:00")], [cls("Cataclysmic")])
    obj(ML_ONLY, [save(RCF, "2023-10-12T12:30:00")], [cls("Ia", by=AUTOSAVE, ml=True, probability=0.7)])
    obj(AGN, [save(AUTOSAVE, "2020-01-12T00:00:00")], [cls("AGN"), cls("Ia", by=AUTOSAVE, ml=True)])
    obj(UNSAVED, [save(SCANNER, "2023-10-12T12:00:00", active=False)], [cls("Ia")])  # unsaved: not listed
    obj(EARLY, [save(SCANNER, "2019-01-01T00:00:00")], [cls("Ia")])  # saved before the window of one test
    obj("ZTF23abjjncz", [save(SCANNER, "2023-10-12T13:00:00")])  # saved, never classified
    obj(f"{SN_IA}x", [save(SCANNER, "2020-02-02T12:00:00", group=1002)])  # its id contains SN_IA's
    for i in range(FILLERS):
        obj(f"ZTF21simlab{i:03d}", [save(SCANNER, f"2021-03-01T00:{i // 60:02d}:{i % 60:02d}")],
            [cls("Ia-91T" if i % 3 else "Nova")])
    payload = {"observation_type": "IFU", "priority": 3, "start_date": "2020-02-02", "end_date": "2020-02-09"}

    def req(oid, by, at, status="submitted", alloc=2002):
        return {"obj_id": oid, "allocation_id": alloc, "requester_id": by, "created_at": at, "status": status,
                "payload": payload}

    s["followup_requests"] = [
        req(SN_IA, BOT, "2020-02-02T12:00:00", alloc=2001),  # the bot's own: not a human's
        req(f"{SN_IA}x", SCANNER, "2020-02-02T13:00:00"),  # another obj whose id contains SN_IA's
        req(SN_IA, RCF, "2020-02-02T15:30:00", status="deleted"),  # the first human request, deleted since
        req(SN_IA, SCANNER, "2020-02-03T01:00:00"),
        req(SN_II, AUTOSAVE, "2023-10-12T11:05:00"),  # a bot-flagged user's
        req(SN_II, RCF, "2023-10-12T16:00:00", status="rejected: not visible"),
    ]
    return s


@pytest.fixture(scope="module")
def fritz():
    with SkyPortalSim(seed=fritz_seed()) as sim:
        yield sim


@pytest.fixture
def config(tmp_path, monkeypatch):
    def write(sim, token=None, **skyportal):
        monkeypatch.setenv("FRITZ_TOKEN", token or sim.token)  # as the daemon reads it
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({"mode": "dry-run", "skyportal": {
            "url": sim.url, "rate_limit_per_s": 200.0, "backoff_s": 0.01, **skyportal}}))
        return path
    return write


def labels(capsys, cfg, *argv):
    rc = main(["labels", "--config", str(cfg), *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def rows_of(text: str) -> dict[str, dict]:
    return {r["objectId"]: r for r in csv.DictReader(io.StringIO(text))}


def test_labels_of_the_group(capsys, fritz, config, tmp_path):
    out_file = tmp_path / "labels.csv"
    fritz.clear_requests()
    rc, out, err = labels(capsys, config(fritz), "--group", BTS, "--out", out_file)
    assert rc == 0, err
    text = out_file.read_text()
    assert text.splitlines()[0] == "objectId,label,saved_at,triggered_at"
    rows = rows_of(text)
    assert rows[SN_IA] == {"objectId": SN_IA, "label": "1", "saved_at": SN_SAVED + "Z",
                           "triggered_at": "2020-02-02T15:30:00Z"}  # the deleted request, not the bot's nor 'x'
    assert rows[SN_II] == {"objectId": SN_II, "label": "1", "saved_at": "", "triggered_at": "2023-10-12T16:00:00Z"}
    assert rows[CV] == {"objectId": CV, "label": "0", "saved_at": "2023-10-12T12:00:00Z", "triggered_at": ""}
    assert rows[AGN] == {"objectId": AGN, "label": "0", "saved_at": "", "triggered_at": ""}  # is_bot saver, ML Ia
    assert ML_ONLY not in rows and "ZTF23abjjncz" not in rows  # no human classification: left out
    assert UNSAVED not in rows and f"{SN_IA}x" not in rows  # unsaved from the group / another group
    assert rows[EARLY]["label"] == "1"
    assert sum(r["label"] == "1" for r in rows.values()) == 3 + 100  # fillers: Ia-91T twice in three, else Nova
    assert len(rows) == 5 + FILLERS
    # the summary line: 157 sources listed (2 pages of 100), 2 unclassified
    assert re.fullmatch(r"btsbot: group 1003: 157 sources, 103 positives, 52 negatives, 2 unclassified \(skipped\); "
                        r"\d+ saved by a human, 2 triggered by a human; 155 rows written to \S+; pages read: 2 of "
                        r"sources, 1 of follow-up requests\n", err), err
    pages = [r["query"] for r in fritz.requests if r["path"] == "/api/sources"]
    assert [(q["pageNumber"], q["numPerPage"], q["group_ids"]) for q in pages] == [("1", "100", "1003"),
                                                                                ("2", "100", "1003")]
    assert {r["method"] for r in fritz.requests} == {"GET"}  # reading only
    # what backtest --labels reads back: the same labels and times
    read = read_labels(out_file)
    assert read[SN_IA].label == 1 and read[SN_IA].saved_at == pytest.approx(parse_time("2020-02-02T14:00:00.5Z"))
    assert read[SN_IA].triggered_at == pytest.approx(parse_time("2020-02-02T15:30:00Z"))
    assert read[CV].label == 0 and read[SN_II].saved_at is None


def test_include_ml_unclassified_exclude_user_and_the_window(capsys, fritz, config):
    cfg = config(fritz)
    rc, out, err = labels(capsys, cfg, "--group", BTS, "--include-ml", "--unclassified", "0", "--exclude-user",
                          SCANNER, "--since", "2020-01-01", "--until", "2024-01-01")
    assert rc == 0, err
    rows = rows_of(out)
    assert EARLY not in rows  # saved in 2019
    assert rows[ML_ONLY]["label"] == "1" and rows[AGN]["label"] == "1"  # the ML "Ia"s count now
    assert rows["ZTF23abjjncz"]["label"] == "0"  # unclassified, written as 0
    assert rows[SN_IA]["saved_at"] == "" and rows[SN_IA]["triggered_at"] == "2020-02-02T15:30:00Z"  # SCANNER excluded
    assert "1 unclassified (written as 0)" in err  # ML_ONLY is classified now
    q = next(r["query"] for r in reversed(fritz.requests) if r["path"] == "/api/sources")
    assert q["savedAfter"] == "2020-01-01T00:00:00" and q["savedBefore"] == "2024-01-01T00:00:00"
    f = next(r["query"] for r in reversed(fritz.requests) if r["path"] == "/api/followup_request")
    assert f["startDate"] == "2019-12-02T00:00:00" and f["numPerPage"] == "1000"  # 30 days before --since


def test_every_page_is_read_and_none_past_the_last(capsys, fritz, config):
    fritz.clear_requests()
    rc, out, err = labels(capsys, config(fritz), "--group", BTS, "--page-size", 10)
    assert rc == 0, err
    pages = [int(r["query"]["pageNumber"]) for r in fritz.requests if r["path"] == "/api/sources"]
    assert pages == list(range(1, 17))  # 157 sources at 10 a page; page 17 would start past the end
    assert len(rows_of(out)) == 5 + FILLERS and "pages read: 16 of sources" in err
    # exactly at the end (160 = 16 x 10 would be the next page's start) SkyPortal answers a 400, not an empty page
    s = requests.Session()
    s.headers["Authorization"] = f"token {fritz.token}"
    r = s.get(fritz.url + "/api/sources", params={"group_ids": BTS, "numPerPage": 157, "pageNumber": 2}, timeout=10)
    assert r.status_code == 400 and "too many indices" in r.json()["message"]
    r = s.get(fritz.url + "/api/sources", params={"group_ids": BTS, "numPerPage": 100, "pageNumber": 3}, timeout=10)
    assert r.status_code == 200 and r.json()["data"]["sources"] == [] and r.json()["data"]["totalMatches"] == 157


def test_the_daemons_rate_limit(capsys, fritz, config):
    cfg = config(fritz, rate_limit_per_s=25.0)
    fritz.clear_requests()
    t0 = time.monotonic()
    rc, _, err = labels(capsys, cfg, "--group", BTS, "--page-size", 20)
    elapsed = time.monotonic() - t0
    n = len(fritz.requests)
    assert rc == 0, err
    assert n == 1 + 8 + 1  # profile, 8 pages of sources, 1 of follow-up requests
    assert elapsed >= (n - 2) / 25.0 * 0.95  # the token bucket of skyportal.rate_limit_per_s (burst 2)


def test_a_group_the_token_cannot_read(capsys, config, tmp_path):
    with SkyPortalSim(seed=fritz_seed(bot_reads_bts=False)) as sim:
        out_file = tmp_path / "never.csv"
        for group in (BTS, 999):
            rc, out, err = labels(capsys, config(sim), "--group", group, "--out", out_file)
            assert rc == 2 and out == "" and not out_file.exists()
            assert err.count("\n") == 1 and err.startswith(f"btsbot: group {group}: the Fritz token's user cannot "
                                                           "read it"), err
            assert "Selected group(s) not all accessible to user." in err
        rc, out, err = labels(capsys, config(sim, token="5e6d3c1a-9b1f-4c2e-8d7a-000000000000"), "--group", 1001)
        assert rc == 2 and "FRITZ_TOKEN" in err and "refused the token" in err and err.count("\n") == 1
        rc, out, err = labels(capsys, config(sim), "--group", 1001)  # readable, but nothing human-classified
        assert rc == 1 and out == "objectId,label,saved_at,triggered_at\n" and "no labelled source" in err


def test_backtest_reads_the_labels(capsys, fritz, config, tmp_path, alerts_dir, model_cache):
    out_file = tmp_path / "labels.csv"
    rc, _, err = labels(capsys, config(fritz), "--group", BTS, "--out", out_file)
    assert rc == 0, err
    rc = main(["backtest", "--alerts", str(alerts_dir), "--labels", str(out_file), "--cache-dir", str(model_cache),
               "--no-score-cache", "--backend", "onnx", "--set", "min_score=0.3", "--set", "min_alerts=1",
               "--format", "json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    p1 = next(json.loads(line) for line in out.splitlines() if json.loads(line)["policy"] == "bts_p1")
    by_obj = {d["objectId"]: d for d in p1["decisions"]}
    sn = by_obj[SN_IA]  # its first alert, 2020-02-02 11:53:23 UTC, 2.1 h before the human save
    assert sn["label"] == 1 and p1["human_time"] == "saved_at"
    assert sn["delay_days"] == pytest.approx(2458881.9954051 - parse_time(SN_SAVED + "Z"), abs=1e-5)
    written = {k: int(v["label"]) for k, v in rows_of(out_file.read_text()).items()}
    assert len(by_obj) >= 5 and {o: d["label"] for o, d in by_obj.items()} == {o: written.get(o) for o in by_obj}
    assert p1["tp"] + p1["fp"] + p1["fn"] >= 1


def test_the_mapping_alone():
    sources = [{"id": "ZTF1", "groups": [{"id": 7, "active": True, "saved_at": "2023-10-05T10:00:00",
                                          "saved_by": {"id": 9, "is_bot": False}},
                                         {"id": 8, "active": True, "saved_at": "2023-10-01T10:00:00",
                                          "saved_by": {"id": 10, "is_bot": False}}],
                "classifications": [{"classification": "Ic-BL", "ml": False}]},
               {"id": "ZTF2", "groups": [{"id": 7, "active": True, "saved_at": "2023-10-05T10:00:00",
                                          "saved_by": None}],
                "classifications": [{"classification": "SN Ia", "ml": False}, {"classification": "Galaxy"}]},
               {"id": "ZTF3", "groups": [], "classifications": [{"classification": "Ia", "ml": True}]}]
    reqs = [{"obj_id": "ZTF1", "requester_id": 9, "requester": None, "created_at": "2023-10-06T00:00:00"},
            {"obj_id": "ZTF1", "requester_id": None, "requester": {"id": 11}, "created_at": "2023-10-05T00:00:00"},
            {"obj_id": "ZTF1", "requester_id": 12, "created_at": "2023-10-04T00:00:00"}]
    rows = {r.object_id: r for r in label_rows(sources, reqs, 7, {12}, FRITZ_POSITIVE_TYPES)}
    assert (rows["ZTF1"].label, rows["ZTF1"].saved_at) == (1, "2023-10-05T10:00:00Z")  # group 7's row, not 8's
    assert rows["ZTF1"].triggered_at == "2023-10-05T00:00:00Z"  # user 11 (nested requester); 12 is excluded
    assert (rows["ZTF2"].label, rows["ZTF2"].saved_at) == (1, None)  # any SN class; an unknown saver
    assert rows["ZTF3"].label is None
    assert {r.object_id: r.label for r in label_rows(sources, [], 7, set(), r"^Galaxy$", include_ml=True)} == \
        {"ZTF1": 0, "ZTF2": 1, "ZTF3": 0}
    for name in ("Ia", "Ia-91bg", "Ib/c", "Ic-SLSN", "II", "IIn", "IIP", "Type I", "Supernova", "SN Ia"):
        assert re.search(FRITZ_POSITIVE_TYPES, name), name
    for name in ("Cataclysmic", "AGN", "Tidal Disruption Event", "Nova", "FBOT", "Ca-rich", "Intermediate Polar"):
        assert not re.search(FRITZ_POSITIVE_TYPES, name), name


def test_the_stand_in_lists_sources_as_skyportal_does(fritz):
    s = requests.Session()
    s.headers["Authorization"] = f"token {fritz.token}"

    def get(**params):
        return s.get(fritz.url + "/api/sources", params=params, timeout=10)

    d = get(group_ids=BTS, sourceID=SN_IA).json()["data"]
    assert d["totalMatches"] == 1 and d["group_id"] == BTS  # the substring finds SN_IA only: SN_IAx is in 1002
    src = d["sources"][0]
    assert [(g["id"], g["active"], g["saved_by"]["username"]) for g in src["groups"]] == [(BTS, True, "scanner")]
    c = src["classifications"][0]
    assert {k: c[k] for k in ("classification", "taxonomy_id", "probability", "ml", "author_id", "author_name",
                              "created_at", "groups", "votes")} == {
        "classification": "Ia", "taxonomy_id": 1, "probability": 0.9, "ml": False, "author_id": SCANNER,
        "author_name": "scanner", "created_at": "2020-02-10T00:00:00", "groups": [], "votes": []}
    # savedAfter/savedBefore are strict (sources.saved_at > / <)
    assert get(group_ids=BTS, sourceID=SN_IA, savedAfter=SN_SAVED).json()["data"]["totalMatches"] == 0
    assert get(group_ids=BTS, sourceID=SN_IA, savedBefore=SN_SAVED).json()["data"]["totalMatches"] == 0
    assert get(group_ids=BTS, sourceID=SN_IA, savedAfter="2020-02-02T14:00:00").json()["data"]["totalMatches"] == 1
    # the default order: the latest save first; sortBy=id: by obj id
    first = get(group_ids=BTS, numPerPage=2).json()["data"]["sources"]
    assert [x["id"] for x in first] == ["ZTF23abjjncz", ML_ONLY]
    ids = [x["id"] for x in get(group_ids=BTS, sortBy="id", sortOrder="asc", numPerPage=500).json()["data"]["sources"]]
    assert ids == sorted(ids) and len(ids) == 157
    r = get(group_ids=BTS, sortBy="color")
    assert r.status_code == 400 and r.json()["message"] == "Cannot retrieve sources: Invalid sort_by: color"
    # saveSummary: the Source rows themselves, in the order they were saved in (their id)
    rows = get(group_ids=BTS, saveSummary="true", numPerPage=3).json()["data"]["sources"]
    assert [x["obj_id"] for x in rows] == [SN_IA, SN_II, CV] and rows[1]["saved_by_id"] == BOT
    assert get(group_ids="10x").status_code == 500
