"""The bot's SkyPortal (Fritz) side: the REST client and the pure follow-up rules."""

from bot.skyportal.client import (
    FollowupResult,
    RateLimiter,
    SaveResult,
    SkyPortalClient,
)
from bot.skyportal.errors import SkyPortalError
from bot.skyportal.followup import Plan, followup_body, plan_followup, sedm_payload

__all__ = [
    "FollowupResult",
    "Plan",
    "RateLimiter",
    "SaveResult",
    "SkyPortalClient",
    "SkyPortalError",
    "followup_body",
    "plan_followup",
    "sedm_payload",
]
