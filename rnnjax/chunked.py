"""Scores of any number of windows in bounded memory: the windows in chunks (`window_chunks`),
each series' rows of a chunk (`series_rows`), and means kept chunk by chunk (`Means`).

Scoring a panel of millions of windows makes float64 copies of every window's forecast, target
and errors; one chunk of them at a time keeps that memory to CHUNK_WINDOWS windows whatever
the panel's size. A part of at most CHUNK_WINDOWS windows is one chunk, and its means are
NumPy's to the bit; over several chunks a mean is the chunks' means weighted by their counts,
in float64: it differs from one `np.mean` of every value by the rounding of the sums (about
1e-16 relative for float64 values, 1e-7 for float32 ones, which are summed in float32).
"""
from __future__ import annotations

from typing import Hashable

import numpy as np


# Windows scored at once: 65,536 windows of 24 steps are 12 MiB per float64 array.
CHUNK_WINDOWS = 2**16


def window_chunks(num_windows: int, size: int | None = None) -> list[slice]:
  """Consecutive slices of at most `size` (None: CHUNK_WINDOWS) of `num_windows` windows (none
  for 0)."""
  size = CHUNK_WINDOWS if size is None else size
  if size <= 0:
    raise ValueError(f'chunks need a positive size, got {size}')
  return [slice(lo, min(lo + size, num_windows)) for lo in range(0, num_windows, size)]


def series_rows(which_N: np.ndarray) -> list[tuple[int, slice | np.ndarray]]:
  """Each series' rows among N windows, in O(N) (not one mask per series).

  Args:
    which_N: [N] the series index of each window (`Dataset.series_index`).

  Returns:
    (series index, rows) for every series present, in increasing index: `rows` is a slice when
    the windows are grouped by series (a dataset's parts are: series after series), else an
    index array in the windows' order, as a boolean mask `which_N == i` would select them.
  """
  which_N = np.asarray(which_N)
  if not len(which_N):
    return []
  if np.all(which_N[1:] >= which_N[:-1]):
    firsts = np.flatnonzero(np.r_[True, which_N[1:] != which_N[:-1]])
    ends = np.r_[firsts[1:], len(which_N)]
    return [(int(which_N[a]), slice(int(a), int(b))) for a, b in zip(firsts, ends, strict=True)]
  order_N = np.argsort(which_N, kind='stable')
  present, firsts = np.unique(which_N[order_N], return_index=True)
  return [(int(i), rows) for i, rows in zip(present, np.split(order_N, firsts[1:]), strict=True)]


class Means:
  """Means of values given chunk by chunk, by key.

  Each key keeps each chunk's `np.mean` and count. One chunk gives `float(np.mean(values))`
  exactly (the mean of a float32 array in float32, of a JAX array by JAX, as `np.mean` computes
  them); several give the chunks' means weighted by their counts, in float64.
  """

  def __init__(self):
    self._parts: dict[Hashable, list[tuple[float, int]]] = {}

  def add(self, key: Hashable, values) -> None:
    """Adds every element of `values` (an array of any shape, bool counting as 0 or 1) to the
    mean of `key`; an empty array adds nothing."""
    if np.size(values):
      self._parts.setdefault(key, []).append((np.mean(values), int(np.size(values))))

  def count(self, key: Hashable) -> int:
    return sum(n for _, n in self._parts.get(key, ()))

  def mean(self, key: Hashable) -> float:
    """The mean of every value added under `key`; NaN when none was."""
    parts = self._parts.get(key)
    if not parts:
      return float('nan')
    if len(parts) == 1:
      return float(parts[0][0])
    return sum(float(mean) * n for mean, n in parts) / self.count(key)
