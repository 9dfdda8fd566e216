"""`btsbot backtest --report DIR`: index.html (the template bot/report/templates/backtest.html.j2 and the
stylesheet the night report uses) with PNG plots. A compact policy table that fits 1280 px (policy, trial,
selected, excluded, TP/FP/FN, completeness and purity with their n when few, median delay, gained/lost);
every column of the CSV folded below it.

Plots: completeness and purity against the swept threshold (one line per config policy and metric),
the decision-delay histogram, completeness/purity per peak-magnitude bin, and the score/magnitude
history of each false positive and false negative of the config's policies (or of the trials, when
nothing is swept), at most `MAX_SOURCE_PLOTS` of them.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from bot import plotting
from bot.backtest.metrics import FEW_SOURCES, bin_names
from bot.backtest.output import frame, ratio_text, summary_lines
from bot.backtest.run import Backtest
from bot.timeutil import utc_text as utc

MAX_SOURCE_PLOTS = 200


def _sweep_plots(bt: Backtest, out: Path) -> list[dict]:
    parts = []
    by_key: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in bt.results:
        if len(r.trial.params) == 1:
            (key, value), = r.trial.params.items()
            if value is not None:
                by_key[key][r.trial.base].append((value, r.completeness, r.purity, r.n_completeness, r.n_purity))
    for key, bases in by_key.items():
        series, notes = {}, {}
        for base, points in bases.items():
            points.sort()
            xs = [p[0] for p in points]
            series[f"{base} completeness"] = (xs, [p[1] for p in points])
            series[f"{base} purity"] = (xs, [p[2] for p in points])
            notes[f"{base} completeness"] = [f"n={p[3]}" for p in points]
            notes[f"{base} purity"] = [f"n={p[4]}" for p in points]
        name = f"sweep_{key}.png"
        plotting.curves(out / name, series, key, "fraction", f"completeness and purity vs {key} (n: labelled sources)",
                        notes=notes)
        parts.append({"src": name, "alt": f"completeness and purity vs {key}"})
    return parts


def _rows(bt: Backtest) -> list[dict]:
    def f(x, fmt="+.3f"):
        return "-" if x is None else format(x, fmt)

    out = []
    for r in bt.results:
        trial = ", ".join(f"{k}={v}" for k, v in r.trial.params.items()) or r.trial.policy.describe()
        out.append({"policy": r.trial.name, "trial": trial, "selected": len(r.selected),
                    "excluded": len(r.selected_excluded), "tpfpfn": f"{len(r.tp)} / {len(r.fp)} / {len(r.fn)}",
                    "completeness": ratio_text(r.completeness, r.n_completeness, r.labelled),
                    "purity": ratio_text(r.purity, r.n_purity, r.labelled), "delay": f(r.median_delay_days),
                    "gainedlost": "-" if r.gained is None else f"{len(r.gained)} / {len(r.lost)}"})
    return out


def write_report(bt: Backtest, out_dir: str | Path, diffs=None, titles: tuple[str, str] | None = None) -> Path:
    """DIR/index.html (templates/backtest.html.j2), its stylesheet and PNG plots: works offline; `diffs`
    (`bot.backtest.compare.compare_sets`, with its `titles`): the comparison section."""
    from bot.report.render import render_page

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sweeps = _sweep_plots(bt, out)
    ref = bt.reference
    delays = [d for r in ref for d in r.delays.values()]
    if delays:
        plotting.histogram(out / "delays.png", delays, bins=min(40, max(5, len(delays))),
                           xlabel="days (negative: the bot was first)", title="decision delay", vline=0.0)
    misses, more = [], 0
    if bt.labelled:
        series, notes = {}, {}
        for r in ref:
            series[f"{r.trial.name} completeness"] = (list(range(len(r.bins))), [b["completeness"] for b in r.bins])
            series[f"{r.trial.name} purity"] = (list(range(len(r.bins))), [b["purity"] for b in r.bins])
            notes[f"{r.trial.name} completeness"] = [f"n={b['tp'] + b['fn']}" for b in r.bins]
            notes[f"{r.trial.name} purity"] = [f"n={b['tp'] + b['fp']}" for b in r.bins]
        plotting.curves(out / "bins.png", series, "peak magnitude (bin)", "fraction",
                        "per peak-magnitude bin (n: labelled sources)", xticks=bin_names(), notes=notes)
        misses, more = _misses(bt, out)
    context = {"summary": "\n".join(summary_lines(bt)), "rows": _rows(bt),
               "compare": any(r.gained is not None for r in bt.results), "few": FEW_SOURCES,
               "full_table": frame(bt).to_html(index=False, na_rep="-", float_format=lambda x: f"{x:.3f}"),
               "sweeps": sweeps, "delays": bool(delays), "labelled": bt.labelled, "misses": misses,
               "more_misses": more, "comparison": None}
    if diffs is not None:
        from bot.backtest.compare import as_dicts

        title, what = titles or ("prod vs lab", "the same alerts and scores")
        first, _, second = title.partition(" vs ")
        context["comparison"] = {"title": title, "what": what, "rows": as_dicts(bt, diffs),
                                 "first": first, "second": second or "the second"}
    return render_page("backtest.html.j2", context, out)


def _misses(bt: Backtest, out: Path) -> tuple[list[dict], int]:
    which: dict[str, list[str]] = defaultdict(list)
    for r in bt.reference:
        for oid in r.fp:
            which[oid].append(f"FP of {r.trial.name}")
        for oid in r.fn:
            which[oid].append(f"FN of {r.trial.name}")
    if not which:
        return [], 0
    policies = [r.trial.policy for r in bt.reference]
    shown = sorted(which.items())[:MAX_SOURCE_PLOTS]
    plotting.source_histories([(out / f"source_{oid}.png", oid, bt.infos[oid].alerts, policies,
                                {r.trial.name: r.decisions[oid].jd for r in bt.reference if oid in r.decisions},
                                f"{oid}: {', '.join(why)}") for oid, why in shown])
    panels = []
    for oid, why in shown:
        panel = {"objectId": oid, "why": ", ".join(why), "image": f"source_{oid}.png", "cutouts": None,
                 "lightcurve": None}
        ev = _evidence(bt, oid)
        if ev is not None:
            at = utc(ev["lightcurve"].get("jd"))
            plotting.cutouts(out / f"cutouts_{oid}.png", ev, f"{oid} at {at}")
            plotting.lightcurve(out / f"lightcurve_{oid}.png", ev["lightcurve"], f"{oid}: the light curve at {at}")
            panel.update(cutouts=f"cutouts_{oid}.png", lightcurve=f"lightcurve_{oid}.png")
        panels.append(panel)
    return panels, max(0, len(which) - MAX_SOURCE_PLOTS)


def _evidence(bt: Backtest, oid: str) -> dict | None:
    """The cutouts and light curve of a false positive's deciding alert, or a false negative's best one,
    where the sample can give them (alert files read again, or what the journal kept)."""
    if bt.sample.evidence is None:
        return None
    decided = [r.decisions[oid].candid for r in bt.reference if oid in r.decisions]
    scored = [a for a in bt.infos[oid].alerts if a.get("score") is not None]
    candid = decided[0] if decided else (max(scored, key=lambda a: a["score"])["candid"] if scored else None)
    try:
        return None if candid is None else bt.sample.evidence(int(candid))
    except Exception:  # a file gone since the scores were cached: the panel goes without
        return None
