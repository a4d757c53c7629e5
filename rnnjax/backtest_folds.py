"""The folds of a rolling-origin backtest: where each fold's origin and test windows lie, and the
data each fold's members train on.

`plan_folds` places `backtest.folds` forecast origins at the end of each series: the last
fold's test windows end with the series, each earlier fold's start `backtest.step` windows
before the next one's. Fold k's origin is the first point its training never sees: its first
test window's inputs end just before it. Fold k is the run train.py would make of the data
before its origin alone: that data's windows split by `data.val_fraction` into training and
validation windows (early stopping and the best epoch come from those), scalers fit on its
training part. It is scored on the next `backtest.test_length` windows.

Folds have training sets of different sizes: each member holds its own scaled series and window
starts padded to the longest fold's (`member_data`), and its series is NaN from its origin on
(`training_series`), so a training or scaling step that read past the origin would diverge
rather than leak.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

from rnnjax import config as config_lib
from rnnjax import data as data_lib
from rnnjax import dataset as dataset_lib
from rnnjax import ensemble
from rnnjax import seasons
from rnnjax import train_data
from rnnjax import windows
from rnnjax.errors import UserError
from rnnjax.sources import Series


@dataclasses.dataclass(frozen=True)
class Folds:
  """Where each fold's origin and test windows lie.

  Attributes:
    origins: [O, R] int, per fold and series the position (within the series) of the first
      point the fold's training does not see.
    datasets: O Datasets of every series in full, laid out alike: fold k's windows, split and
      scalers from the points before its origins (`rnnjax.data.assemble` with `usable`).
    test_starts: O arrays [N_test] of window starts (into the datasets' arrays), series by
      series: the `test_length` windows after each origin.
    step: windows between consecutive origins.
    test_length: test windows per fold and series.
  """
  origins: np.ndarray
  datasets: tuple
  test_starts: tuple
  step: int
  test_length: int

  @property
  def num_folds(self) -> int:
    return len(self.datasets)


def _min_points(window: int, horizon: int, val_fraction: float, first: int = 0) -> int:
  """The fewest points with one training and one validation window, each starting `first`
  points in or later (`windows.check_lengths`)."""
  n = first + window + horizon
  while True:
    try:
      windows.check_lengths(n, window, horizon, val_fraction, first=first)
      return n
    except UserError:
      n += 1


def plan_folds(config, series: list[Series], columns) -> Folds:
  """The folds of `config.backtest` on loaded series (`rnnjax.data.load`), with data.lags
  resolved (`rnnjax.seasons.resolve_lags`): windows start max(lags) points into each series.

  Raises:
    UserError: more folds (or a longer step or test part) than the shortest series allows.
  """
  d, b = config.data, config.backtest
  window, horizon, num_folds = d.window, d.horizon, b.folds
  if d.lags == config_lib.AUTO:
    raise ValueError("data.lags='auto' is resolved from the series first "
                     '(rnnjax.seasons.resolve_lags)')
  first = max(d.lags, default=0)
  counts_R = np.array([len(windows.window_starts(len(one.values_TF), window, horizon, first))
                       for one in series])
  val_counts_R = counts_R - np.floor(counts_R * (1.0 - d.val_fraction)).astype(int)
  step = b.step or int(val_counts_R.min()) // num_folds
  if step < 1:
    raise UserError(
        f'backtest.folds={num_folds} is more folds than the validation part holds windows '
        f'({int(val_counts_R.min())}{" in the shortest series" if len(series) > 1 else ""}); '
        f'use at most {int(val_counts_R.min())} folds, or set backtest.step.')
  test_length = b.test_length or step
  need = _min_points(window, horizon, d.val_fraction, first)
  origins_OR = np.zeros((num_folds, len(series)), int)
  for i, (one, count) in enumerate(zip(series, counts_R, strict=True)):
    for k in range(num_folds):
      first_test = first + count - test_length - (num_folds - 1 - k) * step
      origins_OR[k, i] = first_test + window
    if origins_OR[0, i] < need:
      most = max(0, (first + count - test_length + window - need) // step + 1)
      name = f'series {one.name!r}' if one.name else 'the series'
      where = (f'{origins_OR[0, i]} points into {name}' if origins_OR[0, i] > 0
               else f'before the start of {name}')
      raise UserError(
          f'backtest.folds={num_folds} with backtest.step={step} and test_length={test_length} '
          f'puts the first origin {where} ({len(one.values_TF)} points), too early for one '
          f'training and one validation window (which need {need} points with window={window}, '
          f'horizon={horizon}, val_fraction={d.val_fraction}'
          f'{f", data.lags={tuple(d.lags)}" if first else ""}). Use at most {most} folds, or a '
          'smaller backtest.step or test_length.')
  datasets = tuple(data_lib.assemble(d, series, columns, usable=origins_OR[k])
                   for k in range(num_folds))
  bounds = datasets[0].bounds
  test_starts = tuple(
      np.concatenate([bounds[i] + origins_OR[k, i] - window + np.arange(test_length)
                      for i in range(len(series))]).astype(np.int32)
      for k in range(num_folds))
  return Folds(origins=origins_OR, datasets=datasets, test_starts=test_starts, step=step,
               test_length=test_length)


def training_series(dataset: dataset_lib.Dataset, origins: np.ndarray) -> np.ndarray:
  """A fold's scaled series as its training reads it: NaN from each series' origin on.

  Args:
    dataset: the fold's dataset.
    origins: [R] its origins within each series.

  Returns:
    float32 [T, F], a copy of dataset.scaled_TF.
  """
  series_TF = np.array(dataset.scaled_TF, copy=True)
  for i, origin in enumerate(origins):
    series_TF[dataset.bounds[i] + origin:dataset.bounds[i + 1]] = np.nan
  return series_TF


def fold_members(base: ensemble.Members, num_folds: int) -> ensemble.Members:
  """Every fold x the config's own members `base` (seeds and sweep, M0 of them), fold-major:
  member m trains fold m // M0 as member m % M0 of `base`."""
  return ensemble.Members(
      seeds=np.tile(base.seeds, num_folds),
      hparams={k: np.tile(v, num_folds) for k, v in base.hparams.items()},
      swept=base.swept, folds=np.repeat(np.arange(num_folds), base.size))


def member_data(folds: Folds, capacity: tuple[int, int], members_per_fold: int,
                val_windows: int = 0):
  """[M, ...] DeviceData: each member its fold's training series and padded window starts;
  val_windows: train.val_windows (`train_data.device_data`)."""
  rows = []
  for dataset, origins in zip(folds.datasets, folds.origins, strict=True):
    dd = train_data.device_data(dataset, *capacity, val_windows=val_windows)
    rows += [dd._replace(series_TF=training_series(dataset, origins))] * members_per_fold
  return jax.tree.map(lambda *leaves: np.stack([np.asarray(a) for a in leaves]), *rows)


def resolved_folds(config, series: list[Series]) -> tuple[object, Folds]:
  """The folds of `config` on loaded series, and `config` with data.lags and data.season as the
  backtest reads them (`rnnjax.seasons.resolved_config`): 'auto' lags from the series' lengths,
  'auto' season from the first fold's training windows, which lie before every fold's test
  windows, so no fold's test part chooses it.
  """
  if config.data.lags == config_lib.AUTO:
    config = config_lib.replaced(config, **{
        'data.lags': seasons.resolve_lags(config.data, series)})
  folds = plan_folds(config, series, data_lib.input_columns(config.data))
  return seasons.resolved_config(config, folds.datasets[0]), folds
