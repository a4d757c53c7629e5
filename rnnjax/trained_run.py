"""A trained workdir read back for forecasting: `load_run` gives a `TrainedRun`.

`load_run(workdir)` rebuilds the model, its parameters (stacked for an ensemble, without its
diverged members: `alive_members`) and the fitted scalers from the newest usable checkpoint,
with Orbax's restore noise silenced. The series' time step is recorded at training
(`time_step`, in the checkpoint's metadata) and checked at forecasting (`check_step`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import sys

import jax
import numpy as np
import pandas as pd

from rnnjax import checkpoint as ckpt_lib
from rnnjax import config as config_lib
from rnnjax import models
from rnnjax import prediction
from rnnjax import scaling
from rnnjax import workdir as workdir_lib
from rnnjax.errors import UserError


@dataclasses.dataclass
class TrainedRun:
  """What forecasting needs from a workdir.

  Attributes:
    config: the run's config.
    params: parameters (with a leading member axis when `members` is set).
    scalers: series id -> (scaler, target_scaler), fitted on that series' training data (one
      series: the id '').
    columns: input columns: the target, past-only features, then future features.
    members: per-member records of an ensemble, else None.
    predict_jit: `predict(params, series_TF, starts_B) -> [B, S]` scaled forecasts ([B, S, Q]
      or [B, S, 2] for a probabilistic head).
    predict_members_jit: the member-vmapped version.
    epochs_done: epochs the restored checkpoint holds.
    finished: the run wrote metrics.json; False while it trains or after it was stopped.
    steps: series id -> the time step of its training data (`time_step`); empty, or None for
      a series, in a run saved before steps were recorded.
  """
  config: object
  params: object
  scalers: dict
  columns: tuple
  members: list | None
  predict_jit: object
  predict_members_jit: object
  epochs_done: int = 0
  finished: bool = True
  steps: dict = dataclasses.field(default_factory=dict)


def _is_loop_closed(error: BaseException) -> bool:
  return isinstance(error, RuntimeError) and str(error) == 'Event loop is closed'


def _is_read_only_notice(record: logging.LogRecord) -> bool:
  message = record.getMessage()
  return 'read_only=True' in message or 'directory is read only' in message


@contextlib.contextmanager
def _quiet_restore():
  """Silences Orbax's noise while checkpoints are read; rnnjax's own warnings still show.

  A step that fails to restore leaves TensorStore callbacks calling into Orbax's closed event
  loop (dozens of 'Event loop is closed' tracebacks, reported as unraisable exceptions) and
  unretrieved task errors on the 'asyncio' logger; a read-only manager also warns that it is
  read-only. The one useful line is rnnjax.checkpoint's 'skipping checkpoint ...' warning.
  """
  asyncio_logger, absl_logger = logging.getLogger('asyncio'), logging.getLogger('absl')
  previous_level, previous_hook = asyncio_logger.level, sys.unraisablehook

  def hook(unraisable):
    if not _is_loop_closed(unraisable.exc_value):
      previous_hook(unraisable)

  def keep(record):
    return not _is_read_only_notice(record)

  asyncio_logger.setLevel(logging.CRITICAL + 1)
  absl_logger.addFilter(keep)
  sys.unraisablehook = hook
  try:
    yield
  finally:
    gc.collect()  # failed tasks report 'never retrieved' when collected: do it while silenced
    sys.unraisablehook = previous_hook
    absl_logger.removeFilter(keep)
    asyncio_logger.setLevel(previous_level)


def alive_members(diverged_M, workdir: str) -> np.ndarray:
  """Which members of an ensemble can forecast: those that never diverged.

  Args:
    diverged_M: bool [M], the checkpoint's `diverged` flags.
    workdir: named in the error.

  Returns:
    bool [M], True for members that never diverged.

  Raises:
    UserError: every member diverged.
  """
  alive_M = ~np.asarray(diverged_M, bool)
  if not alive_M.any():
    raise UserError(f'every member of the ensemble in {workdir!r} diverged during training '
                    '(non-finite loss), so there is no member to forecast with. Retrain with a '
                    'lower train.learning_rate or with train.clip_norm set (in another --workdir, '
                    'or pass --overwrite).')
  return alive_M


def load_run(workdir: str, member: int | None = None) -> TrainedRun:
  """Reads the newest usable checkpoint of `workdir` (see rnnjax.checkpoint).

  Args:
    workdir: a workdir written by `rnnjax.run.train_and_evaluate`, finished or not (see
      `TrainedRun.finished`).
    member: for an ensemble workdir, extract this member as a single model; None keeps the
      whole ensemble (without diverged members).

  Raises:
    UserError: no usable checkpoint, a bad `member`, or an ensemble whose members all diverged.
  """
  with _quiet_restore():
    state, meta = ckpt_lib.load_for_inference(workdir)
  kind = json.loads(meta['config']).get(workdir_lib.KIND_KEY)
  if kind is not None:
    raise UserError(f'{workdir!r} holds a {kind} (scripts/{kind}.py), whose members are '
                    'trained on parts of the series: forecast with a workdir of '
                    'scripts/train.py.')
  config = config_lib.from_json(meta['config'])
  early = config.train.early_stopping_patience > 0
  params = state['best_params'] if early else state['params']
  members = meta['members']
  alive_M = None if members is None else alive_members(state['diverged'], workdir)
  if member is not None:
    if members is None:
      raise UserError(f'{workdir!r} holds a single model, not an ensemble: drop --member.')
    if not 0 <= member < len(members):
      raise UserError(f'--member={member} is out of range: {workdir!r} has members '
                      f'0..{len(members) - 1}.')
    params = jax.tree.map(lambda a: np.asarray(a)[member], params)
    members = None
  elif members is not None:  # diverged members take no part in the ensemble's forecast
    params = jax.tree.map(lambda a: np.asarray(a)[alive_M], params)
  model = models.from_config(config)
  predict = prediction.window_predictor(model, meta['window'], config_lib.target_steps(config.data),
                                        model.num_known)
  saved = meta.get('series') or [{'id': '', 'scaler': meta['scaler'],
                                  'target_scaler': meta['target_scaler']}]
  scalers = {one['id']: (scaling.scaler_from_state(one['scaler']),
                         scaling.scaler_from_state(one['target_scaler'])) for one in saved}
  return TrainedRun(config=config, params=params, scalers=scalers,
                    columns=tuple(meta['columns']), members=members,
                    predict_jit=jax.jit(predict),
                    predict_members_jit=jax.jit(jax.vmap(predict, in_axes=(0, None, None))),
                    epochs_done=int(meta['epochs_done']),
                    finished=os.path.isfile(os.path.join(workdir, 'metrics.json')),
                    steps={one['id']: one.get('step') for one in saved})


def time_step(times: pd.DatetimeIndex) -> str | None:
  """The series' time step as a pandas frequency string, for the run's checkpoint to record.

  A fixed step is a duration ('h', '30min', '24h'); a calendar one whose duration varies is
  pandas' inferred frequency ('MS' month starts, 'B' business days).

  Args:
    times: [T] timestamps, sorted and on a regular grid (as `rnnjax.sources` loads them).

  Returns:
    The frequency string; None when T < 2 or no frequency fits the timestamps.
  """
  times = pd.DatetimeIndex(times)
  if len(times) < 2:
    return None
  deltas = times[1:] - times[:-1]
  if (deltas == deltas[0]).all():
    return pd.tseries.frequencies.to_offset(deltas[0]).freqstr
  inferred = pd.DatetimeIndex(times, freq='infer').freq if len(times) >= 3 else None
  return None if inferred is None else inferred.freqstr


def _step_words(step: str) -> str:
  """'1h', '30min', 'MS': a frequency string with its count, as pandas aliases read."""
  offset = pd.tseries.frequencies.to_offset(step)
  return f'{offset.n}{offset.rule_code}' if isinstance(offset, pd.offsets.Tick) else step


def check_step(run: TrainedRun, times: pd.DatetimeIndex, name: str = '',
               source: str = '') -> None:
  """Refuses a series whose time step is not the one the run was trained on at.

  The check passes when the run's step, counted from the series' first timestamp, gives every
  timestamp of the series; a run saved before steps were recorded is not checked.

  Args:
    run: from `load_run`.
    times: [T] timestamps, sorted and on a regular grid.
    name: the series' id: picks its recorded step, and names it in errors.
    source: where the series comes from, to begin the message with (e.g. "--csv='x.csv': ").

  Raises:
    UserError: the series steps by another time step, naming both.
  """
  trained = run.steps.get(name)
  if trained is None or len(times) < 2:
    return
  expected = pd.date_range(times[0], periods=len(times), freq=trained)
  if (expected == times).all():
    return
  found = time_step(times)
  found = 'an irregular step' if found is None else _step_words(found)
  where = f'series {name!r}' if name else 'the series'
  raise UserError(f'{source}{where} steps by {found}, but the run was trained on data that steps '
                  f'by {_step_words(trained)} (pandas frequency aliases): its forecasts would be '
                  f'read at the wrong times. Resample the series to {_step_words(trained)} '
                  '(e.g. pandas\' DataFrame.resample), or forecast it with a run trained on '
                  f'{found} data.')
