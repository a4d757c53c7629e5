"""Orbax checkpoints of whole training states: save, find the latest good one, restore.

A workdir holds two `orbax.checkpoint.CheckpointManager` directories:
  checkpoints/  the most recent `train.max_to_keep` states, saved every `train.checkpoint_every`
                epochs at chunk boundaries and at the end;
  best/         the state at the chunk boundary after the best validation loss so far.
Each checkpoint has two items: 'state' (the `TrainState` pytree: parameters, optimizer state,
RNG key, epoch, best parameters...) and 'meta' (JSON: the config, the fitted scalers, the
history so far, the epochs run). Orbax writes each step to a temporary directory and renames it
when complete, so a kill during a save leaves no step that looks complete; a step that still
fails to restore (a truncated file) is skipped with a warning and the previous one is used.

A save that the machine refuses (a full disk, a quota, a read-only file system) ends the run with
`WriteError`: the step's temporary folders are removed and the previous step stays the newest.
`remove_temporaries` removes the ones a killed run left.
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import time
from typing import Any

import jax

from rnnjax import errors
from rnnjax.errors import UserError

LATEST_DIR = 'checkpoints'
BEST_DIR = 'best'



# After a failed save: how long no new temporary folder must appear, and the most to wait.
SETTLE_QUIET_SECONDS = 0.5
SETTLE_LIMIT_SECONDS = 5.0


def remove_temporaries(directory: str) -> list[str]:
  """Removes the temporary folders of unfinished Orbax saves in `directory` (a kill or a failed
  save leaves them; Orbax never reads them); returns their paths. Finished steps are untouched.
  """
  if not os.path.isdir(directory):
    return []
  ocp = orbax()
  removed = []
  for tmp in ocp.path.step.all_temporary_paths(directory):
    path = str(tmp.get())
    shutil.rmtree(path, ignore_errors=True)
    removed.append(path)
  return removed


class _QuietSaveFailures(logging.Filter):
  """Hides what Orbax's and TensorStore's background threads print when a save fails for an OS
  reason: error records with tracebacks (Orbax logs through absl; asyncio its futures'), and
  'Event loop is closed' (TensorStore finishing a write after Orbax closed the failed save's
  event loop). The failure reaches the run through `Checkpointer.save` or `wait`, which report
  it once, as a `WriteError`."""
  loggers = ('absl', 'asyncio')

  def __init__(self):
    super().__init__()
    self.previous_hook = None

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno < logging.ERROR or not record.exc_info:
      return True
    return errors.os_error_code(record.exc_info[1]) is None

  def unraisable(self, unraisable) -> None:
    """sys.unraisablehook: drops only 'Event loop is closed' raised outside any object."""
    if not (unraisable.object is None and isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == 'Event loop is closed'):
      (self.previous_hook or sys.__unraisablehook__)(unraisable)

  def install(self) -> None:
    for name in self.loggers:
      logging.getLogger(name).addFilter(self)
    if sys.unraisablehook != self.unraisable:
      self.previous_hook, sys.unraisablehook = sys.unraisablehook, self.unraisable

  def remove(self) -> None:
    for name in self.loggers:
      logging.getLogger(name).removeFilter(self)
    if sys.unraisablehook == self.unraisable:
      sys.unraisablehook = self.previous_hook or sys.__unraisablehook__


_QUIET = _QuietSaveFailures()


@functools.cache
def orbax():
  """`orbax.checkpoint`, imported when first needed (a slow import, docs/benchmarks.md): a
  fresh run needs it only for its first save, and `rnnjax.training_loop` imports it in the
  background while the first chunk trains."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  return ocp


def _handlers() -> dict:
  ocp = orbax()
  return {'state': ocp.StandardCheckpointHandler(), 'meta': ocp.JsonCheckpointHandler()}


def _manager(directory: str, max_to_keep: int, asynchronous: bool):
  ocp = orbax()
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=asynchronous)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                               item_handlers=_handlers())


def steps_on_disk(directory: str) -> list[int]:
  """The finished Orbax steps in `directory` (folders named by their step number), sorted; read
  from the folder names alone, without Orbax."""
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory)
                if name.isdigit() and os.path.isdir(os.path.join(directory, name)))


def _has_steps(directory: str) -> bool:
  """Whether `directory` holds a finished Orbax step."""
  return bool(steps_on_disk(directory))


def _local_abstract(manager, step: int):
  """The saved tree's shapes and dtypes, placed whole on this process's first device.

  Restoring into this works whatever device layout the checkpoint was saved from.
  """
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  tree = manager.item_metadata(step)['state']
  return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)


class Checkpointer:
  """The workdir's latest-N and best checkpoint managers.

  Saves are asynchronous in a single process: `save` returns once the state is copied, and
  Orbax writes the files in the background while training goes on. A step becomes visible (its
  folder renamed from a temporary name) only when all of it is written, so a kill during a save
  leaves the previous step as the newest. `wait` blocks until every save has landed; `close`
  waits too. With several processes saves are synchronous.

  A save that fails for an OS reason raises `WriteError` from `save`, `wait` or `close`, whichever
  meets it first, once every save in flight has ended and the failed steps' temporary folders are
  removed; the managers are dropped then (the run is over: `close` has nothing left to do).
  """

  def __init__(self, workdir: str, max_to_keep: int):
    self.directories = (os.path.join(workdir, LATEST_DIR), os.path.join(workdir, BEST_DIR))
    self.max_to_keep = max_to_keep
    self.asynchronous = jax.process_count() == 1
    self._managers = None
    self._saved = (set(), set())  # epochs saved (or being saved) by this process, per manager
    self._pending = [None, None]  # the epoch each manager was last asked to save
    self.finished_epoch = None  # newest epoch whose save has landed

  @property
  def latest(self):
    return self.managers()[0]

  def managers(self) -> tuple:
    """(latest, best) managers, created (with their folders) on first use."""
    if self._managers is None:
      _QUIET.install()
      managers = []
      for directory, keep in zip(self.directories, (self.max_to_keep, 1), strict=True):
        try:
          managers.append(_manager(directory, keep, self.asynchronous))
        except OSError as e:
          raise errors.write_error(directory, e) from e
      self._managers = tuple(managers)
    return self._managers

  def _landed(self, i: int, step: int | None, call):
    """Runs `call` (a save or a wait of manager i, about `step`); an OS failure ends every save in
    flight, removes their temporary folders and raises WriteError naming the step."""
    try:
      return call()
    except Exception as e:  # noqa: BLE001 - Orbax and TensorStore raise several kinds
      code = errors.os_error_code(e)
      if code is None:
        raise
      self._abandon()
      where = self.directories[i] if step is None else os.path.join(self.directories[i], str(step))
      raise errors.write_error(where, code) from e

  def _abandon(self) -> None:
    """Waits out every save in flight, ignoring their errors (the first was raised), drops the
    managers and removes the temporary folders the failed saves left."""
    managers, self._managers = self._managers, None
    for manager in managers or ():
      # wait_until_finished can re-raise the stored failure while the save's threads still
      # write; close joins them, so no temporary folder appears after the removal below.
      for end in (manager.wait_until_finished, manager.close):
        try:
          end()
        except Exception:  # noqa: BLE001 - the failure being reported, met again
          pass
    if jax.process_index() == 0:
      # TensorStore's own threads can still create a failed item's temporary folder after
      # Orbax gave up on the save: remove until none has appeared for a while.
      deadline, quiet_since = time.monotonic() + SETTLE_LIMIT_SECONDS, time.monotonic()
      while time.monotonic() < deadline:
        if any([remove_temporaries(directory) for directory in self.directories]):
          quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= SETTLE_QUIET_SECONDS:
          break
        time.sleep(0.05)

  def save(self, epoch: int, state: Any, meta: dict, is_best: bool = False) -> None:
    """Saves `state` and `meta` as step `epoch`; also into best/ when `is_best`.

    Returns before the files are written (see the class). Orbax has copied the arrays to host
    memory by then, so the next chunk may donate their buffers at once (tests/test_checkpoint.py
    checks it).
    """
    ocp = orbax()
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    targets = (0, 1) if is_best else (0,)
    for i in targets:
      manager = self.managers()[i]
      if epoch in self._saved[i] or epoch in manager.all_steps():
        continue
      # The previous save's failure is that step's, not this one's.
      self._landed(i, self._pending[i], manager.wait_until_finished)
      self._landed(i, epoch, lambda m=manager: m.save(epoch, args=args))
      self._pending[i] = epoch
      self._saved[i].add(epoch)
    if not self.asynchronous:
      self.wait()

  def wait(self) -> int | None:
    """Blocks until every save has landed; returns the newest saved epoch (None: none yet)."""
    if self._managers is not None:
      for i, manager in enumerate(self._managers):
        self._landed(i, self._pending[i], manager.wait_until_finished)
      if self._saved[0]:
        self.finished_epoch = max(self._saved[0])
    return self.finished_epoch

  def steps(self) -> list[int]:
    """The latest manager's steps on disk, after pending saves land."""
    if self._managers is None and not _has_steps(self.directories[0]):
      return []
    self.wait()
    return list(self.latest.all_steps())

  def restore_latest(self, abstract_state: Any) -> tuple[Any, dict] | None:
    """The newest checkpoint that restores, as (state, meta); None when there is none.

    Newer steps that failed to restore are deleted, so the resumed run saves those epochs
    afresh instead of leaving damaged checkpoints that look newest.
    """
    if not _has_steps(self.directories[0]):
      return None  # a fresh workdir: no need to load Orbax yet
    restored = restore_newest(self.latest, abstract_state)
    good = restored[1]['epochs_done'] if restored is not None else -1
    for step in self.latest.all_steps():
      if step > good:
        logging.warning('deleting damaged checkpoint %s; training redoes its epochs',
                        os.path.join(str(self.latest.directory), str(step)))
        self.latest.delete(step)
    return restored

  def close(self) -> None:
    """Waits for pending saves and releases the managers.

    After a failed save (WriteError) Orbax's and TensorStore's threads may still print their
    part of it, so what quiets them (`_QuietSaveFailures`) stays.
    """
    if self._managers is not None:
      self.wait()
      for manager in self._managers:
        manager.close()
      self._managers = None
      _QUIET.remove()


def restore_newest(manager, abstract_state: Any = None):
  """Tries the manager's steps newest first and returns the first that restores whole.

  Args:
    manager: a CheckpointManager with items 'state' and 'meta'.
    abstract_state: pytree of `jax.ShapeDtypeStruct` (with shardings) to restore into; None
      restores the saved tree as nested dicts on one device, enough for inference.

  Returns:
    (state, meta), or None when no step restores.
  """
  ocp = orbax()
  manager.reload()
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      target = abstract_state if abstract_state is not None else _local_abstract(manager, step)
      restored = manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                        meta=ocp.args.JsonRestore()))
      jax.block_until_ready(restored.state)
    except Exception as e:  # noqa: BLE001 - any failure means this step cannot be used
      logging.warning('skipping checkpoint %s: it could not be restored (%s: %s)',
                      os.path.join(str(manager.directory), str(step)), type(e).__name__,
                      str(e).splitlines()[0] if str(e) else '')
      continue
    return restored.state, restored.meta
  return None


def newest_meta(manager) -> dict | None:
  """The 'meta' item of the newest step whose meta reads, or None."""
  ocp = orbax()
  manager.reload()
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    except Exception:  # noqa: BLE001 - a damaged step; restore_newest warns about it
      continue
  return None


def _read_only_manager(directory: str):
  """A manager that reads `directory` and never creates or writes anything."""
  ocp = orbax()
  options = ocp.CheckpointManagerOptions(create=False, read_only=True)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                               item_handlers=_handlers())


def saved_config(workdir: str) -> str | None:
  """The config (JSON text) in the newest readable checkpoint of `workdir`, or None.

  Reads only: a workdir without checkpoints is left as it is.
  """
  directory = os.path.join(workdir, LATEST_DIR)
  if not os.path.isdir(directory):
    return None
  manager = _read_only_manager(directory)
  try:
    meta = newest_meta(manager)
  finally:
    manager.close()
  return None if meta is None else meta['config']


def load_for_inference(workdir: str) -> tuple[dict, dict]:
  """The newest usable checkpoint of a finished or running workdir, without its config.

  Returns:
    (state tree as nested dicts of arrays, meta dict).

  Raises:
    UserError: the workdir has no usable checkpoint.
  """
  directory = os.path.join(workdir, LATEST_DIR)
  if not os.path.isdir(directory):
    raise UserError(f'{workdir!r} holds no checkpoints ({LATEST_DIR}/ is missing); train there '
                    'first with scripts/train.py --workdir.')
  manager = _read_only_manager(directory)
  restored = restore_newest(manager)
  manager.close()
  if restored is None:
    raise UserError(f'{directory!r} holds no checkpoint that can be restored.')
  return restored
