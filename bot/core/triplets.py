"""Image triplets (science, template, difference) exactly as BTSbot and braai were trained on them.

Each cutout: gzipped FITS image -> masked (non-finite pixels and |value| >= 1e30 set to 0) -> divided by
its own L2 (Frobenius) norm computed in float64 -> zero-padded at the bottom/right with 1e-9 to 63x63.
A cutout that is not a readable gzipped FITS image, is empty after masking, or is larger than 63x63
cannot be scored: the reason is reported instead of a triplet (never a silently zeroed channel).
"""

from __future__ import annotations

import io
import zlib

import numpy as np

CUTOUT_KEYS = ("cutoutScience", "cutoutTemplate", "cutoutDifference")
SIZE = 63
PAD_VALUE = 1e-9
SENTINEL_ABS = 1e30  # ZTF templates carry float32 min (-3.4e38) as a fill value at chip edges

_FITS_BLOCK = 2880
_FAST_BITPIX = {-32: ">f4", -64: ">f8"}


class CutoutError(ValueError):
    """A cutout that cannot be turned into a model input; str() is the reason shown to the user."""


def gunzip(data: bytes) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CutoutError(f"stamp is {type(data).__name__}, not bytes")
    if bytes(data[:2]) != b"\x1f\x8b":
        raise CutoutError("stamp is not gzip data")
    try:
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    except zlib.error as exc:
        raise CutoutError(f"stamp is corrupt gzip data ({exc})") from None


def _parse_header(raw: bytes) -> tuple[dict, int] | None:
    """The primary header's cards and the data offset, or None when it is not plainly parseable."""
    cards: dict[str, str] = {}
    for block_start in range(0, len(raw), _FITS_BLOCK):
        block = raw[block_start : block_start + _FITS_BLOCK]
        if len(block) < _FITS_BLOCK:
            return None
        for i in range(0, _FITS_BLOCK, 80):
            card = block[i : i + 80]
            key = card[:8].decode("ascii", "replace").strip()
            if key == "END":
                return cards, block_start + _FITS_BLOCK
            if card[8:10] == b"= ":
                cards[key] = card[10:].split(b"/", 1)[0].decode("ascii", "replace").strip()
        if block_start > 20 * _FITS_BLOCK:
            return None
    return None


def _fast_fits_image(raw: bytes) -> np.ndarray | None:
    """Decode the common case (primary HDU, 2-D float image, no scaling) without astropy; None otherwise."""
    parsed = _parse_header(raw)
    if parsed is None:
        return None
    cards, offset = parsed
    if not raw.startswith(b"SIMPLE") or cards.get("SIMPLE") != "T" or cards.get("NAXIS") != "2":
        return None
    if cards.get("BSCALE", "1") not in ("1", "1.0", "1.") or cards.get("BZERO", "0") not in ("0", "0.0", "0."):
        return None
    try:
        bitpix = int(cards["BITPIX"])
        nx, ny = int(cards["NAXIS1"]), int(cards["NAXIS2"])
    except (KeyError, ValueError):
        return None
    dtype = _FAST_BITPIX.get(bitpix)
    if dtype is None or nx <= 0 or ny <= 0:
        return None
    nbytes = nx * ny * np.dtype(dtype).itemsize
    if len(raw) < offset + nbytes:
        raise CutoutError(f"FITS image is truncated ({len(raw) - offset} of {nbytes} data bytes)")
    return np.frombuffer(raw, dtype=dtype, count=nx * ny, offset=offset).reshape(ny, nx)


def _astropy_fits_image(raw: bytes) -> np.ndarray:
    import warnings

    from astropy.io import fits  # imported lazily: the fast path covers ZTF's cutouts

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns about the non-standard files it then refuses
            with fits.open(io.BytesIO(raw), memmap=False, ignore_missing_simple=True) as hdul:
                images = [np.asarray(hdu.data) for hdu in hdul if hdu.data is not None]
        if not images:
            raise CutoutError("FITS file holds no image")
        data = images[0]
    except CutoutError:
        raise
    except Exception as exc:
        raise CutoutError(f"stamp is not a readable FITS image ({type(exc).__name__}: {exc})") from None
    if data.ndim != 2 or not np.issubdtype(data.dtype, np.number):
        raise CutoutError(f"FITS data is not a 2-D numeric image (shape {data.shape})")
    return data


def decode_stamp(data: bytes) -> np.ndarray:
    """gzipped FITS bytes -> 2-D image as float64 (rows = NAXIS2, columns = NAXIS1)."""
    raw = gunzip(data)
    if not raw.startswith(b"SIMPLE"):
        raise CutoutError("stamp is gzip but not a FITS image")
    img = _fast_fits_image(raw)
    if img is None:
        img = _astropy_fits_image(raw)
    return img.astype(np.float64)


def normalise_cutout(img: np.ndarray) -> np.ndarray:
    """Mask, L2-normalise (float64) and pad one cutout to 63x63; returns float32."""
    if img.ndim != 2:
        raise CutoutError(f"cutout is not 2-D (shape {img.shape})")
    ny, nx = img.shape
    if ny > SIZE or nx > SIZE:
        raise CutoutError(f"cutout is {ny}x{nx}, larger than {SIZE}x{SIZE}")
    img = np.array(img, dtype=np.float64)  # a copy: the caller's array is never changed
    masked = ~np.isfinite(img) | (np.abs(img) >= SENTINEL_ABS)
    img[masked] = 0.0
    norm = np.sqrt(np.sum(img * img))
    if norm == 0.0 or not np.isfinite(norm):
        raise CutoutError("cutout is empty after masking")
    img /= norm
    if (ny, nx) != (SIZE, SIZE):
        img = np.pad(img, [(0, SIZE - ny), (0, SIZE - nx)], mode="constant", constant_values=PAD_VALUE)
    return img.astype(np.float32)


def make_triplet(alert: dict) -> np.ndarray:
    """One alert's (63, 63, 3) float32 triplet; raises CutoutError naming the bad cutout."""
    out = np.empty((SIZE, SIZE, 3), dtype=np.float32)
    for ch, key in enumerate(CUTOUT_KEYS):
        cutout = alert.get(key)
        stamp = cutout.get("stampData") if isinstance(cutout, dict) else None
        if stamp is None:
            raise CutoutError(f"{key} is missing")
        try:
            out[:, :, ch] = normalise_cutout(decode_stamp(stamp))
        except CutoutError as exc:
            raise CutoutError(f"{key}: {exc}") from None
    return out


def make_triplets(alerts: list[dict]) -> tuple[np.ndarray, list[str | None]]:
    """Triplets for a batch: array (N, 63, 63, 3) and, per alert, None or the reason it has no triplet.

    Rows of alerts without a triplet are zero and must not be scored.
    """
    triplets = np.zeros((len(alerts), SIZE, SIZE, 3), dtype=np.float32)
    errors: list[str | None] = [None] * len(alerts)
    for i, alert in enumerate(alerts):
        try:
            triplets[i] = make_triplet(alert)
        except CutoutError as exc:
            errors[i] = str(exc)
    return triplets, errors
