"""Acting on the world: policy decisions -> journaled, idempotent actions (Fritz, chat).

`engine.Actor` is the two-phase engine and its error policy; each action kind is one module (save,
followup, comment, annotation, ...) registered in `registry`. See docs/operating.md, "Acting on Fritz".
"""

from bot.actions.engine import ActionReport, Actor
from bot.actions.registry import KINDS, register

__all__ = ["KINDS", "ActionReport", "Actor", "register"]
