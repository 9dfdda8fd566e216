"""Backtesting policies: which sources would these policies select, when, and how well (see replay.py)."""

from bot.backtest.replay import backtest

__all__ = ["backtest"]
