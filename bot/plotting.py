"""PNG plots for the backtest and night reports (matplotlib, Agg backend; nothing is shown on screen).

matplotlib is imported by the functions, never at import time of the bot. Each function writes one PNG
and returns its path; figures are closed, so a report of hundreds of plots keeps memory flat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

DPI = 80  # 10-inch figures: 800 px wide, as a report page shows them


def _plt():
    from bot.artifacts import cache_root
    from bot.scoring.quiet import cache_env

    with cache_env(cache_root()):  # matplotlib's font cache and config go inside the btsbot cache, not ~
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    _plt().close(fig)
    return path


def _source_history_job(job: tuple) -> Path:
    return source_history(*job)


def _thresholds(policies) -> list:
    """What a plot draws of each policy, picklable (a policy's configured actions need not be)."""
    from types import SimpleNamespace

    return [SimpleNamespace(name=p.name, min_score=p.min_score, alert_mag_max=p.alert_mag_max,
                            peakmag_max=p.peakmag_max) for p in policies]


def source_histories(jobs: Sequence[tuple], workers: int | None = None) -> list[Path]:
    """Many `source_history` plots (each job: its positional arguments), on every core when there are many.

    The plots are independent and drawing is pure CPU, so they are spread over forked worker processes."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    workers = workers or os.cpu_count() or 1
    if len(jobs) < 8 or workers < 2:
        return [source_history(*job) for job in jobs]
    jobs = [(*job[:3], _thresholds(job[3]), *job[4:]) if len(job) > 3 else job for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_source_history_job, jobs, chunksize=max(1, len(jobs) // (4 * workers))))


def source_history(path: Path, object_id: str, alerts: Sequence[Mapping], policies: Sequence = (),
                   fired: Mapping[str, float] | None = None, title: str = "") -> Path:
    """Score and magnitude of a source's alerts against time (UTC), with the policies' thresholds.

    alerts: rows with jd, score (None when unscorable), magpsf; policies: core Policies (their
    min_score, alert_mag_max, peakmag_max drawn as lines); fired: policy name -> jd it fired at."""
    from bot.timeutil import jd_to_datetime

    plt = _plt()
    fig, (ax_s, ax_m) = plt.subplots(2, 1, figsize=(10, 5.6), sharex=True)
    fig.subplots_adjust(left=0.08, right=0.74, top=0.93, bottom=0.1, hspace=0.08)  # legends outside, right
    t0 = min((a["jd"] for a in alerts), default=0.0)
    t = [a["jd"] - t0 for a in alerts]
    scored = [(ti, a["score"]) for ti, a in zip(t, alerts) if a.get("score") is not None]
    unscored = [ti for ti, a in zip(t, alerts) if a.get("score") is None]
    if scored:
        ax_s.plot(*zip(*scored), "o-", ms=4, color="tab:blue", label="score")
    if unscored:
        ax_s.plot(unscored, [0.0] * len(unscored), "x", color="tab:red", label="unscorable")
    mags = [(ti, a["magpsf"]) for ti, a in zip(t, alerts) if a.get("magpsf") is not None]
    if mags:
        ax_m.plot(*zip(*mags), "o", ms=4, color="tab:green")
    dashes = ("--", "-.", ":", (0, (5, 1, 1, 1)))  # policies sharing a threshold stay distinguishable
    for i, p in enumerate(policies):
        style = dict(color=f"C{i + 3}", lw=1.2, ls=dashes[i % len(dashes)])
        ax_s.axhline(p.min_score, **style, label=f"{p.name} > {p.min_score:g}")
        ax_m.axhline(p.alert_mag_max, **style)
        if p.peakmag_max is not None:
            ax_m.axhline(p.peakmag_max, color=f"C{i + 3}", lw=1.2, ls=(0, (1, 2)), label=f"{p.name} peak <= {p.peakmag_max:g}")
    for i, (name, jd) in enumerate(sorted((fired or {}).items())):
        ax_s.axvline(jd - t0, color=f"C{i + 6}", lw=1.5, label=f"{name} fired")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_s, ax_m):  # fewer ticks: text is most of the drawing time
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(5))
    ax_s.set_ylim(-0.05, 1.05)
    ax_s.set_ylabel("BTSbot score")
    ax_m.set_ylabel("magpsf")
    ax_m.invert_yaxis()
    ax_m.set_xlabel(f"days since {jd_to_datetime(t0):%Y-%m-%d %H:%M:%S} UTC (first alert)" if alerts else "days")
    ax_s.set_title(title or object_id, fontsize=11)
    ax_s.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if ax_m.get_legend_handles_labels()[0]:
        ax_m.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)


def histogram(path: Path, values: Iterable[float], bins, xlabel: str, title: str, vline: float | None = None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4), constrained_layout=True)
    values = list(values)
    ax.hist(values, bins=bins, color="tab:blue", edgecolor="white")
    if vline is not None:
        ax.axvline(vline, color="k", lw=1, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(f"{title} (n={len(values)})", fontsize=10)
    return _save(fig, path)


def curves(path: Path, series: Mapping[str, tuple[Sequence, Sequence]], xlabel: str, ylabel: str, title: str,
           xticks: Sequence[str] | None = None, notes: Mapping[str, Sequence] | None = None) -> Path:
    """Lines y(x), one per series name (None values are gaps); xticks: category labels for x = 0, 1, ...;
    notes: per series, a text beside each point (e.g. the n a ratio rests on)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.5), constrained_layout=True)
    markers, styles, drawn = ("o", "s", "^", "D", "v", "P"), ("-", "--", "-.", ":"), {}
    for i, (name, (x, y)) in enumerate(series.items()):
        key = (tuple(x), tuple(y))
        label = name if key not in drawn else f"{name} (= {drawn[key]})"  # lines that coincide say so
        drawn.setdefault(key, name)
        line, = ax.plot(x, [float("nan") if v is None else v for v in y], marker=markers[i % len(markers)],
                        ls=styles[i % len(styles)], ms=4 + 2 * (i % 2), mfc="none" if i % 2 else None, label=label)
        for xi, yi, note in zip(x, y, (notes or {}).get(name, ())):
            if yi is not None and note not in (None, ""):
                ax.annotate(str(note), (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=6,
                            color=line.get_color())
    if xticks is not None:
        ax.set_xticks(range(len(xticks)), xticks, rotation=30, fontsize=8)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if series:
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)


ZTF_COLOURS = {1: ("g", "#2ca02c"), 2: ("r", "#d62728"), 3: ("i", "#e6a100")}  # ZTF's usual filter colours


def cutouts(path: Path, thumbs: Mapping[str, object], title: str = "") -> Path:
    """The science, reference and difference cutouts side by side (zscaled 8-bit images, as scanners see them)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8))
    fig.subplots_adjust(left=0.01, right=0.99, top=0.84, bottom=0.02, wspace=0.04)
    for ax, (key, name) in zip(axes, (("cutoutScience", "science"), ("cutoutTemplate", "reference"),
                                      ("cutoutDifference", "difference"))):
        img = thumbs.get(key)
        if img is None:
            ax.text(0.5, 0.5, "not readable", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.imshow(img, cmap="gray", origin="lower", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(name, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=11, y=0.99)
    return _save(fig, path)


def lightcurve(path: Path, lc: Mapping, title: str = "") -> Path:
    """Detections by filter with error bars, upper limits as open triangles, magnitude inverted; the alert
    at which the policy fired is ringed. x: days from that alert."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4))
    fig.subplots_adjust(left=0.08, right=0.8, top=0.9, bottom=0.14)
    t0 = float(lc.get("jd") or 0.0)
    for fid, (band, colour) in ZTF_COLOURS.items():
        det = [d for d in lc.get("detections", []) if d.get("fid") == fid]
        pos = [d for d in det if not d.get("negative")]
        neg = [d for d in det if d.get("negative")]
        if pos:
            ax.errorbar([d["jd"] - t0 for d in pos], [d["magpsf"] for d in pos],
                        yerr=[d["sigmapsf"] or 0.0 for d in pos], fmt="o", ms=5, color=colour, capsize=2,
                        label=f"ZTF {band}")
        if neg:
            ax.errorbar([d["jd"] - t0 for d in neg], [d["magpsf"] for d in neg],
                        yerr=[d["sigmapsf"] or 0.0 for d in neg], fmt="o", ms=5, mfc="none", color=colour,
                        capsize=2, label=f"ZTF {band} (negative subtraction)")
        lim = [u for u in lc.get("upper_limits", []) if u.get("fid") == fid]
        if lim:
            ax.plot([u["jd"] - t0 for u in lim], [u["diffmaglim"] for u in lim], "v", ms=6, mfc="none",
                    color=colour, alpha=0.6, label=f"ZTF {band} upper limit")
    this = [d for d in lc.get("detections", []) if d.get("this")]
    if this:
        ax.plot([d["jd"] - t0 for d in this], [d["magpsf"] for d in this], "o", ms=13, mfc="none", mec="black",
                mew=1.5, label="the alert where it fired")
    ax.invert_yaxis()
    ax.set_xlabel("days from the alert where the policy fired")
    ax.set_ylabel("magnitude (AB)")
    ax.set_title(title, fontsize=11)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)
