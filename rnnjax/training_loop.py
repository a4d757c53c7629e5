"""The chunk loop that `rnnjax.run` and `rnnjax.backtest` share: `training(...)` trains a
compiled program (`rnnjax.program`) in chunks of epochs, or resumes it from the workdir's
checkpoints, and hands over a `Trained`.

The Python loop here only steps over chunks of epochs: after each compiled chunk it updates the
progress bar, records history and the TensorBoard event file (`rnnjax.tensorboard`), checks for
divergence, early stopping and preemption signals (`rnnjax.preemption`), and saves checkpoints
(`rnnjax.checkpoint`). `ends_in_a_message` makes a whole run end in a message that says which
checkpoint its workdir keeps: on SIGTERM / SIGINT outside the loop, or a refused write.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import signal
import threading
import time
from typing import Any, Callable

import jax
import numpy as np
import tqdm

from rnnjax import checkpoint as ckpt_lib
from rnnjax import plots
from rnnjax import preemption
from rnnjax import program as program_lib
from rnnjax import tensorboard
from rnnjax import workdir as workdir_lib
from rnnjax.devices import to_host
from rnnjax.errors import Diverged, Interrupted, WriteError


def _chunk_length(config, done: int) -> int:
  t = config.train
  next_checkpoint = (done // t.checkpoint_every + 1) * t.checkpoint_every
  chunk = t.epochs_per_chunk or t.checkpoint_every
  return min(chunk, t.epochs - done, next_checkpoint - done)


class _Stopped(BaseException):
  """SIGTERM or SIGINT outside the chunk loop, raised in the main thread by `ends_in_a_message`'s
  handler. A BaseException, as KeyboardInterrupt, so no `except Exception` on its way out
  swallows it."""

  def __init__(self, signum: int):
    super().__init__(signum)
    self.signum = signum


@contextlib.contextmanager
def _stopping_on_signals():
  """Within the block, SIGTERM and SIGINT raise `_Stopped` where the main thread is. The first
  one only: later ones are ignored while it unwinds (removing temporary files, waiting for saves
  in flight). Off the main thread (no handlers there) signals are left alone."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  received = []

  def handler(signum, frame):
    del frame
    if not received:
      received.append(signum)
      raise _Stopped(signum)
  previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield
  finally:
    for s, h in previous.items():
      signal.signal(s, signal.SIG_DFL if h is None else h)


def _kept_on_disk(workdir: str) -> str:
  """What a rerun starts from: the newest finished checkpoint in `workdir`, read from disk."""
  steps = ckpt_lib.steps_on_disk(os.path.join(workdir, ckpt_lib.LATEST_DIR))
  return (_kept(workdir, steps[-1]) if steps
          else 'no checkpoint was saved yet: the next run starts over')


def ends_in_a_message(run_fn):
  """Makes a run, `run_fn(config, workdir, ...)`, end in a message that says what its workdir
  keeps:

  - SIGTERM or SIGINT outside the chunk loop (which takes them at chunk boundaries, with a
    checkpoint) stops the run at once with `Interrupted` (exit 128 + the signal): on the way
    out the write under way removes its temporary file and the saves in flight land, where
    SIGTERM's default action would kill the process in the middle of a write.
  - an `errors.WriteError` (a full disk...) adds the checkpoint a rerun resumes from.
  """
  @functools.wraps(run_fn)
  def wrapped(config, workdir: str, *args, **kwargs):
    with _stopping_on_signals():
      try:
        return run_fn(config, workdir, *args, **kwargs)
      except _Stopped as e:
        raise Interrupted(f'received signal {e.signum}: stopped; {_kept_on_disk(workdir)}.',
                          e.signum) from None
      except WriteError as e:
        kept = _kept_on_disk(workdir)
        raise WriteError(f'{e} {kept[:1].upper()}{kept[1:]}.', e.errno) from e
  return wrapped


@dataclasses.dataclass
class Trained:
  """What `training` hands over: the final state, the joined history ([E] or [M, E] arrays),
  training seconds of this process and of the processes before it that this run resumes, and
  the program (for its compile seconds)."""
  state: Any
  history: dict
  train_seconds: float
  earlier_seconds: float
  program: program_lib.Program

  def timings(self) -> dict:
    return {'compile_seconds': self.program.compile_seconds,
            'train_seconds': self.earlier_seconds + self.train_seconds,
            'train_seconds_this_process': self.train_seconds}


@contextlib.contextmanager
def training(config, workdir: str, program: program_lib.Program, seconds: dict,
             progress: bool, meta: Callable[[dict, int, float], dict],
             warm_up: Callable[[], None] | None = None, learning_rates=None):
  """Trains `program` (or resumes it from `workdir`'s checkpoints) in chunks of epochs.

  First removes what a killed run left in the workdir (`workdir.remove_leftovers`). After each
  compiled chunk: the progress bar, history, the TensorBoard event file (`rnnjax.tensorboard`),
  divergence, early stopping, SIGTERM / SIGINT, and a checkpoint every train.checkpoint_every
  epochs (saved in the background while the next chunk trains). The block under `with` gets a
  `Trained` and runs while the last checkpoint is written; leaving it waits for every save.

  Args:
    config: the run's config (train.epochs, checkpoint_every, max_to_keep, ...).
    workdir: prepared by `rnnjax.workdir.prepare`.
    program: from `rnnjax.program`.
    seconds: phases timed so far; 'compile', 'train' and 'checkpoints' are added.
    progress: show a progress bar.
    meta: (history, epochs_done, train_seconds) -> the JSON-able metadata of a checkpoint.
    warm_up: work to overlap with the first chunk (e.g. compiling the scoring programs).
    learning_rates: [M, E] (E = train.epochs; M = 1 for a single run) each member's learning
      rate per epoch, for the event file (`tensorboard.epoch_learning_rates`); None logs none.

  Raises:
    Diverged: a single run's loss went non-finite, or every member's did.
    Interrupted: SIGTERM/SIGINT; a checkpoint was saved first.
    errors.WriteError: a save failed (a full disk); the previous checkpoint is kept.
  """
  members = program.members
  if jax.process_index() == 0:  # what a killed run left; this run owns the workdir now
    for path in workdir_lib.remove_leftovers(workdir):
      logging.info('removed %s, left by an interrupted run', path)
  checkpointer = ckpt_lib.Checkpointer(workdir, config.train.max_to_keep)
  history = {'loss': [], 'val_loss': [], 'active': [], 'grad_norm': []}
  # Training seconds of this process, and of the processes before it that this run resumes.
  done, train_seconds, earlier_seconds = 0, 0.0, 0.0
  start = time.perf_counter()
  restored = checkpointer.restore_latest(program.abstract_state)
  if restored is not None:
    state, saved_meta = restored
    state = program.from_saved(state)
    done = saved_meta['epochs_done']
    earlier_seconds = saved_meta.get('train_seconds', 0.0)
    # JSON gives float64; keep the dtypes a chunk returns so a resumed history matches.
    saved = saved_meta['history']
    # A checkpoint from before a key was recorded (grad_norm) resumes with NaN for its epochs.
    history = {k: [np.asarray(saved[k], bool if k == 'active' else np.float32) if k in saved
                   else np.full(np.shape(saved['loss']), np.nan, np.float32)]
               for k in history}
    logging.info('resuming %s from epoch %d', workdir, done)
  else:
    state = program.init()
    history = {k: [] for k in history}
  best_saved = (np.inf if restored is None
                else float(np.min(to_host(state.best_val_loss))))
  _import_in_background()
  # The program's tracing so far counts as compiling, not preparing.
  seconds['prepare'] = (seconds.get('prepare', 0.0) + time.perf_counter() - start
                        - program.compile_seconds)

  signals = preemption.Signals()
  if restored is not None:
    signals.kept = _kept(workdir, done)
  seconds['checkpoints'] = 0.0
  warming, bar = None, None
  events = None
  if jax.process_index() == 0:  # one process writes the workdir's files
    events = tensorboard.EventLog(workdir, learning_rates, members is not None)
  try:
    if events is not None:  # the epochs the checkpoint holds, whatever was logged before
      events.start(_joined(history))
    with signals.catching():
      # The bar shows inside the block: a Ctrl-C once it is on screen is caught and saved.
      bar = tqdm.tqdm(total=config.train.epochs, initial=done, unit='epoch',
                      disable=not progress, dynamic_ncols=True)
      all_stopped = bool(np.all(to_host(state.stopped)))
      while done < config.train.epochs and not all_stopped:
        n = _chunk_length(config, done)
        start = time.perf_counter()
        compile_before = program.compile_seconds
        state, chunk = program.run(state, n)
        if warming is None and warm_up is not None:  # overlaps the chunks' training
          warming = _in_background(warm_up)
        # The previous chunk's checkpoint lands while this chunk trains.
        if checkpointer.wait() is not None:
          signals.kept = _kept(workdir, checkpointer.finished_epoch)
        signals.wait(chunk)
        chunk = to_host(chunk)
        train_seconds += time.perf_counter() - start - (program.compile_seconds - compile_before)
        done += n
        for k in history:
          history[k].append(np.asarray(chunk[k]))
        if events is not None:
          events.append(chunk, done - n + 1)
        loss, val = np.asarray(chunk['loss'])[..., -1], np.asarray(chunk['val_loss'])[..., -1]
        bar.update(n)
        bar.set_postfix(loss=f'{_finite_mean(loss):.5f}', val_loss=f'{_finite_mean(val):.5f}')
        flags = to_host({'diverged': state.diverged, 'stopped': state.stopped,
                         'best': state.best_val_loss})
        diverged = flags['diverged']
        all_stopped = bool(np.all(flags['stopped']))
        if members is None and bool(diverged):
          bar.close()
          raise Diverged(_divergence_message(config, workdir, history, checkpointer))
        if done % config.train.checkpoint_every == 0 or done == config.train.epochs or \
            signals.received or all_stopped:
          # best/ gets this state if validation improved since the last checkpoint was saved.
          best_now = float(np.min(np.where(diverged, np.inf, flags['best'])))
          start = time.perf_counter()
          checkpointer.save(done, program.to_saved(state),
                            meta(_joined(history), done, earlier_seconds + train_seconds),
                            is_best=best_now < best_saved)
          seconds['checkpoints'] += time.perf_counter() - start
          best_saved = min(best_saved, best_now)
        if signals.received:
          bar.close()
          checkpointer.close()
          raise Interrupted(f'received signal {signals.received}: saved a checkpoint at epoch '
                            f'{done}; run the same command again to resume.', signals.received)
    bar.close()
    start = time.perf_counter()
    checkpointer.save(done, program.to_saved(state),
                      meta(_joined(history), done, earlier_seconds + train_seconds))
    seconds['checkpoints'] += time.perf_counter() - start
    if members is not None and np.all(to_host(state.diverged)):
      raise Diverged('every member of the ensemble diverged (non-finite loss); lower '
                     'train.learning_rate or set train.clip_norm.')
    # The last checkpoint is written while the caller scores and draws the run.
    if warming is not None:
      warming.join()
    yield Trained(state, _joined(history), train_seconds, earlier_seconds, program)
    start = time.perf_counter()
  finally:
    if bar is not None:  # the message a failure ends with starts on a line of its own
      bar.close()
    if events is not None:
      events.close()
    checkpointer.close()  # waits for the saves in flight, on every way out
  seconds['checkpoints'] += time.perf_counter() - start
  seconds['compile'] = program.compile_seconds
  seconds['train'] = train_seconds


def _in_background(fn) -> threading.Thread:
  """Runs `fn()` in a helper thread. Training runs in XLA without Python's lock, so Python work
  there overlaps it. A failure is only logged: the main thread does the same work again later
  and meets it there."""
  def target():
    try:
      fn()
    except Exception as e:  # noqa: BLE001
      logging.info('background %s failed (%s: %s); done again when needed', fn, type(e).__name__,
                   e)
  thread = threading.Thread(target=target, daemon=True)
  thread.start()
  return thread


def _import_in_background() -> None:
  """Imports Orbax and matplotlib (slow imports, docs/benchmarks.md) while the first chunk
  trains: the first save and the plots need them."""
  _in_background(lambda: (ckpt_lib.orbax(), plots.pyplot()))


def _kept(workdir: str, epoch: int) -> str:
  return (f'the checkpoint of epoch {epoch} in {os.path.join(workdir, ckpt_lib.LATEST_DIR)} is '
          'kept: run the same command again to resume from it')


def _finite_mean(values) -> float:
  finite = np.asarray(values)[np.isfinite(values)]
  return float(finite.mean()) if finite.size else float('nan')


def _joined(history: dict) -> dict:
  return {k: (np.concatenate(v, axis=-1) if v else np.zeros((0,))) for k, v in history.items()}


def _divergence_message(config, workdir: str, history: dict, checkpointer) -> str:
  loss_E = np.concatenate(history['loss'])
  val_E = np.concatenate(history['val_loss'])
  epoch = int(np.flatnonzero(~(np.isfinite(loss_E) & np.isfinite(val_E)))[0]) + 1
  steps = checkpointer.steps()
  kept = (f'the last good checkpoint is epoch {max(steps)} in '
          f'{os.path.join(workdir, ckpt_lib.LATEST_DIR)}' if steps else 'no checkpoint was saved')
  fixes = ('Lower train.learning_rate or set train.clip_norm (train.skip_nonfinite_updates is '
           'already on: no step was applied in that epoch).' if config.train.skip_nonfinite_updates
           else 'Lower train.learning_rate, set train.clip_norm, or set '
           'train.skip_nonfinite_updates=True.')
  return f'training diverged: the loss became non-finite at epoch {epoch}; {kept}. {fixes}'
