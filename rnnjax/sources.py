"""Series in: the tutorial's synthetic series, and CSV files (one series, or many in long
format) parsed, sorted and checked, each with its known-in-advance rows apart.

Everything here is in the series' own units and raw timestamps; `rnnjax.data` windows, splits
and scales what these functions return.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np
import pandas as pd

from rnnjax.config import FILLS
from rnnjax.errors import UserError


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
  return ', '.join(_line(r, times) for r in np.flatnonzero(mask)[:limit])


def _line(row: int, times: pd.Series) -> str:
  # `times` keeps the file's row numbers as its index; data row i is line i + 2 of the file
  # (line 1 is the header).
  return f'line {times.index[row] + 2} ({times.iloc[row]!s})'


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


def _parse_times(where: str, time_column: str, raw_times: pd.Series) -> pd.Series:
  """Timestamps of the time column: naive ones stay naive, ones with a UTC offset become UTC."""
  try:
    times = pd.to_datetime(raw_times, errors='coerce')
  except ValueError:
    # Offsets that differ between rows (local time across a daylight-saving change).
    times = None
  if times is not None and not times.isna().any():
    return times if times.dt.tz is None else times.dt.tz_convert('UTC')
  # Row by row: the format pandas infers from the first row fails rows that carry an offset
  # when the first does not, and the other way round.
  stamps = {}
  for value in raw_times.unique():
    try:
      stamps[value] = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
      stamps[value] = pd.NaT
  each = [stamps[value] for value in raw_times]
  aware = np.array([t is not pd.NaT and t.tz is not None for t in each])
  if times is not None and not aware.any():
    unparsed = times.isna().to_numpy()
  else:
    unparsed = np.array([t is pd.NaT for t in each])
  if unparsed.any():
    raise UserError(f'{where}: column {time_column!r} has values that are not timestamps at '
                    f'{_first_rows(unparsed, raw_times)}.')
  if not aware.all():
    naive = ~aware
    minority, kind = (naive, 'none') if naive.sum() <= aware.sum() else (aware, 'one')
    raise UserError(f'{where}: column {time_column!r} mixes timestamps with and without a UTC '
                    f'offset: {minority.sum()} of {len(raw_times)} have {kind}, at '
                    f'{_first_rows(minority, raw_times)}. Give every timestamp an offset '
                    '(e.g. 2025-03-30 03:00:00+02:00) or none.')
  return pd.to_datetime(pd.Series(each, index=raw_times.index), utc=True)


def load_csv(path: str, time_column: str, columns: Sequence[str],
             fill: str = 'none') -> tuple[pd.DatetimeIndex, np.ndarray]:
  """Reads a time column and value columns from a CSV file, parsed, sorted and checked.

  Timestamps without a UTC offset stay naive. Timestamps with one (e.g. local time across a
  daylight-saving change: ...01:00:00+01:00, ...03:00:00+02:00) are instants, returned in UTC.
  The step of the series is the most common difference between consecutive timestamps; every
  timestamp must lie on that grid (first timestamp + k steps). A series that follows one pandas
  frequency throughout, calendar ones included (month starts, business days), is taken as it is.

  Args:
    path: CSV file with a header row.
    time_column: name of the timestamp column.
    columns: value columns to read, in this order.
    fill: what to do with missing, non-numeric or infinite values and with missing timestamps
      (gaps in the grid): 'none' (an error naming the first bad lines or gaps), 'ffill' (carry
      the last good value forward) or 'interpolate' (linear in time). Both fills first add a row
      at every missing step, so the series is regular from its first timestamp to its last.

  Returns:
    (timestamps [T], values float64 [T, len(columns)]) sorted by time, all values finite; with
    a fill, T counts the added steps.

  Raises:
    UserError: missing file or column, unparseable times, times that mix zone-aware and naive,
      duplicate timestamps, timestamps off the grid, bad values or missing timestamps with
      fill='none', a column with no finite number to fill from.
  """
  (series,) = load_series(path, time_column, columns, fill)
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
                id_column: str = '', future_columns: Sequence[str] = ()) -> list[Series]:
  """Reads one series, or with `id_column` a long-format file of several, checked as `load_csv`.

  A long-format file holds one row per series and timestamp: `id_column` names the series. Each
  series is sorted and checked on its own (duplicates, grid, missing values); errors name it.
  With `future_columns` (a subset of `columns`), the rows after a series' last finite target are
  its future rows: they carry the timestamps and the known-in-advance values of forecasts past
  the data, and are returned apart (`Series.future`), not filled or checked here.

  Returns:
    The series in the order they first appear in the file.
  """
  if fill not in FILLS:
    raise UserError(f'data.fill={fill!r} is not one of {FILLS}.')
  if not path:
    raise UserError('data.source is "csv" but data.path is empty: pass --config.data.path=FILE.')
  if not os.path.isfile(path):
    raise UserError(f'data.path={path!r} does not exist or is not a file.')
  try:
    frame = pd.read_csv(path, dtype={id_column: str} if id_column else None)
  except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
    raise UserError(f'could not read {path!r} as CSV: {e}') from None
  needed = [time_column, *columns] + ([id_column] if id_column else [])
  missing = [c for c in needed if c not in frame.columns]
  if missing:
    raise UserError(f'{path!r} has no column(s) {missing}; its columns are {list(frame.columns)}. '
                    'Set data.time_column, data.target, data.features, data.future_features and '
                    'data.id_column to existing names.')
  if not id_column:
    return [_clean_series(frame, path, '', time_column, columns, fill, future_columns)]
  ids = frame[id_column]
  if ids.isna().any():
    rows = ids.isna().to_numpy()
    raise UserError(f'{path!r}: column {id_column!r} is empty at '
                    f'{_first_rows(rows, frame[time_column])}; every row needs its series id.')
  return [_clean_series(part, path, name, time_column, columns, fill, future_columns)
          for name, part in frame.groupby(id_column, sort=False)]


def _clean_series(frame: pd.DataFrame, path: str, name: str, time_column: str,
                  columns: Sequence[str], fill: str, future_columns: Sequence[str]) -> Series:
  """Parses, sorts and checks the rows of one series (`frame`'s index: file row numbers)."""
  where = f'{path!r}' + (f', series {name!r}' if name else '')
  raw_times = frame[time_column]
  times = _parse_times(where, time_column, raw_times)
  values = frame[list(columns)].apply(pd.to_numeric, errors='coerce').astype(np.float64)
  values = values.mask(np.isinf(values))
  duplicated = times.duplicated(keep=False).to_numpy()
  if duplicated.any():
    raise UserError(f'{where}: duplicate timestamps in {time_column!r} at '
                    f'{_first_rows(duplicated, raw_times)}. Keep one row per timestamp.')
  order = np.argsort(times.to_numpy(), kind='stable')
  future = pd.DataFrame(columns=list(future_columns), dtype=np.float64)
  if future_columns:
    target = values.iloc[order, 0].to_numpy()
    observed = np.flatnonzero(np.isfinite(target))
    last = observed[-1] + 1 if len(observed) else 0
    future = values.iloc[order[last:]][list(future_columns)].set_axis(
        pd.DatetimeIndex(times.iloc[order[last:]]))
    order = order[:last]
  bad = np.zeros(len(raw_times), bool)
  bad[order] = values.iloc[order].isna().any(axis=1).to_numpy()
  if bad.any() and fill == 'none':
    raise UserError(f'{where}: missing or non-numeric values (inf and -inf count as missing) in '
                    f'{list(columns)} at {_first_rows(bad, raw_times)} ({bad.sum()} rows in all). '
                    'Fix the file, or pass --config.data.fill=ffill or '
                    '--config.data.fill=interpolate.')
  index = pd.DatetimeIndex(times.iloc[order])
  values = values.iloc[order].set_axis(index)
  grid = _regular_grid(where, time_column, index, order, raw_times, fill)
  if grid is not None:
    values = values.reindex(grid)
  if bad.any() or grid is not None:
    values = values.ffill() if fill == 'ffill' else values.interpolate(method='time')
    values = values.bfill()  # a gap at the very start has nothing before it
    empty = [c for c in columns if values[c].isna().all()]
    if empty:
      raise UserError(f'{where}: column(s) {empty} hold no finite number at all, so '
                      f'data.fill={fill!r} has nothing to fill from. Choose other columns or fix '
                      'the file.')
  return Series(name=name, times=pd.DatetimeIndex(values.index),
                values_TF=values.to_numpy(dtype=np.float64), future=future)


def _regular_grid(where: str, time_column: str, index: pd.DatetimeIndex, order: np.ndarray,
                  raw_times: pd.Series, fill: str, limit: int = 5) -> pd.DatetimeIndex | None:
  """The full grid when `index` (sorted) has missing steps and `fill` fills them, else None.

  Raises UserError for timestamps off the grid, and for missing steps when fill is 'none'.
  `order[i]` is the position in `raw_times` of `index[i]`.
  """
  step = infer_step(index)
  if step is None:
    return None  # fewer than 2 points: the length checks report it
  if len(index) >= 3 and pd.DatetimeIndex(index, freq='infer').freq is not None:
    # Regular in calendar terms (month starts, business days) though the step in time varies.
    return None
  offsets = (index - index[0]) % step
  # The grid's phase is the one most timestamps share, so a stray first row is the one named.
  off_grid = np.asarray(offsets != _most_common(offsets))
  if off_grid.any():
    rows = order[np.flatnonzero(off_grid)]
    on_grid_row = order[np.flatnonzero(~off_grid)[0]]
    lines = ', '.join(_line(r, raw_times) for r in rows[:limit])
    raise UserError(f'{where}: timestamps off the series\' {_duration(step)} grid in '
                    f'{time_column!r} at {lines} ({off_grid.sum()} rows in all): the step is the '
                    'most common difference between consecutive timestamps and the grid runs '
                    f'through {_line(on_grid_row, raw_times)}. Remove these rows or move them onto '
                    'the grid; data.fill cannot place them.')
  positions = np.asarray((index - index[0]) // step)
  n_missing = int(positions[-1]) + 1 - len(index)
  if n_missing == 0:
    return None
  if fill == 'none':
    gaps = np.flatnonzero(np.diff(positions) > 1)
    described = '; '.join(
        f'{positions[g + 1] - positions[g] - 1} missing between {_line(order[g], raw_times)} '
        f'and {_line(order[g + 1], raw_times)}' for g in gaps[:limit])
    more = f'; and {len(gaps) - limit} more gaps' if len(gaps) > limit else ''
    raise UserError(f'{where}: timestamps are missing: the series steps by {_duration(step)} '
                    f'(the most common difference between consecutive timestamps) and '
                    f'{n_missing} steps are missing in {len(gaps)} gaps: {described}{more}. Pass '
                    '--config.data.fill=ffill or --config.data.fill=interpolate to fill them, or '
                    'fix the file.')
  return pd.date_range(index[0], index[-1], freq=step, unit=index.unit)
