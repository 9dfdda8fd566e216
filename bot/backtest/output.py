"""A backtest's results as a terminal table (grouped by policy), JSON lines, or CSV (via pandas)."""

from __future__ import annotations

import json
from typing import TextIO

from bot.backtest.metrics import FEW_SOURCES, TrialResult, bin_names, median
from bot.backtest.run import Backtest
from bot.core.policies import score_text
from bot.timeutil import jd_to_datetime

LIST_MAX = 10  # names shown per list in the terminal table


def utc(jd: float) -> str:
    return jd_to_datetime(jd).strftime("%Y-%m-%d %H:%M:%S UTC")


def _r(x: float | None, nd: int = 6):
    return None if x is None else round(x, nd)


def as_dict(bt: Backtest, r: TrialResult) -> dict:
    """One policy's figures (the JSON object)."""
    p = r.trial.policy
    labels = {o: i.label.label for o, i in bt.infos.items() if i.label is not None}
    excluded = set(r.selected_excluded)
    out = {
        "policy": r.trial.name, "base_policy": r.trial.base, "params": r.trial.params, "description": p.describe(),
        "min_score": p.min_score, "min_alerts": p.min_alerts, "alert_mag_max": p.alert_mag_max,
        "peakmag_max": p.peakmag_max, "age_min_days": p.age_min_days, "age_max_days": p.age_max_days,
        "model_version": p.model_version,
        "sources": sum(i.eligible for i in bt.infos.values()), "excluded_sources": len(bt.excluded),
        "unlabelled_sources": len(bt.unlabelled),
        "selected": len(r.selected), "excluded": len(r.selected_excluded),
        "tp": len(r.tp), "fp": len(r.fp), "fn": len(r.fn),
        "completeness": _r(r.completeness), "purity": _r(r.purity),
        "n_completeness": r.n_completeness, "n_purity": r.n_purity, "few_sources": few_sources(r),
        "human_time": r.trial.human_time, "median_delay_days": _r(r.median_delay_days),
        "bot_first_fraction": _r(r.bot_first_fraction), "n_delays": len(r.delays),
        "median_days_first_alert_to_decision": _r(median(list(r.days_from_first_alert.values()))),
        "bins": r.bins,
        "false_positives": r.fp, "false_negatives": r.fn, "unlabelled_selected": r.unlabelled_selected,
        "selected_excluded": r.selected_excluded,
        "decisions": [{"objectId": oid, "candid": d.candid, "jd": d.jd, "utc": utc(d.jd), "label": labels.get(oid),
                       "excluded": oid in excluded, "n_counting": d.n_counting,
                       "score": d.score, "max_score": d.max_score, "magpsf": d.magpsf,
                       "peakmag_so_far": d.peakmag_so_far, "delay_days": _r(r.delays.get(oid))}
                      for oid, d in sorted(r.decisions.items(), key=lambda kv: (kv[1].jd, kv[0]))],
    }  # fmt: skip
    if r.gained is not None:
        out["gained"], out["lost"] = r.gained, r.lost
    return out


def few_sources(r: TrialResult) -> bool:
    """True when completeness or purity rests on fewer than FEW_SOURCES labelled sources."""
    return r.labelled and min(r.n_completeness, r.n_purity) < FEW_SOURCES


def ratio_text(value: float | None, n: int, labelled: bool) -> str:
    """A completeness or purity for people: with its n when it rests on fewer than FEW_SOURCES sources."""
    if value is None:
        return "-" if not labelled or n else "- (n=0)"
    return f"{value:.3f}" + (f" (n={n})" if n < FEW_SOURCES else "")


def write_json(bt: Backtest, out: TextIO) -> None:
    """JSON Lines: one object per trial policy."""
    for r in bt.results:
        out.write(json.dumps(as_dict(bt, r)) + "\n")


def frame(bt: Backtest):
    """The per-policy table as a pandas DataFrame (one row per trial; per-bin figures as columns)."""
    import pandas as pd

    rows = []
    for r in bt.results:
        d = as_dict(bt, r)
        row = {k: d[k] for k in ("policy", "base_policy", "min_score", "min_alerts", "alert_mag_max", "peakmag_max",
                                 "model_version", "sources", "excluded_sources", "unlabelled_sources", "selected",
                                 "excluded", "tp", "fp", "fn", "completeness", "n_completeness", "purity", "n_purity",
                                 "median_delay_days",
                                 "bot_first_fraction", "n_delays", "median_days_first_alert_to_decision")}
        for b in r.bins:
            for k in ("tp", "fp", "fn", "completeness", "purity"):
                row[f"{k}_{b['bin']}"] = b[k]
        if r.gained is not None:
            row["gained"], row["lost"] = " ".join(r.gained), " ".join(r.lost)
        rows.append(row)
    return pd.DataFrame(rows)


def write_csv(bt: Backtest, out: TextIO) -> None:
    frame(bt).to_csv(out, index=False, lineterminator="\n")


def _f(x, fmt=".3f") -> str:
    return "-" if x is None else format(x, fmt)


def _names(names: list[str]) -> str:
    more = f" ... and {len(names) - LIST_MAX} more" if len(names) > LIST_MAX else ""
    return " ".join(names[:LIST_MAX]) + more


def _aligned(rows: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [(indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))).rstrip()
            for row in rows]


def summary_lines(bt: Backtest) -> list[str]:
    s, infos = bt.sample, bt.infos
    scores = "scores as journaled" if s.origin == "journal" else f"{s.scored_now} scored now, {s.cached} from the score cache"
    lines = [f"{len(s.alerts)} alerts of {len(infos)} sources from {s.origin} ({s.inputs} inputs; {scores}; "
             f"{sum(s.unscorable.values())} unscorable, {len(s.unreadable)} unreadable files)"]
    lines += [f"  unscorable: {n} x {why}" for why, n in s.unscorable.most_common(5)]
    lines += [f"  unreadable: {path}: {why}" for path, why in s.unreadable[:LIST_MAX]]
    if bt.excluded:
        lines.append(f"{len(bt.excluded)} sources with fewer than 2 scored alerts excluded: {_names(bt.excluded)}")
    if bt.labelled:
        lines.append(f"{len(bt.unlabelled)} sources without a label (counted as selected, in no ratio)"
                     + (f": {_names(bt.unlabelled)}" if bt.unlabelled else ""))
        if bt.unmatched_labels:
            lines.append(f"{len(bt.unmatched_labels)} labelled objects have no alert in the sample: "
                         f"{_names(bt.unmatched_labels)}")
    return lines


def write_table(bt: Backtest, out: TextIO) -> None:
    for line in summary_lines(bt):
        out.write(line + "\n")
    compare = any(r.gained is not None for r in bt.results)
    head = ["policy", "selected", "excluded", "TP", "FP", "FN", "completeness", "purity", "median delay (d)", "bot first"]
    head += ["gained", "lost"] if compare else []
    rows = [head]
    for r in bt.results:
        row = [r.trial.name, str(len(r.selected)), str(len(r.selected_excluded)), str(len(r.tp)), str(len(r.fp)),
               str(len(r.fn)), ratio_text(r.completeness, r.n_completeness, r.labelled),
               ratio_text(r.purity, r.n_purity, r.labelled), _f(r.median_delay_days, "+.3f"),
               _f(r.bot_first_fraction, ".0%")]
        rows.append(row + ([str(len(r.gained or [])), str(len(r.lost or []))] if compare else []))
    out.write("\n" + "\n".join(_aligned(rows)) + "\n")
    out.write("excluded: selected, but with fewer than 2 scored alerts in the sample, so in no ratio (the paper's rule)"
              + (f"; (n=N): a ratio over fewer than {FEW_SOURCES} labelled sources" if any(few_sources(r) for r in bt.results)
                 else "") + "\n")
    for r in bt.results:
        out.write(f"\n{r.trial.name}: {r.trial.policy.describe()} (model {r.trial.policy.model_version})\n")
        if bt.labelled:
            bins = [["peak mag"] + bin_names(), ["completeness"] + [_f(b["completeness"], ".2f") for b in r.bins],
                    ["purity"] + [_f(b["purity"], ".2f") for b in r.bins],
                    ["TP/FP/FN"] + [f"{b['tp']}/{b['fp']}/{b['fn']}" for b in r.bins]]
            out.write("\n".join(_aligned(bins, "  ")) + "\n")
        for what, names in (("false positives", r.fp), ("false negatives", r.fn), ("selected, no label", r.unlabelled_selected),
                            ("selected, excluded from the ratios", r.selected_excluded),
                            ("gained vs the config", r.gained), ("lost vs the config", r.lost)):
            if names:
                out.write(f"  {what}: {_names(names)}\n")
        decided = sorted(r.decisions.items(), key=lambda kv: (kv[1].jd, kv[0]))
        if decided:
            rows = [[oid, utc(d.jd), f"candid {d.candid}", f"{d.n_counting} alerts", f"max {score_text(d.max_score)}",
                     f"peak {_f(d.peakmag_so_far, '.2f')}"] for oid, d in decided[:LIST_MAX * 2]]
            out.write("  decisions:\n" + "\n".join(_aligned(rows, "    ")) + "\n")
            if len(decided) > LIST_MAX * 2:
                out.write(f"    ... and {len(decided) - LIST_MAX * 2} more (--format json lists them all)\n")
