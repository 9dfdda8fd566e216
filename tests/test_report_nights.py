"""The night report lists only that night's actions (tried on the whole demo replay: the annotation
updates of later nights were listed under the night of the save) and says in a line what other nights did."""

from __future__ import annotations

import pytest
from conftest import SN

from bot.core.policies import Policy
from bot.journal import Journal
from bot.report.night import action_jd, build_night, night_window
from bot.report.render import text


@pytest.fixture(scope="module")
def whole_demo(tmp_path_factory, model_cache, onnx_scorer):
    from bot.demo import run_demo

    path = tmp_path_factory.mktemp("nights") / "journal.sqlite"
    run_demo(model_cache, step_hours=6.0, journal=str(path), out=lambda line: None, scorer=onnx_scorer)
    return path


def _policies(onnx_scorer):
    return [Policy("bts_p1", model_version=onnx_scorer.model_version),
            Policy("bts_p2", peakmag_max=18.5, model_version=onnx_scorer.model_version)]


def test_a_night_lists_its_own_actions_and_summarises_the_others(whole_demo, onnx_scorer):
    with Journal(whole_demo) as journal:
        every = {int(a["candid"]): a["jd"] for a in journal.alerts_for_object(SN)}
        total = sum(len(journal.actions_for(journal.get_decision(p, SN)["id"])) for p in ("bts_p1", "bts_p2"))
        first = build_night(journal, _policies(onnx_scorer), "http://fritz", *night_window("2023-10-04"))
        later = build_night(journal, _policies(onnx_scorer), "http://fritz", *night_window("2023-10-20"))
    lo, hi = night_window("2023-10-04")
    (acted,) = first.acted
    listed = [a for d in acted.decisions for a in d["actions"]]
    assert listed and all(lo <= action_jd(a, d, every) < hi for d in acted.decisions for a in d["actions"])
    assert {a["action"] for a in listed} >= {"save", "followup", "comment", "annotation"}
    assert len(listed) < total  # the replay went on for weeks: later annotation updates are not this night's
    out = text(first)
    assert "annotation updated" in out and "later, last 2023-10-" in out
    # a later night shows the source for its annotation updates only, the save as done earlier
    (acted,) = later.acted
    kinds = {a["action"] for d in acted.decisions for a in d["actions"]}
    assert kinds == {"annotation"}
    assert "(save saved earlier, on 2023-10-05)" in text(later)
