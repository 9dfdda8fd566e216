"""`btsbot report` on the journal of the demo night (SN 2023tyk saved and triggered, the CV not)."""

import pytest
from conftest import CV, SN

from bot.cli import main


@pytest.fixture
def config(tmp_path, demo_journal):
    path = tmp_path / "config.yaml"
    path.write_text(f"skyportal: {{url: 'https://fritz.example.org/'}}\nstate: {{path: '{demo_journal}'}}\n")
    return str(path)


def test_night_window_is_palomar_noon_to_noon():
    from bot.report.night import night_window
    from bot.timeutil import parse_time

    # PDT (UTC-7) in October, PST (UTC-8) in December
    assert night_window("2023-10-04") == pytest.approx((parse_time("2023-10-04T19:00"), parse_time("2023-10-05T19:00")))
    assert night_window("2023-12-04")[0] == pytest.approx(parse_time("2023-12-04T20:00"))


def test_text_report_of_the_demo_night(capsys, config):
    assert main(["report", "--config", config, "--night", "2023-10-04", "--format", "text"]) == 0
    out = capsys.readouterr().out
    acted = out.split("Saved or triggered:")[1].split("Near misses")[0]
    assert f"{SN}  https://fritz.example.org/source/{SN}\n" in acted
    assert "bts_p1 fired at its alert of 2023-10-05 10:37:55 UTC" in acted
    assert "bts_p2 fired at its alert of 2023-10-05 10:37:55 UTC" in acted
    assert "save (bts_p1): saved" in acted and "followup (bts_p2): posted" in acted
    assert CV not in acted
    not_selected = out.split("Not selected")[1].split("Errors:")[0]
    assert f"{CV}: 2 alerts" in not_selected and "no counting alert" in not_selected
    assert "Pending actions:\n  none" in out


def test_html_report_with_real_pngs(capsys, config, tmp_path):
    import matplotlib.image

    out = tmp_path / "night"
    assert main(["report", "--config", config, "--since", "2023-10-03", "--until", "2023-10-06",
                 "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert f'<a href="https://fritz.example.org/source/{SN}">{SN}</a>' in page
    assert "save (bts_p1): saved" in page and "followup (bts_p2): posted" in page
    assert f"<td>{CV}</td>" in page  # not selected
    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in pngs} == {f"source_{SN}.png", "scores.png", f"cutouts_{SN}.png", f"lightcurve_{SN}.png"}
    for p in pngs:
        img = matplotlib.image.imread(p)
        assert img.ndim == 3 and img.shape[0] > 100 and img.std() > 0  # a decoded image with content


def test_near_miss_reasons():
    from bot.core.policies import Policy
    from bot.core.reasons import why_not

    def alert(i, score, mag, peak, age=1.0):
        return {"objectId": "ZTF", "candid": i, "jd": 2460000 + i, "score": score, "magpsf": mag,
                "peakmag_so_far": peak, "age": age}

    p2 = Policy("bts_p2", peakmag_max=18.5, model_version="v1.0.1")
    assert why_not(p2, [alert(1, 0.9, 18.8, 18.8), alert(2, 0.1, 18.7, 18.7)]) == "too few alerts (1 of 2 counting)"
    assert why_not(p2, [alert(1, 0.9, 18.8, 18.8), alert(2, 0.9, 18.7, 18.7)]) == "too faint (peak 18.70 > 18.5 mag)"
    young = Policy("young", age_max_days=3, model_version="v1.0.1")
    assert why_not(young, [alert(1, 0.9, 18, 18, 5), alert(2, 0.9, 18, 18, 6)]).startswith("outside the age window")
    assert why_not(p2, [alert(1, 0.01, 18, 18)]) == "no counting alert (max score 0.010)"


def test_report_usage_errors(capsys, tmp_path):
    assert main(["report", "--journal", str(tmp_path / "none.sqlite"), "--night", "2023-10-04"]) == 1
    assert "no journal" in capsys.readouterr().err
    assert main(["report", "--night", "2023-13-45"]) == 2
    assert main(["report"]) == 2


def test_many_source_plots_on_every_core(tmp_path):
    """Past 8 plots they are drawn in worker processes, with the config's policies (actions and all)."""
    import matplotlib.image

    from bot import plotting
    from bot.backtest.trials import config_policies
    from bot.config import load_config

    policies = [p for p, _ in config_policies(load_config(env={}))]
    alerts = [{"jd": 2460400 + i * 0.05, "score": 0.2 * i, "magpsf": 18.0 + 0.1 * i} for i in range(5)]
    jobs = [(tmp_path / f"s{i}.png", f"ZTF{i}", alerts, policies, {"bts_p1": 2460400.1}) for i in range(9)]
    paths = plotting.source_histories(jobs, workers=2)
    assert paths == [j[0] for j in jobs]
    assert all(matplotlib.image.imread(p).shape[0] > 100 for p in paths)


def test_the_evidence_kept_at_decision_time(demo_journal, real_alerts):
    """The cutouts (zscaled 8-bit) and the light curve the bot had at the alert where a policy fired."""
    import numpy as np

    from bot.core.evidence import lightcurve, thumbnails
    from bot.core.features import packet_history
    from bot.journal import Journal

    with Journal(demo_journal) as journal:
        d = journal.get_decision("bts_p2", SN)
        e = journal.evidence(d["candid"])
    assert all(e[k].dtype == np.uint8 and e[k].shape == (63, 63) and e[k].std() > 0
               for k in ("cutoutScience", "cutoutTemplate", "cutoutDifference"))
    lc = e["lightcurve"]
    assert lc["jd"] == d["jd"] and [p["this"] for p in lc["detections"]][-1] is True
    assert all(p["jd"] <= d["jd"] for p in lc["detections"] + lc["upper_limits"])  # nothing from the future
    # on a real packet: upper limits from its history, and every detection once
    alert = max(real_alerts, key=lambda a: len(a.get("prv_candidates") or []))
    got = lightcurve(alert["candidate"], packet_history(alert))
    assert got["upper_limits"] and len({(p["jd"], p["fid"]) for p in got["detections"]}) == len(got["detections"])
    thumbs = thumbnails({**alert, "cutoutTemplate": {"stampData": b"not a gzip"}})
    assert thumbs["cutoutTemplate"] is None and thumbs["cutoutScience"] is not None
