"""Keeping secrets out of logs, errors, journaled data and returned data: the one place that masks them.

- `redact(text, secrets, mask)`: the known secret values (a client's token, password) replaced in a text;
  the Kowalski client and the SkyPortal transport use it on everything they raise or log;
- `scrub(obj)`: a copy of JSON-like data with the values of secret-named keys and secrets inside free
  text (``token=...``, ``Authorization: token ...``) masked, whatever the secret; the journal applies it
  to everything it stores (`bot.journal.scrub` is this function).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

__all__ = ["redact", "scrub", "scrub_text"]


def redact(text: Any, secrets: Iterable[str | None], mask: str = "***") -> str:
    """str(text) with every occurrence of each non-empty secret replaced by `mask`."""
    out = str(text)
    for secret in secrets:
        if secret and secret in out:
            out = out.replace(secret, mask)
    return out


_SECRET_KEY = re.compile(r"token|authori[sz]ation|password|passwd|secret|api[-_]?key|cookie|credential", re.I)
# "name=value" / "name: value" inside free text (URLs with ?token=..., headers dumped into an error)
_SECRET_ASSIGN = re.compile(
    r"""((?:token|authori[sz]ation|password|passwd|secret|api[-_]?key)[\w-]*["']?\s*[=:]\s*["']?)"""
    r"""(?:(?:token|bearer|basic)\s+)?[^\s"'&,;}]+""",
    re.I,
)
# "token 1a2b..." / "Bearer eyJ..." (how SkyPortal tokens appear in an Authorization header)
_SECRET_SCHEME = re.compile(r"\b(token|bearer|basic)\s+(?=\S*\d)[A-Za-z0-9._~+/=-]{8,}", re.I)


def scrub_text(text: str) -> str:
    """`text` with secrets inside it (``token=...``, ``Authorization: token ...``) masked."""
    text = _SECRET_ASSIGN.sub(r"\1***", text)
    return _SECRET_SCHEME.sub(r"\1 ***", text)


def scrub(obj: Any) -> Any:
    """A copy of obj with the value of every key named like a secret (token, authorization,
    password, secret, api key, cookie, credential; any case, any depth) replaced by "***", and
    secrets inside free text (``token=...``, ``Authorization: token ...``) masked."""
    if isinstance(obj, Mapping):
        return {k: "***" if _SECRET_KEY.search(str(k)) else scrub(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [scrub(v) for v in obj]
    if isinstance(obj, str):
        return scrub_text(obj)
    return obj
