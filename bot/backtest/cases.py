"""Regression cases for policies (`btsbot check --cases FILE`): objects a named policy must select (by a
time, optionally) and objects it must not select, over a window, each with a free-text why.

    cases:
      - name: SN 2023tyk, saved and triggered early
        policies: [bts_p1, bts_p2]       # or policy: bts_p1
        select: [ZTF23abhvlji]
        by: 2023-10-05T12:00:00Z         # selected no later than this (a human's save or trigger time)
        since: 2023-10-01                # the alerts considered (optional, any `--since` form)
        until: 2023-10-10
        why: the first SN classified with no human in the loop
      - name: the CV is not a supernova
        policies: [bts_p1, bts_p2]
        reject: [ZTF23abdsfms]
        why: "AT 2023sxt, a cataclysmic variable"

A file that is not such a list is refused with the line and the key (`CasesError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.ids import is_object_id, normalize_object_id
from bot.timeutil import parse_time


class CasesError(ValueError):
    """A cases file that cannot be used; str() names the file, the line and the key."""


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    policy: str | None = None
    policies: list[str] = []
    select: list[str] = []
    reject: list[str] = []
    by: float | None = None  # JD: selected no later than
    since: float | None = None  # JD
    until: float | None = None  # JD
    why: str = ""

    @field_validator("by", "since", "until", mode="before")
    @classmethod
    def _time(cls, value: Any):
        if value is None or isinstance(value, float):
            return value
        return parse_time(value.isoformat() if hasattr(value, "isoformat") else str(value))

    @field_validator("select", "reject")
    @classmethod
    def _ids(cls, values: list[str]):
        out = [normalize_object_id(str(v)) for v in values]
        bad = [v for v in out if not is_object_id(v)]
        if bad:
            raise ValueError(f"not an object id: {bad[0]!r}")
        return out

    @model_validator(mode="after")
    def _complete(self):
        if self.policy:
            self.policies = [self.policy, *[p for p in self.policies if p != self.policy]]
        if not self.policies:
            raise ValueError("name the policy (policy: NAME or policies: [NAME, ...])")
        if not self.select and not self.reject:
            raise ValueError("a case needs objects to select and/or to reject")
        if self.by is not None and not self.select:
            raise ValueError("`by` is a time for the objects to select: give select")
        if self.since is not None and self.until is not None and not self.since < self.until:
            raise ValueError("since must be before until")
        return self


class CasesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cases: list[Case] = Field(min_length=1)


def load_cases(path: str | Path, policy_names: list[str] | None = None) -> list[Case]:
    """The cases of a YAML file; raises CasesError naming the line and the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CasesError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise CasesError(f"{path}:{where} not YAML ({getattr(exc, 'problem', exc)})") from None
    bare = isinstance(data, list)  # a bare list of cases is accepted too

    def line(loc) -> int:
        return _line(node, list(loc)[1:] if bare and loc and loc[0] == "cases" else list(loc))

    try:
        cases = CasesFile.model_validate({"cases": data} if bare else data).cases
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(x) for x in err["loc"]]
        raise CasesError(f"{path}: line {line(err['loc'])}: {'.'.join(loc) or 'cases'}: {err['msg']}") from None
    if policy_names is not None:
        for i, case in enumerate(cases):
            unknown = [p for p in case.policies if p not in policy_names]
            if unknown:
                key = ("cases", i, "policy" if case.policy else "policies")
                raise CasesError(f"{path}: line {line(key)}: cases.{i}: no policy {unknown[0]!r} in the "
                                 f"config (policies: {', '.join(policy_names)})")
    return cases


def _line(node, loc) -> int:
    """The 1-based line of the YAML node at `loc` (keys and indices), or of the deepest one found."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(key):
                    child = v if not isinstance(v, yaml.ScalarNode) else k
                    line = k.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            child = node.value[key]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
