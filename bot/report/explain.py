"""`btsbot explain OBJECT`: every alert of a source and, for each policy, clause by clause, why it fired or
why not (`bot.core.reasons`), with what the bot journaled (its decisions and actions) and the broker's own
score beside ours (the drift monitor). From the journal by default, or scored now from `--alerts` files or
a `--broker` window, through the same scorer and score cache as `btsbot backtest`."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bot.core.drift import DriftSummary
from bot.core.policies import Policy, score_text
from bot.core.reasons import Explanation, count_text, explain, hold_text
from bot.timeutil import utc_text

FILTERS = {1: "g", 2: "r", 3: "i"}


@dataclass
class SourceReview:
    objectId: str
    origin: str  # "journal PATH", "files", "kowalski", "boom"
    alerts: list[dict]  # jd order
    explanations: list[Explanation]
    decisions: dict[str, dict] = field(default_factory=dict)  # policy -> the journaled decision (actions inside)
    drift: DriftSummary | None = None


def review(object_id: str, alerts: list[dict], policies: list[Policy], origin: str, decisions=None,
           drift_tolerance: float = 0.05) -> SourceReview:
    ordered = sorted(alerts, key=lambda a: (a["jd"], a["candid"]))
    return SourceReview(object_id, origin, ordered, [explain(p, ordered) for p in policies], decisions or {},
                        DriftSummary.of(ordered, drift_tolerance, n=len(ordered)))


# ---- output ----------------------------------------------------------------------------------------

def _fid(a: dict) -> str:
    extra = a.get("extra") if isinstance(a.get("extra"), dict) else {}
    return FILTERS.get(a.get("fid", extra.get("fid")), "-")


def _score(a: dict) -> str:
    if a.get("score") is None:
        return "-"
    precision = f" ({a['precision']})" if a.get("precision") and a["precision"] != "fp32" else ""
    return score_text(a["score"]) + precision


def _broker(a: dict) -> str:
    if a.get("broker_score") is None:
        return "-"
    model = f" {a['broker_model']}" if a.get("broker_model") else ""
    return f"{score_text(a['broker_score'])} ({a.get('source') or 'broker'}{model})"


def _num(v, fmt=".2f") -> str:
    return "-" if v is None else format(float(v), fmt)


def text(r: SourceReview) -> str:
    n = len(r.alerts)
    out = [f"{r.objectId}: {n} alert{'s' if n != 1 else ''} ({r.origin})", ""]
    rows = [("#", "time (UTC)", "filter", "magpsf", "score", "drb", "peak so far", "age d", "broker's score", "status")]
    for i, a in enumerate(r.alerts, 1):
        rows.append((str(i), utc_text(a["jd"]), _fid(a), _num(a.get("magpsf")), _score(a), _num(a.get("drb"), ".3f"),
                     _num(a.get("peakmag_so_far")), _num(a.get("age"), ".1f"), _broker(a), str(a.get("status") or "-")))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    out += ["  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    for e in r.explanations:
        p = e.policy
        out += ["", f"policy {p.name} (model {p.model_version}: {p.describe()})"]
        for c in e.checks:
            counts = count_text(p, c.alert)
            if not c.judged:
                holds = "not judged"
            else:
                holds = ("holds" if c.held else "does not hold") + ": " + ", ".join(
                    hold_text(p, name, c.alert, c.n_counting) for name, _ in c.holds)
            mark = "  <- fired" if e.fired is c else ""
            out.append(f"  {c.index:>2}  {counts}  |  {holds}{mark}")
        out.append(f"  verdict: {e.verdict}")
        d = r.decisions.get(p.name)
        if d is not None:
            seen = Counter(f"{x['action']} {x.get('outcome') or x['status']}" for x in d.get("actions") or [])
            acts = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in seen.items())
            out.append(f"  journal: decided at candid {d['candid']} ({utc_text(d['jd'])})" + (f"; {acts}" if acts else ""))
        elif r.origin.startswith("journal"):
            out.append("  journal: no decision")
    if r.drift is not None:
        out += ["", "broker's score against ours (evidence, never a decision): " + r.drift.line()]
        out += [f"  {d.line()}" for d in r.drift.largest if d.diff > r.drift.tolerance]
    return "\n".join(out) + "\n"


def as_json(r: SourceReview) -> dict:
    def alert(a: dict, i: int) -> dict:
        extra = a.get("extra") if isinstance(a.get("extra"), dict) else {}
        return {"index": i, "candid": int(a["candid"]), "jd": a["jd"], "utc": utc_text(a["jd"]), "fid": a.get("fid", extra.get("fid")),
                "magpsf": a.get("magpsf"), "score": a.get("score"), "precision": a.get("precision"), "drb": a.get("drb"),
                "peakmag_so_far": a.get("peakmag_so_far"), "age": a.get("age"), "status": a.get("status"),
                "model_version": a.get("model_version"), "source": a.get("source"), "broker_score": a.get("broker_score"),
                "broker_model": a.get("broker_model"), "broker_differs": extra.get("broker_differs")}

    policies = []
    for e in r.explanations:
        p = e.policy
        policies.append({
            "policy": p.name, "model_version": p.model_version, "rule": p.describe(),
            "fired": None if e.fired is None else {"index": e.fired.index, "candid": int(e.fired.alert["candid"]),
                                                   "jd": e.fired.alert["jd"], "utc": utc_text(e.fired.alert["jd"])},
            "verdict": e.verdict, "reason": e.reason,
            "alerts": [{"index": c.index, "candid": int(c.alert["candid"]), "counts": dict(c.counts),
                        "counting": c.counting, "n_counting": c.n_counting, "holds": dict(c.holds) if c.judged else None,
                        "held": c.held} for c in e.checks],
            "journal_decision": _decision(r.decisions.get(p.name)),
        })
    drift = None
    if r.drift is not None:
        drift = {"compared": r.drift.n_compared, "over_tolerance": r.drift.n_over, "tolerance": r.drift.tolerance,
                 "max_diff": r.drift.max_diff, "summary": r.drift.line()}
    return {"objectId": r.objectId, "origin": r.origin,
            "alerts": [alert(a, i) for i, a in enumerate(r.alerts, 1)], "policies": policies, "drift": drift}


def _decision(d: dict | None) -> dict | None:
    if d is None:
        return None
    return {"candid": d["candid"], "jd": d["jd"], "utc": utc_text(d["jd"]), "mode": d.get("mode"),
            "actions": [{"action": a["action"], "status": a["status"], "outcome": a.get("outcome")}
                        for a in d.get("actions") or []]}


# ---- command ---------------------------------------------------------------------------------------

def register(subparsers) -> argparse.ArgumentParser:
    from bot.backtest.cli import add_sample_arguments

    ex = subparsers.add_parser(
        "explain", help="why a source was (not) selected: its alerts and each policy, clause by clause",
        description="Every alert of OBJECT in jd order and, for each policy, whether each alert counts "
                    "(score > min_score, magpsf < alert_mag_max) and whether the policy holds (enough counting "
                    "alerts, peak so far, age window); then the verdict. From the journal (default), or scored "
                    "now from avro files (--alerts) or a window polled from the alert broker (--broker).")
    ex.add_argument("object", metavar="OBJECT", help="the source's objectId, e.g. ZTF23abhvlji (any case)")
    ex.add_argument("--config", metavar="FILE", help="the policies (and models, broker, state.path) to use")
    add_sample_arguments(ex)
    ex.add_argument("--format", choices=("text", "json"), default="text")
    ex.set_defaults(func=cmd_explain)
    return ex


def cmd_explain(args) -> int:
    from bot.backtest.trials import config_policies
    from bot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _die, _load_config
    from bot.ids import is_object_id, normalize_object_id

    oid = normalize_object_id(args.object)
    if not is_object_id(oid):
        return _die(f"{args.object!r} is not an object id", EXIT_USAGE)
    cfg = _load_config(args)
    policies = [p for p, _ in config_policies(cfg)]
    if args.alerts or args.broker:
        from bot.backtest.cli import load_sample
        from bot.backtest.errors import BacktestError

        try:
            sample = load_sample(args, cfg)
        except BacktestError as exc:
            return _die(str(exc), EXIT_FAILED)
        rows = [a for a in sample.alerts if a["objectId"] == oid]
        origin, decisions = sample.origin, {}
    else:
        from bot.journal import Journal

        path = Path(args.journal) if args.journal else cfg.journal_path
        if not path.exists():
            return _die(f"no journal at {path} (--journal, --alerts, --broker, or state.path in the config)", EXIT_FAILED)
        with Journal(path) as journal:
            rows = journal.alerts_for_object(oid)
            decisions = {}
            for p in policies:
                d = journal.get_decision(p.name, oid)
                if d is not None:
                    decisions[p.name] = {**d, "actions": journal.actions_for(d.id)}
        origin = f"journal {path}"
    if not rows:
        return _die(f"{oid}: no alert of this source in the {origin}", EXIT_FAILED)
    r = review(oid, rows, policies, origin, decisions, cfg.drift.tolerance)
    if args.format == "json":
        json.dump(as_json(r), sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text(r))
    return EXIT_OK
