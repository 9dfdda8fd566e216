"""`btsbot demo` replays SN 2023tyk's discovery: SEDM requested at its second alert, as in real life."""

import json

from conftest import CV, SN

from bot.demo import run_demo


def test_demo_triggers_sedm_at_the_real_time(model_cache, onnx_scorer):
    lines = []
    summary = run_demo(model_cache, step_hours=1.0, until="2023-10-06", out=lines.append, scorer=onnx_scorer)
    decided = {(d["policy"], d["objectId"]): d["utc"] for d in summary["decisions"]}
    assert decided == {("bts_p1", SN): "2023-10-05 10:37:55 UTC", ("bts_p2", SN): "2023-10-05 10:37:55 UTC"}
    posts = [w for w in summary["writes"] if w["path"] == "/api/followup_request"]
    assert len(posts) == 1 and posts[0]["body"]["obj_id"] == SN
    # the request was made in the replayed night, not at the wall-clock time of the test
    assert posts[0]["body"]["payload"]["start_date"].startswith("2023-10-05T11:00")
    assert not any(CV in json.dumps(w) for w in summary["writes"])
    # the annotation is kept current: a later alert of the SN updates it in place (PUT), never a second one
    annotation_writes = [w for w in summary["writes"] if "/annotations" in w["path"]]
    assert annotation_writes[0]["method"] == "POST" and {w["method"] for w in annotation_writes[1:]} == {"PUT"}
    assert any("bts_p2 selected ZTF23abhvlji at its alert of 2023-10-05 10:37:55 UTC" in line for line in lines)
    # the summary names the CV, which no policy ever selected, and says where the journal is only when it is kept
    assert any(line.strip().startswith(f"{CV} (AT 2023sxt") and "never selected" in line for line in lines)
    assert not any("journal" in line and ".sqlite" in line for line in lines)  # a temporary journal is not shown
    objects = {o["objectId"]: o for o in summary["objects"]}
    assert objects == {
        SN: {"objectId": SN, "saved_at": "2023-10-05T11:00:00Z", "followup_requested_at": "2023-10-05T11:00:00Z"},
        CV: {"objectId": CV, "saved_at": None, "followup_requested_at": None},
    }


def test_demo_cli_json_summary_and_kept_journal(model_cache, tmp_path, capsys):
    from bot.cli import main
    from bot.journal import Journal

    journal = tmp_path / "demo.sqlite"
    assert main(["demo", "--cache-dir", str(model_cache), "--until", "2023-10-06", "--journal", str(journal),
                 "--format", "json"]) == 0
    captured = capsys.readouterr()
    objects = json.loads(captured.out)  # stdout is the JSON alone; the progress went to stderr
    assert sorted(objects, key=lambda o: o["objectId"]) == [
        {"objectId": CV, "saved_at": None, "followup_requested_at": None},
        {"objectId": SN, "saved_at": "2023-10-05T11:00:00Z", "followup_requested_at": "2023-10-05T11:00:00Z"},
    ]
    assert f"journal {journal}" in captured.err and "never selected" in captured.err
    with Journal(journal) as j:  # kept after the demo, with what it did
        assert {a["action"] for a in j.history(object_id=SN, kind="actions")} >= {"save", "followup"}


def test_demo_through_the_local_boom_gives_the_same_replay(model_cache, onnx_scorer):
    kw = dict(step_hours=1.0, until="2023-10-06", out=lambda line: None, scorer=onnx_scorer)
    boom = run_demo(model_cache, source="boom", **kw)
    kowalski = run_demo(model_cache, **kw)
    assert boom["objects"] == kowalski["objects"]
    assert [(d["policy"], d["objectId"], d["utc"]) for d in boom["decisions"]] == \
        [(d["policy"], d["objectId"], d["utc"]) for d in kowalski["decisions"]] == \
        [("bts_p1", SN, "2023-10-05 10:37:55 UTC"), ("bts_p2", SN, "2023-10-05 10:37:55 UTC")]
    assert [(w["method"], w["path"]) for w in boom["writes"]] == [(w["method"], w["path"]) for w in kowalski["writes"]]
