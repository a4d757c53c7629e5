"""Timestamps of a CSV file's time column, read as the settings say (`read_times`): dates with
or without a UTC offset, numbers of a Unix time unit (data.time_unit), and dates whose day and
month order is said (data.dayfirst); numbers and day/month order are never guessed. Errors name
the file's lines (`first_rows`, `file_line`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from rnnjax.errors import UserError


def first_rows(mask: np.ndarray, times: pd.Series, limit: int = 5) -> str:
  """The file lines of the first `limit` rows `mask` ([T] bool over `times` [T]) marks, for an
  error message."""
  return ', '.join(file_line(r, times) for r in np.flatnonzero(mask)[:limit])


def file_line(row: int, times: pd.Series) -> str:
  """'line 7 (2025-01-01 10:00)': where row `row` of `times` stands in the file."""
  # `times` keeps the file's row numbers as its index; data row i is line i + 2 of the file
  # (line 1 is the header).
  return f'line {times.index[row] + 2} ({times.iloc[row]!s})'


def _parse_times(where: str, time_column: str, raw_times: pd.Series,
                 text: pd.Series | None = None) -> pd.Series:
  """Timestamps of the time column: naive ones stay naive, ones with a UTC offset become UTC.

  `text` is what to parse when it differs from the file's `raw_times` (dates rewritten in ISO
  order); errors always quote `raw_times`.
  """
  text = raw_times if text is None else text
  try:
    times = pd.to_datetime(text, errors='coerce')
  except ValueError:
    # Offsets that differ between rows (local time across a daylight-saving change).
    times = None
  if times is not None and not times.isna().any():
    return times if times.dt.tz is None else times.dt.tz_convert('UTC')
  # Row by row: the format pandas infers from the first row fails rows that carry an offset
  # when the first does not, and the other way round.
  stamps = {}
  for value in text.unique():
    try:
      stamps[value] = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
      stamps[value] = pd.NaT
  each = [stamps[value] for value in text]
  aware_T = np.array([t is not pd.NaT and t.tz is not None for t in each])
  if times is not None and not aware_T.any():
    unparsed_T = times.isna().to_numpy()
  else:
    unparsed_T = np.array([t is pd.NaT for t in each])
  if unparsed_T.any():
    raise UserError(f'{where}: column {time_column!r} has values that are not timestamps at '
                    f'{first_rows(unparsed_T, raw_times)}.')
  if not aware_T.all():
    naive_T = ~aware_T
    minority_T, kind = ((naive_T, 'none') if naive_T.sum() <= aware_T.sum()
                        else (aware_T, 'one'))
    raise UserError(f'{where}: column {time_column!r} mixes timestamps with and without a UTC '
                    f'offset: {minority_T.sum()} of {len(raw_times)} have {kind}, at '
                    f'{first_rows(minority_T, raw_times)}. Give every timestamp an offset '
                    '(e.g. 2025-03-30 03:00:00+02:00) or none.')
  return pd.to_datetime(pd.Series(each, index=raw_times.index), utc=True)


_UNIT_NAMES = {'s': 'seconds', 'ms': 'milliseconds', 'us': 'microseconds', 'ns': 'nanoseconds',
               'D': 'days'}
# A date whose first two numbers are the day and the month in some order: 13/01/2025, 1.2.25,
# 01-13-2025 10:00. Groups: first number, separator, second number, year, the rest (the time).
_DAY_MONTH = r'^\s*(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?!\d)(.*)$'


def read_times(where: str, time_column: str, raw_times: pd.Series, time_unit: str = '',
               dayfirst: str = '') -> pd.Series:
  """Timestamps of a time column, read as the settings say: numbers and the order of day and
  month are never guessed.

  Args:
    where: names the file (and series) in errors.
    time_column: the column's name, for errors.
    raw_times: [T] the column as read from the file, indexed by file row number.
    time_unit: '' when the column holds dates; else its numbers count this unit ('s', 'ms',
      'us', 'ns' or 'D') since 1970-01-01 UTC (Unix time).
    dayfirst: dates with day and month as their first two numbers (13/01/2025, 1.2.25, with
      '/', '.' or '-'): 'true' reads day/month/year, 'false' month/day/year, '' refuses them.
      Other dates (ISO 2025-01-13, 13 Jan 2025) read the same whatever it says.

  Returns:
    [T] timestamps, index of `raw_times`: naive for dates without an offset, UTC for dates with
    one and for numbers.

  Raises:
    UserError: numbers without `time_unit`, dates with it, values that are not timestamps, an
      unsaid day/month order, a mix of timestamps with and without an offset.
  """
  if time_unit:
    return _unix_times(where, time_column, raw_times, time_unit)
  present_T = raw_times.notna().to_numpy()
  # The first value tells the column's form (numbers, day/month dates, other dates): parsing
  # every value as each form costs seconds per million rows. Values of another form than the
  # first fail to parse and are named.
  first = raw_times[present_T].iloc[:1]
  numbers = (pd.to_numeric(raw_times[present_T], errors='coerce')
             if len(first) and pd.to_numeric(first, errors='coerce').notna().all() else None)
  if numbers is not None and numbers.notna().all():
    raise UserError(f'{where}: column {time_column!r} holds numbers (e.g. '
                    f'{first_rows(present_T, raw_times, 1)}), not dates, and rnnjax does not '
                    'guess what they count. If they are Unix time (counted from 1970-01-01 UTC), '
                    'set data.time_unit to their unit: --config.data.time_unit=s for seconds '
                    f'(or ms, us, ns, D){_unit_readings(float(numbers.iloc[0]))}. Dates '
                    'written as digits (20250113) must be written as dates (2025-01-13).')
  if not first.astype(str).str.match(_DAY_MONTH).any():
    return _parse_times(where, time_column, raw_times)
  parts = raw_times.astype(str).str.extract(_DAY_MONTH)
  matched_T = parts[0].notna().to_numpy()
  month_first, day_first = (_day_month_dates(parts, first_is_day) for first_is_day in (False, True))
  flag = {True: '--config.data.dayfirst=true', False: '--config.data.dayfirst=false'}
  if not dayfirst:
    raise UserError(f'{where}: column {time_column!r} writes dates with the day and the month as '
                    f'their first two numbers (e.g. {first_rows(matched_T, raw_times, 1)}), which '
                    'read either way round, and rnnjax does not guess the order. '
                    f'{_which_order(matched_T, month_first, day_first, raw_times)} Say which: '
                    f'{flag[True]} (day/month/year: 13/01/2025 is 13 January) or '
                    f'{flag[False]} (month/day/year: 01/13/2025 is 13 January).')
  is_day_first = dayfirst.lower() == 'true'
  chosen, other = (day_first, month_first) if is_day_first else (month_first, day_first)
  impossible_T = matched_T & chosen.isna().to_numpy()
  if impossible_T.any():
    order = 'day/month/year' if is_day_first else 'month/day/year'
    hint = (f' Read the other way round they all are: {flag[not is_day_first]}.'
            if other[matched_T].notna().all() else '')
    raise UserError(f'{where}: column {time_column!r} has values that are not dates read '
                    f'{order} (data.dayfirst={dayfirst!r}) at '
                    f'{first_rows(impossible_T, raw_times)} ({impossible_T.sum()} rows in all).'
                    f'{hint}')
  iso = (chosen.dt.strftime('%Y-%m-%d') + parts[4]).where(matched_T, raw_times.astype(str))
  return _parse_times(where, time_column, raw_times, iso)


def _unix_times(where: str, time_column: str, raw_times: pd.Series,
                time_unit: str) -> pd.Series:
  """[T] UTC timestamps of a column of numbers counting `time_unit` since 1970-01-01 UTC."""
  unit = _UNIT_NAMES[time_unit]
  numbers = pd.to_numeric(raw_times, errors='coerce')
  if not numbers.notna().any():
    present_T = raw_times.notna().to_numpy()
    example = f' (e.g. {first_rows(present_T, raw_times, 1)})' if present_T.any() else ''
    raise UserError(f'{where}: data.time_unit={time_unit!r} says column {time_column!r} holds '
                    f'numbers of {unit} since 1970-01-01, but it holds no number{example}. For a '
                    "column of dates leave data.time_unit empty: --config.data.time_unit=''.")
  times = pd.to_datetime(numbers, unit=time_unit, origin='unix', utc=True, errors='coerce')
  bad_T = times.isna().to_numpy()
  if bad_T.any():
    raise UserError(f'{where}: column {time_column!r} has values that are not numbers of {unit} '
                    f'since 1970-01-01 (data.time_unit={time_unit!r}), or are out of range, at '
                    f'{first_rows(bad_T, raw_times)} ({bad_T.sum()} rows in all).')
  return times


def _unit_readings(number: float) -> str:
  """What `number` means in each Unix time unit that puts it between 1971 and 2100."""
  readings = []
  for unit in _UNIT_NAMES:
    stamp = pd.to_datetime(number, unit=unit, origin='unix', errors='coerce')
    if stamp is not pd.NaT and 1971 <= stamp.year < 2100:
      readings.append(f'read in {unit}, {number:.15g} is {stamp} UTC')
  return f'; {"; ".join(readings)}' if readings else ''


def _day_month_dates(parts: pd.DataFrame, first_is_day: bool) -> pd.Series:
  """The dates `_DAY_MONTH` matched, read with the first number as the day or the month.

  Returns:
    [T] dates (midnight), NaT where no date reads that way (month 13, 31 February) or nothing
    matched; a two-digit year is 1969-2068, as strptime's %y.
  """
  day, month = (parts[0], parts[2]) if first_is_day else (parts[2], parts[0])
  year = parts[3]
  text = day + '/' + month + '/' + year
  four_digits_T = year.str.len() == 4
  return pd.to_datetime(text.where(four_digits_T), format='%d/%m/%Y', errors='coerce').fillna(
      pd.to_datetime(text.where(~four_digits_T), format='%d/%m/%y', errors='coerce'))


def _date(stamp: pd.Timestamp) -> str:
  """'2 January 2025'."""
  return f'{stamp.day} {stamp:%B %Y}'


def _which_order(matched_T: np.ndarray, month_first: pd.Series, day_first: pd.Series,
                 raw_times: pd.Series) -> str:
  """A sentence on which order of day and month reads every date `matched_T` ([T] bool) marks."""
  fails = {name: matched_T & dates.isna().to_numpy()
           for name, dates in (('month first', month_first), ('day first', day_first))}
  reads = [name for name, bad_T in fails.items() if not bad_T.any()]
  if len(reads) == 2:
    differ = np.flatnonzero(matched_T & (month_first != day_first).to_numpy())
    example = (f': {file_line(differ[0], raw_times)} is {_date(month_first.iloc[differ[0]])} month '
               f'first, {_date(day_first.iloc[differ[0]])} day first' if len(differ) else '')
    return f'Every date here reads both ways{example}.'
  described = '; '.join(f'read {name}, {bad_T.sum()} are not dates (e.g. '
                        f'{first_rows(bad_T, raw_times, 1)})' for name, bad_T in fails.items()
                        if bad_T.any())
  if reads:
    return f'Only {reads[0]} reads them all: {described}.'
  return f'Neither order reads them all: {described}.'
