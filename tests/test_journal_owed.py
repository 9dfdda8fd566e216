"""The sources owed an annotation: rows of `annotations_owed` (schema 4), and a version-3 journal's JSON list in
`state` moved there by its numbered migration."""

import json

from bot.journal import SCHEMA_VERSION, Journal
from bot.journal.schema import OLD_ANNOTATIONS_OWED


def test_owed_annotations_are_rows(tmp_path):
    with Journal(tmp_path / "j.sqlite") as j:
        with j.transaction():
            j.owe_annotations(["ZTF2", "ZTF1"])
            j.owe_annotations(["ZTF1"])  # a second chunk touching it again: still one row
        assert j.owed_annotations() == ["ZTF1", "ZTF2"]
        j.annotations_planned(["ZTF1"])
        assert j.owed_annotations() == ["ZTF2"]


def test_a_version_3_journal_keeps_what_it_owed(tmp_path):
    path = tmp_path / "v3.sqlite"
    with Journal(path) as j:  # as version 3 left it: the list in state, no table
        j._conn.execute("DROP TABLE annotations_owed")
        j.set_state(OLD_ANNOTATIONS_OWED, json.dumps(["ZTF23abhvlji", "ZTF23abdsfms"]))
        j._conn.execute("UPDATE schema_version SET version = 3")
    with Journal(path) as j:
        assert j.schema_version == SCHEMA_VERSION == 4
        assert j.owed_annotations() == ["ZTF23abdsfms", "ZTF23abhvlji"]
        assert j.get_state(OLD_ANNOTATIONS_OWED) is None
