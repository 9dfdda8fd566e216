"""The journal (a package): `core.Journal` (connection, transactions, state) composed of its concerns --
`alerts`, `decisions`, `actions` (the at-most-once protocol), `history` (reading back) -- over `schema`
(the tables and the numbered migrations) and `codec` (how values are stored). See `core` for the whole."""

from bot.journal.core import Journal
from bot.journal.schema import MIGRATIONS, MODES, SCHEMA_VERSION
from bot.redaction import scrub  # journal.scrub stays importable

__all__ = ["MIGRATIONS", "MODES", "SCHEMA_VERSION", "Journal", "scrub"]
