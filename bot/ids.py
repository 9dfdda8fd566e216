"""Identifiers shared by the bot and its stand-ins.

`OBJECT_ID_RE` is the pattern SkyPortal accepts for an object (source) id in `POST /api/sources`
(docs/contracts.md, SP 1.1: letters, digits, ``_ - ; : + .``, no spaces); a follow-up request's
`obj_id` is the same Obj id. ZTF object ids (``ZTF23abjxyzq``) match it.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["OBJECT_ID_RE", "is_object_id"]

OBJECT_ID_RE = re.compile(r"^[a-zA-Z0-9_\-;:+.]+$")


def is_object_id(value: Any) -> bool:
    """Whether `value` is a string SkyPortal accepts as an object id."""
    return isinstance(value, str) and OBJECT_ID_RE.match(value) is not None


def normalize_object_id(text: str | None) -> str | None:
    """ZTF object ids as ZTF writes them (`ztf23ABHVLJI` -> `ZTF23abhvlji`); other ids unchanged."""
    if text and text[:3].upper() == "ZTF":
        return "ZTF" + text[3:].lower()
    return text
