"""fp32 scores for the sources acted on, when the scores come from the int8 model (`models.backend: onnx-int8`).

The guard band makes every policy *decision* the fp32 model's; this makes the *scores* that a decision's
evidence and the Fritz annotation show (`source_summary`: latest and max score) the fp32 model's too.
For each chunk, before its transaction, a source of the chunk is *acted on* when some policy already
decided it (its annotation will be updated) or decides it now (evaluated on the guarded scores). For
those sources:

* the chunk's alerts of a source already decided are scored in fp32 directly (`fp32_positions`, given to
  `Scorer.score`); those of a source that some policy decides now are re-scored in fp32 from the
  documents in hand;
* their alerts of earlier chunks or cycles journaled as int8 (their cutouts are gone) are fetched again
  from Kowalski by candid, with their objects' histories (one batched query each), and re-scored in fp32;
  their journal rows (score, precision) are rewritten in the chunk's transaction.

Why fetch them again rather than show an int8 score: this happens once per source, at its first decision
(afterwards each new alert of the source is re-scored in its own chunk), so it costs a few requests a
night, and then every score shown on Fritz is exactly the fp32 model's. An alert that Kowalski no longer
returns, or that cannot be scored again, keeps its int8 score, journaled as such, and the annotation then
says so (`btsbot_score_precision: int8`). Nothing is written here: the chunk's one transaction records it
all or nothing, so a crash before the commit loses and repeats nothing.
"""

from __future__ import annotations

import logging
from typing import Sequence

from bot.core.policies import evaluate

log = logging.getLogger(__name__)


def fp32_positions(rt, alerts: Sequence[dict]) -> list[int]:
    """The positions of the alerts whose source some policy already decided (for this bot's mode): to be
    scored in fp32 directly. Empty unless the scorer is a guarded int8 one."""
    if not getattr(rt.scorer, "rescores", False):
        return []
    decided: dict[str, bool] = {}
    for oid in {a.get("objectId") for a in alerts if isinstance(a, dict) and isinstance(a.get("objectId"), str)}:
        decided[oid] = any(rt.actor.decided(p.name, oid) for p in rt.policies)
    return [i for i, a in enumerate(alerts) if isinstance(a, dict) and decided.get(a.get("objectId"), False)]


def fp32_for_acted_on(rt, alerts: Sequence[dict], histories: Sequence[list], rows: list[dict]) -> tuple[list[dict], int]:
    """Re-score in fp32 the alerts of the chunk's sources acted on (see the module docstring).

    `rows`: the chunk's journal rows, aligned with `alerts` and `histories`, updated in place.
    Returns the journal rows of earlier alerts re-scored (to record with the chunk) and the number of
    Kowalski requests made to fetch them."""
    scorer = rt.scorer
    if not getattr(scorer, "rescores", False):
        return [], 0
    mv = scorer.model_version
    by_source: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row["score"] is not None and row["candid"] is not None:
            by_source.setdefault(row["objectId"], []).append(i)
    now, earlier = [], []
    for oid, idx in by_source.items():
        journaled = rt.journal.alerts_for_object(oid, mv)
        if _acted_on(rt, oid, journaled + [rows[i] for i in idx]):
            now += [i for i in idx if rows[i]["precision"] != "fp32"]
            earlier += [a for a in journaled if a["score"] is not None and a.get("precision") == "int8"]
    if now:
        again = scorer.fp32().score([alerts[i] for i in now], [histories[i] for i in now])
        for i, r in zip(now, again):
            if r.ok:
                rows[i]["score"], rows[i]["precision"] = r.score, r.precision
    return _refetched(rt, earlier)


def _acted_on(rt, object_id: str, history: list[dict]) -> bool:
    return any(rt.actor.decided(p.name, object_id) or evaluate(p, history) is not None for p in rt.policies)


def _refetched(rt, earlier: list[dict]) -> tuple[list[dict], int]:
    """The journal rows `earlier` with their fp32 scores, fetched again from Kowalski."""
    if not earlier:
        return [], 0
    requests0 = rt.poller.client.requests
    keys = [{"candid": a["candid"], "objectId": a["objectId"], "candidate": {"jd": a["jd"]}} for a in earlier]
    docs, hists = rt.poller.fetch(keys)
    again = rt.scorer.fp32().score(docs, [hists.get(d.get("objectId"), []) for d in docs])
    out, kept = [], []
    for a, r in zip(earlier, again):
        if r.ok and r.candid == a["candid"]:
            out.append({**a, "score": r.score, "precision": r.precision})
        else:
            kept.append(f"{a['objectId']} candid {a['candid']} ({r.status})")
    n_requests = rt.poller.client.requests - requests0
    log.info("fp32 scores of %d earlier alert(s) of sources acted on, fetched again (%d Kowalski requests)",
             len(out), n_requests)
    if kept:
        log.warning("%d earlier alert(s) keep their int8 score (not re-scored in fp32): %s", len(kept),
                    "; ".join(kept[:5]))
    return out, n_requests
