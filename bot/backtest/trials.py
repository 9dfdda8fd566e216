"""The policies a backtest tries: the config's, `--set name.key=value` overrides, `--sweep` grids.

`--sweep key=v1,v2,...` or `key=start:stop:step` (stop included when it lies on the grid) tries every
value for every config policy; `name.key=...` only for that policy; several sweeps make their product.
A trial keeps the name of the config policy it comes from (`base`), which human time it is compared
with (a policy that requests follow-up: `triggered_at`, otherwise `saved_at`), and its swept values.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

from bot.core.policies import Policy

SWEEPABLE = ("min_score", "min_alerts", "alert_mag_max", "peakmag_max")
SETTABLE = SWEEPABLE + ("age_min_days", "age_max_days", "model_version")
_OPTIONAL = {"peakmag_max", "age_min_days", "age_max_days"}


class TrialError(ValueError):
    """A --set/--sweep argument that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Trial:
    policy: Policy
    base: str  # the config policy it derives from
    human_time: str  # "saved_at" or "triggered_at"
    params: dict = field(default_factory=dict, hash=False, compare=False)  # swept key -> value

    @property
    def name(self) -> str:
        return self.policy.name


def config_policies(cfg) -> list[tuple[Policy, str]]:
    """(core Policy, human time it compares with) for each policy of the config, built as the runtime builds
    them (`bot.runtime.configured_policies`). Any model version a policy names is accepted here: a version
    with no scores in the sample is reported by the backtest itself, with the versions it has."""
    from bot.artifacts import get_artifact
    from bot.runtime import configured_policies

    versions = [get_artifact("models", "btsbot").version] + [p.model_version for p in cfg.policies if p.model_version]
    return [(p, "triggered_at" if p.actions is not None and p.actions.followup else "saved_at")
            for p in configured_policies(cfg, list(dict.fromkeys(versions)))]


def _value(key: str, text: str, where: str):
    text = text.strip()
    if key == "model_version":
        return text
    if text.lower() in ("none", "null", "") and key in _OPTIONAL:
        return None
    try:
        value = float(text)
    except ValueError:
        raise TrialError(f"{where}: {key} must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise TrialError(f"{where}: {key} must be finite")
    if key == "min_alerts":
        if value != int(value) or value < 1:
            raise TrialError(f"{where}: min_alerts must be a whole number >= 1, not {text!r}")
        return int(value)
    if key == "min_score" and not 0 <= value <= 1:
        raise TrialError(f"{where}: min_score must be in [0, 1], not {text!r}")
    return value


def _split(arg: str, opt: str, keys: tuple[str, ...], names: set[str]) -> tuple[str | None, str, str]:
    if "=" not in arg:
        raise TrialError(f"{opt} {arg!r}: expected [policy.]key=value")
    lhs, rhs = arg.split("=", 1)
    name, _, key = lhs.strip().rpartition(".")
    name = name or None
    if key not in keys:
        raise TrialError(f"{opt} {arg!r}: {key!r} is not one of {', '.join(keys)}")
    if name is not None and name not in names:
        raise TrialError(f"{opt} {arg!r}: no policy {name!r} in the config (policies: {', '.join(sorted(names))})")
    return name, key, rhs


def grid(key: str, text: str, where: str) -> list:
    """The values of a sweep: `v1,v2,...` or `start:stop:step` (stop included when on the grid)."""
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise TrialError(f"{where}: a range is start:stop:step")
        start, stop, step = (_value("alert_mag_max", p, where) for p in parts)
        if step is None or step <= 0 or stop < start:
            raise TrialError(f"{where}: a range needs step > 0 and stop >= start")
        n = int(math.floor((stop - start) / step + 1e-9)) + 1
        if n > 100_000:
            raise TrialError(f"{where}: {n} values is too many")
        values = [_value(key, repr(round(start + i * step, 10)), where) for i in range(n)]
    else:
        values = [_value(key, v, where) for v in text.split(",") if v.strip() or key in _OPTIONAL]
    if not values:
        raise TrialError(f"{where}: no values")
    return list(dict.fromkeys(values))


def _label(v) -> str:
    return "none" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def build_trials(base: list[tuple[Policy, str]], sets: list[str] = (), sweeps: list[str] = ()) -> list[Trial]:
    """The trial policies: each base policy with the --set overrides, times its sweep grid."""
    names = {p.name for p, _ in base}
    overrides: dict[str | None, dict] = {}
    for arg in sets:
        name, key, rhs = _split(arg, "--set", SETTABLE, names)
        overrides.setdefault(name, {})[key] = _value(key, rhs, f"--set {arg}")
    axes: list[tuple[str | None, str, list]] = []
    for arg in sweeps:
        name, key, rhs = _split(arg, "--sweep", SWEEPABLE, names)
        axes.append((name, key, grid(key, rhs, f"--sweep {arg}")))
    trials = []
    for policy, human in base:
        policy = replace(policy, **{**overrides.get(None, {}), **overrides.get(policy.name, {})})
        mine = [(key, values) for name, key, values in axes if name in (None, policy.name)]
        if not mine:
            trials.append(Trial(policy, policy.name, human))
            continue
        keys = [k for k, _ in mine]
        for combo in itertools.product(*(values for _, values in mine)):
            params = dict(zip(keys, combo))
            label = ",".join(f"{k}={_label(v)}" for k, v in params.items())
            trials.append(Trial(replace(policy, name=f"{policy.name}[{label}]", **params), policy.name, human, params))
    return trials


def baseline_trials(base: list[tuple[Policy, str]]) -> list[Trial]:
    return [Trial(p, p.name, human) for p, human in base]
