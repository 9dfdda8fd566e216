"""`btsbot backtest --report DIR`: index.html with PNG plots.

Plots: completeness and purity against the swept threshold (one line per config policy and metric),
the decision-delay histogram, completeness/purity per peak-magnitude bin, and the score/magnitude
history of each false positive and false negative of the config's policies (or of the trials, when
nothing is swept), at most `MAX_SOURCE_PLOTS` of them.
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from bot import plotting
from bot.backtest.metrics import FEW_SOURCES, bin_names
from bot.backtest.output import few_sources, frame, summary_lines
from bot.backtest.run import Backtest

MAX_SOURCE_PLOTS = 200


def _img(name: str, alt: str) -> str:
    return f'<img src="{html.escape(name)}" alt="{html.escape(alt)}">'


def _sweep_plots(bt: Backtest, out: Path) -> list[str]:
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
        parts.append(_img(name, f"completeness and purity vs {key}"))
    return parts


def write_report(bt: Backtest, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    body = [f"<h1>btsbot backtest</h1><pre>{html.escape(chr(10).join(summary_lines(bt)))}</pre>",
            "<h2>Policies</h2>", frame(bt).to_html(index=False, na_rep="-", float_format=lambda x: f"{x:.3f}")]
    few = [r.trial.name for r in bt.results if few_sources(r)]
    if few:
        body.append(f"<p><b>Few labelled sources:</b> the completeness or purity of {html.escape(', '.join(few[:10]))}"
                    f"{' ...' if len(few) > 10 else ''} rests on fewer than {FEW_SOURCES} labelled sources "
                    "(n_completeness, n_purity).</p>")
    sweeps = _sweep_plots(bt, out)
    body += ["<h2>Completeness and purity vs the swept threshold</h2>"] + (sweeps or ["<p>Nothing swept (--sweep).</p>"])
    ref = bt.reference
    delays = [d for r in ref for d in r.delays.values()]
    body.append("<h2>Decision delay (policy decision - human save/trigger)</h2>")
    if delays:
        plotting.histogram(out / "delays.png", delays, bins=min(40, max(5, len(delays))),
                           xlabel="days (negative: the bot was first)", title="decision delay", vline=0.0)
        body.append(_img("delays.png", "decision delay histogram"))
    else:
        body.append("<p>No human save/trigger times in the labels (saved_at, triggered_at).</p>")
    if bt.labelled:
        series = {}
        for r in ref:
            series[f"{r.trial.name} completeness"] = (range(len(r.bins)), [b["completeness"] for b in r.bins])
            series[f"{r.trial.name} purity"] = (range(len(r.bins)), [b["purity"] for b in r.bins])
        plotting.curves(out / "bins.png", series, "peak magnitude", "fraction", "per peak-magnitude bin",
                        xticks=bin_names())
        body += ["<h2>Per peak-magnitude bin</h2>", _img("bins.png", "completeness and purity per magnitude bin")]
        body += _misses(bt, out)
    (out / "index.html").write_text("<!doctype html><html><head><meta charset='utf-8'><title>btsbot backtest</title>"
                                    "<style>body{font-family:sans-serif} table{border-collapse:collapse;font-size:12px}"
                                    "td,th{border:1px solid #ccc;padding:2px 4px}</style></head><body>"
                                    + "\n".join(body) + "</body></html>\n")
    return out / "index.html"


def _misses(bt: Backtest, out: Path) -> list[str]:
    which: dict[str, list[str]] = defaultdict(list)
    for r in bt.reference:
        for oid in r.fp:
            which[oid].append(f"FP of {r.trial.name}")
        for oid in r.fn:
            which[oid].append(f"FN of {r.trial.name}")
    parts = ["<h2>False positives and false negatives</h2>"]
    if not which:
        return parts + ["<p>None.</p>"]
    policies = [r.trial.policy for r in bt.reference]
    shown = sorted(which.items())[:MAX_SOURCE_PLOTS]
    plotting.source_histories([(out / f"source_{oid}.png", oid, bt.infos[oid].alerts, policies,
                                {r.trial.name: r.decisions[oid].jd for r in bt.reference if oid in r.decisions},
                                f"{oid}: {', '.join(why)}") for oid, why in shown])
    for oid, why in shown:
        parts.append(f"<h3>{html.escape(oid)}: {html.escape(', '.join(why))}</h3>" + _img(f"source_{oid}.png", oid))
    if len(which) > MAX_SOURCE_PLOTS:
        parts.append(f"<p>... and {len(which) - MAX_SOURCE_PLOTS} more (not plotted).</p>")
    return parts
