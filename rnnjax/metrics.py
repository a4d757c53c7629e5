"""Errors in the series' own units and the naive baselines every forecast is held against."""
from __future__ import annotations

import logging

import numpy as np

from rnnjax import data as data_lib
from rnnjax.config import seasonal_lag
from rnnjax.errors import UserError


def _flat(pred, true) -> tuple[np.ndarray, np.ndarray]:
  pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
  if pred.shape != true.shape:  # broadcasting [N] against [N, 1] would score N * N pairs
    raise ValueError(f'forecasts of shape {pred.shape} scored against targets of shape '
                     f'{true.shape}')
  return pred.ravel(), true.ravel()


def rmse(pred, true) -> float:
  """Root mean squared error of two same-shaped arrays, over every element."""
  pred, true = _flat(pred, true)
  return float(np.sqrt(np.mean((pred - true) ** 2)))


def mae(pred, true) -> float:
  """Mean absolute error of two same-shaped arrays, over every element."""
  pred, true = _flat(pred, true)
  return float(np.mean(np.abs(pred - true)))


def persistence_forecast(values_T: np.ndarray, target_positions: np.ndarray,
                         horizon) -> np.ndarray:
  """The last input as the forecast: y_hat[t + h] = y[t].

  Args:
    values_T: [T] the target series.
    target_positions: [N] or [N, S] positions of the targets.
    horizon: the steps h after the last input: an int, or [S] one per column of positions.
  """
  return values_T[target_positions - np.asarray(horizon)]


def seasonal_naive_forecast(values_T: np.ndarray, target_positions: np.ndarray, season: int,
                            horizon) -> np.ndarray:
  """The value one season (or the fewest whole seasons >= the step) before each target.

  Arguments as `persistence_forecast`; `horizon` may hold one step per column.
  """
  lag = seasonal_lag(season, np.asarray(horizon))
  if np.min(target_positions - lag) < 0:
    raise UserError(f'data.season={season} reaches before the start of the series for the '
                    'first validation window; use a shorter season.')
  return values_T[target_positions - lag]


def baseline_forecasts(data: data_lib.Dataset, starts: np.ndarray, season: int) -> dict:
  """Both naive forecasts [N, S] of the windows at `starts`, each read from its own series.

  Raises:
    UserError: the seasonal-naive value of a window lies before the start of its series.
  """
  positions = data.target_positions(starts)
  steps = np.asarray(data.steps)
  lag = seasonal_lag(season, steps)
  which = data.series_index(starts)
  before = np.any(positions - lag[None, :] < data.bounds[which][:, None], axis=1)
  if before.any():
    name = data.series_ids[which[np.flatnonzero(before)[0]]]
    series = f'series {name!r}' if name else 'the series'
    raise UserError(f'data.season={season} reaches before the start of {series} for its first '
                    'validation window; use a shorter season.')
  target = data.values_TF[:, 0]
  return {'persistence': persistence_forecast(target, positions, steps),
          'seasonal_naive': seasonal_naive_forecast(target, positions, season, steps)}


def skill(model_rmse: float, baseline_rmse: float) -> float | None:
  """1 - model / baseline; None (null in metrics.json) when the baseline's error is 0.

  A baseline with no error (a series flat over the validation part) leaves the skill
  undefined: it is reported as missing, with a warning, rather than as a division by zero.
  """
  if baseline_rmse == 0.0:
    logging.warning('a naive baseline has zero error on the validation part (the series is flat '
                    'there): its skill score is undefined and written as null')
    return None
  return 1.0 - model_rmse / baseline_rmse


def forecast_metrics(data: data_lib.Dataset, starts: np.ndarray, forecast: np.ndarray,
                     season: int, prefix: str) -> dict:
  """RMSE and MAE of `forecast` (original units) and of both baselines on the same windows.

  Errors are over every window and step. For 'val' the baselines and skills are added, and
  `per_step` (a list, one entry per step, with multi-step targets) and `per_series` (by series
  id, with several series) hold the same scores restricted to that step or series.

  Args:
    data: the dataset the windows come from.
    starts: [N] window starts.
    forecast: [N, S] forecasts in the series' own units.
    season: period of the seasonal-naive baseline.
    prefix: 'val' or 'train'; baselines are reported for 'val' only.
  """
  true = data.targets(starts)
  out = {f'{prefix}_rmse': rmse(forecast, true), f'{prefix}_mae': mae(forecast, true)}
  if prefix != 'val':
    return out
  baselines = baseline_forecasts(data, starts, season)
  out.update(_scores(forecast, true, baselines))
  for name in BASELINES:
    out[f'val_rmse_skill_vs_{name}'] = skill(out['val_rmse'], out[f'baseline_{name}_rmse'])
  if data.multi_step:
    out['per_step'] = [
        {'step': int(step), **_scores(forecast[:, j], true[:, j],
                                      {k: v[:, j] for k, v in baselines.items()}, keys=True)}
        for j, step in enumerate(data.steps)]
  if data.series_ids != ('',):
    which = data.series_index(starts)
    out['per_series'] = {
        name: _scores(forecast[which == i], true[which == i],
                      {k: v[which == i] for k, v in baselines.items()}, keys=True)
        for i, name in enumerate(data.series_ids)}
  return out


def _scores(forecast, true, baselines: dict, keys: bool = False) -> dict:
  """RMSE and MAE of the forecast (as val_rmse, val_mae when `keys`) and of each baseline."""
  out = {'val_rmse': rmse(forecast, true), 'val_mae': mae(forecast, true)} if keys else {}
  for name, base in baselines.items():
    out[f'baseline_{name}_rmse'] = rmse(base, true)
    if not keys:
      out[f'baseline_{name}_mae'] = mae(base, true)
  return out


BASELINES = ('persistence', 'seasonal_naive')
_BASELINE_NAMES = {'persistence': 'persistence', 'seasonal_naive': 'seasonal naive'}


def verdict(results: dict) -> str:
  """One line saying whether the model's validation RMSE beat each naive baseline.

  Args:
    results: metrics with 'val_rmse' and 'baseline_{name}_rmse' for every name in BASELINES.

  Returns:
    e.g. 'val_rmse 0.651 beats persistence (7.064, skill 0.91) and does not beat seasonal
    naive (0.600, skill -0.09)'.
  """
  model = results['val_rmse']
  parts = []
  for name in BASELINES:
    base = results[f'baseline_{name}_rmse']
    won = 'beats' if model < base else 'does not beat'
    score = skill(model, base) if base > 0 else None
    said = 'skill undefined' if score is None else f'skill {score:.2f}'
    parts.append(f'{won} {_BASELINE_NAMES[name]} ({base:.4g}, {said})')
  return f'val_rmse {model:.4g} ' + ' and '.join(parts)
