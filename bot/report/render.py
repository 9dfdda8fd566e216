"""A night report as HTML (index.html + PNG plots) or as plain text (for e-mail or chat)."""

from __future__ import annotations

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


def _summary(night: Night) -> dict:
    acts = [a for s in night.acted for d in s.decisions for a in d["actions"]]
    scored = [a for a in night.alerts if a["score"] is not None]
    counting = {a["candid"] for p in night.policies for a in scored if p.counts(a)}
    funnel = (f"{n(len(night.alerts), 'alert')} seen, {len(scored)} scored, {len(counting)} counting for a policy, "
              f"{n(len({s.objectId for s in night.acted}), 'source')} acted on")
    def links(kind: str, outcome: str) -> list[dict]:
        names = sorted({s.objectId for s in night.acted for d in s.decisions for a in d["actions"]
                        if a["action"] == kind and a.get("outcome") == outcome})
        return [{"name": o, "href": night.link(o)} for o in names]

    return {"saved_links": links("save", "saved"), "triggered_links": links("followup", "posted"),
            "saved": sum(a["action"] == "save" and a.get("outcome") == "saved" for a in acts),
            "triggered": sum(a["action"] == "followup" and a.get("outcome") == "posted" for a in acts),
            "near_misses": len(night.near_misses), "errors": len(night.errors), "pending": len(night.pending),
            "over_budget": len(_over_budget(night)), "funnel": funnel}


def page_context(night: Night, out: Path) -> dict:
    """What the night page shows (`templates/night.html.j2`), as plain strings and numbers."""
    lo, hi = night.window
    others = [s for s in night.not_selected if not s.near_miss]
    return {
        "window": f"{utc_minute(lo)} - {utc_minute(hi)}",
        "mode_note": "Palomar night, noon to noon local time; times in UTC",
        "summary": _summary(night),
        "acted": [{"objectId": s.objectId, "link": night.link(s.objectId), "image": f"source_{s.objectId}.png",
                   "cutouts": f"cutouts_{s.objectId}.png" if s.evidence else None,
                   "lightcurve": f"lightcurve_{s.objectId}.png" if s.evidence else None,
                   "decisions": [{"fired": _fired(d), "actions": [_action_line(a) for a in d["actions"]],
                                  "elsewhere": d.get("elsewhere") or []} for d in s.decisions]}
                  for s in night.acted],
        "near_misses": [{"objectId": s.objectId, "link": night.link(s.objectId), "n_alerts": s.n_alerts,
                         "max_score": score_text(s.max_score) if s.max_score is not None else "-",
                         "verdicts": list(s.verdicts.items())} for s in night.near_misses],
        "not_selected": [{"objectId": s.objectId, "n_alerts": s.n_alerts,
                          "max_score": "-" if s.max_score is None else score_text(s.max_score),
                          "reason": s.reason_line()} for s in others[:500]],
        "more_not_selected": max(0, len(others) - 500),
        "problems": ([f"error: {a['objectId']} {_action_line(a)}" for a in night.errors]
                     + [f"unscorable: {k} x {why}" for why, k in night.unscorable.most_common()]
                     + [f"pending: {a['objectId']} {_action_line(a)}" for a in night.pending]),
        "drift_line": night.drift.line(),
        "drift": [{"objectId": d.objectId, "candid": d.candid, "ours": score_text(d.ours),
                   "broker": f"{score_text(d.broker)} {d.source}" + (f" ({d.broker_model})" if d.broker_model else ""),
                   "diff": f"{d.diff:.3f}", "inputs": list(d.inputs),
                   "none": "-" if d.diff <= night.drift.tolerance else "no known input difference applies"}
                  for d in night.drift.largest],
    }


def write_html(night: Night, out_dir: str | Path) -> Path:
    """DIR/index.html (templates/night.html.j2), DIR/style.css and the PNG plots beside it: works offline."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plotting.source_histories([(out / f"source_{s.objectId}.png", s.objectId, s.alerts, night.policies,
                                {d["policy"]: d["jd"] for d in s.decisions if d["jd"] is not None})
                               for s in night.acted])
    for s in night.acted:
        if s.evidence:
            fired = utc(s.evidence["lightcurve"].get("jd"))
            plotting.cutouts(out / f"cutouts_{s.objectId}.png", s.evidence, f"{s.objectId} at {fired}")
            plotting.lightcurve(out / f"lightcurve_{s.objectId}.png", s.evidence["lightcurve"],
                                f"{s.objectId}: the light curve the bot had at {fired}")
    scores = [a["score"] for a in night.alerts if a["score"] is not None]
    threshold = min((p.min_score for p in night.policies), default=None)
    plotting.histogram(out / "scores.png", scores, SCORE_BINS, "BTSbot score", "scores of the night", threshold)
    page = render_page("night.html.j2", page_context(night, out), out)
    return page


def render_page(template: str, context: dict, out: Path) -> Path:
    """Render a template of bot/report/templates into out/index.html, with the stylesheet beside it."""
    from importlib import resources

    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    folder = resources.files("bot.report") / "templates"
    env = Environment(loader=FileSystemLoader(str(folder)), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    (out / "style.css").write_text((folder / "style.css").read_text())
    (out / "index.html").write_text(env.get_template(template).render(**context))
    return out / "index.html"
