"""Building the bot's adapters from the configuration, at the edge (never at import time).

`open_runtime(cfg)` connects to Kowalski (ping + catalog check), checks the SkyPortal token, groups and
allocations (live mode; dry-run checks them too when a token is given), loads the model and opens the
journal. Every check fails here, at start, before any poll.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from bot.actions import Actor
from bot.config import Config, ConfigError, secret
from bot.journal import Journal
from bot.kowalski.client import KowalskiClient
from bot.kowalski.poller import Poller
from bot.scoring.scorer import build_scorer
from bot.skyportal.client import SkyPortalClient
from bot.facilities.sedm import sedm_payload

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    journal: Journal
    poller: Poller
    scorer: object  # bot.scoring.scorer.Scorer
    actor: Actor
    kowalski: KowalskiClient
    skyportal: SkyPortalClient | None
    closers: list = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # pragma: no cover - best effort on shutdown
                log.exception("while closing")
        self.closers.clear()


def check_policies(cfg: Config) -> None:
    """Static checks of the policies (payloads valid for SEDM) -- before anything is contacted."""
    now = datetime.now(timezone.utc)
    for i, p in enumerate(cfg.policies):
        if p.actions.followup:
            try:
                sedm_payload(p.actions.followup.payload, p.actions.followup.validity_days, now)
            except ValueError as exc:
                raise ConfigError(f"policies.{i}.actions.followup.payload ({p.name}): {exc}") from None


def kowalski_client(cfg: Config) -> KowalskiClient:
    k = cfg.kowalski
    return KowalskiClient(protocol=k.protocol, host=k.host, port=k.port, token=secret(k.token),
                          username=k.username, password=secret(k.password), timeout_s=k.timeout_s,
                          max_time_ms=k.max_time_ms, retries=k.retries, backoff_s=k.backoff_s)


def skyportal_client(cfg: Config) -> SkyPortalClient | None:
    s = cfg.skyportal
    token = secret(s.token)
    if token is None:
        if cfg.mode == "live":
            raise ConfigError("skyportal.token: live mode needs a SkyPortal/Fritz token (FRITZ_TOKEN)")
        return None
    client = SkyPortalClient(s.url, token, timeout_s=s.timeout_s, rate_limit_per_s=s.rate_limit_per_s,
                             max_retries=s.max_retries, backoff_s=s.backoff_s, followup_timeout_s=s.followup_timeout_s)
    groups = sorted({g for p in cfg.policies if p.actions.save for g in p.actions.save.group_ids})
    allocations = sorted({p.actions.followup.allocation_id for p in cfg.policies if p.actions.followup})
    try:
        client.check(groups, allocations)
    except ValueError as exc:
        raise ConfigError(f"skyportal ({s.url}): {exc}") from None
    return client


def open_runtime(cfg: Config, *, scorer=None, now_jd: Callable[[], float] | None = None,
                 now: Callable[[], datetime] | None = None) -> Runtime:
    """Connect and check everything the cycle needs; `scorer` may be injected (tests share one model)."""
    check_policies(cfg)
    closers = []
    try:
        kowalski = kowalski_client(cfg).connect()
        closers.append(kowalski.close)
        skyportal = skyportal_client(cfg)
        if skyportal is not None:
            closers.append(skyportal.close)
        journal = Journal(cfg.journal_path)
        closers.append(journal.close)
        scorer = scorer or build_scorer(cfg)
    except Exception:
        for close in reversed(closers):
            close()
        raise
    k = cfg.kowalski
    poller = Poller(kowalski, journal, prefilter=k.prefilter, page_size=k.page_size, overlap_days=k.overlap_days,
                    cutout_batch=k.cutout_batch, history_batch=k.history_batch, mag_max=cfg.faintest_alert_mag,
                    programids=k.programids, now_jd=now_jd)
    actor = Actor(journal, skyportal, cfg.policies, mode=cfg.mode, model_version=scorer.model_version,
                  **({"now": now} if now else {}))
    return Runtime(cfg, journal, poller, scorer, actor, kowalski, skyportal, closers)
