"""Building the bot's adapters from the configuration, at the edge (never at import time).

`open_runtime(cfg)` builds the policies once (bound to the loaded model's version), connects to Kowalski
(ping + catalog check), checks the SkyPortal token, groups and allocations (live mode; dry-run checks
them too when a token is given), loads the model and opens the journal. Every check fails here, at
start, before any poll. The same policy objects (`Runtime.policies`) serve the cycle and the Actor.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Sequence

from bot.actions import Actor
from bot.actions.followup import allocations
from bot.actions.notify import Webhook, service_name, webhook_envs
from bot.actions.save import save_groups
from bot.config import Config, ConfigError, secret
from bot.core.policies import Policy, build_policies
from bot.journal import Journal
from bot.kowalski.client import KowalskiClient
from bot.kowalski.poller import Poller
from bot.scoring.scorer import build_scorer
from bot.skyportal.client import SkyPortalClient

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
    policies: list[Policy] = field(default_factory=list)  # built once; the cycle and the Actor share them
    closers: list = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # pragma: no cover - best effort on shutdown
                log.exception("while closing")
        self.closers.clear()


def configured_policies(cfg: Config, model_versions: Sequence[str] | None = None) -> list[Policy]:
    """The config's policies with their actions, bound to a model version, built once.

    `model_versions`: the versions of the loaded models (default: the production model's, from
    production_models/manifest.json, without loading it -- what `backtest` uses). A policy naming a
    version no loaded model provides fails here with a ConfigError naming `policies.N.model_version`.
    """
    if model_versions is None:
        from bot.artifacts import get_artifact

        model_versions = [get_artifact("models", "btsbot").version]
    try:
        return build_policies(cfg.policies, list(model_versions))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def kowalski_client(cfg: Config) -> KowalskiClient:
    k = cfg.kowalski
    return KowalskiClient(protocol=k.protocol, host=k.host, port=k.port, token=secret(k.token),
                          username=k.username, password=secret(k.password), timeout_s=k.timeout_s,
                          max_time_ms=k.max_time_ms, retries=k.retries, backoff_s=k.backoff_s)


def skyportal_client(cfg: Config, policies: Sequence[Policy]) -> SkyPortalClient | None:
    s = cfg.skyportal
    token = secret(s.token)
    if token is None:
        if cfg.mode == "live":
            raise ConfigError("skyportal.token: live mode needs a SkyPortal/Fritz token (FRITZ_TOKEN)")
        return None
    client = SkyPortalClient(s.url, token, timeout_s=s.timeout_s, rate_limit_per_s=s.rate_limit_per_s,
                             max_retries=s.max_retries, backoff_s=s.backoff_s, followup_timeout_s=s.followup_timeout_s)
    try:
        client.check(save_groups(policies), allocations(policies))
    except ValueError as exc:
        raise ConfigError(f"skyportal ({s.url}): {exc}") from None
    return client


def webhooks(cfg: Config, policies: Sequence[Policy], env=None) -> dict[str, Webhook]:
    """The chat webhooks the policies notify, their secret URLs read from the environment.

    Live mode needs each one; dry-run sends nothing, so a missing variable is only logged there."""
    env = os.environ if env is None else env
    out = {}
    for name in webhook_envs(policies):
        url = env.get(name)
        where = next(f"policies.{i}.actions.notify.webhook_env" for i, p in enumerate(policies)
                     if getattr(p.actions, "notify", None) and p.actions.notify.webhook_env == name)
        if not url:
            if cfg.mode == "live":
                raise ConfigError(f"{where}: the environment variable {name} (the webhook URL) is not set")
            log.info("%s: %s is not set; dry-run journals the messages and sends nothing", where, name)
            continue
        timeout = max(p.actions.notify.timeout_s for p in policies
                      if getattr(p.actions, "notify", None) and p.actions.notify.webhook_env == name)
        try:
            out[service_name(name)] = Webhook(url, timeout)
        except ValueError as exc:
            raise ConfigError(f"{where}: ${name}: {exc}") from None
    return out


def open_runtime(cfg: Config, *, scorer=None, now_jd: Callable[[], float] | None = None,
                 now: Callable[[], datetime] | None = None) -> Runtime:
    """Connect and check everything the cycle needs; `scorer` may be injected (tests share one model)."""
    policies = configured_policies(cfg, [scorer.model_version] if scorer is not None else None)
    closers = []
    try:
        kowalski = kowalski_client(cfg).connect()
        closers.append(kowalski.close)
        skyportal = skyportal_client(cfg, policies)
        if skyportal is not None:
            closers.append(skyportal.close)
        hooks = webhooks(cfg, policies)
        closers.extend(h.close for h in hooks.values())
        journal = Journal(cfg.journal_path, mode=cfg.mode)
        closers.append(journal.close)
        scorer = scorer or build_scorer(cfg)
        if any(p.model_version != scorer.model_version for p in policies):  # not the manifest's model
            policies = configured_policies(cfg, [scorer.model_version])
    except Exception:
        for close in reversed(closers):
            close()
        raise
    k = cfg.kowalski
    poller = Poller(kowalski, journal, prefilter=k.prefilter, page_size=k.page_size, overlap_days=k.overlap_days,
                    cutout_batch=k.cutout_batch, history_batch=k.history_batch, mag_max=cfg.faintest_alert_mag,
                    programids=k.programids, chunk_alerts=k.chunk_alerts, now_jd=now_jd)
    actor = Actor(journal, policies, {"skyportal": skyportal, **hooks}, mode=cfg.mode, links={"skyportal": cfg.skyportal.url},
                  **({"now": now} if now else {}))
    log.info(start_banner(cfg.mode, journal.mode_summary()))
    return Runtime(cfg, journal, poller, scorer, actor, kowalski, skyportal, policies, closers)


def start_banner(mode: str, summary: dict) -> str:
    """Which mode runs and, on a journal with dry-run history, what live does with it."""
    line = ("mode live: acting on Fritz" if mode == "live" else
            "mode dry-run: journaling every action it would take, sending no write to Fritz")
    dry = summary["decisions"].get("dry-run", 0)
    if dry and mode == "live":
        line += (f"; the journal holds {dry} dry-run decision(s) on {summary['dry_run_only_sources']} source(s): "
                 "none counts as done -- live acts on each source at its next alert if its policy still holds")
    elif dry:
        line += f"; the journal holds {dry} dry-run decision(s) from earlier runs"
    return line
