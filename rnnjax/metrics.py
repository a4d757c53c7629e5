"""Errors in the series' own units and the naive baselines every forecast is held against."""
from __future__ import annotations

import logging

import numpy as np

from rnnjax import data as data_lib
from rnnjax.config import seasonal_lag
from rnnjax.errors import UserError


def rmse(pred, true) -> float:
  """Root mean squared error of two same-shaped arrays."""
  pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
  return float(np.sqrt(np.mean((pred - true) ** 2)))


def mae(pred, true) -> float:
  """Mean absolute error of two same-shaped arrays."""
  pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
  return float(np.mean(np.abs(pred - true)))


def persistence_forecast(values_T: np.ndarray, target_positions: np.ndarray,
                         horizon: int) -> np.ndarray:
  """The last input as the forecast: y_hat[t + horizon] = y[t]."""
  return values_T[target_positions - horizon]


def seasonal_naive_forecast(values_T: np.ndarray, target_positions: np.ndarray, season: int,
                            horizon: int) -> np.ndarray:
  """The value one season (or the fewest whole seasons >= horizon) before the target."""
  lag = seasonal_lag(season, horizon)
  if target_positions.min() - lag < 0:
    raise UserError(f'data.season={season} reaches before the start of the series for the '
                    'first validation window; use a shorter season.')
  return values_T[target_positions - lag]


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

  Args:
    data: the dataset the windows come from.
    starts: [N] window starts.
    forecast: [N] forecasts in the series' own units.
    season: period of the seasonal-naive baseline.
    prefix: 'val' or 'train'; baselines are reported for 'val' only.
  """
  true = data.targets(starts)
  out = {f'{prefix}_rmse': rmse(forecast, true), f'{prefix}_mae': mae(forecast, true)}
  if prefix == 'val':
    target_series = data.values_TF[:, 0]
    positions = data.target_positions(starts)
    for name, base in (
        ('persistence', persistence_forecast(target_series, positions, data.horizon)),
        ('seasonal_naive', seasonal_naive_forecast(target_series, positions, season,
                                                   data.horizon))):
      out[f'baseline_{name}_rmse'] = rmse(base, true)
      out[f'baseline_{name}_mae'] = mae(base, true)
    for name in BASELINES:
      out[f'val_rmse_skill_vs_{name}'] = skill(out['val_rmse'], out[f'baseline_{name}_rmse'])
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
