"""The backtest report's FP/FN panels carry the same cutouts and light curve as the night report's, read
again from the alert files (or taken from what the journal kept)."""

from __future__ import annotations

from bot.cli import main


def test_a_false_positive_shows_its_cutouts_and_light_curve(alerts_dir, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("objectId,label\nZTF20aajcdad,0\n")  # the one source with two alerts: selected, labelled 0
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models: {backend: onnx}\n")
    out = tmp_path / "report"
    assert main(["backtest", "--config", str(cfg), "--alerts", str(alerts_dir), "--labels", str(labels),
                 "--no-score-cache", "--report", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "ZTF20aajcdad: FP of bts_p1" in page
    for name in ("cutouts_ZTF20aajcdad.png", "lightcurve_ZTF20aajcdad.png", "source_ZTF20aajcdad.png"):
        assert (out / name).stat().st_size > 5_000 and f'src="{name}"' in page
    assert "None" not in page.split("<h2>Policies</h2>")[1].split("<details>")[0]
