"""What an action kind is: its config model, and how it plans, dry-runs, executes and describes itself.

The engine (`bot.actions.engine.Actor`) knows nothing about any kind; it asks the registry
(`bot.actions.registry`) for the kinds and calls these hooks. A hook returns an `(outcome, response)`
pair; outcome None keeps the action pending (resumed next cycle). A kind raises `SkyPortalError` (or
another `ServiceError`) for a failed exchange -- the engine's error policy decides what it means -- and
ValueError for a request refused before anything was sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from bot.core.policies import Decision, Policy, score_text
from bot.journal import Journal
from bot.journal.records import ActionRecord

Result = tuple["str | None", dict]
DESCRIBED = ("save", "followup")  # the main actions a comment or a notification describes


def evidence_phrase(evidence: Mapping, policy: Policy | None) -> str:
    """A decision's evidence as the comment and the notification say it: `N alerts > T, max score S`
    (no `> T` when the policy is no longer configured)."""
    threshold = f" > {policy.min_score:g}" if policy else ""
    return f"{evidence['n_counting']} alerts{threshold}, max score {score_text(evidence['max_score'])}"


def peak_phrase(evidence: Mapping) -> str:
    """`, peak M mag` when the evidence knows the peak magnitude so far, else nothing."""
    return f", peak {evidence['peakmag_so_far']:.2f} mag" if evidence.get("peakmag_so_far") is not None else ""


class KindConfig(BaseModel):
    """Base of an action kind's config model (strict: an unknown key is an error)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


@dataclass
class Context:
    """What the kinds may use: the journal, the services they act on, the policies, the clock."""

    journal: Journal
    policies: Mapping[str, Policy]
    services: Mapping[str, Any]
    mode: str
    now: Callable[[], datetime]
    shared: Mapping[str, Any] = field(default_factory=dict)  # what kinds share (`ActionKind.shares`)
    links: Mapping[str, str] = field(default_factory=dict)  # e.g. {"skyportal": "https://fritz.science"}
    kinds: Mapping[str, "ActionKind"] = field(default_factory=dict)  # the registry, by journal name
    views: dict = field(default_factory=dict)  # obj_id -> (monotonic time, SourceView) read during this run

    VIEW_MAX_AGE_S: ClassVar[float] = 60.0

    @property
    def save_groups(self) -> list[int]:
        """Every policy's save groups (shared by the save kind): where comments and the annotation go."""
        return list(self.shared.get("save_groups") or [])

    def source_view(self, obj_id: str, *, read: bool = True):
        """What Fritz holds of `obj_id` (`SkyPortalClient.source_view`), read at most once per action run
        and used for at most VIEW_MAX_AGE_S; the kinds update it with what they change. With read=False:
        the view if one is at hand, else None (nothing is sent)."""
        at, view = self.views.get(obj_id, (None, None))
        if view is not None and time.monotonic() - at <= self.VIEW_MAX_AGE_S:
            return view
        if not read:
            return None
        view = self.service("skyportal").source_view(obj_id)
        self.views[obj_id] = (time.monotonic(), view)
        return view

    def service(self, name: str) -> Any:
        svc = self.services.get(name)
        if svc is None:
            raise RuntimeError(f"no {name} service configured (live mode needs it)")
        return svc

    def main_action(self, action: ActionRecord, about: str) -> ActionRecord | None:
        """The action `about` ("save", "followup") of the same decision and mode as `action` (None if none)."""
        return next((x for x in self.journal.actions_for(action.decision_id) if x.action == about
                     and (action.mode is None or x.mode in (action.mode, None))), None)


class ActionKind:
    """One kind of action. Subclasses set the class attributes and override the hooks they need."""

    name: ClassVar[str]  # the journal's `action` column
    config_key: ClassVar[str]  # its key under `policies[].actions`
    config_type: ClassVar[Any]  # the pydantic type of that key
    config_default: ClassVar[Any] = None
    order: ClassVar[int]  # execution order inside a decision
    phase: ClassVar[int] = 0  # kinds of a later phase run after every earlier phase's actions (of all decisions)
    service: ClassVar[str | None] = "skyportal"

    def enabled(self, policy: Policy) -> Any:
        return getattr(policy.actions, self.config_key, None) if policy.actions is not None else None

    def services(self, policy: Policy) -> list[str]:
        """The services (names in `Context.services`) this kind needs for `policy` in live mode."""
        return [self.service] if self.service and self.enabled(policy) else []

    # -- at start (the composition root asks every kind; it knows none) ---------------------------------
    def checks(self, policies: Iterable[Policy]) -> dict[str, list]:
        """What the kind's service must allow, verified at start: {"groups": [...]} and/or
        {"allocations": [...]} for SkyPortal (`SkyPortalClient.check`)."""
        return {}

    def open_services(self, cfg: Any, policies: Sequence[Policy], env: Mapping[str, str]) -> dict[str, Any]:
        """The services this kind brings itself (its own transports, e.g. a webhook), by name; each may
        have a close(). Raises bot.config.ConfigError naming the key when one cannot be opened."""
        return {}

    def shares(self, policies: Iterable[Policy]) -> dict[str, Any]:
        """What the other kinds may read in `Context.shared` (e.g. the save groups)."""
        return {}

    # -- planning (inside the cycle's journal transaction) ---------------------------------------------
    def plan(self, ctx: Context, policy: Policy, decision: Decision, alert: Mapping) -> Iterable[tuple[str | None, dict]]:
        """The (key, request) pairs to journal as pending for a new decision."""
        return ()

    def plan_source(self, ctx: Context, object_id: str) -> tuple[int, str | None, dict] | None:
        """(decision_id, key, request) of a per-source action, for a source some policy acted on."""
        return None

    # -- execution -------------------------------------------------------------------------------------
    def waiting_for(self, ctx: Context, action: ActionRecord) -> str | None:
        """Why the action must wait (it stays pending, untouched), or None to run it now."""
        return None

    def would_send(self, ctx: Context, action: ActionRecord) -> dict:
        """What it would send, journaled in dry-run mode instead of sending."""
        raise NotImplementedError

    def execute(self, ctx: Context, action: ActionRecord) -> Result:
        raise NotImplementedError

    def describe(self, action: Mapping) -> str:
        """A finished (or pending) action's outcome in words, for comments, notifications and the reports: a
        journal record or a history row (a mapping), or {} for an action that does not exist."""
        return f"{self.name} {action.get('outcome') or 'not done'}"
