"""Configuration: `config/config.defaults.yaml` merged with the user's YAML, validated at start.

Every mapping forbids unknown keys, so a typo fails at start with a message naming the key. Secrets
come from the environment (KOWALSKI_TOKEN, KOWALSKI_USERNAME/PASSWORD, FRITZ_TOKEN) when the file
leaves them null, and are never printed (`SecretStr`).
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.actions.registry import policy_actions_model
from bot.config_error import ConfigError

_REPO_DEFAULTS = Path(__file__).resolve().parent.parent / "config" / "config.defaults.yaml"
_PACKAGED_DEFAULTS = Path(__file__).resolve().parent / "_data" / "config.defaults.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class _PollKeys(_Strict):
    """What polling an alert broker takes, whichever broker (`kowalski` or `boom`)."""

    timeout_s: float = Field(10.0, gt=0)
    max_time_ms: int = Field(8000, gt=0)
    retries: int = Field(3, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    page_size: int = Field(10000, ge=1)
    overlap_days: float = Field(1.0, ge=0)
    cutout_batch: int = Field(200, ge=1)
    history_batch: int = Field(200, ge=1)
    chunk_alerts: int = Field(200, ge=1)
    programids: list[int] = [1, 2]
    prefilter: dict[str, Any] = {}

    @model_validator(mode="after")
    def _server_limit_below_client_timeout(self):
        if self.max_time_ms >= self.timeout_s * 1000:
            raise ValueError(
                f"max_time_ms ({self.max_time_ms}) must be below timeout_s ({self.timeout_s} s) so the server aborts first"
            )
        return self


class KowalskiConfig(_PollKeys):
    protocol: Literal["http", "https"] = "https"
    host: str = "kowalski.caltech.edu"
    port: int = Field(443, ge=1, le=65535)
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None


class BoomConfig(_PollKeys):
    url: str | None = None  # BOOM's API, e.g. https://api.boom.caltech.edu (no default: deployments differ)
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(30.0, gt=0)
    max_time_ms: int = Field(25000, gt=0)
    max_requests_per_s: float = Field(40.0, gt=0)  # BOOM's proxy allows 50/s per client
    max_concurrent: int = Field(4, ge=1)  # queries in flight at once


class SkyPortalConfig(_Strict):
    url: str = "https://fritz.science"
    token: SecretStr | None = None
    timeout_s: float = Field(10.0, gt=0)
    followup_timeout_s: float = Field(30.0, gt=0)
    rate_limit_per_s: float = Field(5.0, gt=0)
    max_retries: int = Field(4, ge=0)
    backoff_s: float = Field(1.0, ge=0)


class StateConfig(_Strict):
    path: str = "btsbot.sqlite"


class ModelsConfig(_Strict):
    cache_dir: str | None = None
    # auto: int8 where the CPU has VNNI, fp32 otherwise (bot/scoring/cpu.py); decisions identical either way
    backend: Literal["auto", "onnx", "onnx-int8", "tensorflow"] = "auto"
    batch_size: int = Field(64, ge=1)
    threads: int = Field(0, ge=0)
    drb_source: Literal["braai", "alert"] = "braai"
    int8_guard: float = Field(0.1, ge=0, le=1)  # onnx-int8: scores from (lowest min_score - this) up in fp32


class ScheduleConfig(_Strict):
    interval_minutes: float = Field(5.0, gt=0)
    # [start, end): cycles run only while start <= UTC hour < end (end < start wraps past midnight)
    hours_utc: tuple[int, int] | None = None

    @field_validator("hours_utc")
    @classmethod
    def _hours(cls, hours):
        if hours is not None and (not all(0 <= h <= 24 for h in hours) or hours[0] == hours[1]):
            raise ValueError("hours_utc must be [start, end] with 0 <= hour <= 24 and start != end, e.g. [2, 14]")
        return hours


class MetricsConfig(_Strict):
    port: int | None = Field(None, ge=0, le=65535)  # null: no metrics server
    host: str = "127.0.0.1"


class HealthConfig(_Strict):
    max_failed_cycles: int = Field(3, ge=1)
    # with schedule.hours_utc: no alert polled for this many hours inside the hours is a `quiet` event
    quiet_hours: float | None = Field(None, gt=0)


class NotifyConfig(_Strict):
    """Operational events to a chat webhook (bot/ops.py), opt-in: each once per episode, and when it clears."""

    webhook_env: str | None = None  # the environment variable holding the webhook URL (a secret)
    events: list[Literal["failed_cycles", "guard", "budget", "pending", "quiet"]] = []
    pending_hours: float = Field(1.0, gt=0)  # `pending`: an action pending for longer than this


# Each action kind holds its config model (bot/actions/<kind>.py); `policies[].actions` has one key per
# registered kind (bot/actions/registry.py).
PolicyActions = policy_actions_model()


class PolicyConfig(_Strict):
    name: str = Field(min_length=1)
    min_score: float = Field(0.5, ge=0, le=1)
    min_alerts: int = Field(2, ge=1)
    alert_mag_max: float = 19.0
    peakmag_max: float | None = None
    age_min_days: float | None = None
    age_max_days: float | None = None
    model_version: str | None = None  # default: the loaded model's version (production_models/manifest.json)
    actions: PolicyActions = PolicyActions()


class LimitsConfig(_Strict):
    """The runaway guard (bot/actions/guard.py): live cycles that would write to Fritz for more sources write nothing."""

    max_sources_per_cycle: int | None = Field(50, ge=1)  # null: no guard


class DriftConfig(_Strict):
    """The drift monitor: the broker's own BTSbot score against ours, on every alert (evidence, never a decision)."""

    tolerance: float = Field(0.05, gt=0, le=1)  # |ours - broker's| above this: a warning and a count


class Config(_Strict):
    mode: Literal["dry-run", "live"] = "dry-run"
    source: Literal["kowalski", "boom"] = "kowalski"  # the alert broker polled; its section below
    kowalski: KowalskiConfig = KowalskiConfig()
    boom: BoomConfig = BoomConfig()
    skyportal: SkyPortalConfig = SkyPortalConfig()
    state: StateConfig = StateConfig()
    models: ModelsConfig = ModelsConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    limits: LimitsConfig = LimitsConfig()
    notify: NotifyConfig = NotifyConfig()
    metrics: MetricsConfig = MetricsConfig()
    health: HealthConfig = HealthConfig()
    drift: DriftConfig = DriftConfig()
    policies: list[PolicyConfig] = []
    # where relative paths (state.path) are resolved; set by load_config, not a YAML key
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @field_validator("policies")
    @classmethod
    def _unique_names(cls, policies):
        names = [p.name for p in policies]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"policy names must be unique: {', '.join(dupes)}")
        return policies

    @model_validator(mode="after")
    def _drb_source_the_broker_can_serve(self):
        if self.source == "boom" and self.models.drb_source == "alert":
            raise ValueError(
                "models.drb_source: alert uses an alert's own drb only when its drbversion is d6_m9, and BOOM does "
                "not store drbversion (docs/contracts.md, BOOM), so no alert would be scorable; "
                "use drb_source: braai (the re-run braai, what training used) with source: boom")
        return self

    @model_validator(mode="after")
    def _one_priority_order_per_allocation(self):
        """Policies sharing a follow-up allocation share its priority order (Kowalski refuses conflicting
        orders on one allocation): which request is the more urgent must not depend on the policy."""
        orders: dict[int, tuple[int, str]] = {}
        for i, p in enumerate(self.policies):
            f = getattr(p.actions, "followup", None) if p.actions is not None else None
            if f is None:
                continue
            first = orders.setdefault(f.allocation_id, (i, f.priority_order))
            if first[1] != f.priority_order:
                raise ValueError(
                    f"policies.{i}.actions.followup.priority_order: {f.priority_order!r} on allocation "
                    f"{f.allocation_id}, where policies.{first[0]} uses {first[1]!r}: one allocation has one order")
        return self

    @property
    def journal_path(self) -> Path:
        p = Path(self.state.path).expanduser()
        return p if p.is_absolute() or self.state.path == ":memory:" else self.base_dir / p

    @property
    def faintest_alert_mag(self) -> float:
        """The faintest per-alert magnitude any policy counts: the Kowalski pre-filter's magpsf cut."""
        return max((p.alert_mag_max for p in self.policies), default=19.0)


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "prefilter":
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    _check_keys(data, path)
    return data


# what YAML 1.1 (PyYAML) reads as a boolean when written bare as a key
_YAML_BOOLEANS = "y, yes, on, true (true) or n, no, off, false (false)"


def _check_keys(data, path: Path, where: str = "") -> None:
    """Refuse a mapping key that YAML did not read as a string, naming where it is: a bare `on:` or `no:`
    is a boolean in YAML 1.1, and a number key is never a config key."""
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{where}.{key}" if where else str(key)
            if isinstance(key, bool):
                raise ConfigError(
                    f"config {path}: {where or '(top level)'}: a key YAML read as the boolean {str(key).lower()} "
                    f"(bare {_YAML_BOOLEANS} are booleans in YAML 1.1); quote it, or for notify write `events:`")
            if not isinstance(key, str):
                raise ConfigError(f"config {path}: {where or '(top level)'}: the key {key!r} is not a name")
            _check_keys(value, path, here)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            _check_keys(item, path, f"{where}.{i}" if where else str(i))


def defaults_path() -> Path:
    return _REPO_DEFAULTS if _REPO_DEFAULTS.is_file() else _PACKAGED_DEFAULTS


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the last key of `loc` (list indices skipped)."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _unknown_key(loc: tuple) -> str:
    model = _model_at(loc)
    if model is None:
        return "unknown key"
    valid = [k for k in model.model_fields if k != "base_dir"]
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
    return f"unknown key (did you mean {close[0]!r}?)" if close else f"unknown key (valid: {', '.join(valid)})"


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = _unknown_key(err["loc"]) if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {key}: {msg}")
    return f"invalid config {source}:\n" + "\n".join(lines)


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None, env=None) -> Config:
    """Defaults + the user's file (+ overrides), validated; secrets filled from the environment."""
    env = os.environ if env is None else env
    data = _read_yaml(defaults_path())
    source = str(defaults_path())
    base_dir = Path.cwd()
    if path is not None:
        path = Path(path)
        data = _deep_merge(data, _read_yaml(path))
        source, base_dir = str(path), path.resolve().parent
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        cfg = Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    k = cfg.kowalski
    if k.token is None and env.get("KOWALSKI_TOKEN"):
        k.token = SecretStr(env["KOWALSKI_TOKEN"])
    if k.username is None and env.get("KOWALSKI_USERNAME"):
        k.username = env["KOWALSKI_USERNAME"]
    if k.password is None and env.get("KOWALSKI_PASSWORD"):
        k.password = SecretStr(env["KOWALSKI_PASSWORD"])
    b = cfg.boom
    if b.username is None and env.get("BOOM_USERNAME"):
        b.username = env["BOOM_USERNAME"]
    if b.password is None and env.get("BOOM_PASSWORD"):
        b.password = SecretStr(env["BOOM_PASSWORD"])
    if cfg.skyportal.token is None and env.get("FRITZ_TOKEN"):
        cfg.skyportal.token = SecretStr(env["FRITZ_TOKEN"])
    return cfg


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
