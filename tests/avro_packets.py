"""Writing ZTF avro packets in tests, with the official schema from ../shared/schemas/ztf."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro


def ztf_schema(schema_dir: Path, nullable_object_id: bool = False) -> dict:
    """The alert schema with its named sub-schemas inlined (each defined once, then referenced).

    nullable_object_id: a variant that can carry a packet without objectId (a broken producer).
    """
    subs = {f"ztf.alert.{n}": json.loads((schema_dir / f"{n}.avsc").read_text())
            for n in ("candidate", "prv_candidate", "fp_hist", "cutout")}
    defined: set[str] = set()

    def inline(t):
        if isinstance(t, str) and t in subs:
            if t in defined:
                return t
            defined.add(t)
            return subs[t]
        if isinstance(t, list):
            return [inline(x) for x in t]
        if isinstance(t, dict) and t.get("type") == "array":
            return {**t, "items": inline(t["items"])}
        return t

    alert = json.loads((schema_dir / "alert.avsc").read_text())
    alert["fields"] = [{**f, "type": inline(f["type"])} for f in alert["fields"]]
    if nullable_object_id:
        alert["fields"] = [dict(f, type=["null", "string"]) if f["name"] == "objectId" else f for f in alert["fields"]]
    return fastavro.parse_schema(alert)


def avro_bytes(schema: dict, records: list[dict]) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, schema, records)
    return buf.getvalue()


def write_packet(path: Path, schema: dict, record: dict) -> Path:
    path.write_bytes(avro_bytes(schema, [record]))
    return path
