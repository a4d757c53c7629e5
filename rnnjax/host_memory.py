"""Host memory: what a run will need against what the system has (`check_memory`, before
training), and what the process holds without using it: the C heap's freed pages, handed back
to the operating system after a large panel is loaded (`release_freed`).

Reading a panel of millions of rows frees many small objects (each chunk's text, each series'
arrays) whose pages the C allocator keeps for reuse: about 30 bytes a point of a 1,000-series
panel stayed resident after loading, on top of the dataset itself (docs/benchmarks.md, "Large
panels"). Training's buffers do not reuse them, so they would count in the run's peak.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import jax

from rnnjax.errors import UserError

# Bytes `score` holds per member, window, step and head output: the float32 forecast of every
# window (its float64 copies are made a chunk of windows at a time, `rnnjax.chunked`).
BYTES_PER_FORECAST = 4
# And per validation or test window of a probabilistic head, whose distribution scores unscale
# the whole part at once: the float64 copy and the sorted copies of its quantiles.
BYTES_PER_DISTRIBUTION_FORECAST = 8 + 2 * 8


@functools.cache
def _malloc_trim():
  """glibc's malloc_trim, or None where the C library has none (macOS, musl)."""
  if not sys.platform.startswith('linux'):
    return None
  try:
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    return libc.malloc_trim
  except (OSError, AttributeError):
    return None


def release_freed() -> bool:
  """Hands the free pages of the C heap back to the operating system (glibc's
  `malloc_trim(0)`); nothing that is in use moves. Returns whether it could (Linux with glibc)."""
  trim = _malloc_trim()
  if trim is None:
    return False
  trim(0)
  return True


def memory_needed(config, data, num_members: int, trainer=None) -> int:
  """Bytes of memory a run of `num_members` members on `data` (a `rnnjax.dataset.Dataset`)
  needs, about: their training states, with a gradient and an update of the parameters beside
  each (from `trainer`'s init, when given), and the host arrays that scoring their forecasts of every training, validation and test window
  takes (the forecasting program itself is bounded separately, by
  `prediction.MEMBER_WINDOWS_PER_CALL`, and so are the chunks scoring copies, by
  `chunked.CHUNK_WINDOWS`)."""
  outputs = {'point': 1, 'quantile': len(config.model.quantiles), 'gaussian': 2}
  windows = sum(len(starts) for starts in data.parts.values())
  forecasts = num_members * len(data.steps) * outputs[config.model.head]
  scoring = forecasts * windows * BYTES_PER_FORECAST
  if config.model.head != 'point':
    scoring += forecasts * (windows - len(data.train_starts)) * BYTES_PER_DISTRIBUTION_FORECAST
  if trainer is None:
    return scoring
  state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
  state_bytes = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(state))
  param_bytes = sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(state.params))
  return scoring + num_members * (state_bytes + 2 * param_bytes)


def proc_kib_field(path: str, field: str) -> int | None:
  """Bytes of a `FIELD:   N kB` line of a Linux /proc file (e.g. /proc/meminfo's MemAvailable),
  or None where the file or the field is missing."""
  try:
    with open(path) as f:
      for line in f:
        if line.startswith(field + ':'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def available_memory() -> int | None:
  """Bytes of memory the system can give without swapping (Linux MemAvailable), or None."""
  return proc_kib_field('/proc/meminfo', 'MemAvailable')


def check_memory(config, data, num_members: int, trainer=None) -> None:
  """Refuses, before training, a run that would not fit in the memory available now.

  Raises:
    UserError: the estimate of `memory_needed` exceeds what the system has available.
  """
  needed = memory_needed(config, data, num_members, trainer)
  available = available_memory()
  if available is not None and needed > available:
    windows = sum(len(starts) for starts in data.parts.values())
    raise UserError(
        f'training and scoring {num_members} members needs about {needed / 2**30:.1f} GiB of '
        f'memory ({num_members} members x {windows} windows x {len(data.steps)} steps, and '
        f'their training states), but {available / 2**30:.1f} GiB is available: lower '
        'num_seeds (or the sweep), or use a smaller model, a shorter series or fewer target '
        'steps.')
