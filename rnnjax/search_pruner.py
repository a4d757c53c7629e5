"""Successive halving for trials that reach each rung together: an Optuna pruner.

Optuna's `SuccessiveHalvingPruner` is asynchronous (ASHA): a trial is judged the moment it
reports, against the trials that reached the rung before it, and the first ones to arrive are
promoted for want of rivals. A search's batch reports every member at a rung before any is
judged, so this pruner judges each against every value reported at that rung, its own batch's
included: the best 1/eta of them go on, as successive halving means. It writes nothing to the
study, so asking again after a kill gives the same answer.
"""
from __future__ import annotations

import optuna


class SynchronousHalvingPruner(optuna.pruners.BasePruner):
  """Prunes a trial at rung step `min_resource * eta^k` unless its value there is among the best
  `n // eta` (at least the best one) of the n values every trial of the study reported at that
  step. Steps between rungs never prune; a NaN value always does. Minimises."""

  def __init__(self, min_resource: int, reduction_factor: int):
    self.min_resource = min_resource
    self.reduction_factor = reduction_factor

  def is_rung(self, step: int) -> bool:
    """Whether `step` is min_resource * eta^k for some k >= 0."""
    rung = self.min_resource
    while rung < step:
      rung *= self.reduction_factor
    return rung == step

  def prune(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> bool:
    step = trial.last_step
    if step is None or not self.is_rung(step):
      return False
    value = trial.intermediate_values[step]
    if value != value:  # NaN: the trial diverged
      return True
    reported = sorted(v for t in study.get_trials(deepcopy=False)
                      if (v := t.intermediate_values.get(step)) is not None and v == v)
    keep = max(1, len(reported) // self.reduction_factor)
    return value > reported[keep - 1]
