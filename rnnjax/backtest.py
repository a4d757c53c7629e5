"""Rolling-origin backtests: every fold x seed is a member of one compiled program.

`plan_folds` places `backtest.folds` forecast origins at the end of each series: the last
fold's test windows end with the series, each earlier fold's start `backtest.step` windows
before the next one's. Fold k's origin is the first point its training never sees: its first
test window's inputs end just before it. Fold k is the run train.py would make of the data
before its origin alone: that data's windows split by `data.val_fraction` into training and
validation windows (early stopping and the best epoch come from those), scalers fit on its
training part. It is scored on the next `backtest.test_length` windows.

With `backtest.refit` (the default) each fold x seed (x swept value) is a member of one
`jit(vmap(...))` program, sharded over the devices like an ensemble. Folds have training sets
of different sizes: each member holds its own scaled series and window starts padded to the
longest fold's (`train.make_trainer(capacity=...)`), and its series is NaN from its origin on,
so a training or scaling step that read past the origin would diverge rather than leak.
Without refit the members train once, on the first fold's data, and every fold scores them.

`run_backtest` writes into the workdir:

  config.json, checkpoints/, best/   as a training run (kill and resume the same way)
  backtest.csv    one row per fold, member, series, window and step: forecast, actual and
                  every baseline's forecast, in the series' units
  backtest.json   per fold the scores of the members' mean forecast and of the baselines,
                  their mean and standard deviation over folds, and the folds won
  backtest.png    the error by fold, model vs baselines

Each fold's linear baseline is fitted on the training windows of the data it is scored with:
its own with refit, the first fold's without (as the model).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time

import jax
import numpy as np
import pandas as pd

from rnnjax import config as config_lib
from rnnjax import data as data_lib
from rnnjax import devices
from rnnjax import distribution_metrics
from rnnjax import distributions
from rnnjax import ensemble
from rnnjax import evaluate as evaluate_lib
from rnnjax import linear_baseline
from rnnjax import metrics as metrics_lib
from rnnjax import plots
from rnnjax import prediction
from rnnjax import program as program_lib
from rnnjax import run as run_lib
from rnnjax import train as train_lib
from rnnjax import train_data
from rnnjax import workdir as workdir_lib
from rnnjax.errors import UserError
from rnnjax.sources import Series

KIND = 'backtest'


@dataclasses.dataclass(frozen=True)
class Folds:
  """Where each fold's origin and test windows lie.

  Attributes:
    origins: [K, num_series] int, per fold and series the position (within the series) of the
      first point the fold's training does not see.
    datasets: K Datasets of every series in full, laid out alike: fold k's windows, split and
      scalers from the points before its origins (`rnnjax.data.assemble` with `usable`).
    test_starts: K arrays [N_test] of window starts (into the datasets' arrays), series by
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
  points in or later (`data.check_lengths`)."""
  n = first + window + horizon
  while True:
    try:
      data_lib.check_lengths(n, window, horizon, val_fraction, first=first)
      return n
    except UserError:
      n += 1


def plan_folds(config, series: list[Series], columns) -> Folds:
  """The folds of `config.backtest` on loaded series (`rnnjax.data.load`), with data.lags
  resolved (`rnnjax.data.resolve_lags`): windows start max(lags) points into each series.

  Raises:
    UserError: more folds (or a longer step or test part) than the shortest series allows.
  """
  d, b = config.data, config.backtest
  window, horizon, num_folds = d.window, d.horizon, b.folds
  if d.lags == config_lib.AUTO:
    raise ValueError("data.lags='auto' is resolved from the series first "
                     '(rnnjax.data.resolve_lags)')
  first = max(d.lags, default=0)
  counts = np.array([len(data_lib.window_starts(len(one.values_TF), window, horizon, first))
                     for one in series])
  val_counts = counts - np.floor(counts * (1.0 - d.val_fraction)).astype(int)
  step = b.step or int(val_counts.min()) // num_folds
  if step < 1:
    raise UserError(
        f'backtest.folds={num_folds} is more folds than the validation part holds windows '
        f'({int(val_counts.min())}{" in the shortest series" if len(series) > 1 else ""}); use '
        f'at most {int(val_counts.min())} folds, or set backtest.step.')
  test_length = b.test_length or step
  need = _min_points(window, horizon, d.val_fraction, first)
  origins = np.zeros((num_folds, len(series)), int)
  for i, (one, count) in enumerate(zip(series, counts, strict=True)):
    for k in range(num_folds):
      first_test = first + count - test_length - (num_folds - 1 - k) * step
      origins[k, i] = first_test + window
    if origins[0, i] < need:
      most = max(0, (first + count - test_length + window - need) // step + 1)
      name = f'series {one.name!r}' if one.name else 'the series'
      where = (f'{origins[0, i]} points into {name}' if origins[0, i] > 0
               else f'before the start of {name}')
      raise UserError(
          f'backtest.folds={num_folds} with backtest.step={step} and test_length={test_length} '
          f'puts the first origin {where} ({len(one.values_TF)} points), too early for one '
          f'training and one validation window (which need {need} points with window={window}, '
          f'horizon={horizon}, val_fraction={d.val_fraction}'
          f'{f", data.lags={tuple(d.lags)}" if first else ""}). Use at most {most} folds, or a '
          'smaller backtest.step or test_length.')
  datasets = tuple(data_lib.assemble(d, series, columns, usable=origins[k])
                   for k in range(num_folds))
  bounds = datasets[0].bounds
  test_starts = tuple(
      np.concatenate([bounds[i] + origins[k, i] - window + np.arange(test_length)
                      for i in range(len(series))]).astype(np.int32)
      for k in range(num_folds))
  return Folds(origins=origins, datasets=datasets, test_starts=test_starts, step=step,
               test_length=test_length)


def training_series(dataset: data_lib.Dataset, origins: np.ndarray) -> np.ndarray:
  """A fold's scaled series as its training reads it: NaN from each series' origin on.

  Args:
    dataset: the fold's dataset.
    origins: [num_series] its origins within each series.

  Returns:
    float32 [T, F + K], a copy of dataset.scaled_TF.
  """
  series = np.array(dataset.scaled_TF, copy=True)
  for i, origin in enumerate(origins):
    series[dataset.bounds[i] + origin:dataset.bounds[i + 1]] = np.nan
  return series


def fold_members(base: ensemble.Members, num_folds: int) -> ensemble.Members:
  """Every fold x the config's own members `base` (seeds and sweep, M0 of them), fold-major:
  member m trains fold m // M0 as member m % M0 of `base`."""
  return ensemble.Members(
      seeds=np.tile(base.seeds, num_folds),
      hparams={k: np.tile(v, num_folds) for k, v in base.hparams.items()},
      swept=base.swept, folds=np.repeat(np.arange(num_folds), base.size))


def member_data(folds: Folds, capacity: tuple[int, int], members_per_fold: int):
  """[M, ...] DeviceData: each member its fold's training series and padded window starts."""
  rows = []
  for dataset, origins in zip(folds.datasets, folds.origins, strict=True):
    dd = train_data.device_data(dataset, *capacity)
    rows += [dd._replace(series_TF=training_series(dataset, origins))] * members_per_fold
  return jax.tree.map(lambda *leaves: np.stack([np.asarray(a) for a in leaves]), *rows)


@dataclasses.dataclass
class Backtest:
  """A backtest ready to train: its folds, members and compiled programs.

  Attributes:
    config: the backtest's config with data.lags and data.season resolved
      (`resolved_folds`).
    folds: from `plan_folds`.
    base: the config's own member plan (seeds, sweep): M0 members per fold.
    members: what the program trains: every fold x base member (fold-major) with refit, else
      the base members, trained on the first fold's data.
    trainer: from `train.make_trainer`.
    program: from `rnnjax.program.members_program`.
  """
  config: object
  folds: Folds
  base: ensemble.Members
  members: ensemble.Members
  trainer: train_lib.Trainer
  program: program_lib.Program


def resolved_folds(config, series: list[Series]) -> tuple[object, Folds]:
  """The folds of `config` on loaded series, and `config` with data.lags and data.season as the
  backtest reads them (`rnnjax.data.resolved_config`): 'auto' lags from the series' lengths,
  'auto' season from the first fold's training windows, which lie before every fold's test
  windows, so no fold's test part chooses it.
  """
  if config.data.lags == config_lib.AUTO:
    config = config_lib.replaced(config, **{
        'data.lags': data_lib.resolve_lags(config.data, series)})
  folds = plan_folds(config, series, data_lib.input_columns(config.data))
  return data_lib.resolved_config(config, folds.datasets[0]), folds


def make_backtest(config, series: list[Series] | None = None) -> Backtest:
  """Plans the folds of `config` (on `series`, else the series it names) and builds the program.

  Raises:
    UserError: bad config, data or fold plan.
  """
  config_lib.validate(config)
  for caveat in config_lib.caveats(config):
    logging.warning(caveat)
  base = ensemble.plan_members(config) or ensemble.single_member(config)
  if config.data.test_fraction:
    logging.warning('data.test_fraction=%s is not used by a backtest: each fold is tested on '
                    'the windows past its own origin.', config.data.test_fraction)
    config = config.copy_and_resolve_references()
    config.data.test_fraction = 0.0
  series = data_lib.load(config.data) if series is None else series
  config, folds = resolved_folds(config, series)
  for dataset, starts in zip(folds.datasets, folds.test_starts, strict=True):
    metrics_lib.baseline_forecasts(dataset, starts, config.data.season)
  if config.backtest.refit:
    members = fold_members(base, folds.num_folds)
    capacity = (max(len(d.train_starts) for d in folds.datasets),
                max(len(d.val_starts) for d in folds.datasets))
    trainer = train_lib.make_trainer(config, folds.datasets[0], capacity)
    program = program_lib.members_program(trainer, config, members,
                                           member_data(folds, capacity, base.size))
  else:
    members = base
    trainer = train_lib.make_trainer(config, folds.datasets[0])
    program = program_lib.members_program(trainer, config, members)
  return Backtest(config, folds, base, members, trainer, program)


@run_lib.ends_in_a_message
def run_backtest(config, workdir: str, overwrite: bool = False, progress: bool = True) -> dict:
  """Trains (or resumes) the backtest `config` describes and writes its files to `workdir`.

  Returns:
    The contents of backtest.json.

  Raises:
    UserError: bad config, data, fold plan or workdir (nothing in the workdir is touched), or
      another process runs in `workdir` (rnnjax.workdir.lock).
    Diverged: every member diverged.
    Interrupted: SIGTERM/SIGINT; a checkpoint was saved first.
      Outside the chunk loop they stop the run at once (`run.ends_in_a_message`).
    errors.WriteError: the disk refused a write (full); the last complete checkpoint is
      kept and no temporary file is left.
  """
  with workdir_lib.lock(workdir):  # before the folds are planned: a second run is refused at once
    return _run_backtest(config, workdir, overwrite, progress)


def _run_backtest(config, workdir: str, overwrite: bool, progress: bool) -> dict:
  """`run_backtest` in the workdir it holds."""
  seconds = {}
  start = time.perf_counter()
  bt = make_backtest(config)
  config = bt.config  # data.lags and data.season as resolved: what the workdir records
  workdir_lib.prepare(workdir, config, overwrite, kind=KIND)
  folds, members = bt.folds, bt.members
  seconds['prepare'] = time.perf_counter() - start

  def meta(history, done, train_seconds):
    return {'config': workdir_lib.recorded_config(config, KIND), 'epochs_done': done,
            'train_seconds': train_seconds,
            'history': {k: np.asarray(v).tolist() for k, v in history.items()},
            'members': members.records(),
            'origins': folds.origins.tolist()}

  with run_lib.training(config, workdir, bt.program, seconds, progress, meta) as trained:
    start = time.perf_counter()
    state = trained.state
    params = devices.to_host(train_lib.final_params(
        state, config.train.early_stopping_patience > 0))
    params = jax.tree.map(lambda a: a[:members.size], params)
    diverged = devices.to_host(state.diverged)[:members.size]
    frame, results = score_folds(config, folds, bt.trainer, params, diverged, bt.base)
    seconds['evaluate'] = time.perf_counter() - start
    if jax.process_index() == 0:
      start = time.perf_counter()
      workdir_lib.atomic_write(os.path.join(workdir, 'backtest.csv'),
                               lambda p: frame.to_csv(p, index=False))
      workdir_lib.atomic_write(os.path.join(workdir, 'backtest.png'),
                               lambda p: plots.plot_backtest(results['folds'], p))
      seconds['plots'] = time.perf_counter() - start
  results.update(trained.timings())
  results['epochs_run'] = int(np.max(np.sum(trained.history['active'], axis=-1)))
  results['seconds'] = seconds
  if jax.process_index() == 0:
    workdir_lib.write_json(os.path.join(workdir, 'backtest.json'), results)
  return results


SCORES = ('rmse', 'mae', 'baseline_persistence_rmse', 'baseline_seasonal_naive_rmse',
          'baseline_linear_rmse', 'rmse_skill_vs_persistence', 'rmse_skill_vs_seasonal_naive',
          'rmse_skill_vs_linear',
          # a probabilistic head's, next to the naive distribution's
          'coverage', 'interval_width', 'pinball', 'crps', 'crps_skill_vs_naive',
          'baseline_naive_coverage', 'baseline_naive_interval_width', 'baseline_naive_pinball',
          'baseline_naive_crps')


def _test_scores(metrics: dict) -> dict:
  """`metrics.forecast_metrics`' validation scores renamed for a test part: 'val_' dropped."""
  def rename(tree):
    if isinstance(tree, dict):
      return {(k[4:] if k.startswith('val_') else k): rename(v) for k, v in tree.items()}
    if isinstance(tree, list):
      return [rename(v) for v in tree]
    return tree
  return rename(metrics)


def score_folds(config, folds: Folds, trainer: train_lib.Trainer, params, diverged_M,
                base: ensemble.Members) -> tuple[pd.DataFrame, dict]:
  """Forecasts every fold's test windows with its members and scores them.

  Args:
    config: the backtest's config.
    folds: from `plan_folds`.
    trainer: the trainer the members trained with (its `predict`).
    params: the members' reported parameters, [M, ...]: fold-major with refit, else [M0, ...]
      shared by every fold.
    diverged_M: [M] bool.
    base: the config's own member plan (M0 members per fold).

  Returns:
    (the backtest.csv table, the backtest.json contents without timings).
  """
  refit = config.backtest.refit
  head, levels = config.model.head, tuple(config.model.quantiles)
  rows, fold_results = [], []
  # The linear baseline of each fold's data, from its training windows (one fit without refit).
  linear_fits = ([linear_baseline.fit_linear(d) for d in folds.datasets] if refit
                 else [linear_baseline.fit_linear(folds.datasets[0])] * folds.num_folds)
  for k, (dataset, starts) in enumerate(zip(folds.datasets, folds.test_starts, strict=True)):
    linear = linear_fits[k]
    if refit:
      take = slice(k * base.size, (k + 1) * base.size)
      fold_params = jax.tree.map(lambda a, t=take: a[t], params)
      alive = ~np.asarray(diverged_M[take], bool)
    else:  # the first fold's members and scalers, at every origin
      fold_params, alive = params, ~np.asarray(diverged_M, bool)
      dataset = folds.datasets[0]
    scaled = prediction.predict_windows(trainer, fold_params, dataset.scaled_TF, starts,
                                        config.train.val_batch_size, member_axis=True)
    forecast_M = dataset.unscale_distribution(scaled, head, starts)  # [M, N, S(, Q or 2)]
    centers_MNS = np.stack([distributions.center(f[None], head, levels) for f in forecast_M])
    result = {'fold': k, 'test_windows': int(len(starts)),
              'train_windows': int(len(dataset.train_starts)),
              'val_windows': int(len(dataset.val_starts)),
              'members_alive': int(alive.sum())}
    result['origin'] = _origin_times(dataset, folds.origins[k])
    if alive.any():
      center = distributions.center(forecast_M[alive], head, levels)
      scores = metrics_lib.forecast_metrics(dataset, starts, center, config.data.season, 'val',
                                            linear)
      if head != 'point':  # the naive distribution from the fold's own training windows
        evaluate_lib.merge_scores(scores, distribution_metrics.distribution_scores(
            dataset, starts, forecast_M[alive], config, train_starts=dataset.train_starts))
      result.update(_test_scores(scores))
      result['members_rmse'] = [metrics_lib.rmse(f, dataset.targets(starts)) if ok else None
                                for f, ok in zip(centers_MNS, alive, strict=True)]
    fold_results.append(result)
    rows.append(_fold_rows(config, dataset, starts, forecast_M, centers_MNS, base, k,
                           folds.origins[k], linear))
  return pd.concat(rows, ignore_index=True), summarize(fold_results, folds, refit)


def _origin_times(dataset, origins) -> dict | str:
  """A fold's origin time, the first its test part forecasts from (by series with several)."""
  times = {name: str(dataset.timestamps[dataset.bounds[i] + origins[i]])
           for i, name in enumerate(dataset.series_ids)}
  return times[''] if list(times) == [''] else times


def _fold_rows(config, dataset, starts, forecast_M, centers_MNS, base, fold, origins,
               linear: linear_baseline.LinearBaseline) -> pd.DataFrame:
  """backtest.csv's rows of one fold: every member, window and step, with every baseline's
  forecast (`linear`: the fold's fit); a probabilistic head's columns as scripts/predict.py
  writes them (`distribution_columns`)."""
  _, n, num_steps = centers_MNS.shape
  positions = dataset.target_positions(starts)
  baselines = metrics_lib.baseline_forecasts(dataset, starts, config.data.season, linear)
  which = dataset.series_index(starts)
  origin_times = dataset.timestamps[dataset.bounds[:-1][which] + np.asarray(origins)[which]]
  window_rows = {
      'origin': np.repeat(np.asarray(origin_times), num_steps),
      'input_end': np.repeat(np.asarray(dataset.timestamps[starts + dataset.window - 1]),
                             num_steps),
      'step': np.tile(np.asarray(dataset.steps), n),
      'target_time': np.asarray(dataset.timestamps[positions.reshape(-1)]),
      'actual': dataset.targets(starts).reshape(-1),
      'persistence': baselines['persistence'].reshape(-1),
      'seasonal_naive': baselines['seasonal_naive'].reshape(-1),
      'linear': baselines['linear'].reshape(-1),
  }
  if dataset.series_ids != ('',):
    window_rows = {'series': np.repeat(np.asarray(dataset.series_ids)[which], num_steps),
                   **window_rows}
  frames = []
  for m, record in enumerate(base.records()):
    head = {'fold': fold, 'member': m, 'seed': record['seed'],
            **{name: record[name] for name in base.swept}}
    frame = pd.DataFrame({**window_rows, 'forecast': centers_MNS[m].reshape(-1),
                          **distribution_columns(config, forecast_M[m])})
    for i, (key, value) in enumerate(head.items()):
      frame.insert(i, key, value)
    frames.append(frame)
  columns = list(frames[0].columns)
  last = ('actual', 'persistence', 'seasonal_naive', 'linear')
  return pd.concat(frames, ignore_index=True)[[c for c in columns if c not in last] + list(last)]


def distribution_columns(config, forecast) -> dict:
  """One member's distribution as flat columns [N * S]: the quantile head's 'q{level}' and the
  central interval's 'lower'/'upper'; the gaussian head's 'mean', 'scale', 'lower', 'upper';
  nothing for the point head.

  Args:
    config: model.head, model.quantiles, model.interval.
    forecast: [N, S, Q] or [N, S, 2] in the series' units.
  """
  head, levels = config.model.head, tuple(config.model.quantiles)
  if head == 'point':
    return {}
  f = np.asarray(forecast)
  out = {}
  if head == 'quantile':
    out = {f'q{level:g}': f[..., j].reshape(-1) for j, level in enumerate(levels)}
  else:
    out = {'mean': f[..., 0].reshape(-1), 'scale': f[..., 1].reshape(-1)}
  bounds = distributions.quantiles_at(f[None], head, levels,
                                      config_lib.interval_bounds(config.model.interval))
  out['lower'], out['upper'] = bounds[..., 0].reshape(-1), bounds[..., 1].reshape(-1)
  return out


def summarize(fold_results: list[dict], folds: Folds, refit: bool) -> dict:
  """backtest.json: the folds, the mean and standard deviation over folds of each score, and
  how many folds the model's RMSE beats each baseline's."""
  scored = [r for r in fold_results if 'rmse' in r]
  out = {'folds': fold_results, 'num_folds': folds.num_folds, 'step': folds.step,
         'test_length': folds.test_length, 'refit': refit,
         'mean': {}, 'std': {}, 'wins': {}}
  for key in SCORES:
    if not any(key in r for r in scored):
      continue
    values = np.array([r[key] for r in scored if r.get(key) is not None], float)
    out['mean'][key] = float(values.mean()) if values.size else None
    out['std'][key] = float(values.std(ddof=1)) if values.size > 1 else None
  for name in metrics_lib.BASELINES:
    out['wins'][name] = sum(r['rmse'] < r[f'baseline_{name}_rmse'] for r in scored)
  if any('crps' in r for r in scored):
    out['wins']['naive_distribution_crps'] = sum(r['crps'] < r['baseline_naive_crps']
                                                 for r in scored)
    out['interval_level'] = scored[0]['interval_level']
  out['folds_scored'] = len(scored)
  return out


def verdict(results: dict) -> str:
  """One line: mean test RMSE over folds against each baseline's, and the folds won."""
  mean, n = results['mean'], results['folds_scored']
  parts = [f'{metrics_lib.BASELINE_NAMES[name]} {mean[f"baseline_{name}_rmse"]:.4g} '
           f'(wins {results["wins"][name]} of {n} folds)' for name in metrics_lib.BASELINES]
  line = f'backtest of {results["num_folds"]} folds: mean rmse {mean["rmse"]:.4g} vs ' + \
      ', '.join(parts)
  if 'crps' in mean:
    line += (f'; {results["interval_level"]:.0%} interval coverage {mean["coverage"]:.3f} '
             f'(naive {mean["baseline_naive_coverage"]:.3f}), crps {mean["crps"]:.4g} (naive '
             f'{mean["baseline_naive_crps"]:.4g}, wins {results["wins"]["naive_distribution_crps"]} '
             f'of {n} folds)')
  return line

