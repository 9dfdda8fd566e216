"""Words for people: counts with the right plural ("1 alert", "2 alerts")."""

from __future__ import annotations


def n(count: int, noun: str, plural: str | None = None) -> str:
    """`count noun`, the noun in the plural unless count is 1 ("1 alert", "0 alerts", "2 sources")."""
    return f"{count} {noun if count == 1 else (plural or noun + 's')}"
