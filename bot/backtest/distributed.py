"""`--alerts PATH… --dask local:N|tcp://HOST:PORT`: the files of a backtest scored on a Dask cluster.

The client (this process) finds the files, skips those the score cache holds, and cuts the rest into the
chunks `sources.from_files` reads (128 files), each cut into partitions that go to the workers. Each worker
builds its scorer once, from a small picklable description (`ScorerSpec.recipe`: the `models:` config,
the backend, cache dir, drb source, batch size and thresholds), and keeps it for every later partition
(`worker_scorer`, a per-process cache keyed by the description); it reads its files (local paths or fsspec
URLs the workers can open), skips the alerts already cached, and returns plain rows (`result_row` dicts),
what it could not read and what it could not score. The client merges the partitions chunk by chunk in
file order, writes the score cache as each chunk completes, and gives the same `Sample` as
`from_files`: the same alerts in the same order, the same counts, the same unreadable files.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import threading
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Iterator

from bot.alert_files import find_alert_files, read_alert_file
from bot.backtest.cache import ScoreCache, preprocessing_key
from bot.backtest.errors import BacktestError
from bot.backtest.sources import Sample, ScorerSpec, cached_files, file_evidence, policy_rows
from bot.cli.common import EXIT_FAILED, EXIT_USAGE

DASK_HINT = 'Dask is not installed: pip install "btsbot[dask]"'
SPEC_HELP = "local:N (a cluster of N worker processes on this machine) or tcp://HOST:PORT (a running scheduler)"
CONNECT_TIMEOUT_S = 10.0
WORKERS_TIMEOUT_S = 60.0
_SPEC = re.compile(r"^(?:local:(?P<n>\d+)|(?P<address>tcp://[^\s:/]+:\d+))$")


class DaskError(BacktestError):
    """A one-line error of the Dask path, with the exit code it means (bot/cli/common.py)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_code = exit_code


def parse_spec(text: str) -> tuple[str, int | str]:
    """`local:N` -> ("local", N); `tcp://HOST:PORT` -> ("tcp", the address)."""
    m = _SPEC.match(text.strip()) if isinstance(text, str) else None
    if m is None or (m["n"] is not None and int(m["n"]) < 1):
        raise DaskError(f"--dask {text}: expected {SPEC_HELP}", EXIT_USAGE)
    return ("local", int(m["n"])) if m["n"] is not None else ("tcp", m["address"])


@contextmanager
def dask_client(text: str) -> Iterator:
    """A distributed.Client on the cluster `text` names (a LocalCluster is started and closed with it)."""
    kind, value = parse_spec(text)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise DaskError(DASK_HINT, EXIT_USAGE) from None
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # the scheduler's and the client's INFO lines
        logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    if kind == "local":
        # one task at a time per worker process: each worker is a scorer (decoding and the model in turn)
        with warnings.catch_warnings():  # "port 8787 is in use": the scheduler's HTTP routes take another
            warnings.simplefilter("ignore", UserWarning)
            cluster = LocalCluster(n_workers=value, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        try:
            client = Client(value, timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:  # TimeoutError included
            raise DaskError(f"--dask {value}: no Dask scheduler answers there ({exc})") from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except (TimeoutError, OSError):
            raise DaskError(f"--dask {value}: the scheduler has no worker after {WORKERS_TIMEOUT_S:g} s "
                            "(start some: dask worker ADDRESS)") from None
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --- the worker side ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScorerDescription:
    """What a worker needs to build the client's scorer (picklable, hashable)."""

    models: tuple  # the `models:` config, as sorted (key, value) pairs
    backend: str
    cache_dir: str | None
    drb_source: str
    batch_size: int | None
    thresholds: tuple
    model_version: str

    @classmethod
    def of(cls, spec: ScorerSpec, threads: int | None = None) -> "ScorerDescription":
        if spec.recipe is None:
            raise DaskError("--dask builds the scorer of the config on each worker; this one was given ready-made",
                            EXIT_USAGE)
        r = spec.recipe
        models = dict(r["models"])
        if threads is not None and not models.get("threads"):
            models["threads"] = threads
        thresholds = tuple(r["thresholds"]) if r["backend"] == "onnx-int8" else ()  # only int8's fp32 floor uses them
        return cls(tuple(sorted(models.items())), r["backend"], None if r["cache_dir"] is None else str(r["cache_dir"]),
                   r["drb_source"], r["batch_size"], thresholds, spec.model_version)


_SCORERS: dict = {}
_LOADS: Counter = Counter()  # description -> how many times this process built its scorer (once)
_LOCK = threading.Lock()


def worker_scorer(desc: ScorerDescription):
    """The scorer of `desc` in this process, built at the first partition and kept for the others."""
    with _LOCK:
        scorer = _SCORERS.get(desc)
        if scorer is None:
            from bot.config import ModelsConfig
            from bot.scoring.scorer import build_scorer

            cfg = SimpleNamespace(models=ModelsConfig(**dict(desc.models)), policies=[])
            scorer = build_scorer(cfg, desc.backend, desc.cache_dir, desc.drb_source, desc.batch_size,
                                  thresholds=desc.thresholds)
            if scorer.model_version != desc.model_version:
                raise RuntimeError(f"this worker loaded model {scorer.model_version}, not {desc.model_version}")
            _SCORERS[desc] = scorer
            _LOADS[desc] += 1
        return scorer


_TASKS: Counter = Counter()  # description -> partitions this process scored


def scorer_loads() -> dict:
    """What this worker process did: its pid, and per scorer description the loads (1) and the partitions it
    scored (ask every worker with `client.run(scorer_loads)`)."""
    with _LOCK:
        return {"pid": os.getpid(), "loads": dict(_LOADS), "partitions": dict(_TASKS)}


def worker_threads(text: str) -> int | None:
    """The model threads of each worker: a local cluster shares this machine's cores between its N workers
    (unless `models.threads` says otherwise); a remote worker uses `models.threads` (0: all its cores)."""
    kind, value = parse_spec(text)
    return max(1, (os.cpu_count() or 1) // value) if kind == "local" else None


def _cached_among(skip, cands: list) -> set:
    """The candids of `cands` in the sorted int64 array `skip`."""
    ints = [c for c in cands if isinstance(c, int) and not isinstance(c, bool)]
    if not ints or skip is None or len(skip) == 0:
        return set()
    import numpy as np

    arr = np.asarray(ints, dtype=np.int64)
    pos = np.minimum(np.searchsorted(skip, arr), len(skip) - 1)
    return {c for c, hit in zip(ints, skip[pos] == arr) if hit}


def score_partition(desc: ScorerDescription, paths: list[str], skip) -> dict:
    """Read and score one partition's files on a worker; `skip`: the candids the score cache holds."""
    files, alerts = [], []
    for path in paths:
        f = read_alert_file(path)
        if f.error:
            files.append((path, f.error, [], []))
            continue
        cands = [a.get("candid") for a in f.alerts]
        known = _cached_among(skip, cands)
        files.append((path, None, cands, [c for c in cands if c in known]))
        alerts.extend(a for a, c in zip(f.alerts, cands) if c not in known)
    rows, unscorable, scored = [], Counter(), 0
    if alerts:
        scorer = worker_scorer(desc)
        results = scorer.finish(scorer.stage(alerts))
        rows, unscorable = policy_rows(results, desc.model_version)
        scored = len(results)
    with _LOCK:
        _TASKS[desc] += 1
    return {"files": files, "rows": rows, "unscorable": unscorable, "scored": scored, "worker": _worker_name()}


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not on a worker
        return f"pid {os.getpid()}"


# --- the client side ------------------------------------------------------------------------------------
def _cached_candids(cache: ScoreCache, mv: str, pp: str):
    """Every candid the cache holds for (model version, preprocessing), a sorted int64 array: the workers skip
    them, as from_files skips what its lookup per file read finds (in files the cache's file index does not
    know: new or changed files, fsspec URLs). 8 bytes a score, sent once to each worker."""
    import numpy as np

    return np.fromiter(cache.candids(mv, pp), dtype=np.int64)


def _note(msg: str) -> None:
    print(f"btsbot: {msg}", file=sys.stderr, flush=True)


def _workers(client) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))


def from_files(inputs, spec: ScorerSpec, cache: ScoreCache | None, dask, chunk: int = 128,
               partition: int | None = None, note: Callable[[str], None] = _note, retries: int = 1) -> Sample:
    """`sources.from_files` on a Dask cluster: the same Sample, scored by the workers. `dask`: a `--dask` spec
    (the cluster is reached, or started, only when some file is not all cached) or a distributed.Client."""
    desc = ScorerDescription.of(spec, worker_threads(dask) if isinstance(dask, str) else None)
    mv, pp = spec.model_version, preprocessing_key(spec.drb_source, "packet", spec.precision)
    sample = Sample([], "files")
    files = list(find_alert_files(inputs))
    where: dict[int, str] = {}
    sample.evidence = lambda candid: file_evidence(where.get(int(candid)), int(candid))
    sample.inputs = len(files)
    to_read = cached_files(files, cache, mv, pp, sample, where)
    if not to_read:
        return _finished(sample)
    if isinstance(dask, str):
        with dask_client(dask) as client:
            return _score(client, desc, to_read, sample, cache, mv, pp, where, chunk, partition, note, retries)
    return _score(dask, desc, to_read, sample, cache, mv, pp, where, chunk, partition, note, retries)


def _score(client, desc, to_read, sample, cache, mv, pp, where, chunk, partition, note, retries) -> Sample:
    nworkers = _workers(client)
    per = partition or max(1, min(chunk, math.ceil(len(to_read) / (4 * nworkers))))
    chunks = [to_read[i:i + chunk] for i in range(0, len(to_read), chunk)]
    parts = [(k, c[j:j + per]) for k, c in enumerate(chunks) for j in range(0, len(c), per)]
    skip = _cached_candids(cache, mv, pp) if cache is not None else None
    skip_arg = client.scatter([skip], broadcast=True)[0] if skip is not None and len(skip) > 10_000 else skip
    note(f"dask: {len(to_read):,} files in {len(parts):,} partitions of <= {per} on {nworkers} worker(s) "
         f"at {client.scheduler_info().get('address', '?')}")
    futures = [client.submit(score_partition, desc, paths, skip_arg, pure=False, retries=retries)
               for _, paths in parts]
    index_of = {f.key: i for i, f in enumerate(futures)}
    of_chunk: dict[int, list[int]] = {}  # chunk -> its partitions
    for i, (k, _) in enumerate(parts):
        of_chunk.setdefault(k, []).append(i)
    done: dict[int, dict] = {}
    next_chunk, finished, files_done, scored, workers = 0, 0, 0, 0, set()
    t0 = last = time.perf_counter()
    from distributed import as_completed

    try:
        for future in as_completed(futures):
            i = index_of[future.key]
            done[i] = res = future.result()
            future.release()
            finished, files_done, scored = finished + 1, files_done + len(parts[i][1]), scored + res["scored"]
            workers.add(res["worker"])
            now = time.perf_counter()
            if finished == len(parts) or len(parts) <= 100 or now - last >= 5.0:
                last = now
                note(f"dask: partition {finished}/{len(parts)} ({files_done:,}/{len(to_read):,} files, "
                     f"{scored:,} alerts scored, {scored / max(now - t0, 1e-9):,.0f} alerts/s, "
                     f"{len(workers)} worker(s) so far)")
            while next_chunk < len(chunks) and all(j in done for j in of_chunk[next_chunk]):
                _merge(sample, [done.pop(j) for j in of_chunk[next_chunk]], cache, mv, pp, where)
                next_chunk += 1
    except Exception as exc:
        from distributed import KilledWorker

        for f in futures:
            f.cancel()
        if isinstance(exc, KilledWorker):
            raise DaskError(f"--dask: a partition was tried on too many workers that died ({exc})") from None
        raise
    return _finished(sample)


def _merge(sample: Sample, results: list[dict], cache: ScoreCache | None, mv: str, pp: str,
           where: dict[int, str]) -> None:
    """One chunk's partitions, in file order, into the sample and the cache (as from_files' `finish`)."""
    hit_candids, index, rows = [], {}, []
    for res in results:
        for path, error, cands, hits in res["files"]:
            if error:
                sample.unreadable.append((path, error))
                continue
            where.update((c, path) for c in cands if isinstance(c, int))
            if all(isinstance(c, int) for c in cands):
                index[path] = cands
            hit_candids.extend(hits)
        rows.extend(res["rows"])
        sample.unscorable.update(res["unscorable"])
        sample.scored_now += res["scored"]
    if hit_candids:
        known = cache.get(hit_candids, mv, pp)
        hits = [known[c] for c in hit_candids if c in known]
        sample.alerts.extend(hits)
        sample.cached += len(hits)
    sample.alerts.extend(rows)
    if cache is not None:
        if rows:
            cache.put(rows, mv, pp)
        if index:
            cache.put_files(index)


def _finished(sample: Sample) -> Sample:
    sample.unscorable.update(a["status"] for a in sample.alerts if a.get("score") is None)
    return sample
