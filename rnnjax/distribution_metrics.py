"""Distribution forecasts (the quantile and gaussian heads) of a dataset's windows scored in the
series' own units, next to the naive distribution: the seasonal-naive forecast plus the
quantiles of its own residuals on the training windows (`naive_distribution`).

`distribution_scores` computes every score of `rnnjax.scoring_rules` for both, and
`distribution_verdict` says in one line whether the model beat it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rnnjax import dataset as dataset_lib
from rnnjax import distributions
from rnnjax import metrics
from rnnjax.config import interval_bounds, seasonal_lag
from rnnjax.errors import UserError
from rnnjax.scoring_rules import (crps_from_quantiles, crps_gaussian_mixture, interval_scores,
                                  pinball)


# Levels at which the naive distribution is described for its CRPS: its CDF between them is
# linear, close to the empirical distribution of the residuals it comes from.
NAIVE_LEVELS = tuple(k / 100 for k in range(1, 100))


def naive_distribution(data: dataset_lib.Dataset, starts: np.ndarray, season: int,
                       levels: Sequence[float],
                       train_starts: np.ndarray | None = None) -> np.ndarray:
  """Quantiles of the naive distribution of the windows at `starts`.

  The seasonal-naive forecast of each window and step plus the `levels` quantiles of the
  seasonal-naive forecast's own residuals (target - forecast) over the training windows of the
  same series, at the same step. Training windows whose seasonal value lies before their
  series' start are left out.

  Args:
    data: the dataset.
    starts: [N] window starts to forecast.
    season: period of the seasonal-naive forecast.
    levels: the L increasing levels.
    train_starts: [N_train] windows the residuals come from; None is `data.train_starts`.

  Returns:
    [N, S, L] quantiles in the series' units.

  Raises:
    UserError: a series has no training window whose seasonal value lies inside it, or the
      seasonal value of a window at `starts` lies before its series' start.
  """
  tau = np.asarray(levels, np.float64)
  train = np.asarray(data.train_starts if train_starts is None else train_starts)
  naive_NS = metrics.baseline_forecasts(data, starts, season)['seasonal_naive']
  lag = seasonal_lag(season, np.asarray(data.steps))
  positions = data.target_positions(train)
  which_train = data.series_index(train)
  back = positions - lag[None, :]
  valid = back >= data.bounds[which_train][:, None]
  target = data.values_TF[:, 0]
  residuals = np.where(valid, target[positions] - target[np.maximum(back, 0)], np.nan)
  which = data.series_index(starts)
  per_series = np.full((len(data.series_ids), len(data.steps), tau.size), np.nan)
  for i in np.unique(which):
    rows = residuals[which_train == i]
    if np.any(np.sum(np.isfinite(rows), axis=0) == 0):
      name = data.series_ids[i]
      series = f'series {name!r}' if name else 'the series'
      raise UserError(f'data.season={season}: no training window of {series} has its seasonal-'
                      'naive value inside the series, so the naive distribution (the seasonal-'
                      'naive forecast plus its training residuals) is undefined; use a shorter '
                      'season or a longer series.')
    per_series[i] = np.nanquantile(rows, tau, axis=0).T
  return naive_NS[..., None] + per_series[which]


def _distribution_block(lower, upper, q, crps, y, level, levels, prefix: str) -> dict:
  scores = interval_scores(lower, upper, y, level)
  return {f'{prefix}_coverage': scores['coverage'],
          f'{prefix}_interval_width': scores['width'],
          f'{prefix}_interval_score': scores['interval_score'],
          f'{prefix}_pinball': float(np.mean(pinball(q, y, levels))),
          f'{prefix}_crps': float(np.mean(crps))}


def distribution_scores(data: dataset_lib.Dataset, starts: np.ndarray, forecast, config,
                        prefix: str = 'val', train_starts: np.ndarray | None = None) -> dict:
  """Every score of a distribution forecast of the windows at `starts`, with the naive one's.

  Args:
    data: the dataset the windows come from.
    starts: [N] window starts.
    forecast: the forecast in the series' own units (`Dataset.unscale_distribution`): for
      model.head 'quantile', [N, S, Q] quantiles at model.quantiles; for 'gaussian', [N, S, 2]
      (mean, scale). A leading member axis, [M, N, S, Q] or [M, N, S, 2], scores the
      equal-weight mixture of the M members (`rnnjax.distributions`).
    config: the run's config: model.head, model.quantiles, model.interval, data.season.
    prefix: names the model's scores ('val' gives 'val_coverage', ...).
    train_starts: [N_train] windows whose seasonal-naive residuals make the naive
      distribution; None is `data.train_starts`.

  Returns:
    Floats, the model's then the naive distribution's (`naive_distribution`):
      {prefix}_interval_level: model.interval, the nominal level.
      {prefix}_coverage, baseline_naive_coverage: fraction of targets inside the central
        interval (its bounds: the (1 -+ interval) / 2 quantiles).
      {prefix}_interval_width, baseline_naive_interval_width: its mean width.
      {prefix}_interval_score, baseline_naive_interval_score: `interval_scores`'.
      {prefix}_pinball, baseline_naive_pinball: mean pinball loss over model.quantiles
        (gaussian head: the quantiles of its normal, or of the mixture, at those levels).
      {prefix}_crps, baseline_naive_crps: mean CRPS; gaussian head in closed form
        (`crps_gaussian_mixture`), quantile head from its quantiles (`crps_from_quantiles`),
        the naive distribution from its quantiles at NAIVE_LEVELS.
      {prefix}_crps_skill_vs_naive: 1 - model CRPS / naive CRPS (None when the naive is 0).
    and, with several steps, 'per_step': [{'step', '{prefix}_coverage', '{prefix}_pinball',
    'baseline_naive_coverage', 'baseline_naive_pinball'}] per step; with several series,
    'per_series': {series id: the same keys but 'step'}.

  Raises:
    ValueError: a forecast of the wrong shape, or a point head.
    UserError: as `naive_distribution`.
  """
  m = config.model
  head, levels, level = m.head, tuple(float(q) for q in m.quantiles), float(m.interval)
  if head not in ('quantile', 'gaussian'):
    raise ValueError(f'distribution_scores needs a probabilistic model.head, got {head!r}')
  f = np.asarray(forecast, np.float64)
  f = f[None] if f.ndim == 3 else f
  last = len(levels) if head == 'quantile' else 2
  want = (len(starts), len(data.steps), last)
  if f.ndim != 4 or f.shape[1:] != want:
    raise ValueError(f'{head} forecasts have shape {np.shape(forecast)}, expected {want} '
                     '(windows, steps, quantiles or (mean, scale)), or with a leading member '
                     'axis')
  y = data.targets(starts)
  bounds = interval_bounds(level)
  q = distributions.quantiles_at(f, head, levels, levels)
  lower, upper = np.moveaxis(distributions.quantiles_at(f, head, levels, bounds), -1, 0)
  if head == 'gaussian':
    crps = crps_gaussian_mixture(f[..., 0], f[..., 1], y)
  else:
    crps = crps_from_quantiles(q, y, levels)
  union = np.unique(np.round(np.concatenate([levels, bounds, NAIVE_LEVELS]), 12))
  naive = naive_distribution(data, starts, config.data.season, union, train_starts)

  def naive_at(wanted):
    return naive[..., [int(np.argmin(np.abs(union - w))) for w in wanted]]

  n_q, (n_lower, n_upper) = naive_at(levels), np.moveaxis(naive_at(bounds), -1, 0)
  n_crps = crps_from_quantiles(naive, y, union)
  out = {f'{prefix}_interval_level': level,
         **_distribution_block(lower, upper, q, crps, y, level, levels, prefix),
         **_distribution_block(n_lower, n_upper, n_q, n_crps, y, level, levels, 'baseline_naive')}
  out[f'{prefix}_crps_skill_vs_naive'] = metrics.skill(out[f'{prefix}_crps'],
                                                       out['baseline_naive_crps'])

  def short(rows, cols=slice(None)):
    return {f'{prefix}_coverage': float(np.mean((lower[rows, cols] <= y[rows, cols])
                                                & (y[rows, cols] <= upper[rows, cols]))),
            f'{prefix}_pinball': float(np.mean(pinball(q[rows, cols], y[rows, cols], levels))),
            'baseline_naive_coverage': float(np.mean((n_lower[rows, cols] <= y[rows, cols])
                                                     & (y[rows, cols] <= n_upper[rows, cols]))),
            'baseline_naive_pinball': float(np.mean(pinball(n_q[rows, cols], y[rows, cols],
                                                            levels)))}
  if data.multi_step:
    out['per_step'] = [{'step': int(step), **short(slice(None), slice(j, j + 1))}
                       for j, step in enumerate(data.steps)]
  if data.series_ids != ('',):
    which = data.series_index(starts)
    out['per_series'] = {name: short(which == i) for i, name in enumerate(data.series_ids)}
  return out


def distribution_verdict(results: dict, prefix: str = 'val') -> str:
  """One line on a distribution forecast against the naive distribution.

  Args:
    results: `distribution_scores`' keys.

  Returns:
    e.g. 'val_crps 0.412 beats the naive distribution (0.551, skill 0.25); the 80% interval
    holds 79.3% of the targets (naive 81.2%), mean width 1.62 (naive 2.1)'.
  """
  naive = 'baseline_naive' if prefix == 'val' else f'{prefix}_baseline_naive'
  model, base = results[f'{prefix}_crps'], results[f'{naive}_crps']
  won = 'beats' if model < base else 'does not beat'
  score = metrics.skill(model, base) if base > 0 else None
  said = 'skill undefined' if score is None else f'skill {score:.2f}'
  level = results[f'{prefix}_interval_level']
  return (f'{prefix}_crps {model:.4g} {won} the naive distribution ({base:.4g}, {said}); the '
          f'{level * 100:g}% interval holds {results[f"{prefix}_coverage"]:.1%} of the targets '
          f'(naive {results[f"{naive}_coverage"]:.1%}), mean width '
          f'{results[f"{prefix}_interval_width"]:.4g} '
          f'(naive {results[f"{naive}_interval_width"]:.4g})')
