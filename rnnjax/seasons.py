"""The seasons of a series' time step (`STEP_SEASONS`), and the 'auto' settings they resolve:
data.lags='auto' from the series' lengths (`resolve_lags`) and data.season='auto' from the
seasonal-naive errors on the training windows (`auto_season`); `resolved_config` is the config
with both as the data resolved them.
"""
from __future__ import annotations

import logging
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd

from rnnjax import config as config_lib
from rnnjax import sources
from rnnjax import windows
from rnnjax.dataset import Dataset
from rnnjax.errors import UserError
from rnnjax.sources import Series


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
  test = windows.test_args(data_config)

  def holds(one: Series, lag: int) -> bool:
    n = len(one.values_TF)
    full = len(windows.window_starts(n, window, horizon))
    return (len(windows.window_starts(n, window, horizon, lag)) >= AUTO_LAG_SHARE * full
            and windows.enough_windows(
                windows.window_counts(n, window, horizon, fraction, lag, **test),
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
  target_T = np.asarray(data.scaled_TF[:, 0], np.float64)
  positions_NS = data.target_positions(data.train_starts)
  which_N = data.series_index(data.train_starts)
  starts_N1 = data.bounds[which_N][:, None]
  present = np.unique(which_N)
  inside = {}
  for season in seasons:
    back_NS = positions_NS - config_lib.seasonal_lag(season, np.asarray(data.steps))[None, :]
    ok_N = np.all(back_NS >= starts_N1, axis=1)
    # Windows inside, counted per series at once (a mask per series is O(series x windows)).
    if np.all(np.bincount(which_N, weights=ok_N, minlength=len(data.bounds) - 1)[present] > 0):
      inside[season] = (ok_N, back_NS)
  if not inside:
    return {}
  common_N = np.logical_and.reduce([ok_N for ok_N, _ in inside.values()])
  truth_N = target_T[positions_NS[common_N]]
  return {season: float(np.mean((truth_N - target_T[back_NS[common_N]]) ** 2))
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
