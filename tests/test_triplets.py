"""Triplets: decoding, the masking rule for real-data traps, padding, and refusals."""

import gzip
import io

import numpy as np
import pytest

from bot.core.triplets import (
    CUTOUT_KEYS,
    CutoutError,
    decode_stamp,
    make_triplet,
    normalise_cutout,
)
from bot.sim.example_night import fits_stamp

SENTINEL_CANDIDS = {2475433850015015000: "ZTF17aacymkh", 2475433850415015002: "ZTF19aciwwya"}


def test_fast_decoder_equals_astropy_on_every_real_stamp(real_alerts):
    from astropy.io import fits

    n = 0
    for alert in real_alerts:
        for key in CUTOUT_KEYS:
            raw = gzip.decompress(alert[key]["stampData"])
            with fits.open(io.BytesIO(raw)) as hdul:
                ref = np.asarray(hdul[0].data, dtype=np.float64)
            got = decode_stamp(alert[key]["stampData"])
            assert got.shape == ref.shape == (63, 63)
            np.testing.assert_array_equal(got, ref)  # NaN positions included
            n += 1
    assert n == 108


def test_sentinel_templates_get_a_real_normalised_template(real_alerts):
    found = {a["candid"]: a for a in real_alerts if a["candid"] in SENTINEL_CANDIDS}
    assert set(found) == set(SENTINEL_CANDIDS)
    for candid, alert in found.items():
        assert alert["objectId"] == SENTINEL_CANDIDS[candid]
        raw_template = decode_stamp(alert["cutoutTemplate"]["stampData"])
        assert (np.abs(raw_template) >= 1e30).any()  # the trap is really there
        # the reference code's float32 norm overflows: dividing by it zeroes the template
        with np.errstate(over="ignore"):
            assert np.isinf(np.linalg.norm(np.nan_to_num(raw_template).astype(np.float32)))
        template = make_triplet(alert)[:, :, 1]
        assert np.isfinite(template).all() and np.count_nonzero(template) > 1000
        assert np.sqrt((template.astype(np.float64) ** 2).sum()) == pytest.approx(1.0, abs=1e-6)
        assert (template[np.abs(raw_template) >= 1e30] == 0).all()


def test_normalisation_matches_reference_on_clean_cutouts(real_alerts):
    alert = real_alerts[5]
    trip = make_triplet(alert)
    for ch, key in enumerate(CUTOUT_KEYS):
        img = np.nan_to_num(decode_stamp(alert[key]["stampData"]))
        np.testing.assert_allclose(trip[:, :, ch], img / np.linalg.norm(img), rtol=1e-6, atol=1e-9)


def test_masking_and_padding():
    img = np.ones((60, 61))
    img[0, 0] = np.nan
    img[1, 1] = np.inf
    img[2, 2] = -3.4028235e38
    out = normalise_cutout(img)
    assert out.shape == (63, 63) and out.dtype == np.float32
    assert out[0, 0] == out[1, 1] == out[2, 2] == 0
    assert out[60:, :].flat[0] == pytest.approx(1e-9) and out[:, 61:].max() == pytest.approx(1e-9)
    assert np.sum(out[:60, :61].astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-6)
    assert np.isfinite(img).sum() < img.size  # the caller's array is left alone


@pytest.mark.parametrize(
    "stamp, reason",
    [
        (b"not gzip at all", "not gzip"),
        (gzip.compress(b"SIMPLE but not really a FITS file" * 3), "FITS"),
        (gzip.compress(b"plain text, no FITS"), "not a FITS image"),
        (gzip.compress(b"\x00" * 100)[:20], "corrupt gzip"),
        (fits_stamp(np.full((63, 63), np.nan)), "empty after masking"),
        (fits_stamp(np.full((63, 63), -3.4028235e38)), "empty after masking"),
        (fits_stamp(np.zeros((63, 63))), "empty after masking"),
        (fits_stamp(np.ones((64, 64))), "larger than 63x63"),
    ],
    ids=["not-gzip", "fake-simple", "gzip-not-fits", "truncated-gzip", "all-nan", "all-sentinel", "all-zero", "64x64"],
)
def test_bad_stamps_are_refused_with_a_reason(real_alerts, stamp, reason):
    alert = dict(real_alerts[0])
    alert["cutoutDifference"] = {"fileName": "x", "stampData": stamp}
    with pytest.raises(CutoutError, match=reason) as info:
        make_triplet(alert)
    assert str(info.value).startswith("cutoutDifference")


def test_scaled_and_integer_fits_fall_back_to_astropy():
    from astropy.io import fits

    data = (np.arange(63 * 63, dtype=np.int16).reshape(63, 63) % 500) - 100
    buf = io.BytesIO()
    hdu = fits.PrimaryHDU(data)
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.5, 10.0
    hdu.writeto(buf)
    got = decode_stamp(gzip.compress(buf.getvalue()))
    with fits.open(io.BytesIO(buf.getvalue())) as hdul:
        np.testing.assert_allclose(got, hdul[0].data)


def _float32_norm_variant(img: np.ndarray) -> np.ndarray:
    """What normalise_cutout would give with its norm computed in float32 (the rule this test guards)."""
    img = np.nan_to_num(np.array(img, dtype=np.float32))
    with np.errstate(over="ignore", invalid="ignore"):
        return img / np.sqrt(np.sum(img * img, dtype=np.float32))


@pytest.mark.parametrize("scale", [3e19, 1e25, 5e29])
def test_the_norm_is_computed_in_float64(real_alerts, scale):
    """On the real stamps a float32 norm changes nothing; only pixels between ~1.8e19 (their square
    overflows float32) and the 1e30 mask show the rule: such a cutout must still be normalised."""
    alert = real_alerts[5]
    clean = np.nan_to_num(decode_stamp(alert["cutoutScience"]["stampData"]))
    peak = np.abs(clean).max()
    bright = clean / peak * scale  # the real image, its brightest pixel at `scale` (below the mask)
    assert np.abs(bright).max() < 1e30 and np.abs(bright).max() > np.sqrt(np.finfo(np.float32).max)
    stamp = fits_stamp(bright)  # through gzipped float32 FITS, as ZTF ships cutouts
    cutout = {**alert, "cutoutScience": {"stampData": stamp}}
    got = make_triplet(cutout)[:, :, 0]
    ref = decode_stamp(stamp)
    expected = ref / np.sqrt(np.sum(ref * ref))
    assert np.isfinite(got).all() and np.sqrt((got.astype(np.float64) ** 2).sum()) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(got, clean / np.linalg.norm(clean), rtol=1e-5, atol=1e-9)  # scale-free
    # the same assertions fail on the float32 path: its norm overflows to inf and the cutout becomes 0
    wrong = _float32_norm_variant(ref)
    assert not np.allclose(wrong, expected, rtol=1e-6, atol=1e-12)
    assert np.count_nonzero(wrong) == 0
