"""notify: a message to a chat channel (a Slack-compatible incoming webhook) once a policy's actions
are done on Fritz.

    actions:
      notify: {webhook_env: BTSBOT_SLACK_WEBHOOK, events: [save, followup]}

The webhook URL is a secret read from the environment variable `webhook_env`; it is never logged or
journaled (the journal holds the variable's name). The message (`POST {"text": ...}`) links the source's
Fritz page, names the policy and the evidence, and says what happened on Fritz. A webhook cannot be read
back, so the message is journaled just before the POST: after a crash between the POST and its outcome
the next run records the outcome `unknown` and does not resend (at most once) unless
`resend_unknown: true` (at least once). A webhook that is down leaves the notify pending; notifications
run after every Fritz action, and a webhook found down is not tried again for a minute, so it never
delays Fritz. Dry-run journals the message and sends nothing.
"""

from __future__ import annotations

import logging
from typing import Iterable, Literal, Mapping

from pydantic import AliasChoices, Field

from bot.actions.base import DESCRIBED, ActionKind, Context, KindConfig, Result, evidence_phrase, peak_phrase
from bot.journal.records import ActionRecord
from bot.config_error import ConfigError
from bot.webhook import Webhook, WebhookError

log = logging.getLogger(__name__)


class NotifyAction(KindConfig):
    webhook_env: str = Field("BTSBOT_SLACK_WEBHOOK", min_length=1)
    # `events`, not `on`: YAML 1.1 reads a bare `on:` key as the boolean true (bot.config refuses such keys
    # with a message saying so); `on` stays accepted where no YAML is involved (Python dicts, JSON)
    events: list[Literal["save", "followup"]] = Field(["save", "followup"], min_length=1,
                                                      validation_alias=AliasChoices("events", "on"))
    resend_unknown: bool = False  # false: at most once; true: at least once (resend after a crash mid-POST)
    timeout_s: float = Field(5.0, gt=0)


def webhook_envs(policies: Iterable) -> list[str]:
    """The environment variables holding the webhook URLs the policies notify."""
    return sorted({p.actions.notify.webhook_env for p in policies
                   if p.actions is not None and getattr(p.actions, "notify", None)})


def service_name(env: str) -> str:
    return f"webhook:{env}"


def _escape(text: str) -> str:  # Slack's three control characters
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Notify(ActionKind):
    name = config_key = "notify"
    config_type = NotifyAction | None
    order = 4
    phase = 1  # after every Fritz action of the run: a slow or down webhook never delays Fritz

    def services(self, policy) -> list[str]:
        cfg = self.enabled(policy)
        return [service_name(cfg.webhook_env)] if cfg else []

    def open_services(self, cfg, policies, env) -> dict:
        """The chat webhooks the policies notify, their secret URLs read from the environment. Live mode
        needs each one; dry-run sends nothing, so a missing variable is only logged there."""
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

    def plan(self, ctx: Context, policy, decision, alert: Mapping):
        cfg = policy.actions.notify
        about = [k for k in DESCRIBED if k in cfg.events and getattr(policy.actions, k)]
        if not about:
            return []
        return [("notify", {"obj_id": decision.objectId, "about": about, "webhook_env": cfg.webhook_env})]

    def waiting_for(self, ctx: Context, action: ActionRecord) -> str | None:
        pending = [k for k in action.request["about"] if (m := ctx.main_action(action, k)) is not None and m.pending]
        return f"waiting for the {' and '.join(pending)} it reports" if pending else None

    def text(self, ctx: Context, action: ActionRecord) -> str:
        oid = action.objectId
        ev = ctx.journal.get_decision_by_id(action.decision_id).evidence
        policy = ctx.policies.get(action.policy)
        base = ctx.links.get("skyportal", "").rstrip("/")
        link = f"<{base}/source/{oid}|{oid}>" if base else oid
        done = "; ".join(self._fritz(ctx, ctx.main_action(action, k), k) for k in action.request["about"])
        return (f"BTSbot: {link} selected by {_escape(action.policy)} — {evidence_phrase(ev, policy)}"
                f"{peak_phrase(ev)}. On Fritz: {_escape(done)}")

    @staticmethod
    def _fritz(ctx: Context, main: ActionRecord | None, about: str) -> str:
        if main is None:
            return ctx.kinds[about].describe({})
        words = ctx.kinds[about].describe(main)
        status = (main.response or {}).get("status")
        if about == "followup" and main.outcome in ("posted", "updated") and isinstance(status, str):
            words += f", status {status}"
        return words

    def would_send(self, ctx: Context, action: ActionRecord) -> dict:
        return {"method": "POST", "url": f"${action.request['webhook_env']}",
                "body": {"text": self.text(ctx, action)}}

    def execute(self, ctx: Context, action: ActionRecord) -> Result:
        r, cfg = action.request, self._config(ctx, action)
        previous = action.attempt
        if previous and not (cfg and cfg.resend_unknown):
            log.warning("notify %s for %s: a POST may have been sent before the bot stopped; not resent "
                        "(at most once; resend_unknown: true resends)", action.policy, action.objectId)
            return "unknown", {"text": previous.get("text"), "message": "the bot stopped between the webhook POST "
                               "and its outcome; not resent (resend_unknown: false)"}
        text = previous["text"] if previous else self.text(ctx, action)
        hook = ctx.service(service_name(r["webhook_env"]))  # before the mark: no service, nothing was sent
        ctx.journal.mark_sending(action.id, {"text": text})
        try:
            status = hook.post(text)
        except WebhookError as exc:
            if exc.delivered is False:
                ctx.journal.clear_sending(action.id)
            elif not (cfg and cfg.resend_unknown):
                return "unknown", {"text": text, "message": f"{exc.message}; it may have been delivered, not resent"}
            raise
        return "posted", {"text": text, "http_status": status, **({"resent": True} if previous else {})}

    @staticmethod
    def _config(ctx: Context, action: ActionRecord) -> NotifyAction | None:
        policy = ctx.policies.get(action.policy)
        return getattr(policy.actions, "notify", None) if policy is not None and policy.actions is not None else None

    def describe(self, action: Mapping) -> str:
        return f"notification {action.get('outcome') or 'pending'}"
