"""Windows and their targets, the chronological split, per-series scaling, calendar inputs.

The series come from `rnnjax.sources` (synthetic, CSV, long-format CSV).

Windows are never stored. A window is a start index `s` into the series; sample `s` reads the
inputs `series[s : s + window]` and the target `series[s + window - 1 + horizon]`, so `horizon=1`
is the next step; with data.multi_step, the targets `series[s + window : s + window + horizon]`.
Several series (data.id_column) lie end to end in one array, and no window crosses from one
into the next. The tutorial's `adelanto_prediccion=12` puts its target 13 steps after the last
input: `horizon=13` here.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn import preprocessing

from rnnjax import config as config_lib
from rnnjax import sources
from rnnjax.errors import UserError
from rnnjax.sources import Series

SCALERS = {'minmax': preprocessing.MinMaxScaler, 'standard': preprocessing.StandardScaler}


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


def model_inputs(scaled_TF: np.ndarray, times: pd.DatetimeIndex,
                 calendar: Sequence[str]) -> np.ndarray:
  """The series the model reads: the scaled columns, then the calendar inputs (not scaled).

  Args:
    scaled_TF: [T, F] scaled values.
    times: [T] their timestamps.
    calendar: calendar input names.

  Returns:
    float32 [T, F + 2 * len(calendar)].

  Raises:
    UserError: a scaled value is not finite (`check_scaled`).
  """
  check_scaled(scaled_TF, times)
  if not calendar:
    return scaled_TF
  return np.concatenate([scaled_TF, calendar_features(times, calendar)], axis=1)


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


def window_starts(n_points: int, window: int, horizon: int) -> np.ndarray:
  """Start index of every complete (window, target) pair.

  Args:
    n_points: length of the series.
    window: inputs per sample.
    horizon: steps from the last input to the target (1 = next step).

  Returns:
    int32 array [n_samples]; sample i uses x[s:s+window] and y[s+window-1+horizon].
  """
  return np.arange(max(n_points - window - horizon + 1, 0), dtype=np.int32)


def split_starts(starts: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
  """Chronological split: the first floor(n * (1 - val_fraction)) windows train, the rest validate."""
  n_train = math.floor(len(starts) * (1.0 - val_fraction))
  return starts[:n_train], starts[n_train:]


def test_boundary(n_points: int, test_fraction: float) -> int:
  """Index of a series' first test point: its last floor(test_fraction * n_points) points are
  the test part (none for 0)."""
  return n_points - math.floor(test_fraction * n_points)


def part_starts(n_points: int, window: int, horizon: int, val_fraction: float,
                test_fraction: float = 0.0,
                first_step: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The training, validation and test windows of one series of `n_points` points.

  A window whose targets all lie in the test part (`test_boundary`) is a test window; the
  windows whose targets all lie before it are split chronologically by `split_starts`; a
  window with targets on both sides (multi-step targets across the boundary) is in no part.

  Args:
    n_points: length of the series.
    window, horizon: as `window_starts`.
    val_fraction: share of the windows before the test part that validate.
    test_fraction: share of the points that are the test part.
    first_step: steps from the last input to the first target (1 with data.multi_step);
      None is `horizon`, a single target.

  Returns:
    int32 ([N_train], [N_val], [N_test]) window starts, in time order.
  """
  starts = window_starts(n_points, window, horizon)
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
    scaled_TF: [T, F + K] float32, the model's inputs: the F columns scaled (each series by its
      own scaler), then K = 2 per calendar input (sin and cos, unscaled).
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
    """Known-future input columns at the end of scaled_TF: future features, then calendar."""
    return self.num_future + 2 * len(self.calendar)

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


def _enough(n_points: int, window: int, horizon: int, val_fraction: float,
            test_fraction: float, first_step: int | None) -> bool:
  """Whether a series of `n_points` points has a training and a validation window, and a test
  window when `test_fraction` > 0."""
  train, val, test = part_starts(n_points, window, horizon, val_fraction, test_fraction,
                                 first_step)
  return len(train) > 0 and len(val) > 0 and (test_fraction == 0 or len(test) > 0)


def check_lengths(n_points: int, window: int, horizon: int, val_fraction: float,
                  name: str = '', test_fraction: float = 0.0,
                  first_step: int | None = None) -> None:
  """Raises UserError unless the series yields at least one training and one validation window,
  and one test window when `test_fraction` > 0."""
  for key, value in (('data.window', window), ('data.horizon', horizon)):
    if not isinstance(value, (int, np.integer)) or value <= 0:
      raise UserError(f'{key} must be a positive integer, got {value!r}.')
  if not 0.0 < val_fraction < 1.0:
    raise UserError(f'data.val_fraction must be between 0 and 1 (exclusive), got {val_fraction}.')
  n_train, n_val, n_test = (len(part) for part in part_starts(
      n_points, window, horizon, val_fraction, test_fraction, first_step))
  if not _enough(n_points, window, horizon, val_fraction, test_fraction, first_step):
    series = f'series {name!r}' if name else 'the series'
    test = ''
    if test_fraction > 0:
      test = (f', and data.test_fraction={test_fraction} keeps its last '
              f'{n_points - test_boundary(n_points, test_fraction)} points for {n_test} test '
              'windows')
    need = next(n for n in range(n_points + 1, 10**8)
                if _enough(n, window, horizon, val_fraction, test_fraction, first_step))
    raise UserError(
        f'{series} has {n_points} points, too short for window={window} + horizon={horizon} '
        f'with val_fraction={val_fraction}{test}: that leaves {n_train} training, {n_val} '
        f'validation and {n_test} test windows. Use a series of at least {need} points, '
        'a smaller window/horizon' + (' or a smaller data.test_fraction.' if test_fraction > 0
                                      else '.'))


def prepare(data_config, times=None, values_TF=None, columns=None) -> Dataset:
  """Loads (unless given), splits and scales the series as `data_config` says.

  Each series' scaler is fit on the points its training windows touch (inputs and targets),
  never on its validation or test part, so no range beyond training leaks into it. With several
  series, one too short for a training and a validation window (and a test window, with
  data.test_fraction) is skipped with a warning.

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
                  data_config.val_fraction, **_test_args(data_config))
  return assemble(data_config, series, columns)


def _test_args(data_config) -> dict:
  """check_lengths' and part_starts' test_fraction and first_step from a data config."""
  return {'test_fraction': float(data_config.get('test_fraction', 0.0)),
          'first_step': min(config_lib.target_steps(data_config))}


def load(data_config) -> list[Series]:
  """The series `data_config` names, each long enough for a training and a validation window
  (and a test window, with data.test_fraction).

  With several series (data.id_column), one too short is left out with a warning; a single
  series too short is an error.
  """
  series = series_from_config(data_config)
  window, horizon, fraction = data_config.window, data_config.horizon, data_config.val_fraction
  test = _test_args(data_config)
  if not data_config.id_column:
    check_lengths(len(series[0].values_TF), window, horizon, fraction, **test)
    return series
  kept = []
  for one in series:
    try:
      check_lengths(len(one.values_TF), window, horizon, fraction, one.name, **test)
      kept.append(one)
    except UserError as e:
      logging.warning('%s It is left out of this run.', e)
  if not kept:
    parts = 'training, one validation and one test' if test['test_fraction'] else (
        'training and one validation')
    raise UserError(f'no series of {data_config.path!r} is long enough for one {parts} window '
                    f'(window={window}, horizon={horizon}, val_fraction={fraction}'
                    + (f', test_fraction={test["test_fraction"]}' if test['test_fraction'] else '')
                    + '); see the warnings above for each one.')
  return kept


def assemble(data_config, series: Sequence[Series], columns: Sequence[str],
             usable: Sequence[int] | None = None) -> Dataset:
  """Splits and scales loaded series and lays them end to end.

  Args:
    data_config: the config's data section.
    series: the series, each long enough (see `load`).
    columns: their F column names.
    usable: per series, how many of its first points the windows and the scalers may read
      (a backtest fold's data before its origin); None is every point. Points past it stay in
      the arrays, scaled by the same scalers, and belong to no window. A backtest fold has no
      test part of its own (its test windows lie past its origin): with `usable`,
      data.test_fraction is not applied.
  """
  window, horizon = data_config.window, data_config.horizon
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
        n_points, window, horizon, data_config.val_fraction, **test)
    fit_end = int(train_starts[-1]) + target_offset(window, horizon) + 1  # past the last target
    # Overflow is checked for below, and named there: numpy's warnings would only add noise.
    with np.errstate(over='ignore', invalid='ignore'):
      scaler = make_scaler(data_config.scaler).fit(one.values_TF[:fit_end])
      target_scaler = make_scaler(data_config.scaler).fit(one.values_TF[:fit_end, :1])
      scaled_TF = scaler.transform(one.values_TF).astype(np.float32)
    for fitted in (scaler, target_scaler):
      check_scaler(fitted, one.values_TF, one.times, columns, fit_end, one.name)
    check_scaled(scaled_TF, one.times, columns, one.values_TF, one.name)
    parts['scaled'].append(model_inputs(scaled_TF, one.times, calendar))
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
                 calendar=calendar, steps=config_lib.target_steps(data_config),
                 series_ids=tuple(one.name for one in series), bounds=np.array(bounds),
                 num_future=len(data_config.future_features),
                 multi_step=bool(data_config.multi_step))


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
