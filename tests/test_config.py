"""Configuration: the issue's example works as written, errors name the key, secrets stay secret."""

import textwrap

import pytest

from bot.config import ConfigError, load_config

EXAMPLE = textwrap.dedent("""
    mode: dry-run                 # or live; dry-run journals every action it would take and sends no write
    kowalski: {protocol: http, host: 127.0.0.1, port: 4000, token: null}    # token may come from KOWALSKI_TOKEN
    skyportal: {url: "http://127.0.0.1:5000", token: null}                  # token may come from FRITZ_TOKEN
    state: {path: btsbot.sqlite}
    policies:
      - name: bts_p1
        min_score: 0.5
        min_alerts: 2
        alert_mag_max: 19.0
        actions:
          save: {group_ids: [1001]}
          comment: true
      - name: bts_p2
        min_score: 0.5
        min_alerts: 2
        alert_mag_max: 19.0
        peakmag_max: 18.5
        actions:
          followup:
            allocation_id: 2001
            payload: {observation_type: IFU, priority: 3}
            validity_days: 7
            ignore_source_group_ids: []
""")


def test_the_documented_example_loads_with_secrets_from_the_environment(tmp_path):
    path = tmp_path / "btsbot.yaml"
    path.write_text(EXAMPLE)
    cfg = load_config(path, env={"KOWALSKI_TOKEN": "k-secret", "FRITZ_TOKEN": "f-secret"})
    assert cfg.mode == "dry-run" and cfg.kowalski.port == 4000 and cfg.kowalski.protocol == "http"
    assert [p.name for p in cfg.policies] == ["bts_p1", "bts_p2"]
    assert cfg.policies[1].peakmag_max == 18.5 and cfg.policies[1].actions.followup.allocation_id == 2001
    assert cfg.journal_path == tmp_path / "btsbot.sqlite"  # relative to the config file
    assert cfg.kowalski.token.get_secret_value() == "k-secret"
    assert cfg.skyportal.token.get_secret_value() == "f-secret"
    assert "k-secret" not in repr(cfg) and "f-secret" not in str(cfg.model_dump())
    assert cfg.faintest_alert_mag == 19.0


def test_defaults_alone_are_the_bts_policies():
    cfg = load_config(env={})
    assert cfg.mode == "dry-run"
    assert [(p.name, p.min_score, p.min_alerts, p.alert_mag_max, p.peakmag_max) for p in cfg.policies] == [
        ("bts_p1", 0.5, 2, 19.0, None), ("bts_p2", 0.5, 2, 19.0, 18.5)]


@pytest.mark.parametrize("text, message", [
    ("kowalski: {prot: http}", "kowalski.prot: unknown key"),
    ("mode: yes-please", "mode:"),
    ("kowalski: {port: many}", "kowalski.port:"),
    ("kowalski: {timeout_s: 5, max_time_ms: 9000}", "max_time_ms (9000) must be below timeout_s"),
    ("policies: [{name: a}, {name: a}]", "policy names must be unique: a"),
    ("policies: [{name: a, actions: {save: {group_ids: []}}}]", "policies.0.actions.save.group_ids"),
    ("source: boom\nmodels: {drb_source: alert}", "BOOM does not store drbversion"),
    ("- just a list", "must be a mapping"),
    ("kowalski: {host: [unclosed", "not valid YAML"),
])
def test_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as info:
        load_config(path, env={})
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml", env={})
