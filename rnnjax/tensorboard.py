"""TensorBoard event files of a run's history, in WORKDIR/tensorboard/: per epoch the loss, the
validation loss, the learning rate and the gradient norm, one tag per member.

Written with tensorboardX's protocol buffers and record writer (no TensorFlow); view them with
`pip install tensorboard` and `tensorboard --logdir runs/`. A single run's tags are 'loss',
'val_loss', 'learning_rate' and 'grad_norm'; an ensemble's are 'loss/member0', 'loss/member1',
... (TensorBoard groups a tag's members in one section), each at the epochs that member trained.
The step of every value is its epoch, 1-based, as in history.csv.

A killed run resumes from its checkpoint, which can hold fewer epochs than were logged before
the kill, so `EventLog.start` writes the history the run resumes with to a new file whole,
renames it into place and then removes every other file of the folder; each chunk's epochs are
appended to that file. The folder then holds each epoch once, however the run was stopped (an
older file a kill left behind is removed at the next start, and read correctly meanwhile).
"""
from __future__ import annotations

import os
import socket
import time

import numpy as np

from rnnjax import errors
from rnnjax import optimizer
from rnnjax import train_data

FOLDER = 'tensorboard'
# The scalars written for each epoch: history key -> tag. The learning rate is the config's.
TAGS = {'loss': 'loss', 'val_loss': 'val_loss', 'learning_rate': 'learning_rate',
        'grad_norm': 'grad_norm'}
_TMP_PREFIX = '.tmp-'  # a file TensorBoard does not read (no 'tfevents' in its name)


def epoch_learning_rates(config, learning_rate_M, batches_per_epoch_M,
                         schedule_batches: int | None = None) -> np.ndarray:
  """Each member's learning rate in each epoch of `config`: its train.learning_rate times the
  mean of the schedule (`rnnjax.optimizer.lr_factor`) over that epoch's optimizer steps.

  Args:
    config: the run's config (train.epochs, train.lr_schedule, train.warmup_epochs).
    learning_rate_M: [M] each member's learning rate (a sweep's differ).
    batches_per_epoch_M: [M] optimizer steps a member takes per epoch (backtest folds differ).
    schedule_batches: steps per epoch the schedule was built with (`train.make_trainer`: the
      longest fold's); None: each member's own.

  Returns:
    float64 [M, E], E = train.epochs.
  """
  rates_M = np.asarray(learning_rate_M, np.float64).reshape(-1)
  batches_M = np.broadcast_to(np.asarray(batches_per_epoch_M, int).reshape(-1), rates_M.shape)
  epochs = config.train.epochs
  out_ME = np.empty((len(rates_M), epochs))
  for k, (rate, n) in enumerate(zip(rates_M, batches_M, strict=True)):
    schedule = optimizer.lr_factor(config, n if schedule_batches is None else schedule_batches)
    if schedule is None:
      out_ME[k] = rate
      continue
    # The schedule's factor at each of the epoch's n steps, averaged per epoch.
    out_ME[k] = rate * np.asarray(schedule(np.arange(epochs * n)), np.float64).reshape(
        epochs, n).mean(axis=1)
  return out_ME


def scalars(history: dict, first_epoch: int, learning_rate_ME=None,
            member_axis: bool = False) -> list[tuple[str, int, float]]:
  """(tag, epoch, value) of every scalar the epochs in `history` log.

  Args:
    history: 'active' and some of 'loss', 'val_loss', 'grad_norm': [E] arrays, or [M, E] with
      `member_axis`, for the epochs first_epoch .. first_epoch + E - 1. An epoch a member did
      not train ('active' false) logs nothing for it, nor does a NaN grad_norm (an epoch
      trained before it was recorded).
    first_epoch: the 1-based epoch of the first column.
    learning_rate_ME: [M, >= last epoch] from `epoch_learning_rates`, or None (not logged).
    member_axis: an ensemble's history: tags 'loss/member{k}', ...

  Returns:
    Rows ordered by epoch, then member, then tag.
  """
  active_ME = np.atleast_2d(np.asarray(history['active'], bool))
  num_members, num_epochs = active_ME.shape
  values = {key: np.atleast_2d(np.asarray(history[key], np.float64))
            for key in ('loss', 'val_loss', 'grad_norm') if key in history}
  if learning_rate_ME is not None:
    rates_ME = np.atleast_2d(np.asarray(learning_rate_ME, np.float64))
    values['learning_rate'] = rates_ME[:, first_epoch - 1:first_epoch - 1 + num_epochs]
  rows = []
  for e in range(num_epochs):
    for k in range(num_members):
      if not active_ME[k, e]:
        continue
      for key, tag in TAGS.items():
        if key not in values or (key == 'grad_norm' and np.isnan(values[key][k, e])):
          continue  # epochs trained before grad_norm was recorded: a checkpoint's NaN
        name = f'{tag}/member{k}' if member_axis else tag
        rows.append((name, first_epoch + e, float(values[key][k, e])))
  return rows


class EventLog:
  """The event file of one process's training, in `workdir`/tensorboard/ (see the module
  docstring). Call `start` with the history the run resumes from (empty for a new run), then
  `append` after every chunk, and `close` at the end, also on failure."""

  def __init__(self, workdir: str, learning_rate_ME=None, member_axis: bool = False):
    self.folder = os.path.join(workdir, FOLDER)
    self.learning_rate_ME = learning_rate_ME
    self.member_axis = member_axis
    self.path = None
    self._writer = None

  def start(self, history: dict) -> None:
    """Writes `history` ([E] or [M, E] arrays from epoch 1, possibly E = 0) to a new event file
    and removes every other file of the folder.

    Raises:
      errors.WriteError: the disk refused a write; the folder's files are left as they were
        (save any removed before the failure) and the temporary file is removed.
    """
    from tensorboardX.record_writer import RecordWriter  # pylint: disable=import-outside-toplevel
    name = f'events.out.tfevents.{time.time_ns()}.{socket.gethostname()}'
    tmp = os.path.join(self.folder, _TMP_PREFIX + name.replace('tfevents', 'events'))
    try:
      os.makedirs(self.folder, exist_ok=True)
      self._writer = RecordWriter(tmp)
      self._write(_header())
      if len(history.get('active', ())):
        self._write_scalars(history, 1)
      self._writer.flush()
      os.replace(tmp, os.path.join(self.folder, name))  # appends go on into the renamed file
      self.path = os.path.join(self.folder, name)
      for other in os.listdir(self.folder):
        if other != name and os.path.isfile(os.path.join(self.folder, other)):
          os.remove(os.path.join(self.folder, other))
    except BaseException as e:
      self.close()
      if os.path.exists(tmp):
        os.remove(tmp)
      if isinstance(e, OSError):
        raise errors.write_error(self.path or tmp, e) from e
      raise

  def append(self, chunk: dict, first_epoch: int) -> None:
    """Appends a chunk's epochs ([E] or [M, E] arrays, from `first_epoch`) and flushes.

    Raises:
      errors.WriteError: the disk refused a write (the next start rewrites the file whole).
    """
    try:
      self._write_scalars(chunk, first_epoch)
      self._writer.flush()
    except OSError as e:
      raise errors.write_error(self.path, e) from e

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None

  def _write_scalars(self, history: dict, first_epoch: int) -> None:
    from tensorboardX import summary  # pylint: disable=import-outside-toplevel
    now = time.time()
    for tag, epoch, value in scalars(history, first_epoch, self.learning_rate_ME,
                                     self.member_axis):
      self._write(_event(now, epoch, summary.scalar(tag, value)))

  def _write(self, event) -> None:
    self._writer.write(event.SerializeToString())


def _header():
  """The first event of every event file: the format's version, as TensorBoard expects."""
  return _event(time.time(), 0, None, file_version='brain.Event:2')


def _event(wall_time: float, step: int, summary, **fields):
  from tensorboardX.proto.event_pb2 import Event  # pylint: disable=import-outside-toplevel
  if summary is not None:
    fields['summary'] = summary
  return Event(wall_time=wall_time, step=step, **fields)


def batches_per_epoch(num_windows: int, batch_size: int, steps_per_epoch: int = 0) -> int:
  """Optimizer steps in an epoch over `num_windows` training windows (the last one ragged), or
  `steps_per_epoch` (train.steps_per_epoch) when > 0."""
  return train_data.epoch_steps(num_windows, batch_size, steps_per_epoch)
