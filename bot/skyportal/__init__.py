"""The bot's SkyPortal (Fritz) side: the REST client and its transport (the rules are in bot.core)."""

from bot.skyportal.client import (
    FollowupResult,
    RateLimiter,
    SaveResult,
    SkyPortalClient,
)
from bot.skyportal.errors import SkyPortalError

__all__ = [
    "FollowupResult",
    "RateLimiter",
    "SaveResult",
    "SkyPortalClient",
    "SkyPortalError",
]
