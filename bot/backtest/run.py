"""A backtest: a sample of scored alerts, labels, trial policies -> one result per trial (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from bot.backtest.errors import BacktestError
from bot.backtest.metrics import SourceInfo, TrialResult, evaluate_trial, sources
from bot.backtest.metrics import compare as compare_with
from bot.backtest.sources import Sample
from bot.backtest.trials import Trial


@dataclass
class Backtest:
    sample: Sample
    infos: dict[str, SourceInfo]
    results: list[TrialResult]
    baseline: list[TrialResult] = field(default_factory=list)  # the config's policies, when compared
    labelled: bool = False
    unmatched_labels: list[str] = field(default_factory=list)  # labelled objects with no alert in the sample

    @property
    def excluded(self) -> list[str]:
        return sorted(o for o, i in self.infos.items() if not i.eligible)

    @property
    def unlabelled(self) -> list[str]:
        return sorted(o for o, i in self.infos.items() if i.eligible and i.label is None) if self.labelled else []

    @property
    def reference(self) -> list[TrialResult]:
        """The results the per-source plots are drawn for: the config's policies when sweeping."""
        return self.baseline or self.results


def run_backtest(sample: Sample, trials: list[Trial], labels: Mapping | None = None,
                 baseline: list[Trial] | None = None, compare: bool = True) -> Backtest:
    """Evaluate `trials` (and the config's policies, `baseline`; compare: gained/lost against them)."""
    if not trials:
        raise BacktestError("no policy to try: the config has no policies (--config)")
    if not sample.alerts:
        raise BacktestError(f"no alerts in the sample ({sample.origin}: {sample.inputs} inputs, "
                            f"{len(sample.unreadable)} unreadable)")
    versions = {a["model_version"] for a in sample.alerts if a.get("score") is not None}
    for t in trials + (baseline or []):
        if t.policy.model_version not in versions:
            have = ", ".join(sorted(versions)) or "none"
            raise BacktestError(f"policy {t.name}: no scores for model_version {t.policy.model_version!r} "
                                f"in the sample (scores of: {have})")
    infos = sources(sample.alerts, labels)
    unmatched = []
    if labels is not None:
        unmatched = sorted(set(labels) - set(infos))
        if len(unmatched) == len(labels):
            raise BacktestError(f"none of the {len(labels)} labelled objects has an alert in the sample "
                                f"({len(infos)} sources, e.g. {', '.join(sorted(infos)[:3])})")
    labelled = labels is not None
    results = [evaluate_trial(t, infos, labelled) for t in trials]
    base_results = [evaluate_trial(t, infos, labelled) for t in baseline] if baseline else []
    if base_results and compare:
        compare_with(results, {r.trial.name: r for r in base_results})
    return Backtest(sample, infos, results, base_results, labelled, unmatched)
