"""The pure parts of the backtest: labels, grids, metrics against bot.core.policies.evaluate."""

import re

import pytest

from bot.backtest.labels import LabelError, read_labels
from bot.backtest.metrics import mag_bin, sources
from bot.backtest.trials import TrialError, build_trials, grid
from bot.core.policies import Policy
from bot.timeutil import parse_time


def test_labels_both_layouts(tmp_path):
    own = tmp_path / "own.csv"
    own.write_text("objectId,label,saved_at,triggered_at\nZTF1,1,2460222.9,2023-10-05T12:00:00Z\nZTF2,0,,\n")
    labels = read_labels(own)
    assert labels["ZTF1"].label == 1 and labels["ZTF1"].saved_at == 2460222.9
    assert labels["ZTF1"].triggered_at == pytest.approx(parse_time("2023-10-05T12:00:00Z"))
    assert labels["ZTF2"].label == 0 and labels["ZTF2"].saved_at is None
    explorer = tmp_path / "explorer.csv"
    explorer.write_text("ZTFID,IAUID,RA,Dec,peakt,peakfilt,peakmag,peakabs,duration,rise,fade,type,redshift\n"
                        "ZTF23abhvlji,SN 2023tyk,1,2,3,g,17.9,-19,20,10,10,SN Ia,0.01\n"
                        "ZTF23abdsfms,AT 2023sxt,1,2,3,g,15.6,-,-,-,-,CV,-\n"
                        "ZTF20aaaaaaa,SN 2020a,1,2,3,g,18.0,-,-,-,-,SLSN-I,-\n"
                        "ZTF20bbbbbbb,AT 2020b,1,2,3,g,18.0,-,-,-,-,-,-\n")
    labels = read_labels(explorer)
    assert {k: v.label for k, v in labels.items()} == {"ZTF23abhvlji": 1, "ZTF23abdsfms": 0, "ZTF20aaaaaaa": 0,
                                                       "ZTF20bbbbbbb": 0}
    assert read_labels(explorer, positive_types=r"^(SN|SLSN)")["ZTF20aaaaaaa"].label == 1


@pytest.mark.parametrize("text, msg", [
    ("objectId,label\nZTF1,2\n", "line 2: label must be 1 or 0"),
    ("objectId,label,saved_at\nZTF1,1,yesterday\n", "line 2, saved_at: not a JD or an ISO date"),
    ("name,label\nZTF1,1\n", "no objectId (or ZTFID) column"),
    ("objectId,label\nZTF1,1\nZTF1,0\n", "ZTF1 is labelled both 1 and 0"),
])
def test_bad_labels(tmp_path, text, msg):
    path = tmp_path / "l.csv"
    path.write_text(text)
    with pytest.raises(LabelError, match=re.escape(msg)):
        read_labels(path)


def test_grids_and_trials():
    assert grid("min_score", "0.3:0.9:0.1", "x") == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert grid("min_alerts", "1,2,3", "x") == [1, 2, 3]
    assert grid("peakmag_max", "18.5,none", "x") == [18.5, None]
    with pytest.raises(TrialError, match="whole number"):
        grid("min_alerts", "1.5", "x")
    base = [(Policy("bts_p1", model_version="v1.0.1"), "saved_at"),
            (Policy("bts_p2", peakmag_max=18.5, model_version="v1.0.1"), "triggered_at")]
    trials = build_trials(base, ["bts_p2.min_score=0.7"], ["min_alerts=1,2", "bts_p1.alert_mag_max=18,19"])
    assert [t.name for t in trials] == ["bts_p1[min_alerts=1,alert_mag_max=18]", "bts_p1[min_alerts=1,alert_mag_max=19]",
                                        "bts_p1[min_alerts=2,alert_mag_max=18]", "bts_p1[min_alerts=2,alert_mag_max=19]",
                                        "bts_p2[min_alerts=1]", "bts_p2[min_alerts=2]"]
    assert trials[-1].policy.min_score == 0.7 and trials[-1].human_time == "triggered_at" and trials[-1].base == "bts_p2"
    with pytest.raises(TrialError, match="no policy 'nope'"):
        build_trials(base, ["nope.min_score=0.1"])
    with pytest.raises(TrialError, match="not one of"):
        build_trials(base, [], ["age_max_days=1,2"])


def test_bins_and_eligibility():
    assert [mag_bin(m) for m in (16.99, 17.0, 17.24, 17.25, 18.49, 18.5, 18.51, None)] == [None, 0, 0, 1, 5, 5, None, None]
    rows = [{"objectId": "A", "candid": 1, "jd": 1.0, "score": 0.9, "magpsf": 18.2, "peakmag_so_far": 18.0},
            {"objectId": "A", "candid": 2, "jd": 2.0, "score": None, "magpsf": 18.1, "peakmag_so_far": 18.0},
            {"objectId": "B", "candid": 3, "jd": 1.0, "score": 0.9, "magpsf": 17.1, "peakmag_so_far": 17.1},
            {"objectId": "B", "candid": 4, "jd": 1.5, "score": 0.2, "magpsf": 17.3, "peakmag_so_far": 17.1}]
    infos = sources(rows)
    assert not infos["A"].eligible and infos["B"].eligible  # A has one scored alert
    assert infos["A"].peakmag == 18.0 and infos["B"].peakmag == 17.1
