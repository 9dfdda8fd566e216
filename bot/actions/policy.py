"""A policy that acts: the pure rule (`bot.core.policies.Policy`) and, beside it, what to do when it holds
(its `policies[].actions` config). The cycle evaluates it as the rule it is; the action kinds read
`actions` (`ActionKind.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Sequence

from bot.core.policies import Policy, build_policies


@dataclass(frozen=True)
class ActingPolicy(Policy):
    actions: Any = field(default=None, compare=False, hash=False)  # its `policies[].actions` (pydantic)


def acting_policies(configs: Sequence, model_versions: Sequence[str]) -> list[ActingPolicy]:
    """The configured policies, built once at start: each rule (`build_policies`: its model version bound,
    a version no loaded model provides refused) with its actions."""
    return [ActingPolicy(**{f.name: getattr(rule, f.name) for f in fields(Policy)}, actions=cfg.actions)
            for rule, cfg in zip(build_policies(configs, model_versions), configs)]
