"""Where a backtest's alerts come from: avro files, a Kowalski window, or a journal.

Each source gives a `Sample`: one row per alert (candid, objectId, jd, score, status, magpsf,
peakmag_so_far, age, drb, model_version) -- the fields a policy reads. Files and Kowalski alerts are
scored by the scorer `btsbot score` uses (history from the packet, resp. from Kowalski, as the daemon
sees it), through the score cache: an alert already scored with the same model and preprocessing
version is never scored again. Bad input (an unreadable file, an unscorable alert) is counted and
reported, never fatal.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from bot.alert_files import find_alert_files, read_alert_file
from bot.backtest.cache import ScoreCache, preprocessing_key
from bot.backtest.errors import BacktestError


@dataclass
class Sample:
    alerts: list[dict]
    origin: str  # "files", "kowalski", "boom", "journal"
    inputs: int = 0  # files read or alerts polled
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    unscorable: Counter = field(default_factory=Counter)  # status -> alerts
    scored_now: int = 0  # alerts scored by this run (0 when every score was cached)
    cached: int = 0  # alerts whose score came from the cache
    # candid -> what a reviewer sees of that alert (`bot.core.evidence`: cutouts, light curve), or None
    evidence: Callable[[int], dict | None] | None = field(default=None, repr=False)


class ScorerSpec:
    """The scorer a backtest scores with, loaded only if some alert is not in the cache."""

    def __init__(self, model_version: str, drb_source: str, load: Callable[[], object], precision: str = "fp32",
                 backend: str | None = None):
        self.model_version, self.drb_source, self._load = model_version, drb_source, load
        self.precision = precision  # the precision rule of its scores (`bot.scoring.scorer.precision_rule`)
        self.backend = backend  # the backend's name, for people (None: unknown, an injected scorer)
        self._scorer = None
        # how to build the same scorer elsewhere (a Dask worker, bot/backtest/distributed.py): set by from_config
        self.recipe: dict | None = None

    @classmethod
    def of(cls, scorer) -> "ScorerSpec":
        """A spec around a scorer already loaded (tests share one)."""
        from bot.scoring.scorer import precision_rule

        backend = "onnx-int8" if scorer.rescores else getattr(scorer, "backend", None)
        spec = cls(scorer.model_version, scorer.drb_source, lambda: scorer,
                   precision_rule(backend or "fp32", scorer.thresholds, scorer.guard), backend)
        spec._scorer = scorer
        return spec

    @classmethod
    def from_config(cls, cfg, backend=None, cache_dir=None, drb_source=None, batch_size=None,
                    thresholds=None) -> "ScorerSpec":
        """The scorer of `models.*` (the arguments overriding it); `auto` scores in fp32 here (cached scores
        are the model as trained); `onnx-int8` asked for by name is the daemon's precision rule, its fp32
        floor set by `thresholds` (the trial policies' min_scores) or the config's policies."""
        from bot.artifacts import cache_root, get_artifact
        from bot.scoring.scorer import build_scorer, precision_rule, resolve_backend

        drb = drb_source or cfg.models.drb_source
        chosen, _ = resolve_backend(backend or cfg.models.backend, cache_root(cache_dir or cfg.models.cache_dir),
                                    for_scores=True)
        mins = [p.min_score for p in cfg.policies] if thresholds is None else list(thresholds)
        spec = cls(get_artifact("models", "btsbot").version, drb,
                   lambda: build_scorer(cfg, chosen, cache_dir, drb, batch_size, thresholds=mins),
                   precision_rule(chosen, mins, cfg.models.int8_guard), chosen)
        spec.recipe = {"models": cfg.models.model_dump(), "backend": chosen, "cache_dir": cache_dir,
                       "drb_source": drb, "batch_size": batch_size, "thresholds": tuple(mins)}
        return spec

    @property
    def scorer(self):
        if self._scorer is None:
            self._scorer = self._load()
            if self._scorer.model_version != self.model_version:  # pragma: no cover - a broken install
                raise RuntimeError(f"the scorer loaded model {self._scorer.model_version}, "
                                   f"not {self.model_version}")
        return self._scorer


def result_row(r, model_version: str) -> dict:
    """A policy row from a ScoreResult."""
    return {"candid": int(r.candid), "objectId": r.objectId, "jd": float(r.jd), "score": r.score,
            "status": r.status, "magpsf": r.magpsf, "peakmag_so_far": r.features.get("peakmag_so_far"),
            "age": r.features.get("age"), "drb": r.features.get("new_drb"), "model_version": model_version,
            "fid": r.fid, "precision": r.precision}


def policy_rows(results, model_version: str) -> tuple[list[dict], Counter]:
    """The ScoreResults as policy rows (`result_row`), and the statuses of those without a candid, objectId or
    jd (no row can hold them: they are counted as unscorable)."""
    keyed = [r.candid is not None and r.objectId is not None and r.jd is not None for r in results]
    return ([result_row(r, model_version) for r, k in zip(results, keyed) if k],
            Counter(r.status for r, k in zip(results, keyed) if not k))


class _Locked:
    """The cache, shared by the reader thread and the caller."""

    def __init__(self, cache: ScoreCache | None):
        self.cache, self.lock = cache, threading.Lock()

    def __getattr__(self, name):
        method = getattr(self.cache, name)

        def call(*a, **k):
            with self.lock:
                return method(*a, **k)

        return call


def from_files(inputs: Iterable[str], spec: ScorerSpec, cache: ScoreCache | None, chunk: int = 128,
               on_file: Callable[[], None] = lambda: None) -> Sample:
    """Alerts of avro files (directories searched recursively), scored or read from the cache."""
    mv, pp = spec.model_version, preprocessing_key(spec.drb_source, "packet", spec.precision)
    sample = Sample([], "files")
    files = list(find_alert_files(inputs))
    where: dict[int, str] = {}  # candid -> its file, to read an alert's cutouts again for the report
    sample.evidence = lambda candid: file_evidence(where.get(int(candid)), int(candid))
    sample.inputs = len(files)
    locked = _Locked(cache)
    to_read = cached_files(files, cache, mv, pp, sample, where, on_file)

    def load(paths):
        """Read a chunk of files, keep the alerts not cached, stage them (runs in the reader thread)."""
        alerts, hits, index = [], [], {}
        for path in paths:
            f = read_alert_file(path)
            if f.error:
                sample.unreadable.append((path, f.error))
                continue
            cands = [a.get("candid") for a in f.alerts]
            where.update((c, path) for c in cands if isinstance(c, int))
            if all(isinstance(c, int) for c in cands):
                index[path] = cands
            known = locked.get([c for c in cands if isinstance(c, int)], mv, pp) if cache is not None else {}
            hits.extend(known[c] for c in cands if c in known)
            alerts.extend(a for a, c in zip(f.alerts, cands) if c not in known)
        staged = spec.scorer.stage(alerts) if alerts else None
        return staged, hits, index, len(paths)

    def finish(staged, hits, index, n_files):
        sample.alerts.extend(hits)
        sample.cached += len(hits)
        if staged is not None:
            results = spec.scorer.finish(staged)
            rows, unkeyed = policy_rows(results, mv)
            sample.unscorable.update(unkeyed)
            sample.scored_now += len(results)
            sample.alerts.extend(rows)
            if cache is not None:
                locked.put(rows, mv, pp)
        if cache is not None and index:
            locked.put_files(index)
        for _ in range(n_files):
            on_file()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="btsbot-backtest-reader") as pool:
        ahead = None
        for paths in _chunks(to_read, chunk):
            loaded = pool.submit(load, paths)
            if ahead is not None:
                finish(*ahead)
            ahead = loaded.result()
        if ahead is not None:
            finish(*ahead)
    sample.unscorable.update(a["status"] for a in sample.alerts if a.get("score") is None)
    return sample


def cached_files(files: list[str], cache: ScoreCache | None, mv: str, pp: str, sample: Sample,
                 where: dict[int, str], on_file: Callable[[], None] = lambda: None) -> list[str]:
    """The files still to read: the alerts of each file whose candids are all cached (as the cache's file index
    knows them) go into `sample` as they are, in file order, and `where` learns their files."""
    if cache is None:
        return files
    indexed = {p: c for p in files if (c := cache.file_candids(p)) is not None}
    where.update((c, p) for p, cands in indexed.items() for c in cands)
    cached = cache.get((c for cands in indexed.values() for c in cands), mv, pp)
    to_read = []
    for path in files:
        cands = indexed.get(path)
        if cands is not None and all(c in cached for c in cands):
            sample.alerts.extend(cached[c] for c in cands)
            on_file()
        else:
            to_read.append(path)
    sample.cached = len(sample.alerts)
    return to_read


def file_evidence(path: str | None, candid: int) -> dict | None:
    """The cutouts and light curve of one alert, read again from its file (the report's FP/FN panels)."""
    from bot.core.evidence import lightcurve, thumbnails
    from bot.core.features import packet_history

    if path is None:
        return None
    f = read_alert_file(path)
    alert = next((a for a in f.alerts if a.get("candid") == candid), None)
    if alert is None or not isinstance(alert.get("candidate"), dict):
        return None
    return {**thumbnails(alert), "lightcurve": lightcurve(alert["candidate"], packet_history(alert))}


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def from_broker(cfg, spec: ScorerSpec, cache: ScoreCache | None, since_jd: float, until_jd: float,
                client=None, source: str | None = None) -> Sample:
    """The alerts of a window as the daemon sees them, polled from the alert broker `source` (default: the
    config's `source:`, kowalski or boom): the pre-filter, the cutouts and the history from that broker."""
    from bot.kowalski.poller import MemoryPollState
    from bot.runtime import broker_client, broker_poller

    source = source or cfg.source
    if source == "boom" and spec.drb_source == "alert":
        raise BacktestError("--drb-source alert: BOOM keeps no drbversion, so no alert would be scorable; "
                            "use --drb-source braai with BOOM")
    own = client is None
    client = client or broker_client(cfg, source=source)
    try:
        poller = broker_poller(cfg, client, MemoryPollState(), source=source, chunk_alerts=None)
        batch = poller.poll(since_jd=since_jd, until_jd=until_jd)
    finally:
        if own:
            client.close()
    # the history each broker returns differs (BOOM keeps one detection per jd): scores cached per broker
    mv, pp = spec.model_version, preprocessing_key(spec.drb_source, source, spec.precision)
    sample = Sample([], source, inputs=len(batch.alerts))
    known = cache.get(batch.candids, mv, pp) if cache is not None else {}
    sample.alerts.extend(known[c] for c in batch.candids if c in known)
    sample.cached = len(sample.alerts)
    todo = [a for a in batch.alerts if int(a["candid"]) not in known]
    if todo:
        results = spec.scorer.score(todo, [batch.histories.get(a.get("objectId"), []) for a in todo])
        rows, unkeyed = policy_rows(results, mv)
        sample.scored_now = len(results)
        sample.alerts.extend(rows)
        sample.unscorable.update(unkeyed)
        if cache is not None:
            cache.put(rows, mv, pp)
    sample.unscorable.update(a["status"] for a in sample.alerts if a.get("score") is None)
    return sample


def from_journal(path, since_jd: float | None = None, until_jd: float | None = None) -> Sample:
    """The alerts the bot journaled (every model version it scored them with)."""
    from bot.journal import Journal

    keep = ("candid", "objectId", "jd", "score", "status", "magpsf", "peakmag_so_far", "age", "drb", "model_version")
    with Journal(path) as journal:
        rows = journal.history(since_jd=since_jd, until_jd=until_jd, kind="alerts")
    alerts = [{k: r[k] for k in keep} for r in rows]
    sample = Sample(alerts, "journal", inputs=len(alerts))

    def evidence(candid: int) -> dict | None:  # what the cycle kept where a policy fired
        with Journal(path) as journal:
            return journal.evidence(candid)

    sample.evidence = evidence
    sample.unscorable.update(a["status"] for a in alerts if a["score"] is None)
    return sample
