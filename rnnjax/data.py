"""Series in (synthetic, CSV), windows, the chronological split and scaling.

Windows are never stored. A window is a start index `s` into the series; sample `s` reads the
inputs `series[s : s + window]` and the target `series[s + window - 1 + horizon]`, so `horizon=1`
is the next step. The tutorial's `adelanto_prediccion=12` puts its target 13 steps after the last
input: `horizon=13` here.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn import preprocessing

from rnnjax.config import FILLS
from rnnjax.errors import UserError

SCALERS = {'minmax': preprocessing.MinMaxScaler, 'standard': preprocessing.StandardScaler}


def synthetic_series(num_days: int = 200, slope: float = 0.005, amplitude: float = 5.0,
                     noise: float = 0.5, start: str = '2025-01-01 10:00',
                     seed: int = 7) -> tuple[pd.DatetimeIndex, np.ndarray]:
  """The tutorial's hourly temperature: linear trend + daily sine + Gaussian noise.

  Gives the same numbers as the tutorial's `get_serie_tiempo` (which calls `np.random.seed(7)`)
  without touching NumPy's global random state.

  Returns:
    (timestamps [T], values float64 [T]) with T = 24 * num_days.
  """
  n = num_days * 24
  x = np.linspace(0, num_days * 2 * np.pi, n)
  trend = np.linspace(0, slope * n, n)
  values = trend + amplitude * np.sin(x) + np.random.RandomState(seed).normal(0, noise, n)
  return pd.date_range(start=start, periods=n, freq='h'), values


def _first_rows(mask: np.ndarray, times: pd.Series, limit: int = 5) -> str:
  rows = np.flatnonzero(mask)[:limit]
  # Data row i is line i + 2 of the file: line 1 is the header.
  return ', '.join(f'line {r + 2} ({times.iloc[r]!s})' for r in rows)


def load_csv(path: str, time_column: str, columns: Sequence[str],
             fill: str = 'none') -> tuple[pd.DatetimeIndex, np.ndarray]:
  """Reads a time column and value columns from a CSV file, parsed, sorted and checked.

  Args:
    path: CSV file with a header row.
    time_column: name of the timestamp column.
    columns: value columns to read, in this order.
    fill: what to do with missing or non-numeric values: 'none' (an error naming the first bad
      lines), 'ffill' (carry the last good value forward) or 'interpolate' (linear in time).

  Returns:
    (timestamps [T], values float64 [T, len(columns)]) sorted by time.

  Raises:
    UserError: missing file or column, unparseable times, duplicate timestamps, bad values.
  """
  if fill not in FILLS:
    raise UserError(f'data.fill={fill!r} is not one of {FILLS}.')
  if not path:
    raise UserError('data.source is "csv" but data.path is empty: pass --config.data.path=FILE.')
  if not os.path.isfile(path):
    raise UserError(f'data.path={path!r} does not exist or is not a file.')
  try:
    frame = pd.read_csv(path)
  except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
    raise UserError(f'could not read {path!r} as CSV: {e}') from None
  missing = [c for c in [time_column, *columns] if c not in frame.columns]
  if missing:
    raise UserError(f'{path!r} has no column(s) {missing}; its columns are {list(frame.columns)}. '
                    'Set data.time_column, data.target and data.features to existing names.')
  raw_times = frame[time_column]
  times = pd.to_datetime(raw_times, errors='coerce')
  if times.isna().any():
    raise UserError(f'{path!r}: column {time_column!r} has values that are not timestamps at '
                    f'{_first_rows(times.isna().to_numpy(), raw_times)}.')
  values = frame[list(columns)].apply(pd.to_numeric, errors='coerce')
  bad = values.isna().any(axis=1).to_numpy()
  if bad.any() and fill == 'none':
    raise UserError(f'{path!r}: missing or non-numeric values in {list(columns)} at '
                    f'{_first_rows(bad, raw_times)} ({bad.sum()} rows in all). Fix the file, or '
                    'pass --config.data.fill=ffill or --config.data.fill=interpolate.')
  duplicated = times.duplicated(keep=False).to_numpy()
  if duplicated.any():
    raise UserError(f'{path!r}: duplicate timestamps in {time_column!r} at '
                    f'{_first_rows(duplicated, raw_times)}. Keep one row per timestamp.')
  order = np.argsort(times.to_numpy(), kind='stable')
  times, values = times.iloc[order], values.iloc[order]
  if bad.any():
    values = values.set_axis(pd.DatetimeIndex(times))
    values = values.ffill() if fill == 'ffill' else values.interpolate(method='time')
    values = values.bfill()  # a gap at the very start has nothing before it
    empty = [c for c in columns if values[c].isna().all()]
    if empty:
      raise UserError(f'{path!r}: column(s) {empty} hold no number at all, so data.fill={fill!r} '
                      'has nothing to fill from. Choose other columns or fix the file.')
  return pd.DatetimeIndex(times), values.to_numpy(dtype=np.float64)


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


def gather_windows(series_TF, starts_B, window: int, horizon: int, target_index: int = 0):
  """Gathers windows from a series by start index; works on NumPy and JAX arrays alike.

  Args:
    series_TF: [T, F] series.
    starts_B: [B] int start indices.
    window: inputs per sample.
    horizon: steps from the last input to the target.
    target_index: feature column that holds the target.

  Returns:
    (x_BWF [B, window, F], y_B [B]).
  """
  offsets = np.arange(window, dtype=np.int32)
  x_BWF = series_TF[starts_B[:, None] + offsets[None, :]]
  y_B = series_TF[starts_B + target_offset(window, horizon), target_index]
  return x_BWF, y_B


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A scaled series with its window indices; everything training and evaluation need.

  Attributes:
    timestamps: [T] time of each point.
    values_TF: [T, F] raw values in the series' own units; column 0 is the target.
    scaled_TF: [T, F] float32 scaled values (the model's inputs).
    columns: F column names, the target first.
    window: inputs per sample.
    horizon: steps from the last input to the target.
    train_starts: [N_train] window starts used for training.
    val_starts: [N_val] window starts used for validation, all after the training ones.
    scaler: sklearn scaler fit on the training part of all F columns.
    target_scaler: the same kind of scaler fit on the target column alone (for inverses).
  """
  timestamps: pd.DatetimeIndex
  values_TF: np.ndarray
  scaled_TF: np.ndarray
  columns: tuple[str, ...]
  window: int
  horizon: int
  train_starts: np.ndarray
  val_starts: np.ndarray
  scaler: object
  target_scaler: object

  @property
  def num_features(self) -> int:
    return self.scaled_TF.shape[1]

  def target_positions(self, starts: np.ndarray) -> np.ndarray:
    """[B] index into the series of each window's target."""
    return starts + target_offset(self.window, self.horizon)

  def targets(self, starts: np.ndarray) -> np.ndarray:
    """[B] raw target values (series' own units) of the given windows."""
    return self.values_TF[self.target_positions(starts), 0]

  def unscale_target(self, y_scaled) -> np.ndarray:
    """Scaled target values of any shape back to the series' own units."""
    y = np.asarray(y_scaled, dtype=np.float64)
    return self.target_scaler.inverse_transform(y.reshape(-1, 1)).reshape(y.shape)


def make_scaler(name: str):
  if name not in SCALERS:
    raise UserError(f'data.scaler={name!r} is not one of {sorted(SCALERS)}.')
  return SCALERS[name]()


def series_from_config(data_config) -> tuple[pd.DatetimeIndex, np.ndarray, tuple[str, ...]]:
  """Loads the raw series a config names: (timestamps [T], values [T, F], column names)."""
  columns = input_columns(data_config)
  if data_config.source == 'synthetic':
    s = data_config.synthetic
    if s.num_days <= 0:
      raise UserError(f'data.synthetic.num_days must be > 0, got {s.num_days}.')
    if len(columns) != 1:
      raise UserError('the synthetic series has one column; leave data.features empty.')
    times, values = synthetic_series(s.num_days, s.slope, s.amplitude, s.noise, s.start)
    return times, values[:, None], columns
  if data_config.source == 'csv':
    times, values = load_csv(data_config.path, data_config.time_column, columns, data_config.fill)
    return times, values, columns
  raise UserError(f'data.source={data_config.source!r} is not "synthetic" or "csv".')


def input_columns(data_config) -> tuple[str, ...]:
  """The target first, then any extra input features."""
  extra = [f for f in (data_config.features or ()) if f != data_config.target]
  return (data_config.target, *extra)


def check_lengths(n_points: int, window: int, horizon: int, val_fraction: float) -> None:
  """Raises UserError unless the series yields at least one training and one validation window."""
  for name, value in (('data.window', window), ('data.horizon', horizon)):
    if not isinstance(value, (int, np.integer)) or value <= 0:
      raise UserError(f'{name} must be a positive integer, got {value!r}.')
  if not 0.0 < val_fraction < 1.0:
    raise UserError(f'data.val_fraction must be between 0 and 1 (exclusive), got {val_fraction}.')
  n_windows = max(n_points - window - horizon + 1, 0)
  n_train = math.floor(n_windows * (1.0 - val_fraction))
  if n_train < 1 or n_windows - n_train < 1:
    need = window + horizon + math.ceil(1.0 / min(val_fraction, 1.0 - val_fraction))
    raise UserError(
        f'the series has {n_points} points, too short for window={window} + horizon={horizon} '
        f'with val_fraction={val_fraction}: that leaves {n_train} training and '
        f'{n_windows - n_train} validation windows. Use a series of at least about {need} points '
        'or a smaller window/horizon.')


def prepare(data_config, times=None, values_TF=None, columns=None) -> Dataset:
  """Loads (unless given), splits and scales a series as `data_config` says.

  The scaler is fit on the points the training windows touch (inputs and targets), never on
  the validation part, so no validation range leaks into training.
  """
  if values_TF is None:
    times, values_TF, columns = series_from_config(data_config)
  window, horizon = data_config.window, data_config.horizon
  check_lengths(len(values_TF), window, horizon, data_config.val_fraction)
  train_starts, val_starts = split_starts(
      window_starts(len(values_TF), window, horizon), data_config.val_fraction)
  fit_end = int(train_starts[-1]) + window + horizon  # one past the last training target
  scaler = make_scaler(data_config.scaler).fit(values_TF[:fit_end])
  target_scaler = make_scaler(data_config.scaler).fit(values_TF[:fit_end, :1])
  scaled = scaler.transform(values_TF).astype(np.float32)
  return Dataset(timestamps=pd.DatetimeIndex(times), values_TF=values_TF, scaled_TF=scaled,
                 columns=tuple(columns), window=window, horizon=horizon,
                 train_starts=train_starts, val_starts=val_starts, scaler=scaler,
                 target_scaler=target_scaler)


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
