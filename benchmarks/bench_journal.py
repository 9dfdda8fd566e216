"""Benchmark of the journal (bot/journal.py): how fast alert rows are recorded, and how big the file gets.

    python benchmarks/bench_journal.py --n 20000

Records --n realistic alert rows (int64 candids > 2**53, ~5 alerts per source, extra fields as the
poller stores them) into a fresh journal in a temporary directory, in batches (one record_alerts
call per batch, as the poller does once per cycle), for a few batch sizes and synchronous settings.
Prints rows/s (target: 10,000/s), the re-record (upsert) rate, the known_candids lookup rate, and
the database size per 1,000 alerts (after a WAL checkpoint). Nothing is written outside the temp dir.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bot.journal import Journal  # noqa: E402

TARGET = 10_000  # rows/s


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    base_candid = 2_900_000_000_000_000_000  # real ZTF candids are ~2.5e18-3e18
    n_obj = max(1, n // 5)
    letters = "abcdefghijklmnopqrstuvwxyz"
    objects = ["ZTF24" + "".join(rng.choice(letters) for _ in range(7)) for _ in range(n_obj)]
    rows = []
    for i in range(n):
        obj = objects[rng.randrange(n_obj)]
        scorable = rng.random() > 0.05
        mag = rng.uniform(15.0, 20.5)
        rows.append({
            "candid": base_candid + i * 1_000_003 + rng.randrange(1000),
            "objectId": obj,
            "jd": 2460640.5 + i * 1e-4 + rng.random() * 1e-5,
            "score": rng.random() if scorable else None,
            "model_version": "v1.0.1",
            "status": "ok" if scorable else "unscorable: missing cutoutTemplate",
            "magpsf": mag,
            "peakmag_so_far": mag - rng.uniform(0.0, 1.0),
            "age": rng.uniform(0.0, 30.0),
            "drb": rng.uniform(0.5, 1.0),
            "extra": {
                "ra": rng.uniform(0.0, 360.0), "dec": rng.uniform(-30.0, 90.0), "fid": rng.choice((1, 2)),
                "programid": 1, "isdiffpos": "t", "sgscore1": round(rng.random(), 3),
                "distpsnr1": round(rng.uniform(0.0, 20.0), 2), "ndethist": rng.randrange(1, 50),
            },
        })
    return rows


def run(rows: list[dict], batch: int, synchronous: str, tmpdir: str) -> dict:
    path = os.path.join(tmpdir, f"journal-{batch}-{synchronous}.sqlite")
    with Journal(path, synchronous=synchronous) as j:
        t0 = time.perf_counter()
        for start in range(0, len(rows), batch):
            j.record_alerts(rows[start:start + batch])
        insert_s = time.perf_counter() - t0

        redo = rows[: min(len(rows), 5000)]  # a restart re-records what it already handled
        t0 = time.perf_counter()
        for start in range(0, len(redo), batch):
            j.record_alerts(redo[start:start + batch])
        upsert_s = time.perf_counter() - t0

        asked = [r["candid"] for r in rows[::2]] + [r["candid"] + 1 for r in rows[::2]]
        t0 = time.perf_counter()
        found = j.known_candids(asked)
        lookup_s = time.perf_counter() - t0
        assert len(found) == len(rows[::2]), "known_candids returned the wrong set"
        assert len(j.history(kind="alerts")) == len(rows)

        j._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = os.path.getsize(path) + (os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0)
    return {
        "batch": batch, "sync": synchronous, "rows_s": len(rows) / insert_s,
        "upsert_s": len(redo) / upsert_s, "lookup_s": len(asked) / lookup_s,
        "kb_per_1000": size / len(rows) * 1000 / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="alert rows to record (default 20000)")
    ap.add_argument("--batches", default="100,1000,5000", help="batch sizes, comma-separated")
    ap.add_argument("--sync", default="FULL,NORMAL", help="PRAGMA synchronous settings, comma-separated")
    args = ap.parse_args(argv)

    rows = make_rows(args.n)
    batches = [int(b) for b in args.batches.split(",")]
    syncs = [s.strip().upper() for s in args.sync.split(",")]
    print(f"journal benchmark: {args.n} alert rows, python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    header = f"{'batch':>6} {'sync':>6} {'insert rows/s':>14} {'upsert rows/s':>14} {'lookup cand/s':>14} {'KiB/1000 alerts':>16}"
    print(header)
    print("-" * len(header))
    worst = float("inf")
    with tempfile.TemporaryDirectory(prefix="bench_journal-") as tmpdir:
        for sync in syncs:
            for batch in batches:
                r = run(rows, batch, sync, tmpdir)
                worst = min(worst, r["rows_s"])
                print(f"{r['batch']:>6} {r['sync']:>6} {r['rows_s']:>14,.0f} {r['upsert_s']:>14,.0f} "
                      f"{r['lookup_s']:>14,.0f} {r['kb_per_1000']:>16,.1f}")
    verdict = "meets" if worst >= TARGET else "MISSES"
    print(f"slowest insert rate {worst:,.0f} rows/s {verdict} the target of {TARGET:,} rows/s")
    return 0 if worst >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
