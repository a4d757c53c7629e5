"""Rolling-origin backtests: every fold x seed is a member of one compiled program, trained
and reported into a workdir.

The folds are `rnnjax.backtest_folds`', the scores and tables `rnnjax.backtest_report`'s. With
`backtest.refit` (the default) each fold x seed (x swept value) is a member of one sharded
`jit(vmap(...))` program, trained on its own fold's data; without refit the members train once,
on the first fold's data, and every fold scores them. `run_backtest` writes into the workdir:

  config.json, checkpoints/, best/   as a training run (kill and resume the same way)
  backtest.csv    one row per fold, member, series, window and step: forecast, actual and
                  every baseline's forecast, in the series' units
  backtest.json   per fold the scores of the members' mean forecast and of the baselines,
                  their mean and standard deviation over folds, and the folds won
  backtest.png    the error by fold, model vs baselines
  tensorboard/    each member's loss, validation loss, learning rate and gradient norm per epoch
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time

import jax
import numpy as np

from rnnjax import backtest_folds
from rnnjax import backtest_report
from rnnjax import config_checks
from rnnjax import data as data_lib
from rnnjax import devices
from rnnjax import ensemble
from rnnjax import forecast
from rnnjax import metrics as metrics_lib
from rnnjax import plots
from rnnjax import predict_checks
from rnnjax import program as program_lib
from rnnjax import tensorboard
from rnnjax import train as train_lib
from rnnjax import training_loop
from rnnjax import workdir as workdir_lib
from rnnjax.sources import Series

KIND = 'backtest'


@dataclasses.dataclass
class Backtest:
  """A backtest ready to train: its folds, members and compiled programs.

  Attributes:
    config: the backtest's config with data.lags and data.season resolved
      (`backtest_folds.resolved_folds`).
    folds: from `backtest_folds.plan_folds`.
    base: the config's own member plan (seeds, sweep): M0 members per fold.
    members: what the program trains: every fold x base member (fold-major) with refit, else
      the base members, trained on the first fold's data.
    trainer: from `train.make_trainer`.
    program: from `rnnjax.program.members_program`.
  """
  config: object
  folds: backtest_folds.Folds
  base: ensemble.Members
  members: ensemble.Members
  trainer: train_lib.Trainer
  program: program_lib.Program


def make_backtest(config, series: list[Series] | None = None) -> Backtest:
  """Plans the folds of `config` (on `series`, else the series it names) and builds the program.

  Raises:
    UserError: bad config, data or fold plan.
  """
  config_checks.validate(config)
  for caveat in config_checks.caveats(config):
    logging.warning(caveat)
  base = ensemble.plan_members(config) or ensemble.single_member(config)
  if config.data.test_fraction:
    logging.warning('data.test_fraction=%s is not used by a backtest: each fold is tested on '
                    'the windows past its own origin.', config.data.test_fraction)
    config = config.copy_and_resolve_references()
    config.data.test_fraction = 0.0
  series = data_lib.load(config.data) if series is None else series
  config, folds = backtest_folds.resolved_folds(config, series)
  for dataset, starts in zip(folds.datasets, folds.test_starts, strict=True):
    metrics_lib.baseline_forecasts(dataset, starts, config.data.season)
  if config.backtest.refit:
    members = backtest_folds.fold_members(base, folds.num_folds)
    capacity = (max(len(d.train_starts) for d in folds.datasets),
                max(len(d.val_starts) for d in folds.datasets))
    mesh = devices.training_mesh(config, members.size)
    trainer = train_lib.make_trainer(config, folds.datasets[0], capacity,
                                     devices.data_shards(mesh))
    program = program_lib.members_program(trainer, config, members, backtest_folds.member_data(
        folds, capacity, base.size, config.train.val_windows), mesh)
  else:
    members = base
    mesh = devices.training_mesh(config, members.size)
    trainer = train_lib.make_trainer(config, folds.datasets[0],
                                     data_shards=devices.data_shards(mesh))
    program = program_lib.members_program(trainer, config, members, mesh=mesh)
  return Backtest(config, folds, base, members, trainer, program)


def learning_rates(bt: Backtest) -> np.ndarray:
  """[M, E] (E = train.epochs) each member's learning rate per epoch
  (`tensorboard.epoch_learning_rates`): with refit a member steps through its own fold's batches
  along the schedule the program was built with, the longest fold's."""
  config, folds, members = bt.config, bt.folds, bt.members
  batch_size, drawn = config.train.batch_size, config.train.steps_per_epoch
  if not config.backtest.refit:
    return tensorboard.epoch_learning_rates(
        config, members.hparams['learning_rate'],
        tensorboard.batches_per_epoch(len(folds.datasets[0].train_starts), batch_size, drawn))
  batches = [tensorboard.batches_per_epoch(len(d.train_starts), batch_size, drawn)
             for d in folds.datasets]
  return tensorboard.epoch_learning_rates(
      config, members.hparams['learning_rate'], np.asarray(batches)[members.folds],
      max(batches))


@training_loop.ends_in_a_message
def run_backtest(config, workdir: str, overwrite: bool = False, progress: bool = True,
                 digits: int = predict_checks.DIGITS) -> dict:
  """Trains (or resumes) the backtest `config` describes and writes its files to `workdir`.

  backtest.csv's numbers have `digits` significant digits (`forecast.write_csv`).

  Returns:
    The contents of backtest.json.

  Raises:
    UserError: bad config, data, fold plan, digits or workdir (nothing in the workdir is
      touched), or another process runs in `workdir` (rnnjax.workdir.lock).
    Diverged: every member diverged.
    Interrupted: SIGTERM/SIGINT; a checkpoint was saved first.
      Outside the chunk loop they stop the run at once (`training_loop.ends_in_a_message`).
    errors.WriteError: the disk refused a write (full); the last complete checkpoint is
      kept and no temporary file is left.
  """
  predict_checks.check_digits(digits)
  with workdir_lib.lock(workdir):  # before the folds are planned: a second run is refused at once
    return _run_backtest(config, workdir, overwrite, progress, digits)


def _run_backtest(config, workdir: str, overwrite: bool, progress: bool, digits: int) -> dict:
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

  with training_loop.training(config, workdir, bt.program, seconds, progress, meta,
                              learning_rates=learning_rates(bt)) as trained:
    start = time.perf_counter()
    state = trained.state
    params = devices.to_host(train_lib.final_params(
        state, config.train.early_stopping_patience > 0))
    params = jax.tree.map(lambda a: a[:members.size], params)
    diverged = devices.to_host(state.diverged)[:members.size]
    frame, results = backtest_report.score_folds(config, folds, bt.trainer, params, diverged,
                                                 bt.base)
    seconds['evaluate'] = time.perf_counter() - start
    if jax.process_index() == 0:
      start = time.perf_counter()
      workdir_lib.atomic_write(os.path.join(workdir, 'backtest.csv'),
                               lambda p: forecast.write_csv(frame, p, digits))
      workdir_lib.atomic_write(os.path.join(workdir, 'backtest.png'),
                               lambda p: plots.plot_backtest(results['folds'], p))
      seconds['plots'] = time.perf_counter() - start
  results.update(trained.timings())
  results['epochs_run'] = int(np.max(np.sum(trained.history['active'], axis=-1)))
  results['seconds'] = seconds
  if jax.process_index() == 0:
    workdir_lib.write_json(os.path.join(workdir, 'backtest.json'), results)
  return results
