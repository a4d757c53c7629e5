"""`Dataset`: one or several scaled series laid end to end, with their window starts per part
(training, validation, test), their scalers, and the unscaling of forecasts back to each
series' own units. `rnnjax.data.prepare` makes one from a config.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from rnnjax import config as config_lib
from rnnjax.chunked import series_rows
from rnnjax.scaling import unscale_distribution
from rnnjax.windows import target_positions


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One or several scaled series laid end to end, with their window indices.

  Several series (data.id_column) are concatenated along time; series i holds the points
  `bounds[i]:bounds[i + 1]`. A window is a start index into the whole array and never crosses
  a series boundary, so memory is O(total points) and one gather serves every series.

  Attributes:
    timestamps: [T] time of each point.
    values_TF: [T, len(columns)] raw values in the series' own units; column 0 is the target.
    scaled_TF: [T, F] float32, the model's inputs (`rnnjax.inputs.model_inputs`): the raw
      columns scaled (each series by its own scaler) with the lag columns before the future
      features, then 2 per calendar input (sin and cos, unscaled).
    columns: F column names: the target, past-only features, then future features.
    window: inputs per sample.
    horizon: steps from the last input to the (last) target.
    steps: [S] steps after the last input of each target: (horizon,) or (1, ..., horizon).
    train_starts: [N_train] window starts used for training (series by series, in time order).
    val_starts: [N_val] window starts used for validation: the last windows of each series
      before its test part.
    test_starts: [N_test] window starts of the test part (data.test_fraction): windows whose
      targets all lie in each series' last points, scored once at the end; empty without one.
    scalers: per series, the sklearn scaler fit on its training part of all F columns.
    target_scalers: per series, the same kind of scaler fit on the target column alone.
    calendar: calendar input names (rnnjax.config.CALENDAR).
    series_ids: the id of each series ('' for one series without data.id_column).
    bounds: [R + 1] int, where each series starts in the arrays above, then T.
    num_future: trailing columns of `columns` that are known-future features.
    multi_step: one target per step 1..horizon (data.multi_step).
    lags: data.lags as resolved (never 'auto'); their columns follow `rnnjax.config.split_lags`.
  """
  timestamps: pd.DatetimeIndex
  values_TF: np.ndarray
  scaled_TF: np.ndarray
  columns: tuple[str, ...]
  window: int
  horizon: int
  train_starts: np.ndarray
  val_starts: np.ndarray
  scalers: tuple
  target_scalers: tuple
  calendar: tuple[str, ...] = ()
  steps: tuple[int, ...] = ()
  series_ids: tuple[str, ...] = ('',)
  bounds: np.ndarray | None = None
  num_future: int = 0
  multi_step: bool = False
  lags: tuple[int, ...] = ()
  test_starts: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros(0, np.int32))

  def __post_init__(self):
    if not self.steps:
      object.__setattr__(self, 'steps', (self.horizon,))
    if self.bounds is None:
      object.__setattr__(self, 'bounds', np.array([0, len(self.values_TF)]))

  @property
  def num_features(self) -> int:
    return self.scaled_TF.shape[1]

  @property
  def num_known(self) -> int:
    """Known-future input columns at the end of scaled_TF: known lags, future features, then
    calendar."""
    return len(self.known_lags) + self.num_future + 2 * len(self.calendar)

  @property
  def known_lags(self) -> tuple[int, ...]:
    """The lags read at the target times too (`rnnjax.config.split_lags`)."""
    return config_lib.split_lags(self.lags, self.steps)[1]

  @property
  def scaler(self):
    """The one series' scaler (use `scalers` when there are several)."""
    (scaler,) = self.scalers
    return scaler

  @property
  def target_scaler(self):
    (scaler,) = self.target_scalers
    return scaler

  @property
  def parts(self) -> dict[str, np.ndarray]:
    """{'train': [N_train], 'val': [N_val]} window starts, and 'test': [N_test] when the
    dataset has a test part, in that order."""
    parts = {'train': self.train_starts, 'val': self.val_starts}
    if len(self.test_starts):
      parts['test'] = self.test_starts
    return parts

  def series_index(self, starts: np.ndarray) -> np.ndarray:
    """[N] index (into series_ids) of the series each window start (starts [N]) lies in."""
    return np.searchsorted(self.bounds, np.asarray(starts), side='right') - 1

  def target_positions(self, starts: np.ndarray) -> np.ndarray:
    """[N, S] index into the series of each window's targets."""
    return target_positions(np.asarray(starts), self.window, self.steps)

  def targets(self, starts: np.ndarray) -> np.ndarray:
    """[N, S] raw target values (series' own units) of the given windows."""
    return self.values_TF[self.target_positions(starts), 0]

  def unscale_target(self, y_scaled, starts: np.ndarray | None = None) -> np.ndarray:
    """Scaled target values back to the series' own units.

    Args:
      y_scaled: any shape for one series; with several, [..., N, S] forecasts of the windows
        at `starts` (each unscaled by its own series' scaler).
      starts: [N] window starts; needed when there are several series.
    """
    y = np.asarray(y_scaled, dtype=np.float64)
    if len(self.target_scalers) == 1:
      return self.target_scalers[0].inverse_transform(y.reshape(-1, 1)).reshape(y.shape)
    if starts is None:
      raise ValueError('unscale_target needs the window starts when there are several series')
    out = np.empty_like(y)
    for i, rows in series_rows(self.series_index(starts)):  # O(N), not a mask per series
      part = y[..., rows, :]
      out[..., rows, :] = self.target_scalers[i].inverse_transform(
          part.reshape(-1, 1)).reshape(part.shape)
    return out

  def unscale_distribution(self, forecast, head: str,
                           starts: np.ndarray | None = None) -> np.ndarray:
    """A head's scaled forecasts of the windows at `starts` in the series' own units.

    Each window is unscaled by its own series' target scaler, as `unscale_distribution`
    (module level) says: values and quantiles as values, a gaussian scale by the unit only.

    Args:
      forecast: [..., N, S] (point), [..., N, S, Q] (quantile) or [..., N, S, 2] (gaussian).
      head: 'point', 'quantile' or 'gaussian'.
      starts: [N] window starts; needed when there are several series.

    Returns:
      float64, the shape of `forecast`.
    """
    y = np.asarray(forecast, dtype=np.float64)
    if head == 'point':
      return self.unscale_target(y, starts)
    if len(self.target_scalers) == 1:
      return unscale_distribution(y, head, self.target_scalers[0])
    if starts is None:
      raise ValueError('unscale_distribution needs the window starts when there are several '
                       'series')
    which_N = self.series_index(starts)
    if y.ndim < 3 or y.shape[-3] != len(which_N):
      raise ValueError(f'{head} forecasts of shape {y.shape} for {len(which_N)} windows: '
                       'expected [..., N, S, Q or 2]')
    out = np.empty_like(y)
    for i, rows in series_rows(which_N):
      out[..., rows, :, :] = unscale_distribution(y[..., rows, :, :], head,
                                                  self.target_scalers[i])
    return out
