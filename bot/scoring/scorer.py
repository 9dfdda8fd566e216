"""The batch scorer: alert documents -> triplets + features -> braai (new_drb) -> BTSbot score.

Alerts are plain dicts with the fields of a ZTF avro packet / Kowalski document (`objectId`, `candid`,
`candidate`, the three cutouts, optionally `prv_candidates`). The history used for the derived features
is the alert's own packet history unless the caller supplies one (the daemon: history from Kowalski).
Every alert gets a result; one that cannot be scored gets `status = "unscorable: <reason>"`.
"""

from __future__ import annotations

import logging

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from bot.core.features import FEATURES, alert_drb, feature_matrix, packet_history
from bot.core.triplets import make_triplets

DRB_SOURCES = ("braai", "alert")


log = logging.getLogger(__name__)

@dataclass
class ScoreResult:
    objectId: str | None
    candid: int | None
    jd: float | None
    score: float | None
    status: str
    magpsf: float | None = None
    features: dict = field(default_factory=dict)
    precision: str | None = None  # "fp32" or "int8": which model produced `score`
    fid: int | None = None  # the alert's filter (1 g, 2 r, 3 i), for people

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Staged:
    """Alerts between `Scorer.stage` and `Scorer.finish`."""

    triplets: np.ndarray  # (n, 63, 63, 3) of the alerts still scorable
    candidates: list[dict]
    histories: list
    pending: list[ScoreResult]  # their results, to be completed
    results: list[ScoreResult]  # every alert's result, in input order
    index: list[int] = field(default_factory=list)  # the input position of each pending alert


def _identity(alert) -> tuple[str | None, int | None, float | None, str | None, dict]:
    if not isinstance(alert, dict):
        return None, None, None, "alert is not a record", {}
    cand = alert.get("candidate")
    cand = cand if isinstance(cand, dict) else {}
    oid = alert.get("objectId")
    candid = alert.get("candid", cand.get("candid"))
    jd = cand.get("jd")
    err = None
    if not cand:
        err = "alert has no candidate"
    elif not isinstance(oid, str) or not oid:
        err = "missing objectId"
    elif candid is None:
        err = "missing candid"
    elif jd is None:
        err = "candidate.jd is null"
    return oid if isinstance(oid, str) else None, int(candid) if candid is not None else None, jd, err, cand


def _batches(n: int, size: int) -> Iterable[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def fp32_floor(thresholds: Iterable[float], guard: float) -> float:
    """The int8 score from which the fp32 model gives the score: the lowest threshold (default 0.5) minus
    the guard."""
    return min((float(t) for t in thresholds), default=0.5) - float(guard)


def precision_rule(backend: str, thresholds: Iterable[float], guard: float) -> str:
    """What a backend's scores are, as the score cache keys them: "fp32", or "int8>=F" (the int8 model,
    fp32 from F up)."""
    return f"int8>={fp32_floor(thresholds, guard):g}" if backend == "onnx-int8" else "fp32"


class Scorer:
    """Scores batches of alerts with one BTSbot model and one braai model (same backend or not).

    Precision is data: each result says which model produced its score (`ScoreResult.precision`). With an
    int8 `model`, give the fp32 model as `fp32_model`: every alert whose int8 score is at least `fp32_floor`
    (the lowest of `thresholds`, the policies' min_score, minus `guard`) is scored again in fp32 in the same
    pass. So while |int8 - fp32| < guard, every alert that counts for a policy, every decision and every max
    score is the fp32 model's; the alerts below the floor keep their int8 score, which no policy counts.
    """

    def __init__(self, model, braai, batch_size: int = 256, drb_source: str = "braai", model_version: str | None = None,
                 fp32_model=None, guard: float = 0.0, thresholds: Iterable[float] = ()):
        if drb_source not in DRB_SOURCES:
            raise ValueError(f"drb_source must be one of {DRB_SOURCES}, not {drb_source!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if guard < 0:
            raise ValueError("guard must be >= 0")
        self.model, self.braai = model, braai
        if model_version is None:  # the production model's, as its manifest names it
            from bot.artifacts import get_artifact

            model_version = get_artifact("models", "btsbot").version
        self.batch_size, self.drb_source, self.model_version = batch_size, drb_source, model_version
        self.fp32_model, self.guard = fp32_model, float(guard)
        self.thresholds = tuple(sorted({float(t) for t in thresholds})) or (0.5,)
        self.fp32_floor = fp32_floor(self.thresholds, self.guard)
        self.precision = getattr(model, "precision", "fp32")
        self.backend: str | None = None  # the backend's name and why it was chosen (`build_scorer`), for people
        self.backend_reason: str | None = None

    def stage(self, alerts: Sequence[dict], histories: Sequence[Iterable[dict]] | None = None) -> "Staged":
        """The model-free part (identity checks, triplets): safe to run in another thread."""
        ids = [_identity(a) for a in alerts]
        results = [ScoreResult(oid, candid, jd, None, "ok" if err is None else f"unscorable: {err}",
                               magpsf=cand.get("magpsf"), fid=cand.get("fid")) for oid, candid, jd, err, cand in ids]
        good = [i for i, r in enumerate(results) if r.ok]
        triplets, trip_err = make_triplets([alerts[i] for i in good])
        for j, err in enumerate(trip_err):
            if err:
                results[good[j]].status = f"unscorable: {err}"
        keep = [j for j, err in enumerate(trip_err) if err is None]
        good = [good[j] for j in keep]
        hists = [packet_history(alerts[i]) if histories is None else histories[i] for i in good]
        return Staged(triplets[keep], [ids[i][4] for i in good], hists, [results[i] for i in good], results, good)

    def model_inputs(self, staged: "Staged") -> tuple[np.ndarray, np.ndarray, list[int]]:
        """braai (new_drb) and the 25 features of staged alerts: (triplets, features, positions in
        `staged.pending` of the alerts that have both); the others are marked unscorable."""
        drbs = self.drbs(staged.triplets, staged.candidates)
        feats, feat_err = feature_matrix(staged.candidates, staged.histories, drbs)
        keep = []
        for j, (err, r) in enumerate(zip(feat_err, staged.pending)):
            if err:
                r.status = f"unscorable: {err}"
            else:
                r.features = dict(zip(FEATURES, map(float, feats[j])))
                keep.append(j)
        return staged.triplets[keep], feats[keep], keep

    def finish(self, staged: "Staged") -> list[ScoreResult]:
        """braai (new_drb), the 25 features, then BTSbot, in batches; returns every alert's result."""
        triplets, feats, keep = self.model_inputs(staged)
        if keep:
            scores, precisions = self.predict_with_precision(triplets, feats)
            for j, score, precision in zip(keep, scores, precisions):
                staged.pending[j].score, staged.pending[j].precision = float(score), precision
        return staged.results

    def drbs(self, triplets: np.ndarray, cands: list[dict]) -> list[float | None]:
        """new_drb of each alert: braai on its triplet, or the alert's own drb (`drb_source: alert`)."""
        if self.drb_source == "alert":
            return [alert_drb(c) for c in cands]
        out = np.empty(len(triplets))
        for s in _batches(len(triplets), self.batch_size):
            out[s] = self.braai.predict(triplets[s])
        return out.tolist()

    def predict(self, triplets: np.ndarray, features: np.ndarray, model=None) -> np.ndarray:
        model = model or self.model
        out = np.empty(len(triplets))
        for s in _batches(len(triplets), self.batch_size):
            out[s] = model.predict(triplets[s], features[s])
        return out

    def needs_fp32(self, scores: np.ndarray) -> np.ndarray:
        """Which of these scores (of this scorer's model) are to be given by the fp32 model instead."""
        scores = np.asarray(scores, dtype=np.float64)
        if not self.rescores:
            return np.zeros(len(scores), dtype=bool)
        return scores >= self.fp32_floor

    def predict_with_precision(self, triplets: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Scores and the precision of each ("int8" or "fp32"): those at or above `fp32_floor` in fp32."""
        scores = self.predict(triplets, features)
        precisions = [self.precision] * len(scores)
        redo = np.flatnonzero(self.needs_fp32(scores))
        if len(redo):
            scores[redo] = self.predict(triplets[redo], features[redo], self.fp32_model)
            for i in redo:
                precisions[i] = "fp32"
        return scores, precisions

    @property
    def rescores(self) -> bool:
        """Whether this scorer's scores may be int8 and it holds the fp32 model to score the high ones."""
        return self.fp32_model is not None and self.precision != "fp32"

    def score(self, alerts: Sequence[dict], histories: Sequence[Iterable[dict]] | None = None) -> list[ScoreResult]:
        """One ScoreResult per alert, in input order."""
        return self.finish(self.stage(alerts, histories))


def build_scorer(cfg, backend: str | None = None, cache_dir=None, drb_source: str | None = None,
                 batch_size: int | None = None, for_scores: bool = False,
                 thresholds: Iterable[float] | None = None) -> Scorer:
    """The scorer the configuration describes (`models.*`), the arguments overriding it; `models.backend:
    auto` is resolved here (`bot.scoring.cpu`; `for_scores`: the `btsbot score` command's rule).
    `thresholds`: the min_scores an int8 scorer's fp32 floor is set by (default: the config's policies')."""
    from bot.artifacts import cache_root
    from bot.scoring.backends import load_backends

    cache = cache_root(cache_dir or cfg.models.cache_dir)
    chosen, why = resolve_backend(backend or cfg.models.backend, cache, for_scores)
    log.info("models: %s (%s)", chosen, why)
    loaded = load_backends(chosen, cache, threads=cfg.models.threads)
    scorer = Scorer(loaded.model, loaded.braai, batch_size=batch_size or cfg.models.batch_size,
                    drb_source=drb_source or cfg.models.drb_source,
                    fp32_model=loaded.fp32_model, guard=cfg.models.int8_guard,
                    thresholds=[p.min_score for p in cfg.policies] if thresholds is None else thresholds)
    scorer.backend, scorer.backend_reason = chosen, why
    return scorer


def resolve_backend(requested: str, cache, for_scores: bool = False) -> tuple[str, str]:
    """(backend, why): `auto` chosen from the CPU flags and whether the int8 model is installed."""
    from bot.scoring.cpu import choose_backend

    if requested != "auto":
        return choose_backend(requested)
    from bot.scoring.int8 import int8_installed

    return choose_backend("auto", int8_installed=int8_installed(cache), for_scores=for_scores)
