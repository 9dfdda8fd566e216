"""Crash trials: SIGKILL a live `btsbot run --once` at random points of the demo night, restart until done.

The README example alerts are served by the local Kowalski, the local SkyPortal plays Fritz; both run in
this process, the bot in a child process that is killed. After the restarts, each trial checks: every
alert journaled once, no decision lost, exactly one SEDM request, no comment stored twice (a kill between
a comment's POST and its journal entry re-posts it byte-identical, which SkyPortal merges: counted as
a repost, and the journal must say it was merged), no own request journaled as "skipped", nothing
pending.

    python benchmarks/bench_crash.py --trials 200 [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SN = "ZTF23abhvlji"
SINCE, UNTIL = 2460200.0, 2460270.0


def write_config(path: Path, kowalski, skyportal, cache_dir) -> Path:
    cfg = {"mode": "live",
           "kowalski": {"protocol": "http", "host": "127.0.0.1", "port": kowalski.port, "token": kowalski.token,
                        "timeout_s": 5.0, "max_time_ms": 4000, "backoff_s": 0.05},
           "skyportal": {"url": skyportal.url, "token": skyportal.token, "rate_limit_per_s": 50.0,
                         "backoff_s": 0.05, "followup_timeout_s": 2.0},
           "state": {"path": str(path.parent / "journal.sqlite")}, "models": {"cache_dir": str(cache_dir)}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def command(config: Path) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "run", "--once", "--config", str(config),
            "--since", str(SINCE), "--until", str(UNTIL)]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def trial(kowalski, cache_dir, kill_after_s: float, workdir: Path, kill: bool = True) -> dict:
    """One trial: a run killed after `kill_after_s` (unless kill=False: it runs to its end), then runs until
    one exits 0; returns the checks."""
    from bot.journal import Journal
    from bot.sim.skyportal import SkyPortalSim

    with SkyPortalSim() as skyportal:
        config = write_config(workdir / "config.yaml", kowalski, skyportal, cache_dir)
        started = time.monotonic()
        proc = subprocess.Popen(command(config), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
        time.sleep(kill_after_s)
        killed = kill and proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        first_run_s = time.monotonic() - started
        runs, outputs = 1, []
        for _ in range(5):
            runs += 1
            done = subprocess.run(command(config), capture_output=True, text=True, env=env(), timeout=300)
            outputs.append(f"--- run {runs}: rc {done.returncode}\n{done.stderr}")
            if done.returncode == 0:
                break
        (workdir / "runs.log").write_text(f"killed after {kill_after_s:.2f} s\n" + "\n".join(outputs))
        with Journal(workdir / "journal.sqlite") as journal:
            history = journal.history()
            pending = journal.unfinished_actions()
        reqs = skyportal.requests
        stored = Counter(r["text"] for r in skyportal.store.q("SELECT text FROM comments WHERE obj_id = ?", (SN,)))
        (workdir / "requests.json").write_text(json.dumps(reqs, indent=1, default=str))
    alerts = Counter(r["candid"] for r in history if r["kind"] == "alert")
    decisions = {(r["policy"], r["objectId"]) for r in history if r["kind"] == "decision"}
    actions = [r for r in history if r["kind"] == "action"]
    posts = [r for r in reqs if r["method"] == "POST" and r["path"] == "/api/followup_request" and r["status"] == 200]
    comments = [r["body"]["text"] for r in reqs if r["method"] == "POST" and r["path"].endswith("/comments")
                and r["status"] == 200]
    return {
        "killed": killed, "runs": runs, "first_run_s": first_run_s,
        "alerts_once": bool(alerts) and max(alerts.values()) == 1,
        "decisions": decisions == {("bts_p1", SN), ("bts_p2", SN)},
        "one_sedm_request": len(posts) == 1,
        "no_comment_twice": bool(stored) and max(stored.values()) == 1,  # a byte-identical retry is merged
        "comment_reposts": len(comments) - len(set(comments)),
        "reposts_journaled": len(comments) - len(set(comments)) == sum(
            bool((a.get("response") or {}).get("merged")) for a in actions if a["action"] == "comment"),
        "no_misjournaled": not any(a["action"] == "followup" and a["outcome"] == "skipped" for a in actions),
        "nothing_pending": pending == [],
    }


CHECKS = ("alerts_once", "decisions", "one_sedm_request", "no_comment_twice", "reposts_journaled", "no_misjournaled",
          "nothing_pending")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-kill-s", type=float, default=None,
                    help="kill uniformly within this many seconds (default: the length of one unkilled run)")
    ap.add_argument("--cache-dir", help="model cache (after `btsbot models pull`)")
    ap.add_argument("--keep", help="copy each failed trial's journal, requests and run logs under this directory")
    args = ap.parse_args()
    from bot.artifacts import cache_root
    from bot.example_data import example_packets, installed_example
    from bot.sim.kowalski import KowalskiSim

    cache = cache_root(args.cache_dir)
    packets = example_packets(*installed_example(cache))
    rng = random.Random(args.seed)
    failures = Counter()
    t0 = time.monotonic()
    with KowalskiSim() as kowalski:
        kowalski.load_alerts(packets)
        max_kill = args.max_kill_s
        if max_kill is None:  # how long an unkilled run lasts, so that every trial kills inside a run
            with tempfile.TemporaryDirectory() as tmp:
                max_kill = trial(kowalski, cache, 0.0, Path(tmp), kill=False)["first_run_s"]
            print(f"one unkilled run: {max_kill:.1f} s; kills drawn in [0.3, {max_kill:.1f}] s", flush=True)
        killed = reposts = 0
        for i in range(args.trials):
            with tempfile.TemporaryDirectory() as tmp:
                result = trial(kowalski, cache, rng.uniform(0.3, max_kill), Path(tmp))
                if args.keep and not all(result[c] for c in CHECKS):
                    shutil.copytree(tmp, Path(args.keep) / f"trial-{i + 1}")
            failures.update(c for c in CHECKS if not result[c])
            killed += result["killed"]
            reposts += result["comment_reposts"]
            print(f"trial {i + 1}: killed={result['killed']} runs={result['runs']} "
                  f"failed={[c for c in CHECKS if not result[c]]}", flush=True)
    print(f"{args.trials} trials ({killed} killed mid-run, the others finished first) in "
          f"{time.monotonic() - t0:.0f} s; failures by check: {dict(failures) or 'none'}; "
          f"{reposts} comment(s) re-posted after a kill and merged by SkyPortal")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
