"""The seed README's example data (SN 2023tyk and the CV AT 2023sxt) as ZTF alert packets.

`btsbot models pull` installs the example as two artifacts (`EXAMPLE_ARTIFACTS`): each alert's candidate
fields (CSV) and its normalised triplet (npy). From them this module rebuilds what ZTF would have sent: a
packet per alert with the three cutouts as gzipped FITS images and the object's earlier alerts as
`prv_candidates`. The int8 calibration (`bot.scoring.quantize`) scores them, the local Kowalski serves them to
replay the real night of SN 2023tyk (`btsbot demo`), and the tests score them end to end
(`bot.sim.example_night` re-exports them for the tests).

The CSV stores candid rounded to 6 significant digits, too coarse for ZTF's relation between a candid and
its exposure time (candid / 1e15 within 1e-5 day of jd - 2457754.5, which BOOM's scans rely on): rebuilt
candids are the smallest candid of the alert's exposure (`candid_floor(jd)`) plus the row index, unique and
consistent with their jd as real ones are.
"""

from __future__ import annotations

import csv
import math
import gzip
import io
from pathlib import Path

import numpy as np

from bot.artifacts import get_artifact, installed_path
from bot.core.triplets import CUTOUT_KEYS

EXAMPLE_ARTIFACTS = ("usage_candidates", "usage_triplets")  # example_data artifacts: the CSV, the triplets

# candidate fields that are integers in the ZTF schema (the CSV stores every number as text)
_INT_FIELDS = {
    "fid", "pid", "programid", "field", "nneg", "nbad", "ndethist", "ncovhist", "nmtchps",
    "nmatches", "nframesref", "rfid", "tblid", "nid", "rcid", "candid",
}  # fmt: skip
# CSV columns that are not candidate fields (labels, derived features, expected outputs)
_NOT_CANDIDATE = {
    "objectId", "label", "acai_h", "acai_v", "acai_o", "acai_n", "acai_b", "new_drb", "peakmag", "maxmag",
    "peakmag_so_far", "maxmag_so_far", "age", "days_since_peak", "days_to_peak", "nnotdet", "expected_scores",
}  # fmt: skip
# prv_candidate fields kept for earlier detections (the ZTF prv_candidate schema's, where the CSV has them)
_PRV_FIELDS = (
    "jd", "fid", "pid", "diffmaglim", "programid", "candid", "isdiffpos", "field", "ra", "dec", "magpsf",
    "sigmapsf", "chipsf", "magap", "sigmagap", "distnr", "magnr", "chinr", "sharpnr", "sky", "magdiff",
    "fwhm", "classtar", "mindtoedge", "seeratio", "nneg", "nbad", "magapbig", "sigmagapbig", "scorr",
    "magzpsci", "magzpsciunc", "magzpscirms", "clrcoeff", "clrcounc", "rbversion",
)  # fmt: skip


def _value(name: str, text: str):
    if text == "" or text.lower() == "nan":
        return None
    if name in _INT_FIELDS:
        return int(float(text))
    try:
        return float(text)
    except ValueError:
        return text


def fits_stamp(image: np.ndarray) -> bytes:
    """A 2-D image as a gzipped FITS file, the way ZTF ships cutouts (big-endian float32)."""
    from astropy.io import fits

    buf = io.BytesIO()
    fits.PrimaryHDU(np.asarray(image, dtype=">f4")).writeto(buf)
    return gzip.compress(buf.getvalue(), mtime=0)


def read_example(csv_path: str | Path, npy_path: str | Path) -> tuple[list[dict], np.ndarray]:
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    triplets = np.load(npy_path)
    if len(rows) != len(triplets):
        raise ValueError(f"{csv_path} has {len(rows)} rows but {npy_path} has {len(triplets)} triplets")
    return rows, triplets


def installed_example(cache: Path) -> tuple[list[dict], np.ndarray]:
    """(rows, triplets) of the example as `btsbot models pull` installed it in the cache; raises
    ArtifactError naming what to run."""
    return read_example(*(installed_path(get_artifact("example_data", name), cache) for name in EXAMPLE_ARTIFACTS))


def example_packets(rows: list[dict], triplets: np.ndarray) -> list[dict]:
    """One ZTF alert packet (dict, avro-schema compatible) per example row, in the CSV's order."""
    candidates = []
    for i, row in enumerate(rows):
        cand = {k: _value(k, v) for k, v in row.items() if k not in _NOT_CANDIDATE}
        cand["candid"] = math.floor((cand["jd"] - 2457754.5) * 1e6) * 10**9 + i  # bot.boom.poller.candid_floor
        cand["pid"] = cand["candid"] // 10**9
        cand.update(ranr=cand["ra"], decnr=cand["dec"], rfid=0, jdendref=cand["jdstartref"], nframesref=0,
                    nmatches=0, rbversion="t17_f5_c3", drbversion="d6_m7", isdiffpos=row["isdiffpos"])
        candidates.append(cand)
    packets = []
    for i, (row, cand) in enumerate(zip(rows, candidates)):
        earlier = [c for r, c in zip(rows, candidates) if r["objectId"] == row["objectId"] and c["jd"] < cand["jd"]]
        packet = {
            "schemavsn": "4.02",
            "publisher": "btsbot example (rebuilt from BTSbot usage data)",
            "objectId": row["objectId"],
            "candid": cand["candid"],
            "candidate": cand,
            "prv_candidates": [{k: c.get(k) for k in _PRV_FIELDS} for c in earlier],
            "fp_hists": None,
        }
        for ch, key in enumerate(CUTOUT_KEYS):
            packet[key] = {"fileName": f"candid{cand['candid']}_{key}.fits.gz", "stampData": fits_stamp(triplets[i, :, :, ch])}
        packets.append(packet)
    return packets
