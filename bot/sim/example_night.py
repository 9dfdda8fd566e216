"""The example night's packets (SN 2023tyk and the CV AT 2023sxt) under their old import path, for the
tests that load the stand-ins with them. They are built by `bot.example_data`, the product module that
reads the example data artifacts (the demo and the int8 calibration use it directly)."""

from __future__ import annotations

from bot.example_data import example_packets, fits_stamp, read_example

__all__ = ["example_packets", "fits_stamp", "read_example"]
