"""The registry of action kinds, and the `policies[].actions` config model built from it.

Adding a kind: write its module (an `ActionKind` subclass with its config model, see
`bot.actions.base`) and register an instance below. Its config key then exists under every policy's
`actions`, and the engine plans, runs and journals it like the others.
"""

from __future__ import annotations

from pydantic import create_model

from bot.actions.annotation import Annotation
from bot.actions.base import ActionKind, KindConfig
from bot.actions.comment import Comment
from bot.actions.followup import Followup
from bot.actions.notify import Notify
from bot.actions.save import Save

KINDS: dict[str, ActionKind] = {}


def register(kind: ActionKind) -> ActionKind:
    if kind.name in KINDS:
        raise ValueError(f"action kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


for _kind in (Save(), Followup(), Comment(), Annotation(), Notify()):
    register(_kind)


def policy_actions_model() -> type[KindConfig]:
    """The pydantic model of `policies[].actions`: one optional key per registered kind."""
    fields = {k.config_key: (k.config_type, k.config_default) for k in KINDS.values()}
    return create_model("PolicyActions", __base__=KindConfig, **fields)
