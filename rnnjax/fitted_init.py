"""Where training starts, fitted to the training windows before the first step: the highway's
ridge regression (model.highway_init='ridge') and the spread a probabilistic head starts with.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from sklearn import linear_model

from rnnjax import config as config_lib
from rnnjax import dataset as dataset_lib
from rnnjax import models
from rnnjax import windows


# Training windows the closed-form highway is fitted on, at most (evenly spaced), and its
# penalty in scaled units (the linear baseline's, rnnjax.linear_baseline).
RIDGE_WINDOWS = 20_000
RIDGE_ALPHA = 0.1


def ridge_highway(model: models.Forecaster, data: dataset_lib.Dataset) -> dict:
  """The highway's kernel [highway, S] and bias [S] fitted by ridge regression on the training
  windows (model.highway_init='ridge').

  It reads what the highway reads (`Forecaster.highway_design`: the last `highway` target
  inputs after the model's normalisation) and fits what the highway must add for the model,
  with a silent network, to forecast the scaled targets: (target - offset) / scale. A backtest
  built on its first fold (`rnnjax.backtest`) starts every fold from that fold's fit.
  """
  starts = np.asarray(data.train_starts)
  if len(starts) > RIDGE_WINDOWS:
    starts = starts[np.linspace(0, len(starts) - 1, RIDGE_WINDOWS).round().astype(int)]
  x_BWF, y_BS = windows.gather_windows(data.scaled_TF, starts, data.window, data.steps)
  future = windows.gather_future(data.scaled_TF, starts, data.window, data.steps,
                                 model.num_known)
  inputs, offset, scale = (np.asarray(a, np.float64) for a in model.apply(
      {}, jnp.asarray(x_BWF), None if future is None else jnp.asarray(future),
      method=models.Forecaster.highway_design))
  fit = linear_model.Ridge(alpha=RIDGE_ALPHA).fit(inputs, (y_BS - offset) / scale)
  kernel = np.asarray(fit.coef_, np.float32).reshape(y_BS.shape[1], -1).T
  bias = np.asarray(fit.intercept_, np.float32).reshape(y_BS.shape[1])
  return {'kernel': jnp.asarray(kernel), 'bias': jnp.asarray(bias)}


def naive_spread(config, data: dataset_lib.Dataset) -> float:
  """Standard deviation of the seasonal-naive forecast's errors over the training windows and
  steps, in scaled units: where a probabilistic head's spread starts (`models.Forecaster`).

  Windows whose seasonal value lies before their series' start are left out; with none left,
  the training targets' own standard deviation.
  """
  scaled = data.scaled_TF[:, 0].astype(np.float64)
  positions = data.target_positions(data.train_starts)
  back = positions - config_lib.seasonal_lag(config.data.season, np.asarray(data.steps))
  valid = back >= data.bounds[data.series_index(data.train_starts)][:, None]
  if valid.any():
    spread = np.std((scaled[positions] - scaled[np.maximum(back, 0)])[valid])
  else:
    spread = np.std(scaled[positions])
  return float(max(spread, 2 * models.SCALE_FLOOR))
