"""The bot's input side: a Kowalski client (penquins 2.4.2 wrapper) and the alert poller."""

from bot.kowalski.client import KowalskiClient, KowalskiError
from bot.kowalski.poller import PollBatch, Poller, PollState

__all__ = ["KowalskiClient", "KowalskiError", "PollBatch", "PollState", "Poller"]
