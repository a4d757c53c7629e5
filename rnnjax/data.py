"""A config's data, loaded and prepared: the series it names (`rnnjax.sources`), each long
enough for its windows, split into training, validation and test windows, scaled by its own
scalers and laid end to end with the model's extra input columns (`prepare`, `assemble`).

Several series (data.id_column) lie end to end in one array, and no window crosses from one
into the next. The parts live in modules of their own: windows and their split in
`rnnjax.windows`, scalers in `rnnjax.scaling`, lag and calendar columns in `rnnjax.inputs`, the
`Dataset` in `rnnjax.dataset`, and data.lags='auto' and data.season='auto' in `rnnjax.seasons`.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import pandas as pd

from rnnjax import config as config_lib
from rnnjax import host_memory
from rnnjax import sources
from rnnjax.dataset import Dataset
from rnnjax.errors import UserError
from rnnjax.inputs import model_inputs
from rnnjax.scaling import check_scaled, check_scaler, make_scaler
from rnnjax.seasons import resolve_lags
from rnnjax.sources import Series
from rnnjax.windows import check_lengths, part_starts, target_offset, test_args


def series_from_config(data_config) -> list[Series]:
  """Loads the raw series a config names, each with values in `input_columns` order."""
  columns = input_columns(data_config)
  if data_config.source == 'synthetic':
    s = data_config.synthetic
    if s.num_days <= 0:
      raise UserError(f'data.synthetic.num_days must be > 0, got {s.num_days}.')
    if len(columns) != 1:
      raise UserError('the synthetic series has one column; leave data.features empty.')
    times, values_T = sources.synthetic_series(s.num_days, s.slope, s.amplitude, s.noise,
                                               s.start)
    return [Series('', times, values_T[:, None], pd.DataFrame())]
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
    host_memory.release_freed()  # what reading the file freed, before the dataset is built
  else:
    series = [Series('', pd.DatetimeIndex(times), np.asarray(values_TF), pd.DataFrame())]
    check_lengths(len(series[0].values_TF), data_config.window, data_config.horizon,
                  data_config.val_fraction, first=_explicit_first(data_config),
                  **test_args(data_config))
  if data_config.lags == config_lib.AUTO:
    data_config = config_lib.replaced(data_config, lags=resolve_lags(data_config, series))
  dataset = assemble(data_config, series, columns)
  del series
  host_memory.release_freed()  # what reading and joining the series freed
  return dataset


def load(data_config) -> list[Series]:
  """The series `data_config` names, each long enough for a training and a validation window
  (after the points its data.lags read back).

  With several series (data.id_column), one too short is left out with a warning; a single
  series too short is an error.
  """
  series = series_from_config(data_config)
  window, horizon, fraction = data_config.window, data_config.horizon, data_config.val_fraction
  first = _explicit_first(data_config)
  test = test_args(data_config)
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


def assemble(data_config, series: Sequence[Series], columns: Sequence[str],
             usable: Sequence[int] | None = None) -> Dataset:
  """Splits and scales loaded series and lays them end to end.

  Args:
    data_config: the config's data section, with data.lags resolved (`resolve_lags`).
    series: the series, each long enough (see `load`).
    columns: their F column names, target first.
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
  test = test_args(data_config)
  if usable is None:
    usable = [len(one.values_TF) for one in series]
  else:
    usable, test['test_fraction'] = list(usable), 0.0
  calendar = tuple(data_config.calendar)
  parts = {'train': [], 'val': [], 'test': [], 'scalers': [], 'target_scalers': []}
  bounds = np.cumsum([0] + [len(one.values_TF) for one in series])
  # The joined arrays are filled series by series: a panel's inputs are never held twice.
  values_TF = np.empty((bounds[-1], len(columns)),
                       np.result_type(*[one.values_TF.dtype for one in series]))
  scaled_TF = None
  for k, (one, n_points) in enumerate(zip(series, usable, strict=True)):
    train_N, val_N, test_N = part_starts(
        n_points, window, horizon, data_config.val_fraction, first=first, **test)
    fit_end = int(train_N[-1]) + target_offset(window, horizon) + 1  # past the last target
    # Overflow is checked for below, and named there: numpy's warnings would only add noise.
    with np.errstate(over='ignore', invalid='ignore'):
      scaler = make_scaler(data_config.scaler).fit(one.values_TF[:fit_end])
      target_scaler = make_scaler(data_config.scaler).fit(one.values_TF[:fit_end, :1])
      one_TF = scaler.transform(one.values_TF).astype(np.float32)
    for fitted in (scaler, target_scaler):
      check_scaler(fitted, one.values_TF, one.times, columns, fit_end, one.name)
    check_scaled(one_TF, one.times, columns, one.values_TF, one.name)
    one_TF = model_inputs(one_TF, one.times, calendar, past + known, num_future)
    if scaled_TF is None:
      scaled_TF = np.empty((bounds[-1], one_TF.shape[1]), one_TF.dtype)
    scaled_TF[bounds[k]:bounds[k + 1]] = one_TF
    values_TF[bounds[k]:bounds[k + 1]] = one.values_TF
    parts['train'].append(train_N + bounds[k])
    parts['val'].append(val_N + bounds[k])
    parts['test'].append(test_N + bounds[k])
    parts['scalers'].append(scaler)
    parts['target_scalers'].append(target_scaler)
  join = np.concatenate
  times = series[0].times.append([one.times for one in series[1:]])
  return Dataset(timestamps=times, values_TF=values_TF,
                 scaled_TF=scaled_TF, columns=tuple(columns), window=window,
                 horizon=horizon, train_starts=join(parts['train']).astype(np.int32),
                 val_starts=join(parts['val']).astype(np.int32),
                 test_starts=join(parts['test']).astype(np.int32),
                 scalers=tuple(parts['scalers']), target_scalers=tuple(parts['target_scalers']),
                 calendar=calendar, steps=steps,
                 series_ids=tuple(one.name for one in series), bounds=bounds,
                 num_future=num_future, multi_step=bool(data_config.multi_step), lags=lags)
