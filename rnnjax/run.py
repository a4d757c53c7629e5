"""`train_and_evaluate(config, workdir)`: one run (or one ensemble) from config to artifacts.

Checks the config and data (`rnnjax.data`), builds the program (`rnnjax.program`), hands it to
the chunk loop (`rnnjax.training_loop`), then scores (`rnnjax.evaluate`) and draws
(`rnnjax.plots`) the trained run. Everything the workdir receives:

  config.json      the config of the run (a different config there is refused)
  checkpoints/     Orbax checkpoints of the whole training state (see rnnjax.checkpoint)
  best/            the checkpoint after the best validation loss
  history.csv      epoch, loss, val_loss (the head's scaled loss, rnnjax.losses), grad_norm (the
                   gradients' global norm before clipping); ensembles: member means, then per
                   member
  tensorboard/     the same per epoch, and the learning rate, as TensorBoard event files
                   (rnnjax.tensorboard)
  metrics.json     errors in the series' own units, baselines, distribution scores for a
                   probabilistic head, timings (written last)
  loss.png, predictions.png
"""
from __future__ import annotations

import logging
import os
import time

import jax
import numpy as np

from rnnjax import config as config_lib
from rnnjax import config_checks
from rnnjax import data as data_lib
from rnnjax import dataset as dataset_lib
from rnnjax import devices
from rnnjax import distribution_metrics
from rnnjax import ensemble
from rnnjax import evaluate as evaluate_lib
from rnnjax import host_memory
from rnnjax import losses
from rnnjax import metrics as metrics_lib
from rnnjax import plots
from rnnjax import program as program_lib
from rnnjax import scaling
from rnnjax import seasons
from rnnjax import tensorboard
from rnnjax import train as train_lib
from rnnjax import trained_run
from rnnjax import training_loop
from rnnjax import workdir as workdir_lib


def _meta(config, data: dataset_lib.Dataset, history: dict, epochs_done: int,
          members: ensemble.Members | None, train_seconds: float) -> dict:
  return {
      'config': config_lib.to_json(config),
      # Each series' time step, so that forecasting can refuse data at another step.
      'series': [{'id': name, 'scaler': scaling.scaler_state(scaler),
                  'target_scaler': scaling.scaler_state(target_scaler),
                  'step': trained_run.time_step(data.timestamps[start:end])}
                 for name, scaler, target_scaler, start, end in zip(
                     data.series_ids, data.scalers, data.target_scalers, data.bounds[:-1],
                     data.bounds[1:], strict=True)],
      'columns': list(data.columns),
      'window': data.window, 'horizon': data.horizon,
      'epochs_done': epochs_done,
      'train_seconds': train_seconds,  # over every process that trained this run
      'history': {k: np.asarray(v).tolist() for k, v in history.items()},
      'members': None if members is None else members.records(),
  }


@training_loop.ends_in_a_message
def train_and_evaluate(config, workdir: str, overwrite: bool = False,
                       progress: bool = True, seconds: dict | None = None) -> dict:
  """Trains (or resumes) the run `config` describes in `workdir` and writes every artifact.

  Args:
    config: a ConfigDict from `rnnjax.config.default_config()` or a file in configs/.
    workdir: directory for checkpoints and outputs; running again resumes.
    overwrite: replace a run with a different config found in `workdir`.
    progress: show a progress bar.
    seconds: phases timed before the call (e.g. {'imports': ...}), reported with the run's own.

  Returns:
    The metrics written to metrics.json.

  Raises:
    UserError: bad config, data or workdir (nothing in the workdir is touched), or another
      process runs in `workdir` (rnnjax.workdir.lock).
    Diverged: the loss went non-finite; the last good checkpoint is kept.
    Interrupted: SIGTERM/SIGINT; a checkpoint was saved first.
      Outside the chunk loop they stop the run at once (`training_loop.ends_in_a_message`).
    errors.WriteError: the disk refused a write (full); the last complete checkpoint is
      kept and no temporary file is left.
  """
  with workdir_lib.lock(workdir):  # before the data loads: a second run is refused at once
    return _train_and_evaluate(config, workdir, overwrite, progress, seconds)


def _train_and_evaluate(config, workdir: str, overwrite: bool, progress: bool,
                        seconds: dict | None) -> dict:
  """`train_and_evaluate` in the workdir it holds."""
  seconds = dict(seconds or {})  # where the time goes, by phase: metrics.json's 'seconds'
  start = time.perf_counter()
  config_checks.validate(config)
  for caveat in config_checks.caveats(config):
    logging.warning(caveat)
  members = ensemble.plan_members(config)
  data = data_lib.prepare(config.data)
  # From here on data.lags and data.season hold what the data read: the workdir records them.
  config = seasons.resolved_config(config, data)
  # A season reaching before a series' start fails before training.
  metrics_lib.baseline_forecasts(data, data.val_starts, config.data.season)
  if config.model.head != 'point':  # and so does one the naive distribution cannot be made of
    distribution_metrics.naive_distribution(data, data.val_starts, config.data.season, (0.5,))
  if not config.train.steps_per_epoch and config.train.batch_size > len(data.train_starts):
    logging.warning('train.batch_size=%d is larger than the %d training windows: every epoch is '
                    'one step over all of them. A smaller batch_size takes more steps per epoch.',
                    config.train.batch_size, len(data.train_starts))
  mesh = devices.training_mesh(config, None if members is None else members.size)
  trainer = train_lib.make_trainer(config, data, data_shards=devices.data_shards(mesh))
  host_memory.check_memory(config, data, 1 if members is None else members.size, trainer)
  workdir_lib.prepare(workdir, config, overwrite)

  program = program_lib.make_program(trainer, config, members, mesh)
  rates = ([config.train.learning_rate] if members is None
           else members.hparams['learning_rate'])
  learning_rates = tensorboard.epoch_learning_rates(
      config, rates, tensorboard.batches_per_epoch(len(data.train_starts),
                                                   config.train.batch_size,
                                                   config.train.steps_per_epoch))
  seconds['prepare'] = time.perf_counter() - start
  with training_loop.training(config, workdir, program, seconds, progress,
                              meta=lambda history, done, train_seconds: _meta(
                                  config, data, history, done, members, train_seconds),
                              warm_up=lambda: evaluate_lib.warm_up(config, data, trainer,
                                                                   program),
                              learning_rates=learning_rates) as trained:
    start = time.perf_counter()
    state, history = trained.state, trained.history
    results, panels, frame = evaluate_lib.evaluate(config, data, trainer, state, history,
                                                   members)
    seconds['evaluate'] = time.perf_counter() - start
    if jax.process_index() == 0:  # one process writes the workdir's files
      start = time.perf_counter()
      workdir_lib.atomic_write(os.path.join(workdir, 'history.csv'),
                               lambda p: frame.to_csv(p, index=False))
      workdir_lib.atomic_write(os.path.join(workdir, 'loss.png'),
                               lambda p: plots.plot_loss(history, p,
                                                         losses.NAMES[config.model.head]))
      workdir_lib.atomic_write(os.path.join(workdir, 'predictions.png'),
                               lambda p: plots.plot_predictions(panels, p))
      seconds['plots'] = time.perf_counter() - start
  if jax.process_index() != 0:
    return results
  results.update(trained.timings())
  results['seconds'] = seconds
  results['epochs_run'] = int(np.max(np.sum(history['active'], axis=-1)))
  workdir_lib.write_json(os.path.join(workdir, 'metrics.json'), results)
  return results
