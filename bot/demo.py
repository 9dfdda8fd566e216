"""`btsbot demo`: replay the real discovery of SN 2023tyk with no account anywhere.

Both stand-ins run in this process on loopback: the local Kowalski (or, with `--source boom`, the local
BOOM) serves the README example's 39 alerts
(SN 2023tyk and the CV AT 2023sxt, rebuilt as ZTF packets) each at its real time, driven by a simulated
clock; the local SkyPortal plays Fritz. The bot then runs its ordinary cycle every simulated hour from
2023-10-03 to the last alert, in live mode against the local SkyPortal, with a journal in a temporary
directory deleted at exit (or kept at --journal FILE). In real life BTSbot requested SEDM for SN 2023tyk at its second alert
(2023-10-05 10:37:55 UTC): so must the replay.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Callable

from bot.artifacts import cache_root
from bot.config import load_config
from bot.cycle import run_cycle
from bot.example_data import example_packets, installed_example
from bot.runtime import open_runtime
from bot.scoring.scorer import build_scorer
from bot.sim.clock import SimClock
from bot.sim.kowalski import KowalskiSim
from bot.sim.skyportal import SkyPortalSim
from bot.timeutil import jd_to_datetime, parse_time

START = "2023-10-03T00:00:00"
INGEST_DELAY_DAYS = 5 / 1440  # an alert reaches Kowalski ~5 min after its exposure
NAMES = {"ZTF23abhvlji": "SN 2023tyk", "ZTF23abdsfms": "AT 2023sxt, a cataclysmic variable"}  # for the summary


def _fmt(jd: float) -> str:
    return jd_to_datetime(jd).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(dt) -> str | None:
    return None if dt is None else dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _broker(source: str, clock: SimClock, broker_model):
    """The local broker of the replay (storing its own BTSbot score, as the broker computes it, with each
    alert) and the config section that points the bot at it."""
    if source == "boom":
        from bot.sim.boom.server import BoomSim

        sim = BoomSim(users={"btsbot": "demo"}, clock=clock, broker_model=broker_model)
        return sim, lambda s: {"source": "boom", "boom": {"url": s.url, "username": "btsbot", "password": "demo"}}
    sim = KowalskiSim(clock=clock, broker_model=broker_model)
    return sim, lambda s: {"kowalski": {"protocol": "http", "host": s.host, "port": s.port, "token": s.token}}


def run_demo(cache_dir=None, step_hours: float = 1.0, until: str | None = None, journal: str | None = None,
             out: Callable[[str], None] = print, scorer=None, source: str = "kowalski") -> dict:
    """Replay the example; returns a summary: decisions with their times, the writes to the local SkyPortal and
    `objects`, one {objectId, saved_at, followup_requested_at} per object of the replay (simulated UTC, ISO, or
    None when the bot never saved / requested it)."""
    cache = cache_root(cache_dir)
    packets = example_packets(*installed_example(cache))
    start = parse_time(START)
    end = parse_time(until) if until else max(p["candidate"]["jd"] for p in packets) + 0.5
    clock = SimClock(start_jd=start, speed=0)  # stepped by the loop below
    if scorer is None:
        scorer = build_scorer(load_config(overrides={"models": {"cache_dir": str(cache)}}, env={}))
    broker, section = _broker(source, clock, (scorer.fp32_model or scorer.model).predict)
    with tempfile.TemporaryDirectory(prefix="btsbot-demo-") as tmp, broker as kowalski, SkyPortalSim() as skyportal:
        kowalski.load_alerts(packets, visible_at=[p["candidate"]["jd"] + INGEST_DELAY_DAYS for p in packets])
        cfg = load_config(overrides={
            "mode": "live",
            **section(kowalski),
            "skyportal": {"url": skyportal.url, "token": skyportal.token},
            "state": {"path": journal or str(Path(tmp) / "journal.sqlite")},
            "models": {"cache_dir": str(cache)},
        }, env={})
        out(f"btsbot demo: replaying {len(packets)} alerts of SN 2023tyk and AT 2023sxt from {_fmt(start)}, "
            f"one cycle per {step_hours:g} simulated hour(s)")
        kept = f"journal {cfg.journal_path}" if journal else "journal in a temporary file (--journal FILE keeps it)"
        out(f"  local {'BOOM' if source == 'boom' else 'Kowalski'} {kowalski.url}, local SkyPortal {skyportal.url}, {kept}")
        rt = open_runtime(cfg, scorer=scorer, now_jd=clock.now_jd, now=clock.now_datetime)
        decisions, cycles = [], 0
        done: dict[tuple[str, str], object] = {}  # (objectId, "save"/"followup") -> simulated time it was done
        try:
            while clock.now_jd() < end:
                clock.set(round(clock.now_jd() + step_hours / 24, 8))
                report = run_cycle(rt)
                cycles += 1
                if report.n_new or report.actions:
                    out(f"[{_fmt(clock.now_jd())}] " + "\n    ".join(report.lines()))
                decisions += [{**d, "utc": _fmt(d["jd"])} for d in report.decisions]
                for a in report.actions:
                    if (a.action, a.outcome) in (("save", "saved"), ("followup", "posted")):
                        done.setdefault((a.objectId, a.action), clock.now_datetime())
        finally:
            rt.close()
        objects = [{"objectId": oid, "saved_at": _iso(done.get((oid, "save"))),
                    "followup_requested_at": _iso(done.get((oid, "followup")))}
                   for oid in dict.fromkeys(p["objectId"] for p in packets)]
        summary = {"cycles": cycles, "decisions": decisions, "writes": skyportal.writes(), "objects": objects}
        out(f"\n{cycles} cycles, {len(skyportal.writes())} writes to the local SkyPortal.")
        for d in decisions:
            out(f"  {d['policy']} selected {d['objectId']} at its alert of {d['utc']} "
                f"({d['n_counting']} alerts > threshold, peak {d['peakmag_so_far']:.2f} mag)")
        selected = {d["objectId"] for d in decisions}
        for o in objects:
            if o["objectId"] not in selected:
                name = f" ({NAMES[o['objectId']]})" if o["objectId"] in NAMES else ""
                out(f"  {o['objectId']}{name} was never selected: nothing was written to Fritz about it")
        out("In real life, BTSbot requested SEDM for SN 2023tyk at 2023-10-05 10:37:55 UTC.")
        if journal:
            out(f"The journal is kept at {cfg.journal_path} (btsbot journal --journal {cfg.journal_path}).")
        return summary


def demo_cli(cache_dir=None, step_hours: float = 1.0, until: str | None = None, journal: str | None = None,
             fmt: str = "text", source: str = "kowalski") -> dict:
    """`btsbot demo`: the replay's progress and summary as text on stdout, or (fmt "json") the progress on
    stderr and, on stdout, the JSON list of objects {objectId, saved_at, followup_requested_at}."""
    if fmt == "json":
        summary = run_demo(cache_dir, step_hours, until, journal, out=lambda line: print(line, file=sys.stderr),
                           source=source)
        print(json.dumps(summary["objects"], indent=2))
    else:
        summary = run_demo(cache_dir, step_hours, until, journal, source=source)
    return summary
