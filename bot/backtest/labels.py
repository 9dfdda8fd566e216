"""Labels for a backtest: which sources BTS wants, and when a human scanner saved / triggered them.

Two CSV layouts are read as they are:

* btsbot's own: `objectId,label[,saved_at,triggered_at]` -- label 1 (BTS wants it) or 0; the times as
  JD or ISO UTC (empty when unknown);
* the BTS Sample Explorer export: objects in `ZTFID`, their classification in `type`; label 1 when the
  type matches `positive_types` (default: a supernova class, `SN...`), 0 otherwise.

A bad row is an error naming the file, the line and the column (a label file is small and must be right).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.timeutil import parse_time

DEFAULT_POSITIVE_TYPES = r"^SN"
_ID_COLUMNS = ("objectid", "ztfid", "obj_id")
_TRUE, _FALSE = {"1", "true", "yes", "y", "t"}, {"0", "false", "no", "n", "f"}


class LabelError(ValueError):
    """A label file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class Label:
    label: int
    saved_at: float | None = None  # JD
    triggered_at: float | None = None  # JD
    type: str | None = None  # the classification, for the Sample Explorer layout


def _time(text: str, where: str) -> float | None:
    if text.strip() in ("", "-", "nan", "NaN", "None"):
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise LabelError(f"{where}: {exc}") from None


def read_labels(path: str | Path, positive_types: str = DEFAULT_POSITIVE_TYPES) -> dict[str, Label]:
    """objectId -> Label from a label CSV (either layout)."""
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise LabelError(f"no label file {path}") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise LabelError(f"cannot read label file {path}: {exc}") from None
    cols = {c.strip().lower(): c for c in df.columns}
    id_col = next((cols[c] for c in _ID_COLUMNS if c in cols), None)
    if id_col is None:
        raise LabelError(f"{path}: no objectId (or ZTFID) column; columns are {', '.join(df.columns)}")
    if "label" not in cols and "type" not in cols:
        raise LabelError(f"{path}: no label (or type) column; columns are {', '.join(df.columns)}")
    try:
        positive = re.compile(positive_types)
    except re.error as exc:
        raise LabelError(f"--positive-types {positive_types!r} is not a regular expression: {exc}") from None
    labels: dict[str, Label] = {}
    for i, row in enumerate(df.to_dict("records"), start=2):  # line 1 is the header
        where = f"{path}, line {i}"
        oid = row[id_col].strip()
        if not oid:
            raise LabelError(f"{where}: empty {id_col}")
        kind = row[cols["type"]].strip() if "type" in cols else None
        if "label" in cols:
            text = row[cols["label"]].strip().lower()
            if text not in _TRUE | _FALSE:
                raise LabelError(f"{where}: label must be 1 or 0, not {row[cols['label']]!r}")
            value = int(text in _TRUE)
        else:
            value = int(bool(positive.search(kind or "")))
        label = Label(value, _time(row.get(cols.get("saved_at", ""), ""), f"{where}, saved_at"),
                      _time(row.get(cols.get("triggered_at", ""), ""), f"{where}, triggered_at"), kind or None)
        old = labels.get(oid)
        if old is not None and old.label != label.label:
            raise LabelError(f"{where}: {oid} is labelled both {old.label} and {label.label}")
        labels[oid] = label
    if not labels:
        raise LabelError(f"{path}: no labels")
    return labels
