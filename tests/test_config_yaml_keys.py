"""The notify snippets of the README and the defaults file, parsed exactly as written, are valid config; a key
that YAML 1.1 turned into a boolean (a bare `on:`) is refused with a message that says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
SNIPPET = re.compile(r"\{webhook_env: [^`\n]*?\}")  # the inline notify mapping as documented


def _documented_snippets() -> list[str]:
    readme = (REPO / "README.md").read_text()
    defaults = (REPO / "config" / "config.defaults.yaml").read_text()
    found = SNIPPET.findall(readme) + SNIPPET.findall(defaults.replace("\n# ", " "))
    assert len(found) >= 2, "the README and the defaults file document the notify action"
    return found


@pytest.mark.parametrize("snippet", _documented_snippets())
def test_documented_notify_snippet_is_a_valid_config(tmp_path, snippet):
    path = tmp_path / "btsbot.yaml"
    path.write_text("policies:\n  - name: p\n    actions:\n      save: {group_ids: [1001]}\n"
                    f"      notify: {snippet}\n")
    cfg = load_config(path, env={})
    assert cfg.policies[0].actions.notify.events == ["save", "followup"]


def test_a_key_yaml_read_as_a_boolean_is_refused_by_name(tmp_path):
    path = tmp_path / "btsbot.yaml"
    path.write_text("policies:\n  - name: p\n    actions:\n"
                    "      notify: {webhook_env: BTSBOT_SLACK_WEBHOOK, on: [save, followup]}\n")
    assert True in yaml.safe_load(path.read_text())["policies"][0]["actions"]["notify"]  # the YAML 1.1 trap
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    text = str(err.value)
    assert "policies.0.actions.notify" in text and "boolean true" in text and "events" in text


def test_events_and_the_old_name_both_select_the_notified_actions(tmp_path):
    for key in ("events", '"on"'):
        path = tmp_path / "btsbot.yaml"
        path.write_text("policies:\n  - name: p\n    actions:\n      save: {group_ids: [1001]}\n"
                        f"      notify: {{{key}: [save]}}\n")
        assert load_config(path, env={}).policies[0].actions.notify.events == ["save"]
