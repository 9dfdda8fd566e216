"""`btsbot report` for a busy night: 2,000 alerts, 70 sources acted on.

    python benchmarks/bench_report.py [--alerts 2000] [--acted 70] [--sources 400]

The journal is synthetic but written through the bot's own Journal API with the rows the cycle
journals (bot/cycle.py: candid, objectId, jd, score, status, magpsf, peakmag_so_far, age, drb,
model_version) and the decisions/actions the Actor journals (bot/actions.py: the core policy's
decision and evidence; save, followup, comment and annotation actions with outcomes, a few failed and
pending): `--acted` sources score high at 2+ alerts, a tenth of the others are near misses (one
counting alert, or too faint), the rest score low. Times the command as a process (start included)
with --out (HTML + per acted source: its cutouts, light curve and score/magnitude plot; the score
histogram) and with --format text. The cutouts kept at decision time are the real packets' (cycled).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.config import load_config  # noqa: E402
from bot.backtest.trials import config_policies  # noqa: E402
from bot.core.policies import evaluate  # noqa: E402
from bot.journal import Journal  # noqa: E402
from bot.report.night import night_window  # noqa: E402

NIGHT = "2024-04-01"


def build_journal(path: Path, n_alerts: int, n_acted: int, n_sources: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    lo, hi = night_window(NIGHT)
    start = lo + 0.3  # ~19:00 local + 7 h: the dark hours
    policies = [p for p, _ in config_policies(load_config(env={}))]
    per = n_alerts // n_sources
    rows, by_source = [], {}
    for s in range(n_sources):
        oid = f"ZTF24{s:07d}"[:12].replace("0", "a", 1)
        acted, near = s < n_acted, s >= n_acted and s % 10 == 0
        base_mag = rng.uniform(16.8, 19.3) if not acted else rng.uniform(16.8, 18.8)
        alerts = []
        for k in range(per):
            score = rng.uniform(0.6, 1.0) if acted else (rng.uniform(0.6, 0.9) if near and k == 0 else rng.uniform(0, 0.4))
            mag = base_mag + rng.gauss(0, 0.1)
            a = {"candid": 3_100_000_000_000_000_000 + s * 100 + k, "objectId": oid,
                 "jd": start + s * 1e-4 + k * 0.05, "score": score, "status": "ok", "magpsf": mag,
                 "model_version": "v1.0.1", "age": 3.0 + k * 0.05, "drb": 0.99,
                 "extra": {"ra": 150.0 + s * 0.01, "dec": 20.0}}
            alerts.append(a)
        peak = float("inf")
        for a in alerts:
            peak = min(peak, a["magpsf"])
            a["peakmag_so_far"] = peak
        rows += alerts
        by_source[oid] = alerts
    from bot.alert_files import iter_alert_files
    from bot.core.evidence import thumbnails

    packets = [a for f in iter_alert_files([REPO.parent / "shared" / "alerts" / "ztf"]) for a in f.alerts]
    thumbs = [thumbnails(a) for a in packets]  # real cutouts, as the cycle keeps them at decision time
    with Journal(path, synchronous="OFF") as journal:
        journal.record_alerts(rows)
        n_pending = 0
        for oid, alerts in list(by_source.items())[:n_acted]:
            for p in policies:
                d = evaluate(p, alerts)
                if d is None:
                    continue
                did, _ = journal.record_decision(p.name, oid, d.candid, d.jd, d.evidence)
                upto = [a for a in alerts if a["jd"] <= d.jd]
                journal.record_evidence(d.candid, oid, thumbs[int(oid[5:].replace("a", "0")) % len(thumbs)], {
                    "jd": d.jd, "upper_limits": [{"jd": upto[0]["jd"] - 2 - i, "fid": 1 + i % 2, "diffmaglim": 19.5 + 0.1 * i}
                                                 for i in range(5)],
                    "detections": [{"jd": a["jd"], "fid": 1 + k % 2, "magpsf": a["magpsf"], "sigmapsf": 0.05,
                                    "negative": False, "this": a["candid"] == d.candid} for k, a in enumerate(upto)]})
                main = "followup" if p.peakmag_max is not None else "save"
                aid = journal.start_action(did, main, {"obj_id": oid}, key=main)
                if n_pending < 2 and main == "followup":
                    n_pending += 1
                    journal.note_attempt(aid, "HTTP 503 from Fritz (transient)")
                    continue
                outcome = "saved" if main == "save" else rng.choice(["posted", "posted", "ignored", "failed"])
                journal.finish_action(aid, outcome, {"request_id": rng.randint(1, 10**5)} if outcome == "posted"
                                      else {"message": "not_if_classified"} if outcome != "saved" else {},
                                      error="HTTP 400: bad payload" if outcome == "failed" else None)
                cid = journal.start_action(did, "comment", {"obj_id": oid, "about": main}, key=f"comment:{main}")
                journal.finish_action(cid, "posted", {"comment_id": rng.randint(1, 10**5)})
                if main == "save":
                    nid = journal.start_action(did, "annotation", {"obj_id": oid}, key=f"annotation:{d.candid}")
                    journal.finish_action(nid, "posted", {"annotation_id": 1})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=2000)
    ap.add_argument("--acted", type=int, default=70)
    ap.add_argument("--sources", type=int, default=400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="btsbot-bench-report-") as tmp:
        journal = Path(tmp) / "journal.sqlite"
        build_journal(journal, args.alerts, args.acted, args.sources)
        base = [sys.executable, "-m", "bot", "report", "--journal", str(journal), "--night", NIGHT]
        t = time.perf_counter()
        subprocess.run(base + ["--out", str(Path(tmp) / "html")], check=True, cwd=REPO, stderr=subprocess.DEVNULL)
        t_html = time.perf_counter() - t
        pngs = len(list((Path(tmp) / "html").glob("*.png")))
        t = time.perf_counter()
        out = subprocess.run(base + ["--format", "text"], check=True, cwd=REPO, capture_output=True, text=True).stdout
        t_text = time.perf_counter() - t
    print(f"\n{args.alerts} alerts, {args.sources} sources, {args.acted} acted on; {os.cpu_count()} cores\n")
    print("| report | seconds |\n|---|---|")
    print(f"| `--out DIR` (HTML + {pngs} PNGs) | {t_html:.1f} |")
    print(f"| `--format text` ({len(out.splitlines())} lines) | {t_text:.1f} |")


if __name__ == "__main__":
    main()
