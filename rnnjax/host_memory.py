"""Host memory the process holds without using it: the C heap's freed pages, handed back to the
operating system after a large panel is loaded (`release_freed`).

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

