"""SIGTERM and SIGINT during training: noted, acted on at the next chunk boundary.

A preemption notice (SIGTERM) or Ctrl-C (SIGINT) arriving mid-chunk must not kill the process
while a compiled chunk runs: `Signals.catching()` records it, and the run saves a checkpoint
after the chunk and exits with 128 + the signal number.
"""
from __future__ import annotations

import contextlib
import signal
import threading


class Signals:
  """Records SIGTERM/SIGINT during training instead of dying mid-chunk.

  Attributes:
    received: the last signal number received inside `catching()`, or None.
  """

  def __init__(self):
    self.received = None

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
      self.received = signum
    for s in previous:
      signal.signal(s, handler)
    try:
      yield self
    finally:
      for s, h in previous.items():
        signal.signal(s, h)
