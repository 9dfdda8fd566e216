"""Facility payload models (pure), one module per facility API: sedm.py."""
