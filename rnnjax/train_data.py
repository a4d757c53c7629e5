"""The data a training run reads on the device: the scaled series with its window starts padded
to a fixed capacity (`DeviceData`), and the order an epoch visits the windows in (`epoch_order`).

Padding lets members with training sets of different sizes (backtest folds) share one program:
each holds its own count of real starts, and its own order of them, the same whatever the
padding.
"""
from __future__ import annotations

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
  training sets of different sizes (backtest folds) share one program.
  """
  series_TF: Array
  train_starts: Array
  val_starts: Array
  num_train: Array
  num_val: Array


def device_data(data: dataset_lib.Dataset, num_train: int | None = None,
                num_val: int | None = None) -> DeviceData:
  """`data` on the device; with `num_train`/`num_val`, its starts padded to those lengths."""
  def padded(starts_N, size):
    size = len(starts_N) if size is None else size
    padded_N = np.zeros(size, np.int32)
    padded_N[:len(starts_N)] = starts_N
    return jnp.asarray(padded_N)
  return DeviceData(jnp.asarray(data.scaled_TF), padded(data.train_starts, num_train),
                    padded(data.val_starts, num_val), jnp.int32(len(data.train_starts)),
                    jnp.int32(len(data.val_starts)))


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
