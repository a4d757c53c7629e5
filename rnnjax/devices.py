"""Where programs run: the members mesh, host transfers, and CPU cores as devices.

An ensemble's member axis is split over every device of every process with a 1-D
`jax.sharding.Mesh` (axis 'members'). `to_host` brings results back the same way on every
process, for a single run as for a sharded ensemble. `use_every_cpu_core` makes each core of
a CPU-only machine a JAX device, so its members train side by side.
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding

from rnnjax import config as config_lib

MEMBERS_AXIS = 'members'


def member_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, axis 'members'."""
  return Mesh(np.array(jax.devices()), (MEMBERS_AXIS,))


def global_array(host_value: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """An array laid out by `sharding`, built from the same host value on every process."""
  return jax.make_array_from_callback(host_value.shape, sharding, lambda idx: host_value[idx])


def to_host(tree):
  """NumPy copies of (possibly multi-host sharded) arrays, the same on every process."""
  def get(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)
  return jax.tree.map(get, tree)


def is_ensemble(config) -> bool:
  """Whether `config` trains more than one member (num_seeds > 1 or a sweep)."""
  return config.num_seeds != 1 or any(config.sweep[k] is not None
                                      for k in config_lib.SWEEPABLE)


def use_every_cpu_core(config, num_members: int | None = None) -> None:
  """Makes every CPU core a JAX device for an ensemble, so members train side by side.

  XLA:CPU runs a small recurrent program on one core: its time steps are sequential and each
  step's products are too small to split between threads. Members are independent, so with one
  CPU device per core the members program gives each core its own members, and a member costs
  less than a single run (docs/benchmarks.md). Call before JAX first touches a device. Single
  runs are left alone, and so is a CPU device count the user set (`jax_num_cpu_devices` or
  XLA_FLAGS). Only CPU devices are affected: where a GPU or TPU is present, `jax.devices()` is
  still the accelerators.
  `num_members` counts members the config alone does not show (a backtest's folds).
  """
  if (num_members or 0) <= 1 and not is_ensemble(config):
    return
  if ('xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', '')
      or jax.config.jax_num_cpu_devices != -1):
    return
  cores = len(os.sched_getaffinity(0))
  if cores > 1:
    jax.config.update('jax_num_cpu_devices', cores)
