"""Acting on Fritz at its rate limit: requests per saved / triggered source and wall time.

    python benchmarks/bench_actions.py [--sources 50] [--rate 5] [--existing]

N synthetic sources are selected by bts_p1 (save + comment + annotation) and bts_p2 (SEDM request +
comment); the actions run against the local SkyPortal with the client's rate limit (Fritz: 5 req/s).
With --existing the Objs exist on Fritz before (unsaved candidates, as a Fritz filter posts them), so
the follow-up has to list their requests.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.actions import Actor  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.runtime import configured_policies  # noqa: E402
from bot.core.policies import Decision  # noqa: E402
from bot.journal import Journal  # noqa: E402
from bot.sim.skyportal import SkyPortalSim  # noqa: E402
from bot.skyportal.client import SkyPortalClient  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=50)
    ap.add_argument("--rate", type=float, default=5.0)
    ap.add_argument("--existing", action="store_true", help="the Objs exist on Fritz (unsaved) beforehand")
    args = ap.parse_args()
    cfg = load_config(env={})
    with tempfile.TemporaryDirectory() as tmp, SkyPortalSim() as sim:
        client = SkyPortalClient(sim.url, sim.token, rate_limit_per_s=args.rate)
        journal = Journal(Path(tmp) / "j.sqlite")
        policies = configured_policies(cfg)
        mv = policies[0].model_version
        actor = Actor(journal, policies, {"skyportal": client}, mode="live")
        with journal.transaction():
            for i in range(args.sources):
                oid = f"ZTF24bench{i:04d}"
                journal.record_alerts([{"candid": 10**18 + i, "objectId": oid, "jd": 2460600.5 + i / 100, "score": 0.9,
                                        "model_version": mv, "status": "ok", "magpsf": 18.0,
                                        "peakmag_so_far": 18.0, "age": 1.0}])
                for name in ("bts_p1", "bts_p2"):
                    d = Decision(name, oid, 10**18 + i, 2460600.5 + i / 100, 2, (10**18 + i - 1, 10**18 + i), 0.9,
                                 0.9, 18.0, 18.0, 1.0, mv)
                    actor.plan(d, {"extra": {"ra": 10.0 + i / 10, "dec": 20.0}})
                actor.plan_source(oid)
        if args.existing:
            sim.add_objs({f"ZTF24bench{i:04d}": (10.0 + i / 10, 20.0) for i in range(args.sources)})
        sim.clear_requests()
        t = time.perf_counter()
        reports = actor.run_pending()
        seconds = time.perf_counter() - t
        outcomes = Counter((r.action, r.outcome) for r in reports)
        by_kind = Counter()
        for r in sim.requests:
            path = r["path"]
            kind = ("followup" if "followup_request" in path else "comment" if path.endswith("/comments")
                    else "annotation" if "/annotations" in path else "save" if path.startswith("/api/sources") else "other")
            by_kind[kind] += 1
        n = args.sources
        print(f"{n} {'existing unsaved' if args.existing else 'new'} sources, each saved (bts_p1) and triggered "
              f"(bts_p2); client rate limit {args.rate:g} req/s\n")
        print("| | requests | per source |")
        print("|---|---|---|")
        listing = "list requests, POST" if args.existing else "POST; no listing: the save created the Obj"
        for label, value in (("save (read the source, one POST /api/sources)", by_kind["save"]),
                             (f"follow-up ({listing})", by_kind["followup"]),
                             ("comment (one for the save and the trigger at one alert)", by_kind["comment"]),
                             ("annotation (POST; later PUT of the journaled id)", by_kind["annotation"]),
                             ("all: per saved-and-triggered source", len(sim.requests))):
            print(f"| {label} | {value:g} | {value / n:.1f} |")
        print(f"\nwall time {seconds:.1f} s for {len(sim.requests)} requests "
              f"({len(sim.requests) / seconds:.2f} req/s); outcomes: {dict(outcomes)}")
        journal.close()
        client.close()


if __name__ == "__main__":
    main()
