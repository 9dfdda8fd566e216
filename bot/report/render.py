"""A night report as HTML (index.html + PNG plots) or as plain text (for e-mail or chat)."""

from __future__ import annotations

import html
from pathlib import Path

from bot import plotting
from bot.core.policies import score_text
from bot.report.night import Night
from bot.text import n
from bot.timeutil import jd_to_datetime

SCORE_BINS = [i / 20 for i in range(21)]


def utc(jd: float | None) -> str:
    return "-" if jd is None else jd_to_datetime(jd).strftime("%Y-%m-%d %H:%M:%S UTC")


def utc_minute(jd: float) -> str:
    """A window bound, to the nearest minute."""
    return jd_to_datetime(round(jd * 1440) / 1440 + 1e-9).strftime("%Y-%m-%d %H:%M UTC")


def _action_line(a: dict) -> str:
    outcome = a["outcome"] or a["status"]
    resp = a.get("response") or {}
    detail = resp.get("message") or resp.get("reason") or a.get("error") or ""
    rid = resp.get("request_id")
    return (f"{a['action']} ({a['policy']}): {outcome}" + (f", request {rid}" if rid is not None else "")
            + (f" - {detail}" if detail else ""))


def _fired(decision: dict) -> str:
    ev = decision.get("evidence") or {}
    parts = [f"{decision['policy']} fired at its alert of {utc(decision['jd'])} (candid {decision['candid']}"]
    if ev.get("n_counting") is not None:
        parts.append(f", {ev['n_counting']} counting alerts, max score {score_text(ev['max_score'])}")
    return "".join(parts) + ")"


def _score_counts(night: Night) -> list[tuple[str, int]]:
    scores = [a["score"] for a in night.alerts if a["score"] is not None]
    edges = [0.0, 0.1, 0.5, 0.9, 1.0]
    out = []
    for lo, hi in zip(edges, edges[1:]):
        n = sum(lo <= s < hi or (hi == 1.0 and s == 1.0) for s in scores)
        out.append((f"{lo:g}-{hi:g}", n))
    return out


def _over_budget(night: Night) -> list[dict]:
    """The night's follow-ups that the budget held (`actions.followup.max_per_night`)."""
    return [a for s in night.acted for d in s.decisions for a in d["actions"] if a.get("outcome") == "over_budget"]


def text(night: Night) -> str:
    lo, hi = night.window
    n_scored = sum(a["score"] is not None for a in night.alerts)
    lines = [f"btsbot night report, {utc_minute(lo)} - {utc_minute(hi)}",
             f"{n(len(night.alerts), 'alert')} ({n_scored} scored, {len(night.alerts) - n_scored} unscorable) of "
             f"{n(len({a['objectId'] for a in night.alerts}), 'source')}; {n(len(night.acted), 'source')} acted on, "
             f"{n(len(night.near_misses), 'near miss', 'near misses')}, {n(len(night.errors), 'error')}, "
             f"{n(len(night.pending), 'pending action')}"
             + (f", {n(len(over), 'follow-up')} over budget (not sent)" if (over := _over_budget(night)) else ""),
             "", "Saved or triggered:"]
    for s in night.acted:
        lines.append(f"  {s.objectId}  {night.link(s.objectId)}")
        for d in s.decisions:
            lines.append(f"    {_fired(d)}")
            lines += [f"      {_action_line(a)}" for a in d["actions"]]
            lines += [f"      ({line})" for line in d.get("elsewhere") or []]
    if not night.acted:
        lines.append("  none")
    lines += ["", "Near misses (counting alerts, no policy selected):"]
    for s in night.near_misses:
        lines.append(f"  {s.objectId}  {night.link(s.objectId)}")
        lines += [f"    {p}: {verdict}" for p, verdict in s.verdicts.items()]
    if not night.near_misses:
        lines.append("  none")
    others = [s for s in night.not_selected if not s.near_miss]
    lines += ["", f"Not selected ({n(len(others), 'other source')}):"]
    lines += [f"  {s.objectId}: {s.n_alerts} alerts, max score "
              f"{'-' if s.max_score is None else score_text(s.max_score)}; {s.reason_line()}" for s in others[:100]]
    if len(others) > 100:
        lines.append(f"  ... and {len(others) - 100} more")
    if not others:
        lines.append("  none")
    lines += ["", "Errors:"] + ([f"  {a['objectId']} {_action_line(a)}" for a in night.errors] or ["  none"])
    lines += [f"  unscorable: {n} x {why}" for why, n in night.unscorable.most_common()]
    lines += ["", "Pending actions:"] + ([f"  {a['objectId']} {_action_line(a)}" for a in night.pending] or ["  none"])
    lines += ["", "Broker scores (the broker's own BTSbot score against ours; evidence, never a decision):",
              f"  {night.drift.line()}"]
    lines += [f"  {d.line()}" for d in night.drift.largest if d.diff > night.drift.tolerance]
    lines += ["", "Scores: " + ", ".join(f"{b}: {n}" for b, n in _score_counts(night))]
    return "\n".join(lines) + "\n"


def write_html(night: Night, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    e = html.escape
    lo, hi = night.window
    body = [f"<h1>btsbot night report</h1><p>{e(utc_minute(lo))} - {e(utc_minute(hi))}</p>",
            f"<pre>{e(text(night).split(chr(10) + chr(10))[0])}</pre>", "<h2>Saved or triggered</h2>"]
    plotting.source_histories([(out / f"source_{s.objectId}.png", s.objectId, s.alerts, night.policies,
                                {d["policy"]: d["jd"] for d in s.decisions if d["jd"] is not None})
                               for s in night.acted])
    for s in night.acted:
        name = f"source_{s.objectId}.png"
        body.append(f'<h3><a href="{e(night.link(s.objectId))}">{e(s.objectId)}</a></h3><ul>')
        for d in s.decisions:
            body.append(f"<li>{e(_fired(d))}<ul>" + "".join(f"<li>{e(_action_line(a))}</li>" for a in d["actions"])
                        + "".join(f"<li><i>{e(line)}</i></li>" for line in d.get("elsewhere") or []) + "</ul></li>")
        body.append(f'</ul><img src="{e(name)}" alt="{e(s.objectId)} scores and magnitudes">')
    if not night.acted:
        body.append("<p>None.</p>")
    body.append("<h2>Near misses</h2><table><tr><th>source</th><th>alerts</th><th>max score</th><th>why not</th></tr>")
    for s in night.near_misses:
        why = "<br>".join(e(f"{p}: {v}") for p, v in s.verdicts.items())
        body.append(f'<tr><td><a href="{e(night.link(s.objectId))}">{e(s.objectId)}</a></td><td>{s.n_alerts}</td>'
                    f"<td>{score_text(s.max_score)}</td><td>{why}</td></tr>")
    body.append("</table><h2>Not selected</h2><table><tr><th>source</th><th>alerts</th><th>max score</th>"
                "<th>why not</th></tr>")
    for s in night.not_selected:
        if not s.near_miss:
            score = "-" if s.max_score is None else score_text(s.max_score)
            body.append(f"<tr><td>{e(s.objectId)}</td><td>{s.n_alerts}</td><td>{score}</td><td>{e(s.reason_line())}</td></tr>")
    body.append("</table><h2>Errors and pending actions</h2><ul>")
    body += [f"<li>error: {e(a['objectId'])} {e(_action_line(a))}</li>" for a in night.errors]
    body += [f"<li>unscorable: {n} x {e(why)}</li>" for why, n in night.unscorable.most_common()]
    body += [f"<li>pending: {e(a['objectId'])} {e(_action_line(a))}</li>" for a in night.pending]
    body.append(f"</ul><h2>Broker scores</h2><p>The broker's own BTSbot score against ours (evidence, never a "
                f"decision): {e(night.drift.line())}.</p>")
    if night.drift.largest:
        body.append("<table><tr><th>source</th><th>candid</th><th>ours</th><th>broker's</th><th>|diff|</th>"
                    "<th>inputs the broker computes differently</th></tr>")
        for d in night.drift.largest:
            model = f" ({d.broker_model})" if d.broker_model else ""
            why = "<br>".join(e(x) for x in d.inputs) or ("-" if d.diff <= night.drift.tolerance else
                                                           "no known input difference applies")
            body.append(f"<tr><td>{e(d.objectId)}</td><td>{d.candid}</td><td>{d.ours:.3f}</td>"
                        f"<td>{d.broker:.3f} {e(d.source + model)}</td><td>{d.diff:.3f}</td><td>{why}</td></tr>")
        body.append("</table>")
    body.append("<h2>Score distribution</h2>")
    scores = [a["score"] for a in night.alerts if a["score"] is not None]
    threshold = min((p.min_score for p in night.policies), default=None)
    plotting.histogram(out / "scores.png", scores, SCORE_BINS, "BTSbot score", "scores of the night", threshold)
    body.append('<img src="scores.png" alt="score distribution">')
    (out / "index.html").write_text("<!doctype html><html><head><meta charset='utf-8'><title>btsbot night report</title>"
                                    "<style>body{font-family:sans-serif} table{border-collapse:collapse}"
                                    "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>"
                                    + "\n".join(body) + "</body></html>\n")
    return out / "index.html"
