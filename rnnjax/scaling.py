"""Scalers of the series' values: fitted per series on its training part, checked for values
that do not scale to finite numbers, saved as JSON-able data and rebuilt, and undone on
forecasts: values, quantiles, and a gaussian head's scale (`unscale_distribution`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from rnnjax import config as config_lib
from rnnjax.errors import UserError


SCALERS = ('minmax', 'standard')


def scaler_class(name: str) -> type:
  """scikit-learn's scaler class for a `data.scaler` name.

  scikit-learn is imported here, not with the module: it takes about 0.7 s, a quarter of a
  script's start, and a command refused for bad input never needs it.
  """
  from sklearn import preprocessing  # pylint: disable=import-outside-toplevel
  if name not in SCALERS:
    raise UserError(f'data.scaler={name!r} is not one of {sorted(SCALERS)}.')
  return {'minmax': preprocessing.MinMaxScaler, 'standard': preprocessing.StandardScaler}[name]


def make_scaler(name: str):
  return scaler_class(name)()


_TOO_LARGE = ('Values this large are not measurements (a placeholder such as 1e308, or a unit '
              'mistake): fix them in the file, or empty the cells and fill them (data.fill, or '
              "predict.py's --fill), or rescale the column.")


def check_scaler(scaler, values_TF: np.ndarray, times: pd.DatetimeIndex, columns: Sequence[str],
                 fit_end: int, name: str = '') -> None:
  """Refuses a fitted scaler whose parameters are not finite, naming the value that did it.

  Values near the float64 limit (+-1e308) load as numbers but overflow the fit: MinMaxScaler's
  range becomes inf (every value then scales to 0 and unscales to NaN), StandardScaler's
  variance inf.

  Args:
    scaler: fitted on `values_TF[:fit_end]`, on the first columns of `values_TF`.
    values_TF: [T, len(columns)] the series' raw values.
    times: [T] their timestamps.
    columns: the raw columns' names.
    fit_end: points the scaler was fitted on.
    name: the series' id, for the message.

  Raises:
    UserError: naming the column and the time of its largest value in the fitted part.
  """
  fitted = {k: np.asarray(v, np.float64) for k, v in vars(scaler).items()
            if k.endswith('_') and np.ndim(v) == 1}
  for key, param_F in fitted.items():
    finite_F = np.isfinite(param_F)
    if not finite_F.all():
      j = int(np.argmin(finite_F))
      row = int(np.argmax(np.abs(values_TF[:fit_end, j])))
      raise UserError(f'{_series(name)}column {columns[j]!r} cannot be scaled: its value '
                      f'{values_TF[row, j]:g} at {times[row]} makes the fitted '
                      f'{type(scaler).__name__}\'s {key} {param_F[j]:g}. {_TOO_LARGE}')


def check_scaled(scaled_TF: np.ndarray, times: pd.DatetimeIndex,
                 columns: Sequence[str] | None = None, values_TF: np.ndarray | None = None,
                 name: str = '') -> None:
  """Refuses scaled values that are not finite, naming the first one's column and time.

  A finite value far outside the training range scales past float32's 3.4e38 to inf.

  Args:
    scaled_TF: [T, F] scaled values (lag and calendar columns may follow the raw ones).
    times: [T] their timestamps.
    columns: the names of the first len(columns) columns (the raw ones); None names them by
      position.
    values_TF: [T, len(columns)] the raw values, shown when given.
    name: the series' id, for the message.
  """
  bad_TF = ~np.isfinite(scaled_TF)
  if not bad_TF.any():
    return
  row, j = (int(i) for i in np.argwhere(bad_TF)[0])
  if columns is not None and j < len(columns):
    column = f'column {columns[j]!r}'
  else:
    column = 'the target column' if j == 0 else f'input column {j}'
  raw = f'its value {values_TF[row, j]:g}' if values_TF is not None else 'its value'
  raise UserError(f'{_series(name)}{column} cannot be scaled: {raw} at {times[row]} scales to '
                  f'{scaled_TF[row, j]} ({bad_TF.sum()} values in all do not scale to a finite '
                  f'number). {_TOO_LARGE}')


def _series(name: str) -> str:
  return f'series {name!r}: ' if name else ''


def target_unit(target_scaler) -> float:
  """How much one scaled unit is in the series' units: the slope of `inverse_transform`.

  Both scalers map affinely with a positive slope (MinMaxScaler: 1 / scale_, StandardScaler:
  scale_), so a scaled difference, such as a scale or an interval width, is that many series
  units; a value is also shifted by the offset, which a difference never is.
  """
  zero_one = target_scaler.inverse_transform(np.array([[0.0], [1.0]]))[:, 0]
  unit = float(zero_one[1] - zero_one[0])
  if not unit > 0:
    raise ValueError(f'target scaler {target_scaler!r} maps 1 scaled unit to {unit} series units; '
                     'a distribution needs a positive slope')
  return unit


def unscale_distribution(forecast, head: str, target_scaler) -> np.ndarray:
  """A head's scaled forecasts of one series in the series' own units.

  Args:
    forecast: scaled forecasts, float [..., S] (point), [..., S, Q] quantiles (quantile) or
      [..., S, 2] (mean, scale) (gaussian).
    head: 'point', 'quantile' or 'gaussian' (rnnjax.config.HEADS).
    target_scaler: the series' fitted target scaler.

  Returns:
    float64, the shape of `forecast`: point values and quantiles each unscaled as values
    (`inverse_transform`); a gaussian mean as a value and its scale multiplied by
    `target_unit`, never shifted.
  """
  y = np.asarray(forecast, dtype=np.float64)
  if head == 'gaussian':
    if y.shape[-1:] != (2,):
      raise ValueError(f'gaussian forecasts have shape {y.shape}; the last axis must be (mean, '
                       'scale), size 2')
    mean = target_scaler.inverse_transform(y[..., 0].reshape(-1, 1)).reshape(y.shape[:-1])
    return np.stack([mean, y[..., 1] * target_unit(target_scaler)], axis=-1)
  if head not in ('point', 'quantile'):
    raise ValueError(f'unknown head {head!r}; choose one of {config_lib.HEADS}')
  return target_scaler.inverse_transform(y.reshape(-1, 1)).reshape(y.shape)


def scaler_state(scaler) -> dict:
  """A fitted sklearn scaler as JSON-able data: its kind, parameters and fitted attributes."""
  kind = next(k for k in SCALERS if type(scaler) is scaler_class(k))
  fitted = {k: np.asarray(v).tolist() for k, v in vars(scaler).items() if k.endswith('_')}
  return {'kind': kind, 'params': scaler.get_params(), 'fitted': fitted}


def scaler_from_state(state: dict):
  """Rebuilds the scaler `scaler_state` described, ready to transform and inverse-transform."""
  scaler = make_scaler(state['kind']).set_params(**state['params'])
  for k, v in state['fitted'].items():
    setattr(scaler, k, np.asarray(v) if isinstance(v, list) else v)
  return scaler
