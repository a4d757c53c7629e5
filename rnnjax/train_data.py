"""The data a training run reads on the device: the scaled series with its window starts padded
to a fixed capacity (`DeviceData`), and which windows an epoch trains on: every one in a fresh
order (`epoch_order`), or `train.steps_per_epoch` batches drawn (`batch_draws`, `epoch_draws`).

Padding lets members with training sets of different sizes (backtest folds) share one program:
each holds its own count of real starts, and its own order of them, the same whatever the
padding.

Drawn batches (train.steps_per_epoch > 0) are independent uniform draws, with replacement: a
window may come twice in an epoch, or in a batch (of k draws among N windows a share of about
k / 2N repeats an earlier one: rare while an epoch is a small part of the data, which is what
the setting is for). Each draw is a function of the epoch's key, the step s and the position b
in the global batch alone, `fold_in(fold_in(key, s), b)`, so any slice of a batch's positions
(one device's share) draws exactly the windows the whole batch holds there, and a member padded
to a capacity draws what it would alone. data.sample='window' draws uniformly over the training
windows (a series weighs by its windows); 'series' draws a series uniformly among those with
training windows, then a window uniformly within it.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import dataset as dataset_lib

Array = jax.Array


class DeviceData(NamedTuple):
  """The arrays a run reads on the device.

  series_TF [T, F]; train_starts [N_train] and val_starts [N_val] window starts, of which the
  first num_train and num_val (int32 scalars) are real and the rest padding: members with
  training sets of different sizes (backtest folds) share one program. val_starts are the
  windows the per-epoch val_loss reads (`val_subset`: all of them unless train.val_windows).
  train_bounds [R + 1] int32: the training windows of the i-th series holding any are
  train_starts[train_bounds[i]:train_bounds[i + 1]] (train_starts lie series by series), for
  i < num_train_series (int32); the entries after those repeat num_train.
  """
  series_TF: Array
  train_starts: Array
  val_starts: Array
  num_train: Array
  num_val: Array
  train_bounds: Array
  num_train_series: Array


def device_data(data: dataset_lib.Dataset, num_train: int | None = None,
                num_val: int | None = None, val_windows: int = 0) -> DeviceData:
  """`data` on the device.

  Args:
    data: the dataset.
    num_train, num_val: capacities (backtest folds: the longest fold's counts): the starts are
      padded to those lengths; None: data's own counts.
    val_windows: train.val_windows: the validation windows kept (`val_subset`); their
      capacity is min(num_val, val_windows).
  """
  def padded(starts_N, size):
    size = len(starts_N) if size is None else size
    padded_N = np.zeros(size, np.int32)
    padded_N[:len(starts_N)] = starts_N
    return jnp.asarray(padded_N)
  val_N = val_subset(data.val_starts, val_windows)
  if num_val is not None and val_windows:
    num_val = min(num_val, val_windows)
  bounds = train_series_bounds(data)
  bounds_padded = np.full(len(data.series_ids) + 1, len(data.train_starts), np.int32)
  bounds_padded[:len(bounds)] = bounds
  return DeviceData(jnp.asarray(data.scaled_TF), padded(data.train_starts, num_train),
                    padded(val_N, num_val), jnp.int32(len(data.train_starts)),
                    jnp.int32(len(val_N)), jnp.asarray(bounds_padded),
                    jnp.int32(len(bounds) - 1))


def train_series_bounds(data: dataset_lib.Dataset) -> np.ndarray:
  """int32 [R' + 1]: where each series holding training windows (R' of them, in data's order)
  starts in data.train_starts, then len(data.train_starts)."""
  which_N = data.series_index(data.train_starts)
  if np.any(np.diff(which_N) < 0):
    raise ValueError('train_starts must lie series by series (rnnjax.data.assemble)')
  counts_R = np.bincount(which_N, minlength=len(data.series_ids))
  return np.concatenate([[0], np.cumsum(counts_R[counts_R > 0])]).astype(np.int32)


# The validation subset's generator seed: fixed, so models of any train.seed (an ensemble's
# members, the runs a search or a comparison sets side by side) are scored on the same windows.
VAL_SUBSET_SEED = 0


def val_subset(val_starts_N: np.ndarray, val_windows: int) -> np.ndarray:
  """The validation windows the per-epoch val_loss reads (early stopping, the best epoch).

  All of them when `val_windows` is 0 or at least their number; else `val_windows` of them
  drawn without replacement by `np.random.default_rng(VAL_SUBSET_SEED)` and kept in their
  order: a choice of the host, so every epoch, every member, every seed and a resumed run read
  the same ones.

  Args:
    val_starts_N: [N] validation window starts.
    val_windows: train.val_windows.

  Returns:
    int32 [min(N, val_windows)] (or [N]) window starts.
  """
  val_starts_N = np.asarray(val_starts_N, np.int32)
  if not val_windows or val_windows >= len(val_starts_N):
    return val_starts_N
  chosen = np.random.default_rng(VAL_SUBSET_SEED).choice(len(val_starts_N), val_windows, replace=False)
  return val_starts_N[np.sort(chosen)]


def epoch_steps(num_train: int, batch_size: int, steps_per_epoch: int = 0) -> int:
  """Optimizer steps in an epoch: `steps_per_epoch` (train.steps_per_epoch) when > 0, else
  enough batches for every one of `num_train` training windows (the last one ragged)."""
  return steps_per_epoch or math.ceil(num_train / batch_size)


def batch_draws(key: Array, step, positions_B: Array, dd: DeviceData,
                sample: str = 'window') -> tuple[Array, Array]:
  """The windows at `positions_B` of step `step`'s batch of an epoch of drawn batches.

  Position b of step s draws from `fold_in(fold_in(key, s), b)` alone, so a slice of the
  positions draws the slice of the whole batch. Only the member's real windows are drawn
  (index < dd.num_train): every batch is full.

  Args:
    key: the epoch's key.
    step: int or int32 scalar, the step s within the epoch.
    positions_B: int32 [B] positions within the global batch.
    dd: the member's DeviceData.
    sample: data.sample: 'window' (uniform over the training windows) or 'series' (uniform
      over the series holding training windows, then over that series' windows).

  Returns:
    (idx_B int32 [B] indices into dd.train_starts, mask_B bool [B], all true).
  """
  if sample not in ('window', 'series'):
    raise ValueError(f'sample={sample!r} is not "window" or "series"')
  step_key = jax.random.fold_in(key, step)

  def one(b):
    draw_key = jax.random.fold_in(step_key, b)
    if sample == 'window':
      return jax.random.randint(draw_key, (), 0, dd.num_train, jnp.int32)
    series_key, window_key = jax.random.split(draw_key)
    r = jax.random.randint(series_key, (), 0, dd.num_train_series, jnp.int32)
    first, end = dd.train_bounds[r], dd.train_bounds[r + 1]
    return jax.random.randint(window_key, (), first, end, jnp.int32)

  idx_B = jax.vmap(one)(jnp.asarray(positions_B, jnp.int32))
  return idx_B, jnp.ones(idx_B.shape, bool)


def epoch_draws(key: Array, num_steps: int, batch_size: int, dd: DeviceData,
                sample: str = 'window') -> tuple[Array, Array]:
  """Every batch of an epoch of drawn batches at once (`batch_draws` at every step and position).

  Returns:
    (idx int32 [num_steps, batch_size] indices into dd.train_starts, mask bool of that shape,
    all true).
  """
  positions_B = jnp.arange(batch_size, dtype=jnp.int32)
  return jax.vmap(lambda s: batch_draws(key, s, positions_B, dd, sample))(
      jnp.arange(num_steps, dtype=jnp.int32))


def epoch_order(key: Array, size: int, num_valid) -> Array:
  """A random order of the indices 0..num_valid-1, then num_valid..size-1 in order.

  Index i draws its own random key `fold_in(key, i)`, so the order of the first num_valid
  indices is the same whatever `size` is: a member whose windows are padded to `size` visits
  its windows in the order a run holding only its own would (`jax.random.permutation` draws
  a different order for every length).

  Args:
    key: PRNG key.
    size: static length.
    num_valid: int or int32 scalar <= size: how many indices are real.

  Returns:
    int32 [N], N = size.
  """
  index_N = jnp.arange(size, dtype=jnp.int32)
  bits_N = jax.vmap(lambda i: jax.random.bits(jax.random.fold_in(key, i)))(index_N)
  # Real indices sort by their 31 high bits, padding after all of them (ties keep index order).
  sort_key_N = jnp.where(index_N < num_valid, bits_N >> 1,
                         jnp.uint32(2**31) + index_N.astype(jnp.uint32))
  return jnp.argsort(sort_key_N, stable=True).astype(jnp.int32)
