"""The linear baseline: a ridge regression on the model's own inputs, fitted on the training
windows (`fit_linear`), and its forecasts of any windows in the series' units (`linear_forecast`).

`rnnjax.metrics` holds every forecast against it, next to the naive baselines.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where it fits: scikit-learn is slow to import (scaling.py)
  from sklearn import linear_model

from rnnjax import dataset as dataset_lib
from rnnjax import windows


# The linear baseline is fitted on at most this many training windows, evenly spaced over them
# (every series, every season), so that a long panel costs no more than a year of hourly data:
# milliseconds for a window of 24 values (docs/benchmarks.md, "The linear baseline's fit").
LINEAR_FIT_WINDOWS = 20_000
# Its ridge penalty, in scaled units: light against the thousands of windows it is fitted on
# (close to least squares), enough to settle inputs that are exactly collinear (a calendar
# column over the window, a constant column). A fixed value: cross-validating it costs several
# fits.
LINEAR_ALPHA = 0.1
# Windows forecast per call: bounds the design matrix of a large validation part.
_LINEAR_CHUNK = 20_000


@dataclasses.dataclass(frozen=True)
class LinearBaseline:
  """A ridge regression fitted on a dataset's training windows (`fit_linear`).

  Attributes:
    ridge: scikit-learn's fitted Ridge, from `linear_design`'s rows to the [N, S] changes of
      the scaled target from the window's last value.
    fit_windows: the training windows it was fitted on (at most LINEAR_FIT_WINDOWS).
  """
  ridge: linear_model.Ridge
  fit_windows: int


def linear_design(data: dataset_lib.Dataset, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The linear baseline's inputs: what the model reads, as one row per window.

  Args:
    data: the dataset.
    starts: [N] window starts.

  Returns:
    (design_NI float64 [N, I], I = W * F + S * K: the window of every one of the F columns of
     `data.scaled_TF` (target, features, calendar), flattened time-major, then the K =
     `data.num_known` known-future inputs at each of the S target times; last_N1 float64
     [N, 1]: the window's last scaled target value.)
  """
  starts_N = np.asarray(starts)
  x_NWF, _ = windows.gather_windows(data.scaled_TF, starts_N, data.window, data.steps)
  future_NSK = windows.gather_future(data.scaled_TF, starts_N, data.window, data.steps,
                                     data.num_known)
  parts = [x_NWF.reshape(len(starts_N), -1)]
  if future_NSK is not None:
    parts.append(future_NSK.reshape(len(starts_N), -1))
  design_NI = np.concatenate(parts, axis=1).astype(np.float64)
  return design_NI, x_NWF[:, -1:, 0].astype(np.float64)


def fit_linear(data: dataset_lib.Dataset, train_starts: np.ndarray | None = None,
               max_windows: int = LINEAR_FIT_WINDOWS) -> LinearBaseline:
  """Fits the linear baseline: ridge (alpha LINEAR_ALPHA) on the training windows alone.

  Inputs are `linear_design`'s, the model's own; outputs are every target step at once, the
  scaled target the model is trained on minus the window's last scaled target value. With zero
  coefficients it is then persistence (plus the mean change), and the penalty pulls towards it;
  the last value is also an input, so any linear function of the window (a mean the series
  reverts to, a seasonal lag) stays expressible. With more than `max_windows` training windows
  it is fitted on `max_windows` of them, evenly spaced (no randomness): a year of hourly data
  is fitted whole.

  Args:
    data: the dataset; one ridge serves all its series, in scaled units, as the model does.
    train_starts: [N_train] windows to fit on; None is `data.train_starts`.
    max_windows: the most windows it is fitted on.

  Returns:
    The fit, for `linear_forecast` of any windows (validation, test, a backtest fold's).
  """
  starts_N = np.asarray(data.train_starts if train_starts is None else train_starts)
  if len(starts_N) > max_windows:
    starts_N = starts_N[np.linspace(0, len(starts_N) - 1, max_windows).round().astype(int)]
  design_NI, last_N1 = linear_design(data, starts_N)
  change_NS = data.scaled_TF[data.target_positions(starts_N), 0].astype(np.float64) - last_N1
  from sklearn import linear_model  # pylint: disable=import-outside-toplevel,redefined-outer-name
  ridge = linear_model.Ridge(alpha=LINEAR_ALPHA).fit(design_NI, change_NS)
  return LinearBaseline(ridge=ridge, fit_windows=len(starts_N))


def linear_forecast(data: dataset_lib.Dataset, starts: np.ndarray,
                    linear: LinearBaseline) -> np.ndarray:
  """[N, S] the linear baseline's forecasts of the windows at `starts`, in the series' units
  (each window unscaled by its own series' target scaler)."""
  starts_N = np.asarray(starts)
  scaled_NS = np.empty((len(starts_N), len(data.steps)))
  for i in range(0, len(starts_N), _LINEAR_CHUNK):
    chunk_N = starts_N[i:i + _LINEAR_CHUNK]
    design_NI, last_N1 = linear_design(data, chunk_N)
    scaled_NS[i:i + len(chunk_N)] = (linear.ridge.predict(design_NI).reshape(len(chunk_N), -1)
                                     + last_N1)
  return data.unscale_target(scaled_NS, starts_N)
