"""SIGTERM and SIGINT during training: noted, acted on at the next chunk boundary.

A preemption notice (SIGTERM) or Ctrl-C (SIGINT) arriving mid-chunk must not kill the process
while a compiled chunk runs: `Signals.catching()` records it, and the run saves a checkpoint
after the chunk and exits with 128 + the signal number. A second Ctrl-C does not wait for the
chunk: the process stops at once, keeping the last checkpoint saved (every save is complete on
disk before training goes on, so there is nothing half-written to lose).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

import jax


class Signals:
  """Records SIGTERM/SIGINT during training instead of dying mid-chunk.

  Attributes:
    received: the last signal number received inside `catching()`, or None.
    kept: what a second Ctrl-C leaves behind, for its message (e.g. 'the checkpoint of epoch 5
      in runs/w/checkpoints is kept'); the run updates it after each save.
  """

  def __init__(self, kept: str = 'no checkpoint was saved yet: the next run starts over'):
    self.received = None
    self.kept = kept

  @contextlib.contextmanager
  def catching(self):
    """Within the block, SIGTERM and SIGINT set `received`; the previous handlers return after.

    Off the main thread (where Python cannot install handlers) signals are left alone.
    """
    if threading.current_thread() is not threading.main_thread():
      yield self
      return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum, frame):
      del frame
      if signum == signal.SIGINT and self.received == signal.SIGINT:
        print(f'\ninterrupted again: stopped at once; {self.kept}.', file=sys.stderr, flush=True)
        os._exit(128 + signum)  # the chunk in flight is dropped; the workdir is complete
      self.received = signum
      if signum == signal.SIGINT:
        print('\ninterrupted: saving a checkpoint when the current chunk of epochs ends; press '
              'Ctrl-C again to stop at once.', file=sys.stderr, flush=True)
    for s in previous:
      signal.signal(s, handler)
    try:
      yield self
    finally:
      for s, h in previous.items():
        signal.signal(s, h)

  def wait(self, tree) -> None:
    """Blocks until every array in `tree` is computed, taking signals meanwhile.

    A compiled chunk runs in XLA's threads while Python waits for its results; Python runs a
    signal handler only between its own instructions, so waiting inside one blocking call would
    hold a second Ctrl-C until the chunk ends. The wait happens in a helper thread instead, and
    the main thread sleeps on an event, which signals interrupt.
    """
    done, errors = threading.Event(), []

    def block():
      try:
        jax.block_until_ready(tree)
      except BaseException as e:  # noqa: BLE001 - re-raised in the main thread below
        errors.append(e)
      finally:
        done.set()
    threading.Thread(target=block, daemon=True).start()
    while not done.wait(1.0):
      pass
    if errors:
      raise errors[0]
