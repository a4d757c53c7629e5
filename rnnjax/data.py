"""Windows and their targets, the chronological split, per-series scaling, calendar inputs.

The series come from `rnnjax.sources` (synthetic, CSV, long-format CSV).

Windows are never stored. A window is a start index `s` into the series; sample `s` reads the
inputs `series[s : s + window]` and the target `series[s + window - 1 + horizon]`, so `horizon=1`
is the next step; with data.multi_step, the targets `series[s + window : s + window + horizon]`.
Several series (data.id_column) lie end to end in one array, and no window crosses from one
into the next. The tutorial's `adelanto_prediccion=12` puts its target 13 steps after the last
input: `horizon=13` here.

With data.lags, the model also reads the target L steps before each input: one more column of
the model's inputs per lag (`model_inputs`), and windows start max(lags) points into each
series. data.lags='auto' and data.season='auto' are resolved from the loaded series
(`resolve_lags`, `resolved_config`) with the seasons of their time step (`STEP_SEASONS`).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
from sklearn import preprocessing

from rnnjax import config as config_lib
from rnnjax import sources
from rnnjax.errors import UserError
from rnnjax.sources import Series

SCALERS = {'minmax': preprocessing.MinMaxScaler, 'standard': preprocessing.StandardScaler}


class Seasons(NamedTuple):
  """The seasons of a time step, in steps: what data.season='auto' picks from, and the lags
  data.lags='auto' reads."""
  seasons: tuple[int, ...]
  lags: tuple[int, ...]


# Per time step (`step_name`): a day and a week for steps within a day (lags: a day, two days,
# a week); a week and a year for days (lags: one to four weeks and 52 weeks, which keeps the
# weekday); a year for weeks, months and quarters (weeks: also four weeks back).
STEP_SEASONS = {
    '10min': Seasons(seasons=(144, 1008), lags=(144, 288, 1008)),
    '15min': Seasons(seasons=(96, 672), lags=(96, 192, 672)),
    '30min': Seasons(seasons=(48, 336), lags=(48, 96, 336)),
    'hour': Seasons(seasons=(24, 168), lags=(24, 48, 168)),
    'day': Seasons(seasons=(7, 365), lags=(7, 14, 28, 364)),
    'week': Seasons(seasons=(52,), lags=(4, 52)),
    'month': Seasons(seasons=(12,), lags=(12,)),
    'quarter': Seasons(seasons=(4,), lags=(4,)),
}
_FIXED_STEPS = {pd.Timedelta(minutes=10): '10min', pd.Timedelta(minutes=15): '15min',
                pd.Timedelta(minutes=30): '30min', pd.Timedelta(hours=1): 'hour',
                pd.Timedelta(days=1): 'day', pd.Timedelta(days=7): 'week'}
# data.lags='auto' keeps a lag only while the windows it leaves a series are at least this share
# of the windows the series has without lags: a year's lag on a year and a half of days would
# train on a third of them.
AUTO_LAG_SHARE = 0.5


def calendar_features(times: pd.DatetimeIndex, names: Sequence[str]) -> np.ndarray:
  """Each calendar input of `names` as a (sin, cos) pair of its phase, from the timestamps.

  hour_of_day: hour + minutes within the day / 24; day_of_week: Monday 0, plus the fraction of
  the day, / 7; day_of_year: (day - 1 + fraction of the day) / 365.25; month: (month - 1) / 12.
  Timestamps with a zone (read from offsets) are in UTC, so their hours are UTC hours.

  Args:
    times: [T] timestamps.
    names: calendar inputs, from rnnjax.config.CALENDAR.

  Returns:
    float32 [T, 2 * len(names)]: sin and cos of each input's phase, in the order of `names`.
  """
  times = pd.DatetimeIndex(times)
  day_fraction = (times.hour + times.minute / 60.0 + times.second / 3600.0) / 24.0
  phases = {
      'hour_of_day': day_fraction,
      'day_of_week': (times.day_of_week + day_fraction) / 7.0,
      'day_of_year': (times.day_of_year - 1 + day_fraction) / 365.25,
      'month': (times.month - 1) / 12.0,
  }
  columns = []
  for name in names:
    angle = 2.0 * np.pi * np.asarray(phases[name], np.float64)
    columns += [np.sin(angle), np.cos(angle)]
  return np.stack(columns, axis=1).astype(np.float32) if columns else np.zeros(
      (len(times), 0), np.float32)


def model_inputs(scaled_TF: np.ndarray, times: pd.DatetimeIndex, calendar: Sequence[str],
                 lags: Sequence[int] = (), num_future: int = 0) -> np.ndarray:
  """The series the model reads, one series at a time.

  Column layout: the target and the past-only features, then one column per lag, then the
  future features, then the calendar inputs (not scaled). The model treats the trailing
  columns as known-future inputs (`Dataset.num_known`): future features, calendar, and the lags
  `rnnjax.config.split_lags` calls known, which come last among the lags, so the known block is
  [known lags, future features, calendar] and the past-only lags sit just before it.

  Args:
    scaled_TF: [T, F] scaled values: the target, past-only features, then `num_future` future
      features.
    times: [T] their timestamps.
    calendar: calendar input names.
    lags: steps back of each lag column, in column order (past-only, then known).
    num_future: trailing columns of `scaled_TF` that are future features.

  Returns:
    float32 [T, F + len(lags) + 2 * len(calendar)].

  Raises:
    UserError: a scaled value is not finite (`check_scaled`).
  """
  check_scaled(scaled_TF, times)
  if not calendar and not len(lags):
    return scaled_TF
  n = scaled_TF.shape[1] - num_future
  return np.concatenate([scaled_TF[:, :n], lagged_targets(scaled_TF[:, 0], lags),
                         scaled_TF[:, n:], calendar_features(times, calendar)], axis=1)


def lagged_targets(target_T: np.ndarray, lags: Sequence[int]) -> np.ndarray:
  """The target shifted back by each lag within one series: column j at row t holds
  target[t - lags[j]].

  Memory is O(T * number of lags), whatever the lags' size. The first lags[j] rows have no
  value that far back; they hold the series' first value, and no window reads them (windows
  start max(lags) points into a series, `window_starts`).

  Args:
    target_T: [T] one series' scaled target.
    lags: steps back, positive.

  Returns:
    [T, len(lags)], the dtype of `target_T`.
  """
  n = len(target_T)
  out = np.empty((n, len(lags)), target_T.dtype)
  for j, lag in enumerate(lags):
    back = min(int(lag), n)
    out[:back, j] = target_T[0] if n else 0
    out[back:, j] = target_T[:n - back]
  return out


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
    values_TF: [T, F] the series' raw values.
    times: [T] their timestamps.
    columns: F column names.
    fit_end: points the scaler was fitted on.
    name: the series' id, for the message.

  Raises:
    UserError: naming the column and the time of its largest value in the fitted part.
  """
  fitted = {k: np.asarray(v, np.float64) for k, v in vars(scaler).items()
            if k.endswith('_') and np.ndim(v) == 1}
  for key, param in fitted.items():
    bad = np.flatnonzero(~np.isfinite(param))
    if len(bad):
      j = int(bad[0])
      row = int(np.argmax(np.abs(values_TF[:fit_end, j])))
      raise UserError(f'{_series(name)}column {columns[j]!r} cannot be scaled: its value '
                      f'{values_TF[row, j]:g} at {times[row]} makes the fitted '
                      f'{type(scaler).__name__}\'s {key} {param[j]:g}. {_TOO_LARGE}')


def check_scaled(scaled_TF: np.ndarray, times: pd.DatetimeIndex,
                 columns: Sequence[str] | None = None, values_TF: np.ndarray | None = None,
                 name: str = '') -> None:
  """Refuses scaled values that are not finite, naming the first one's column and time.

  A finite value far outside the training range scales past float32's 3.4e38 to inf.

  Args:
    scaled_TF: [T, F'] scaled values (F' >= F: calendar inputs may follow).
    times: [T] their timestamps.
    columns: the names of the first F columns; None names them by position.
    values_TF: [T, F] the raw values, shown when given.
    name: the series' id, for the message.
  """
  bad = ~np.isfinite(scaled_TF)
  if not bad.any():
    return
  row, j = (int(i) for i in np.argwhere(bad)[0])
  if columns is not None and j < len(columns):
    column = f'column {columns[j]!r}'
  else:
    column = 'the target column' if j == 0 else f'input column {j}'
  raw = f'its value {values_TF[row, j]:g}' if values_TF is not None else 'its value'
  raise UserError(f'{_series(name)}{column} cannot be scaled: {raw} at {times[row]} scales to '
                  f'{scaled_TF[row, j]} ({bad.sum()} values in all do not scale to a finite '
                  f'number). {_TOO_LARGE}')


def _series(name: str) -> str:
  return f'series {name!r}: ' if name else ''


def target_offset(window: int, horizon: int) -> int:
  """Steps from a window's start to its target: the one place that defines a sample's target.

  Sample `s` reads inputs `series[s : s + window]` and its target `series[s + target_offset]`,
  `horizon` steps after the last input.
  """
  return window - 1 + horizon


def window_starts(n_points: int, window: int, horizon: int, first: int = 0) -> np.ndarray:
  """Start index of every complete (window, target) pair.

  Args:
    n_points: length of the series.
    window: inputs per sample.
    horizon: steps from the last input to the target (1 = next step).
    first: the earliest start: max(data.lags), so that every lag an input reads lies in the
      series.

  Returns:
    int32 array [n_samples]; sample i uses x[s:s+window] and y[s+window-1+horizon].
  """
  return np.arange(first, max(n_points - window - horizon + 1, first), dtype=np.int32)


def split_starts(starts: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
  """Chronological split: the first floor(n * (1 - val_fraction)) windows train, the rest validate."""
  n_train = math.floor(len(starts) * (1.0 - val_fraction))
  return starts[:n_train], starts[n_train:]


def test_boundary(n_points: int, test_fraction: float) -> int:
  """Index of a series' first test point: its last floor(test_fraction * n_points) points are
  the test part (none for 0)."""
  return n_points - math.floor(test_fraction * n_points)


def part_starts(n_points: int, window: int, horizon: int, val_fraction: float,
                test_fraction: float = 0.0, first_step: int | None = None,
                first: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The training, validation and test windows of one series of `n_points` points.

  A window whose targets all lie in the test part (`test_boundary`) is a test window; the
  windows whose targets all lie before it are split chronologically by `split_starts`; a
  window with targets on both sides (multi-step targets across the boundary) is in no part.

  Args:
    n_points: length of the series.
    window, horizon, first: as `window_starts`.
    val_fraction: share of the windows before the test part that validate.
    test_fraction: share of the points that are the test part.
    first_step: steps from the last input to the first target (1 with data.multi_step);
      None is `horizon`, a single target.

  Returns:
    int32 ([N_train], [N_val], [N_test]) window starts, in time order.
  """
  starts = window_starts(n_points, window, horizon, first)
  boundary = test_boundary(n_points, test_fraction)
  first_target = starts + window - 1 + (horizon if first_step is None else first_step)
  last_target = starts + window - 1 + horizon
  train, val = split_starts(starts[last_target < boundary], val_fraction)
  return train, val, starts[first_target >= boundary]


def gather_windows(series_TF, starts_B, window: int, steps, target_index: int = 0):
  """Gathers windows from a series by start index; works on NumPy and JAX arrays alike.

  Args:
    series_TF: [T, F] series.
    starts_B: [B] int start indices.
    window: inputs per sample.
    steps: steps from the last input to each target: an int (the horizon, one target) or a
      sequence of S ints (e.g. 1..horizon for multi-step forecasts).
    target_index: feature column that holds the target.

  Returns:
    (x_BWF [B, window, F], y_BS [B, S]).
  """
  offsets = np.arange(window, dtype=np.int32)
  x_BWF = series_TF[starts_B[:, None] + offsets[None, :]]
  y_BS = series_TF[target_positions(starts_B, window, steps), target_index]
  return x_BWF, y_BS


def target_positions(starts_B, window: int, steps):
  """[B, S] positions of each window's targets, `steps` (an int or S ints) after its last
  input; NumPy or JAX alike."""
  steps_S = np.atleast_1d(np.asarray(steps, np.int32))
  return starts_B[:, None] + (window - 1 + steps_S)[None, :]


def gather_future(series_TF, starts_B, window: int, steps, num_known: int):
  """The known-in-advance inputs (the last `num_known` columns) at each window's target times.

  Returns:
    [B, S, num_known], or None when `num_known` is 0.
  """
  if not num_known:
    return None
  return series_TF[target_positions(starts_B, window, steps)][..., -num_known:]


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One or several scaled series laid end to end, with their window indices.

  Several series (data.id_column) are concatenated along time; series i holds the points
  `bounds[i]:bounds[i + 1]`. A window is a start index into the whole array and never crosses
  a series boundary, so memory is O(total points) and one gather serves every series.

  Attributes:
    timestamps: [T] time of each point.
    values_TF: [T, F] raw values in the series' own units; column 0 is the target.
    scaled_TF: [T, F + L + K] float32, the model's inputs (`model_inputs`): the F columns
      scaled (each series by its own scaler) with the L lag columns before the future features,
      then K = 2 per calendar input (sin and cos, unscaled).
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
    bounds: [num_series + 1] int, where each series starts in the arrays above, then T.
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
    """[N] index (into series_ids) of the series each window start lies in."""
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
    which = self.series_index(starts)
    for i in np.unique(which):
      part = y[..., which == i, :]
      out[..., which == i, :] = self.target_scalers[i].inverse_transform(
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
    which = self.series_index(starts)
    if y.ndim < 3 or y.shape[-3] != len(which):
      raise ValueError(f'{head} forecasts of shape {y.shape} for {len(which)} windows: expected '
                       '[..., N, S, Q or 2]')
    out = np.empty_like(y)
    for i in np.unique(which):
      out[..., which == i, :, :] = unscale_distribution(y[..., which == i, :, :], head,
                                                        self.target_scalers[i])
    return out


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


def make_scaler(name: str):
  if name not in SCALERS:
    raise UserError(f'data.scaler={name!r} is not one of {sorted(SCALERS)}.')
  return SCALERS[name]()


def series_from_config(data_config) -> list[Series]:
  """Loads the raw series a config names, each with values in `input_columns` order."""
  columns = input_columns(data_config)
  if data_config.source == 'synthetic':
    s = data_config.synthetic
    if s.num_days <= 0:
      raise UserError(f'data.synthetic.num_days must be > 0, got {s.num_days}.')
    if len(columns) != 1:
      raise UserError('the synthetic series has one column; leave data.features empty.')
    times, values = sources.synthetic_series(s.num_days, s.slope, s.amplitude, s.noise, s.start)
    return [Series('', times, values[:, None], pd.DataFrame())]
  if data_config.source == 'csv':
    return sources.load_series(data_config.path, data_config.time_column, columns,
                               data_config.fill, data_config.id_column,
                               tuple(data_config.future_features),
                               time_unit=data_config.time_unit, dayfirst=data_config.dayfirst,
                               max_fill_fraction=data_config.max_fill_fraction)
  raise UserError(f'data.source={data_config.source!r} is not "synthetic" or "csv".')


def input_columns(data_config) -> tuple[str, ...]:
  """The target first, then the past-only features, then the known-future features."""
  future = tuple(data_config.future_features or ())
  extra = [f for f in (data_config.features or ()) if f != data_config.target and f not in future]
  return (data_config.target, *extra, *future)


def _window_counts(n_points: int, window: int, horizon: int, val_fraction: float,
                   first: int = 0, test_fraction: float = 0.0,
                   first_step: int | None = None) -> tuple[int, int, int]:
  """(training, validation, test) windows of a series of `n_points` points (`part_starts`)."""
  return tuple(len(part) for part in part_starts(n_points, window, horizon, val_fraction,
                                                 test_fraction, first_step, first))


def _enough(counts: tuple[int, int, int], test_fraction: float) -> bool:
  """Whether window counts hold a training and a validation window, and a test window when
  `test_fraction` > 0."""
  return counts[0] > 0 and counts[1] > 0 and (test_fraction == 0 or counts[2] > 0)


def check_lengths(n_points: int, window: int, horizon: int, val_fraction: float,
                  name: str = '', first: int = 0, test_fraction: float = 0.0,
                  first_step: int | None = None) -> None:
  """Raises UserError unless the series yields at least one training and one validation window,
  each starting `first` (max(data.lags)) or more points into it, and one test window when
  `test_fraction` > 0 (`part_starts`)."""
  for key, value in (('data.window', window), ('data.horizon', horizon)):
    if not isinstance(value, (int, np.integer)) or value <= 0:
      raise UserError(f'{key} must be a positive integer, got {value!r}.')
  if not 0.0 < val_fraction < 1.0:
    raise UserError(f'data.val_fraction must be between 0 and 1 (exclusive), got {val_fraction}.')
  test = {'test_fraction': test_fraction, 'first_step': first_step}
  counts = _window_counts(n_points, window, horizon, val_fraction, first, **test)
  if _enough(counts, test_fraction):
    return
  n_train, n_val, n_test = counts
  series = f'series {name!r}' if name else 'the series'
  left = (f'{n_train} training, {n_val} validation and {n_test} test windows' if test_fraction
          else f'{n_train} training and {n_val} validation windows')
  split = f'window={window}, horizon={horizon}, val_fraction={val_fraction}' + (
      f', test_fraction={test_fraction}' if test_fraction else '')

  def fewest(lag: int) -> int:
    return next(n for n in range(n_points + 1, 10**8) if _enough(
        _window_counts(n, window, horizon, val_fraction, lag, **test), test_fraction))

  if first and _enough(_window_counts(n_points, window, horizon, val_fraction, 0, **test),
                       test_fraction):
    longest = next((lag for lag in range(first - 1, 0, -1) if _enough(
        _window_counts(n_points, window, horizon, val_fraction, lag, **test), test_fraction)),
                   0)
    shorter = f'lags of at most {longest} steps' if longest > 0 else 'no data.lags'
    raise UserError(
        f'{series} has {n_points} points, too short for data.lags reaching {first} steps back: '
        f'its windows start {first} points in, which leaves {left} ({split}). '
        f'Use {shorter}, or a series of at least {fewest(first)} points.')
  test_text = ''
  if test_fraction > 0:
    test_text = (f'; data.test_fraction={test_fraction} keeps its last '
                 f'{n_points - test_boundary(n_points, test_fraction)} points for the test part')
  raise UserError(
      f'{series} has {n_points} points, too short for {split}{test_text}: that leaves {left}. '
      f'Use a series of at least {fewest(first)} points, a smaller window/horizon'
      + (' or a smaller data.test_fraction.' if test_fraction > 0 else '.'))


def _test_args(data_config) -> dict:
  """check_lengths' and part_starts' test_fraction and first_step from a data config."""
  return {'test_fraction': float(data_config.get('test_fraction', 0.0)),
          'first_step': min(config_lib.target_steps(data_config))}


def _explicit_first(data_config) -> int:
  """max(data.lags) when they are given; 0 for 'auto', resolved to what the series hold."""
  lags = data_config.lags
  return 0 if lags == config_lib.AUTO else max(lags, default=0)


def prepare(data_config, times=None, values_TF=None, columns=None) -> Dataset:
  """Loads (unless given), splits and scales the series as `data_config` says.

  Each series' scaler is fit on the points its training windows touch (inputs and targets),
  never on its validation or test part, so no range beyond training leaks into it. With several
  series, one too short for a training and a validation window (and a test window, with
  data.test_fraction) is skipped with a warning.
  data.lags='auto' is resolved here (`resolve_lags`); the Dataset records the lags read.

  Args:
    data_config: the config's data section.
    times, values_TF, columns: one series given directly ([T], [T, F], F names) instead of the
      one the config names.
  """
  if values_TF is None:
    series = load(data_config)
    columns = input_columns(data_config)
  else:
    series = [Series('', pd.DatetimeIndex(times), np.asarray(values_TF), pd.DataFrame())]
    check_lengths(len(series[0].values_TF), data_config.window, data_config.horizon,
                  data_config.val_fraction, first=_explicit_first(data_config),
                  **_test_args(data_config))
  if data_config.lags == config_lib.AUTO:
    data_config = config_lib.replaced(data_config, lags=resolve_lags(data_config, series))
  return assemble(data_config, series, columns)


def load(data_config) -> list[Series]:
  """The series `data_config` names, each long enough for a training and a validation window
  (after the points its data.lags read back).

  With several series (data.id_column), one too short is left out with a warning; a single
  series too short is an error.
  """
  series = series_from_config(data_config)
  window, horizon, fraction = data_config.window, data_config.horizon, data_config.val_fraction
  first = _explicit_first(data_config)
  test = _test_args(data_config)
  if not data_config.id_column:
    check_lengths(len(series[0].values_TF), window, horizon, fraction, first=first, **test)
    return series
  kept = []
  for one in series:
    try:
      check_lengths(len(one.values_TF), window, horizon, fraction, one.name, first, **test)
      kept.append(one)
    except UserError as e:
      logging.warning('%s It is left out of this run.', e)
  if not kept:
    lags = f', data.lags={tuple(data_config.lags)}' if first else ''
    test_fraction = test['test_fraction']
    parts = 'training, one validation and one test' if test_fraction else (
        'training and one validation')
    test_text = f', test_fraction={test_fraction}' if test_fraction else ''
    raise UserError(f'no series of {data_config.path!r} is long enough for one {parts} window '
                    f'(window={window}, horizon={horizon}, val_fraction={fraction}'
                    f'{test_text}{lags}); see the warnings above for each one.')
  return kept


def step_name(times: pd.DatetimeIndex) -> str | None:
  """The series' time step as a key of STEP_SEASONS ('hour', 'day', ...), None when it is none
  of them (or T < 2).

  A fixed step (10, 15 or 30 minutes, an hour, a day, a week) is the most common difference
  between timestamps (`rnnjax.sources.infer_step`); months and quarters, whose length varies,
  are pandas' inferred frequency.
  """
  times = pd.DatetimeIndex(times)
  if len(times) < 2:
    return None
  deltas = times[1:] - times[:-1]
  if (deltas == deltas[0]).all():
    return _FIXED_STEPS.get(pd.Timedelta(deltas[0]))
  inferred = pd.DatetimeIndex(times, freq='infer').freq if len(times) >= 3 else None
  code = inferred.rule_code if inferred is not None and inferred.n == 1 else ''
  if code.startswith('W'):
    return 'week'
  if code.split('-')[0] in ('M', 'MS', 'ME'):
    return 'month'
  if code.split('-')[0] in ('Q', 'QS', 'QE'):
    return 'quarter'
  return None


def _seasons_of(times_by_series: Sequence[pd.DatetimeIndex], key: str) -> Seasons:
  """STEP_SEASONS' entry for the series' common time step.

  Raises:
    UserError: naming `key` ('data.lags' or 'data.season'), when a series steps by none of
      STEP_SEASONS' steps, or the series step by different ones.
  """
  names = [step_name(times) for times in times_by_series]
  known = ', '.join(STEP_SEASONS)
  example = ("--config.data.lags='(24,168)'" if key == 'data.lags'
             else '--config.data.season=24')
  if any(name is None for name in names):
    found = sources.infer_step(pd.DatetimeIndex(times_by_series[names.index(None)]))
    raise UserError(f"{key}='auto' picks from the seasons of the series' time step, but the "
                    f'series steps by {found}, which is none of the steps it knows ({known}). '
                    f'Give {key} explicitly, in steps, e.g. {example}.')
  if len(set(names)) > 1:
    raise UserError(f"{key}='auto' needs one time step for every series, but they step by "
                    f'{sorted(set(names))}. Give {key} explicitly, in steps, e.g. {example}.')
  return STEP_SEASONS[names[0]]


def resolve_lags(data_config, series: Sequence[Series]) -> tuple[int, ...]:
  """data.lags as read from the series: given lags as they are; 'auto' the lags of the series'
  time step (STEP_SEASONS) that every series can hold.

  A series holds a lag when the windows starting that far in are at least AUTO_LAG_SHARE of
  its windows without lags, and still give one training and one validation window. Lags it
  cannot hold are dropped, with a warning naming them and the lags read instead.

  Raises:
    UserError: 'auto' for series of a step STEP_SEASONS does not know (`_seasons_of`).
  """
  lags = data_config.lags
  if lags != config_lib.AUTO:
    return tuple(int(lag) for lag in lags)
  candidates = _seasons_of([one.times for one in series], 'data.lags').lags
  window, horizon, fraction = data_config.window, data_config.horizon, data_config.val_fraction
  test = _test_args(data_config)

  def holds(one: Series, lag: int) -> bool:
    n = len(one.values_TF)
    full = len(window_starts(n, window, horizon))
    return (len(window_starts(n, window, horizon, lag)) >= AUTO_LAG_SHARE * full
            and _enough(_window_counts(n, window, horizon, fraction, lag, **test),
                        test['test_fraction']))

  kept = tuple(lag for lag in candidates if all(holds(one, lag) for one in series))
  dropped = tuple(lag for lag in candidates if lag not in kept)
  if dropped:
    short = min(series, key=lambda one: len(one.values_TF))
    name = f'series {short.name!r}' if short.name else 'the series'
    logging.warning(
        "data.lags='auto' reads the lags %s at this time step, but %s has %d points: the lags "
        '%s would leave it less than %d%% of its windows (window=%d, horizon=%d), so they are '
        'left out and the run reads the lags %s. A longer series keeps them.', candidates,
        name, len(short.values_TF), dropped, round(AUTO_LAG_SHARE * 100), window, horizon,
        kept)
  return kept


def seasonal_naive_errors(data: Dataset, seasons: Sequence[int]) -> dict[int, float]:
  """Mean squared error, in scaled units, of each season's seasonal-naive forecast (the value
  `rnnjax.config.seasonal_lag` steps before each target, as `rnnjax.metrics`' baseline) on the
  training windows and steps.

  Every season is scored on the same windows: those whose seasonal values lie inside their
  series for every season scored. A season is left out when some series has no training window
  whose seasonal value lies inside it.

  Args:
    data: the dataset.
    seasons: candidate periods, in steps.

  Returns:
    {season: error} of the seasons scored, in the order of `seasons`.
  """
  target = np.asarray(data.scaled_TF[:, 0], np.float64)
  positions_NS = data.target_positions(data.train_starts)
  which = data.series_index(data.train_starts)
  starts_N1 = data.bounds[which][:, None]
  present = np.unique(which)
  inside = {}
  for season in seasons:
    back_NS = positions_NS - config_lib.seasonal_lag(season, np.asarray(data.steps))[None, :]
    ok_N = np.all(back_NS >= starts_N1, axis=1)
    if all(ok_N[which == i].any() for i in present):
      inside[season] = (ok_N, back_NS)
  if not inside:
    return {}
  common_N = np.logical_and.reduce([ok for ok, _ in inside.values()])
  truth = target[positions_NS[common_N]]
  return {season: float(np.mean((truth - target[back_NS[common_N]]) ** 2))
          for season, (_, back_NS) in inside.items()}


def auto_season(config, data: Dataset) -> int:
  """data.season='auto': among the seasons of the series' time step (STEP_SEASONS), the one
  whose seasonal-naive forecast errs least on the training windows (`seasonal_naive_errors`);
  with model.skip='seasonal_naive', only seasons whose skip value the window holds.

  Raises:
    UserError: a time step STEP_SEASONS does not know, or no season of it that the training
      windows can score (or, with the seasonal skip, that the window holds).
  """
  times = [data.timestamps[a:b] for a, b in zip(data.bounds[:-1], data.bounds[1:], strict=True)]
  candidates = _seasons_of(times, 'data.season').seasons
  window = data.window
  if config.model.skip == 'seasonal_naive':
    candidates = tuple(
        season for season in candidates
        if max(int(config_lib.seasonal_lag(season, h)) - h for h in data.steps) < window)
  errors = seasonal_naive_errors(data, candidates)
  if not errors:
    held = (f' that a window of data.window={window} holds for model.skip="seasonal_naive"'
            if config.model.skip == 'seasonal_naive' else '')
    raise UserError(f"data.season='auto' found no season among "
                    f'{_seasons_of(times, "data.season").seasons}{held} whose seasonal-naive '
                    'value lies inside the series for a training window. Give data.season '
                    'explicitly, e.g. --config.data.season=24, or use a longer series'
                    f'{" or a longer window" if held else ""}.')
  season = min(errors, key=errors.get)
  logging.info("data.season='auto': the seasonal-naive errors (MSE, scaled) on the training "
               'windows are %s; picked %d', errors, season)
  return season


def resolved_config(config, data: Dataset):
  """`config` with data.lags and data.season as read from `data`, never 'auto'.

  A run records this config (config.json, its checkpoints), so everything after it reads the
  values used: metrics and baselines, model.skip, backtests, and scripts/predict.py, which
  builds the same lag columns from a trained workdir. Running the same command again resolves
  the same values from the same data, so the workdir's config comparison finds no difference.

  Args:
    config: the whole config.
    data: the dataset `prepare` made of `config.data`.

  Returns:
    `config` itself when neither was 'auto', else a resolved copy.

  Raises:
    UserError: season 'auto' finds no season (`auto_season`).
  """
  d = config.data
  values = {}
  if d.lags == config_lib.AUTO:
    values['data.lags'] = tuple(data.lags)
  elif tuple(d.lags) != tuple(data.lags):
    raise ValueError(f'the dataset reads the lags {data.lags}, the config data.lags='
                     f'{tuple(d.lags)}: prepare the data from this config')
  if d.season == config_lib.AUTO:
    values['data.season'] = auto_season(config, data)
  return config_lib.replaced(config, **values) if values else config


def assemble(data_config, series: Sequence[Series], columns: Sequence[str],
             usable: Sequence[int] | None = None) -> Dataset:
  """Splits and scales loaded series and lays them end to end.

  Args:
    data_config: the config's data section, with data.lags resolved (`resolve_lags`).
    series: the series, each long enough (see `load`).
    columns: their F column names.
    usable: per series, how many of its first points the windows and the scalers may read
      (a backtest fold's data before its origin); None is every point. Points past it stay in
      the arrays, scaled by the same scalers, and belong to no window. A backtest fold has no
      test part of its own (its test windows lie past its origin): with `usable`,
      data.test_fraction is not applied.
  """
  if data_config.lags == config_lib.AUTO:
    raise ValueError("data.lags='auto' is resolved from the series first (resolve_lags)")
  window, horizon = data_config.window, data_config.horizon
  steps = config_lib.target_steps(data_config)
  lags = tuple(int(lag) for lag in data_config.lags)
  past, known = config_lib.split_lags(lags, steps)
  first = max(lags, default=0)
  num_future = len(data_config.future_features)
  test = _test_args(data_config)
  if usable is None:
    usable = [len(one.values_TF) for one in series]
  else:
    usable, test['test_fraction'] = list(usable), 0.0
  calendar = tuple(data_config.calendar)
  parts = {'scaled': [], 'train': [], 'val': [], 'test': [], 'scalers': [],
           'target_scalers': []}
  bounds = [0]
  for one, n_points in zip(series, usable, strict=True):
    train_starts, val_starts, test_starts = part_starts(
        n_points, window, horizon, data_config.val_fraction, first=first, **test)
    fit_end = int(train_starts[-1]) + target_offset(window, horizon) + 1  # past the last target
    # Overflow is checked for below, and named there: numpy's warnings would only add noise.
    with np.errstate(over='ignore', invalid='ignore'):
      scaler = make_scaler(data_config.scaler).fit(one.values_TF[:fit_end])
      target_scaler = make_scaler(data_config.scaler).fit(one.values_TF[:fit_end, :1])
      scaled_TF = scaler.transform(one.values_TF).astype(np.float32)
    for fitted in (scaler, target_scaler):
      check_scaler(fitted, one.values_TF, one.times, columns, fit_end, one.name)
    check_scaled(scaled_TF, one.times, columns, one.values_TF, one.name)
    parts['scaled'].append(model_inputs(scaled_TF, one.times, calendar, past + known,
                                        num_future))
    parts['train'].append(train_starts + bounds[-1])
    parts['val'].append(val_starts + bounds[-1])
    parts['test'].append(test_starts + bounds[-1])
    parts['scalers'].append(scaler)
    parts['target_scalers'].append(target_scaler)
    bounds.append(bounds[-1] + len(one.values_TF))
  join = np.concatenate
  times = series[0].times.append([one.times for one in series[1:]])
  return Dataset(timestamps=times, values_TF=join([one.values_TF for one in series]),
                 scaled_TF=join(parts['scaled']), columns=tuple(columns), window=window,
                 horizon=horizon, train_starts=join(parts['train']).astype(np.int32),
                 val_starts=join(parts['val']).astype(np.int32),
                 test_starts=join(parts['test']).astype(np.int32),
                 scalers=tuple(parts['scalers']), target_scalers=tuple(parts['target_scalers']),
                 calendar=calendar, steps=steps,
                 series_ids=tuple(one.name for one in series), bounds=np.array(bounds),
                 num_future=num_future, multi_step=bool(data_config.multi_step), lags=lags)


def scaler_state(scaler) -> dict:
  """A fitted sklearn scaler as JSON-able data: its kind, parameters and fitted attributes."""
  kind = next(k for k, cls in SCALERS.items() if type(scaler) is cls)
  fitted = {k: np.asarray(v).tolist() for k, v in vars(scaler).items() if k.endswith('_')}
  return {'kind': kind, 'params': scaler.get_params(), 'fitted': fitted}


def scaler_from_state(state: dict):
  """Rebuilds the scaler `scaler_state` described, ready to transform and inverse-transform."""
  scaler = make_scaler(state['kind']).set_params(**state['params'])
  for k, v in state['fitted'].items():
    setattr(scaler, k, np.asarray(v) if isinstance(v, list) else v)
  return scaler
