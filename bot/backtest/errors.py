"""The backtest's error: its own module so that the sample readers (`sources`) and the trial runner
(`run`), which reads their samples, both raise it without importing each other."""


class BacktestError(ValueError):
    """A backtest that cannot give a meaningful answer (no scores, no policy, labels matching nothing)."""
