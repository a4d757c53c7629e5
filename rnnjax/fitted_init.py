"""Where training starts, fitted to the training windows before the first step: the highway's
ridge regression (model.highway_init='ridge') and the spread a probabilistic head starts with.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rnnjax import config as config_lib
from rnnjax import dataset as dataset_lib
from rnnjax import models
from rnnjax import windows


# Training windows the closed-form highway is fitted on, at most (evenly spaced), and its
# penalty in scaled units (the linear baseline's, rnnjax.linear_baseline).
RIDGE_WINDOWS = 20_000
RIDGE_ALPHA = 0.1


def ridge_highway(model: models.Forecaster, data: dataset_lib.Dataset) -> dict:
  """The highway's kernel [I, S] and bias [S] fitted by ridge regression on the training
  windows (model.highway_init='ridge'); I is the highway's inputs (`highway_design`).

  It reads what the highway reads (`Forecaster.highway_design`: the last `highway` target
  inputs after the model's normalisation) and fits what the highway must add for the model,
  with a silent network, to forecast the scaled targets: (target - offset) / scale. A backtest
  built on its first fold (`rnnjax.backtest`) starts every fold from that fold's fit.
  """
  starts_N = np.asarray(data.train_starts)
  if len(starts_N) > RIDGE_WINDOWS:
    starts_N = starts_N[np.linspace(0, len(starts_N) - 1, RIDGE_WINDOWS).round().astype(int)]
  x_NWF, y_NS = windows.gather_windows(data.scaled_TF, starts_N, data.window, data.steps)
  future_NSK = windows.gather_future(data.scaled_TF, starts_N, data.window, data.steps,
                                     model.num_known)
  inputs_NI, offset_NS, scale_N1 = (np.asarray(a, np.float64) for a in model.apply(
      {}, jnp.asarray(x_NWF), None if future_NSK is None else jnp.asarray(future_NSK),
      method=models.Forecaster.highway_design))
  # scikit-learn is imported where it is used: it is slow to import (rnnjax/scaling.py).
  from sklearn import linear_model  # pylint: disable=import-outside-toplevel
  fit = linear_model.Ridge(alpha=RIDGE_ALPHA).fit(inputs_NI, (y_NS - offset_NS) / scale_N1)
  kernel_IS = np.asarray(fit.coef_, np.float32).reshape(y_NS.shape[1], -1).T
  bias_S = np.asarray(fit.intercept_, np.float32).reshape(y_NS.shape[1])
  return {'kernel': jnp.asarray(kernel_IS), 'bias': jnp.asarray(bias_S)}


def naive_spread(config, data: dataset_lib.Dataset) -> float:
  """Standard deviation of the seasonal-naive forecast's errors over the training windows and
  steps, in scaled units: where a probabilistic head's spread starts (`models.Forecaster`).

  Windows whose seasonal value lies before their series' start are left out; with none left,
  the training targets' own standard deviation.
  """
  target_T = data.scaled_TF[:, 0].astype(np.float64)
  positions_NS = data.target_positions(data.train_starts)
  back_NS = positions_NS - config_lib.seasonal_lag(config.data.season, np.asarray(data.steps))
  valid_NS = back_NS >= data.bounds[data.series_index(data.train_starts)][:, None]
  if valid_NS.any():
    spread = np.std((target_T[positions_NS] - target_T[np.maximum(back_NS, 0)])[valid_NS])
  else:
    spread = np.std(target_T[positions_NS])
  return float(max(spread, 2 * models.SCALE_FLOOR))
