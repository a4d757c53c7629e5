"""The series the model reads: the scaled values with lagged targets (data.lags) and calendar
inputs (data.calendar) as extra columns, laid out as `rnnjax.models.Forecaster` expects
(`model_inputs`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from rnnjax.scaling import check_scaled


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
    angle_T = 2.0 * np.pi * np.asarray(phases[name], np.float64)
    columns += [np.sin(angle_T), np.cos(angle_T)]
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
    float32 [T, F + P + 2 * len(calendar)], P = len(lags).

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
    [T, P] (P = len(lags)), the dtype of `target_T`.
  """
  n = len(target_T)
  lagged_TP = np.empty((n, len(lags)), target_T.dtype)
  for j, lag in enumerate(lags):
    back = min(int(lag), n)
    lagged_TP[:back, j] = target_T[0] if n else 0
    lagged_TP[back:, j] = target_T[:n - back]
  return lagged_TP
