"""Backtesting policies: which sources would these policies select, when, and how well?

sources.py (alerts from files, Kowalski or a journal, scored through cache.py), labels.py, trials.py
(the config's policies, --set, --sweep), metrics.py (the paper's source-level metrics, pure), run.py,
output.py (table, JSON, CSV), html.py (--report), cli.py (`btsbot backtest`).
"""
