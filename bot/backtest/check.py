"""`btsbot check --cases FILE`: regression cases for policies, evaluated with the scorer, score cache and
policy code `backtest` uses (`bot.backtest.cases` for the file). One line per case, policy and object:
PASS or FAIL, the decision time or why not (`bot.core.reasons`, as `btsbot explain` says it). Exit 0
when every case passes, 1 when any fails, 2 for a bad cases file (its line and key named). Meant for the
CI of a policy repository and for the moment before `mode: live`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Iterable, Mapping

from bot.backtest.cases import Case
from bot.core.policies import Policy
from bot.core.reasons import explain
from bot.timeutil import utc_text


@dataclass(frozen=True)
class Outcome:
    case: str
    policy: str
    objectId: str
    expect: str  # "select" | "reject"
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.case}: {self.policy} {self.expect} {self.objectId}: {self.detail}"


def evaluate_cases(cases: Iterable[Case], policies: Mapping[str, Policy], alerts: Iterable[Mapping]) -> list[Outcome]:
    """Every case, policy and object against the sample's alerts (pure)."""
    by_object: dict[str, list[Mapping]] = {}
    for a in alerts:
        by_object.setdefault(a["objectId"], []).append(a)
    out = []
    for case in cases:
        lo = case.since if case.since is not None else float("-inf")
        hi = case.until if case.until is not None else float("inf")
        for name in case.policies:
            policy = policies[name]
            for expect, objects in (("select", case.select), ("reject", case.reject)):
                for oid in objects:
                    rows = [a for a in by_object.get(oid, []) if lo <= a["jd"] < hi]
                    out.append(_judge(case, policy, expect, oid, rows))
    return out


def _judge(case: Case, policy: Policy, expect: str, oid: str, rows: list[Mapping]) -> Outcome:
    if not rows:
        return Outcome(case.name, policy.name, oid, expect, False, "no alert of it in the sample" +
                       (" and window" if case.since is not None or case.until is not None else ""))
    e = explain(policy, rows)
    if expect == "reject":
        if e.fired is None:
            return Outcome(case.name, policy.name, oid, expect, True, f"not selected ({e.reason})")
        return Outcome(case.name, policy.name, oid, expect, False, f"selected: {e.verdict}" + _why(case))
    if e.fired is None:
        return Outcome(case.name, policy.name, oid, expect, False, f"not selected: {e.verdict}" + _why(case))
    at = float(e.fired.alert["jd"])
    if case.by is not None and at > case.by:
        return Outcome(case.name, policy.name, oid, expect, False,
                       f"selected at {utc_text(at)}, after {utc_text(case.by)} ({(at - case.by) * 24:.1f} h late)")
    by = f", by {utc_text(case.by)}" if case.by is not None else ""
    return Outcome(case.name, policy.name, oid, expect, True, f"selected at {utc_text(at)}{by}")


def _why(case: Case) -> str:
    return f" [case: {case.why}]" if case.why else ""


# ---- command ---------------------------------------------------------------------------------------

def register(subparsers) -> argparse.ArgumentParser:
    from bot.backtest.cli import add_sample_arguments

    ck = subparsers.add_parser(
        "check", help="regression cases for policies: objects that must (not) be selected; exit 1 if any fails",
        description="Evaluate every case of a cases file (YAML: name, policy/policies, select, reject, by, "
                    "since, until, why) with the same scorer, score cache and policy code as backtest, over "
                    "avro files (--alerts), a broker window (--broker) or a journal (default). Exit 0 when "
                    "all pass, 1 when any fails, 2 for a bad cases file.")
    ck.add_argument("--cases", required=True, metavar="FILE", help="the cases (YAML; see config/cases.example.yaml)")
    ck.add_argument("--config", metavar="FILE", help="the policies (and models, broker, state.path) to use")
    ck.add_argument("--compare", metavar="LAB.yaml", help="also check a second config's policies (lab) on the same "
                                                           "alerts and scores; a line says where they differ; exit 0 "
                                                           "only when every case passes under both")
    add_sample_arguments(ck)
    ck.set_defaults(func=cmd_check)
    return ck


def cmd_check(args) -> int:
    from bot.backtest.cases import CasesError, load_cases
    from bot.backtest.cli import load_sample
    from bot.backtest.errors import BacktestError
    from bot.backtest.trials import config_policies
    from bot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _die, _load_config

    cfg = _load_config(args)
    policies = {p.name: p for p, _ in config_policies(cfg)}
    try:
        cases = load_cases(args.cases, list(policies))
    except CasesError as exc:
        return _die(str(exc), EXIT_USAGE)
    try:
        sample = load_sample(args, cfg)
    except BacktestError as exc:
        return _die(str(exc), EXIT_FAILED)
    outcomes = evaluate_cases(cases, policies, sample.alerts)
    lab = None
    if args.compare:
        from bot.config import load_config

        lab_policies = {p.name: p for p, _ in config_policies(load_config(args.compare))}
        try:
            load_cases(args.cases, list(lab_policies))
        except CasesError as exc:
            return _die(f"--compare {args.compare}: {exc}", EXIT_USAGE)
        lab = evaluate_cases(cases, lab_policies, sample.alerts)
    for i, o in enumerate(outcomes):
        if lab is None:
            print(o.line())
            continue
        other = lab[i]
        tag = "same" if o.passed == other.passed else "DIFFERS"
        print(f"prod {o.line()}\nlab  {other.line()}  [{tag}]")
    failed = sum(not o.passed for o in outcomes) + (sum(not o.passed for o in lab) if lab else 0)
    total = len(outcomes) * (2 if lab else 1)
    print(f"{total - failed} of {total} checks passed ({len(cases)} cases{', prod and lab' if lab else ''}, "
          f"{sample.origin})", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
