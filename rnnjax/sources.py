"""Series in: the tutorial's synthetic series, and CSV files (one series, or many in long
format) parsed, sorted and checked on a regular grid of time steps, gaps filled as data.fill
says, each with its known-in-advance rows apart. The file is read by `rnnjax.csv_file`, the time
column by `rnnjax.timestamps`.

Everything here is in the series' own units and raw timestamps; `rnnjax.data` windows, splits
and scales what these functions return.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Sequence

import numpy as np
import pandas as pd

from rnnjax import csv_file
from rnnjax.config import FILLS, MAX_FILL_FRACTION
from rnnjax.config_checks import check_reading
from rnnjax.errors import UserError
from rnnjax.timestamps import file_line, first_rows, read_times


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
  phase_T = np.linspace(0, num_days * 2 * np.pi, n)
  trend_T = np.linspace(0, slope * n, n)
  values_T = (trend_T + amplitude * np.sin(phase_T)
              + np.random.RandomState(seed).normal(0, noise, n))
  return pd.date_range(start=start, periods=n, freq='h'), values_T


def synthetic_panel(num_series: int, num_points: int, start: str = '2025-01-01 00:00',
                    seed: int = 0) -> pd.DataFrame:
  """A long-format panel of hourly series, for tests and benchmarks of large panels.

  Series i has its own level, amplitude and phase of a daily sine, plus a weekly sine and
  Gaussian noise, so that one global model has something to learn and the seasonal-naive
  baseline something to beat.

  Args:
    num_series: R series, named 's0', 's1', ... (the id column 'series').
    num_points: T hourly points of each, all from `start`.
    start: the first timestamp of every series.
    seed: the noise's and the series' parameters' seed.

  Returns:
    R * T rows, series after series, columns series (str), time (datetime64) and value
    (float64).
  """
  if num_series <= 0 or num_points <= 0:
    raise ValueError(f'a panel needs num_series > 0 and num_points > 0, got {num_series} and '
                     f'{num_points}')
  rng = np.random.RandomState(seed)
  level_R1, amplitude_R1 = rng.normal(20, 5, (num_series, 1)), rng.uniform(1, 6, (num_series, 1))
  phase_R1 = rng.uniform(0, 2 * np.pi, (num_series, 1))
  hours_1T = np.arange(num_points)[None, :]
  value_RT = (level_R1 + amplitude_R1 * np.sin(2 * np.pi * hours_1T / 24 + phase_R1)
              + 0.5 * np.sin(2 * np.pi * hours_1T / 168)
              + rng.normal(0, 0.3, (num_series, num_points)))
  names_R = np.array([f's{i}' for i in range(num_series)], dtype=object)
  times_T = pd.date_range(start, periods=num_points, freq='h')
  return pd.DataFrame({'series': np.repeat(names_R, num_points),
                       'time': np.tile(times_T.to_numpy(), num_series),
                       'value': value_RT.ravel()})


def _duration(step: pd.Timedelta) -> str:
  """'1 h', '15 min', '1 d 12 h': a step as a reader writes it."""
  c = step.components
  units = ((c.days, 'd'), (c.hours, 'h'), (c.minutes, 'min'), (c.seconds, 's'),
           (c.milliseconds, 'ms'), (c.microseconds, 'us'), (c.nanoseconds, 'ns'))
  return ' '.join(f'{value} {unit}' for value, unit in units if value) or '0 s'


def _most_common(deltas: pd.TimedeltaIndex) -> pd.Timedelta:
  """The most frequent value; the smallest of those tied for most frequent."""
  counts = pd.Series(deltas).value_counts()
  return counts.index[counts.to_numpy() == counts.max()].min()


def infer_step(times: pd.DatetimeIndex) -> pd.Timedelta | None:
  """The series' step: the most common difference between consecutive timestamps.

  Args:
    times: [T] distinct timestamps, in any order.

  Returns:
    The step (the smallest of the most common differences if several tie), or None when T < 2.
  """
  times = pd.DatetimeIndex(times).sort_values()
  if len(times) < 2:
    return None
  return _most_common(times[1:] - times[:-1])


def load_csv(path: str, time_column: str, columns: Sequence[str], fill: str = 'none',
             time_unit: str = '', dayfirst: str = '',
             max_fill_fraction: float = MAX_FILL_FRACTION) -> tuple[pd.DatetimeIndex, np.ndarray]:
  """Reads a time column and value columns from a CSV file, parsed, sorted and checked.

  Timestamps without a UTC offset stay naive. Timestamps with one (e.g. local time across a
  daylight-saving change: ...01:00:00+01:00, ...03:00:00+02:00) are instants, returned in UTC.
  Numbers in the time column are read only with `time_unit`, and dates written with day and
  month first (13/01/2025) only with `dayfirst` (see `read_times`). The step of the series is
  the most common difference between consecutive timestamps; every timestamp must lie on that
  grid (first timestamp + k steps). A series that follows one pandas frequency throughout,
  calendar ones included (month starts, business days), is taken as it is.

  Args:
    path: CSV file with a header row, each column named once.
    time_column: name of the timestamp column.
    columns: value columns to read, in this order.
    fill: what to do with missing, non-numeric or infinite values and with missing timestamps
      (gaps in the grid): 'none' (an error naming the first bad lines or gaps), 'ffill' (carry
      the last good value forward) or 'interpolate' (linear in time). Both fills first add a row
      at every missing step, so the series is regular from its first timestamp to its last.
    time_unit: '' (dates), or the unit of the time column's numbers since 1970-01-01 UTC.
    dayfirst: 'true', 'false', or '' to refuse dates whose order of day and month is unsaid.
    max_fill_fraction: a fill may invent at most this share of the series' points (added
      timestamps and rows with a missing value); each fill is logged as a warning.

  Returns:
    (timestamps [T], values float64 [T, len(columns)]) sorted by time, all values finite; with
    a fill, T counts the added steps.

  Raises:
    UserError: missing, unreadable or empty file, a column name repeated in the header, missing
      column, unparseable times, numbers without `time_unit`, day/month dates without
      `dayfirst`, times that mix zone-aware and naive, duplicate timestamps, timestamps off the
      grid, bad values or missing timestamps with fill='none', a column with no finite number,
      a fill of more than `max_fill_fraction`.
  """
  (series,) = load_series(path, time_column, columns, fill, time_unit=time_unit,
                          dayfirst=dayfirst, max_fill_fraction=max_fill_fraction)
  return series.times, series.values_TF


@dataclasses.dataclass(frozen=True)
class Series:
  """One series as read from a CSV file.

  Attributes:
    name: the series' id ('' when the file holds one series).
    times: [T] timestamps of the observed rows, sorted and on a regular grid.
    values_TF: [T, F] float64 values of the requested columns, all finite.
    future: the rows after the last observed target (data.future_features only): the future
      columns indexed by timestamp, possibly empty or with missing values.
  """
  name: str
  times: pd.DatetimeIndex
  values_TF: np.ndarray
  future: pd.DataFrame


def load_series(path: str, time_column: str, columns: Sequence[str], fill: str = 'none',
                id_column: str = '', future_columns: Sequence[str] = (), *,
                time_unit: str = '', dayfirst: str = '',
                max_fill_fraction: float = MAX_FILL_FRACTION) -> list[Series]:
  """Reads one series, or with `id_column` a long-format file of several, checked as `load_csv`.

  A long-format file holds one row per series and timestamp: `id_column` names the series. Each
  series is sorted and checked on its own (duplicates, grid, missing values, the share a fill
  invents); errors name it.
  With `future_columns` (a subset of `columns`), the rows after a series' last finite target are
  its future rows: they carry the timestamps and the known-in-advance values of forecasts past
  the data, and are returned apart (`Series.future`), not filled or checked here.

  Returns:
    The series in the order they first appear in the file.
  """
  if fill not in FILLS:
    raise UserError(f'data.fill={fill!r} is not one of {FILLS}.')
  check_reading(time_unit, dayfirst, max_fill_fraction)
  frame = csv_file.read_csv(path, dtype={id_column: str} if id_column else None)
  needed = [time_column, *columns] + ([id_column] if id_column else [])
  missing = [c for c in needed if c not in frame.columns]
  if missing:
    raise UserError(f'{path!r} has no column(s) {missing}; its columns are {list(frame.columns)}. '
                    'Set data.time_column, data.target, data.features, data.future_features and '
                    'data.id_column to existing names.')
  reading = dict(time_column=time_column, columns=columns, fill=fill,
                 future_columns=future_columns, time_unit=time_unit, dayfirst=dayfirst,
                 max_fill_fraction=max_fill_fraction)
  if not id_column:
    return [_clean_series(frame, path, '', **reading)]
  ids = frame[id_column]
  if ids.isna().any():
    rows = ids.isna().to_numpy()
    raise UserError(f'{path!r}: column {id_column!r} is empty at '
                    f'{first_rows(rows, frame[time_column])}; every row needs its series id.')
  # Each series' rows by one stable sort of the ids' codes: pandas' groupby would first copy
  # the whole frame sorted by series.
  codes_N, names = pd.factorize(ids)  # numbered in the order the series first appear
  order_N = np.argsort(codes_N, kind='stable')
  ends = np.cumsum(np.bincount(codes_N, minlength=len(names)))
  return [_clean_series(frame.take(order_N[end - count:end]), path, name, **reading)
          for name, end, count in zip(names, ends, np.diff(ends, prepend=0), strict=True)]


def _clean_series(frame: pd.DataFrame, path: str, name: str, *, time_column: str,
                  columns: Sequence[str], fill: str, future_columns: Sequence[str],
                  time_unit: str, dayfirst: str, max_fill_fraction: float) -> Series:
  """Parses, sorts and checks the rows of one series (`frame`'s index: file row numbers)."""
  where = f'{path!r}' + (f', series {name!r}' if name else '')
  raw_times = csv_file.expanded(frame[time_column])  # this series' text alone, as pandas reads it
  times = read_times(where, time_column, raw_times, time_unit, dayfirst)
  values = frame[list(columns)].apply(
      lambda c: pd.to_numeric(csv_file.expanded(c), errors='coerce')).astype(np.float64)
  values = values.mask(np.isinf(values))
  duplicated_T = times.duplicated(keep=False).to_numpy()
  if duplicated_T.any():
    raise UserError(f'{where}: duplicate timestamps in {time_column!r} at '
                    f'{first_rows(duplicated_T, raw_times)}. Keep one row per timestamp.')
  order_T = np.argsort(times.to_numpy(), kind='stable')
  future = pd.DataFrame(columns=list(future_columns), dtype=np.float64)
  if future_columns:
    target_T = values.iloc[order_T, 0].to_numpy()
    observed = np.flatnonzero(np.isfinite(target_T))
    last = observed[-1] + 1 if len(observed) else 0
    future = values.iloc[order_T[last:]][list(future_columns)].set_axis(
        pd.DatetimeIndex(times.iloc[order_T[last:]]))
    order_T = order_T[:last]
  empty = [c for c in columns if values.iloc[order_T][c].isna().all()] if len(order_T) else []
  if future_columns and len(raw_times) and not len(order_T):
    empty = list(columns[:1])  # no finite target leaves no observed row
  if empty:
    raise UserError(f'{where}: column(s) {empty} hold no finite number at all, so no data.fill '
                    'has anything to fill them from. Choose other columns or fix the file.')
  bad_T = np.zeros(len(raw_times), bool)
  bad_T[order_T] = values.iloc[order_T].isna().any(axis=1).to_numpy()
  if bad_T.any() and fill == 'none':
    counts = values.iloc[order_T].isna().sum()
    named = ', '.join(f'{c!r} ({counts[c]})' for c in columns if counts[c])
    raise UserError(f'{where}: missing or non-numeric values (inf and -inf count as missing) in '
                    f'{named} at {first_rows(bad_T, raw_times)} ({bad_T.sum()} rows in all). '
                    'Fix the file, or pass --config.data.fill=ffill or '
                    '--config.data.fill=interpolate.')
  index = pd.DatetimeIndex(times.iloc[order_T])
  values = values.iloc[order_T].set_axis(index)
  grid = _regular_grid(where, time_column, index, order_T, raw_times, fill)
  if grid is not None:
    values = values.reindex(grid)
  if bad_T.any() or grid is not None:
    _check_fill_share(where, fill, len(values) - len(index), int(bad_T.sum()), len(values),
                      max_fill_fraction)
    values = values.ffill() if fill == 'ffill' else values.interpolate(method='time')
    values = values.bfill()  # a gap at the very start has nothing before it
  return Series(name=name, times=pd.DatetimeIndex(values.index),
                values_TF=values.to_numpy(dtype=np.float64), future=future)


def _check_fill_share(where: str, fill: str, added: int, missing: int, total: int,
                      max_fill_fraction: float) -> None:
  """Refuses a fill that invents more than `max_fill_fraction` of a series, else logs it.

  Args:
    added: timestamps the fill adds on the grid.
    missing: rows of the file with a missing value in some column.
    total: points of the filled series (`added` included).
  """
  filled = added + missing
  share = filled / total
  counts = (f'{filled} of its {total} points ({share:.1%}): {added} missing '
            f'timestamp{"s" * (added != 1)} and {missing} row{"s" * (missing != 1)} with missing '
            'values')
  if share > max_fill_fraction:
    raise UserError(f'{where}: data.fill={fill!r} would invent {counts}, more than '
                    f'data.max_fill_fraction={max_fill_fraction:g} allows; a model trained on it '
                    'learns made-up values. Check data.time_column and the dates (day-first dates '
                    'read month first leave most steps missing) and fix the file, or, if that '
                    'much filling is meant, raise the limit: '
                    f'--config.data.max_fill_fraction={math.ceil(share * 100) / 100:g}.')
  logging.warning('%s: data.fill=%r filled %s.', where, fill, counts)


def _regular_grid(where: str, time_column: str, index: pd.DatetimeIndex, order_T: np.ndarray,
                  raw_times: pd.Series, fill: str, limit: int = 5) -> pd.DatetimeIndex | None:
  """The full grid when `index` (sorted) has missing steps and `fill` fills them, else None.

  Raises UserError for timestamps off the grid, and for missing steps when fill is 'none'.
  `order_T[i]` is the position in `raw_times` of `index[i]`.
  """
  step = infer_step(index)
  if step is None:
    return None  # fewer than 2 points: the length checks report it
  if len(index) >= 3 and pd.DatetimeIndex(index, freq='infer').freq is not None:
    # Regular in calendar terms (month starts, business days) though the step in time varies.
    return None
  offsets = (index - index[0]) % step
  # The grid's phase is the one most timestamps share, so a stray first row is the one named.
  off_grid_T = np.asarray(offsets != _most_common(offsets))
  if off_grid_T.any():
    rows = order_T[np.flatnonzero(off_grid_T)]
    on_grid_row = order_T[np.flatnonzero(~off_grid_T)[0]]
    lines = ', '.join(file_line(r, raw_times) for r in rows[:limit])
    raise UserError(f'{where}: timestamps off the series\' {_duration(step)} grid in '
                    f'{time_column!r} at {lines} ({off_grid_T.sum()} rows in all): the step is '
                    'the most common difference between consecutive timestamps and the grid runs '
                    f'through {file_line(on_grid_row, raw_times)}. Remove these rows or move them '
                    'onto the grid; data.fill cannot place them.')
  positions_T = np.asarray((index - index[0]) // step)
  n_missing = int(positions_T[-1]) + 1 - len(index)
  if n_missing == 0:
    return None
  if fill == 'none':
    gaps = np.flatnonzero(np.diff(positions_T) > 1)
    described = '; '.join(
        f'{positions_T[g + 1] - positions_T[g] - 1} missing between '
        f'{file_line(order_T[g], raw_times)} and {file_line(order_T[g + 1], raw_times)}'
        for g in gaps[:limit])
    more = f'; and {len(gaps) - limit} more gaps' if len(gaps) > limit else ''
    raise UserError(f'{where}: timestamps are missing: the series steps by {_duration(step)} '
                    f'(the most common difference between consecutive timestamps) and '
                    f'{n_missing} steps are missing in {len(gaps)} gaps: {described}{more}. Pass '
                    '--config.data.fill=ffill or --config.data.fill=interpolate to fill them, or '
                    'fix the file.')
  return pd.date_range(index[0], index[-1], freq=step, unit=index.unit)
