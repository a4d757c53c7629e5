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
from rnnjax.chunked import series_rows
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
  tau_L = np.asarray(levels, np.float64)
  train_N = np.asarray(data.train_starts if train_starts is None else train_starts)
  naive_NS = metrics.baseline_forecasts(data, starts, season)['seasonal_naive']
  lag_S = seasonal_lag(season, np.asarray(data.steps))
  positions_NS = data.target_positions(train_N)
  which_train_N = data.series_index(train_N)
  back_NS = positions_NS - lag_S[None, :]
  valid_NS = back_NS >= data.bounds[which_train_N][:, None]
  target_T = data.values_TF[:, 0]
  residuals_NS = np.where(valid_NS, target_T[positions_NS] - target_T[np.maximum(back_NS, 0)],
                          np.nan)
  which_N = data.series_index(starts)
  train_rows = dict(series_rows(which_train_N))
  per_series_RSL = np.full((len(data.series_ids), len(data.steps), tau_L.size), np.nan)
  for i in np.unique(which_N):
    rows_NS = residuals_NS[train_rows.get(int(i), slice(0, 0))]
    if np.any(np.sum(np.isfinite(rows_NS), axis=0) == 0):
      name = data.series_ids[i]
      series = f'series {name!r}' if name else 'the series'
      raise UserError(f'data.season={season}: no training window of {series} has its seasonal-'
                      'naive value inside the series, so the naive distribution (the seasonal-'
                      'naive forecast plus its training residuals) is undefined; use a shorter '
                      'season or a longer series.')
    per_series_RSL[i] = np.nanquantile(rows_NS, tau_L, axis=0).T
  return naive_NS[..., None] + per_series_RSL[which_N]


def _distribution_block(lower_NS, upper_NS, q_NSQ, crps_NS, y_NS, level, levels,
                        prefix: str) -> dict:
  scores = interval_scores(lower_NS, upper_NS, y_NS, level)
  return {f'{prefix}_coverage': scores['coverage'],
          f'{prefix}_interval_width': scores['width'],
          f'{prefix}_interval_score': scores['interval_score'],
          f'{prefix}_pinball': float(np.mean(pinball(q_NSQ, y_NS, levels))),
          f'{prefix}_crps': float(np.mean(crps_NS))}


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
  f_M = np.asarray(forecast, np.float64)
  f_M = f_M[None] if f_M.ndim == 3 else f_M
  last = len(levels) if head == 'quantile' else 2
  want = (len(starts), len(data.steps), last)
  if f_M.ndim != 4 or f_M.shape[1:] != want:
    raise ValueError(f'{head} forecasts have shape {np.shape(forecast)}, expected {want} '
                     '(windows, steps, quantiles or (mean, scale)), or with a leading member '
                     'axis')
  y_NS = data.targets(starts)
  bounds = interval_bounds(level)
  q_NSQ = distributions.quantiles_at(f_M, head, levels, levels)
  lower_NS, upper_NS = np.moveaxis(distributions.quantiles_at(f_M, head, levels, bounds), -1, 0)
  if head == 'gaussian':
    crps_NS = crps_gaussian_mixture(f_M[..., 0], f_M[..., 1], y_NS)
  else:
    crps_NS = crps_from_quantiles(q_NSQ, y_NS, levels)
  union_L = np.unique(np.round(np.concatenate([levels, bounds, NAIVE_LEVELS]), 12))
  naive_NSL = naive_distribution(data, starts, config.data.season, union_L, train_starts)

  def naive_at(wanted):
    return naive_NSL[..., [int(np.argmin(np.abs(union_L - w))) for w in wanted]]

  n_q_NSQ = naive_at(levels)
  n_lower_NS, n_upper_NS = np.moveaxis(naive_at(bounds), -1, 0)
  n_crps_NS = crps_from_quantiles(naive_NSL, y_NS, union_L)
  out = {f'{prefix}_interval_level': level,
         **_distribution_block(lower_NS, upper_NS, q_NSQ, crps_NS, y_NS, level, levels, prefix),
         **_distribution_block(n_lower_NS, n_upper_NS, n_q_NSQ, n_crps_NS, y_NS, level, levels,
                               'baseline_naive')}
  out[f'{prefix}_crps_skill_vs_naive'] = metrics.skill(out[f'{prefix}_crps'],
                                                       out['baseline_naive_crps'])

  def short(rows, cols=slice(None)):
    y, lower, upper = y_NS[rows, cols], lower_NS[rows, cols], upper_NS[rows, cols]
    n_lower, n_upper = n_lower_NS[rows, cols], n_upper_NS[rows, cols]
    return {f'{prefix}_coverage': float(np.mean((lower <= y) & (y <= upper))),
            f'{prefix}_pinball': float(np.mean(pinball(q_NSQ[rows, cols], y, levels))),
            'baseline_naive_coverage': float(np.mean((n_lower <= y) & (y <= n_upper))),
            'baseline_naive_pinball': float(np.mean(pinball(n_q_NSQ[rows, cols], y, levels)))}
  if data.multi_step:
    out['per_step'] = [{'step': int(step), **short(slice(None), slice(j, j + 1))}
                       for j, step in enumerate(data.steps)]
  if data.series_ids != ('',):
    rows = dict(series_rows(data.series_index(starts)))
    out['per_series'] = {name: short(rows.get(i, slice(0, 0)))
                         for i, name in enumerate(data.series_ids)}
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
