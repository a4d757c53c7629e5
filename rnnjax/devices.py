"""Where programs run: the training mesh, host transfers, and CPU cores as devices.

A run trains on a `jax.sharding.Mesh` over every device of every process with two axes:
'members' splits an ensemble's members, 'data' splits each model's minibatch (data
parallelism); `training_mesh` reads their sizes from the config's `mesh` section. `to_host`
brings results back the same way on every process, for a single run as for a sharded
ensemble. `use_every_cpu_core` makes each core of a CPU-only machine a JAX device, so its
members (or a model's batch) train side by side.
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding

from rnnjax import config as config_lib
from rnnjax.errors import UserError

MEMBERS_AXIS = 'members'
DATA_AXIS = 'data'


def mesh_shape(config, num_members: int | None, num_devices: int) -> tuple[int, int] | None:
  """(members, data) device counts of a run on `num_devices` devices; None: one device.

  num_members: None for a single model, else the ensemble's member count. `mesh.data` and
  `mesh.members` at 0 pick: a single model splits its batch over every device; an ensemble
  splits its members over the devices the data axis leaves.

  Raises:
    UserError: a split the device count or the batch size does not allow, saying which.
  """
  data, members = config.mesh.data, config.mesh.members
  fix = ('On a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N devices of '
         'one host.')
  if num_members is None:
    if members > 1:
      raise UserError(f'mesh.members={members} splits an ensemble\'s members over devices, but '
                      'this run trains one model; leave mesh.members at 0, or train several '
                      '(num_seeds, sweep).')
    data = data or num_devices
    if data == 1:
      return None
    if data != num_devices:
      raise UserError(f'mesh.data={data} splits the batch over {data} devices, but this run '
                      f'has {num_devices}; set mesh.data={num_devices}, or 1 for one device. '
                      + fix)
    members = 1
  else:
    if not data and not members:
      members, data = num_devices, 1
    elif not members:
      members = num_devices // data if num_devices % data == 0 else 0
    elif not data:
      data = num_devices // members if num_devices % members == 0 else 0
    if not members or not data or members * data != num_devices:
      raise UserError(f'mesh.members={config.mesh.members} x mesh.data={config.mesh.data} '
                      f'cannot split the {num_devices} devices of this run: their product '
                      f'must be {num_devices} (0 picks one from the other). ' + fix)
  batch = config.train.batch_size
  if batch % data:
    raise UserError(f'train.batch_size={batch} is split over mesh.data={data} devices, which '
                    f'must divide it; choose a batch size that is a multiple of {data}, e.g. '
                    f'{-(-batch // data) * data}.')
  return members, data


def training_mesh(config, num_members: int | None = None) -> Mesh | None:
  """The ('members', 'data') mesh of every device of every process (`mesh_shape`), or None for
  a single model on one device."""
  shape = mesh_shape(config, num_members, jax.device_count())
  if shape is None:
    return None
  return Mesh(np.array(jax.devices()).reshape(shape), (MEMBERS_AXIS, DATA_AXIS))


def data_shards(mesh: Mesh | None) -> int:
  """How many devices share each model's minibatch on `mesh` (1 without one)."""
  return 1 if mesh is None else mesh.shape[DATA_AXIS]


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
  less than a single run (docs/benchmarks.md). Call before JAX first touches a device. A
  single run is left on one device unless its `mesh.data` asks for more: then it gets that
  many. So does an ensemble whose `mesh.members` and `mesh.data` are both set. A CPU device
  count the user set (`jax_num_cpu_devices` or XLA_FLAGS) is left alone. Only CPU devices are
  affected: where a GPU or TPU is present, `jax.devices()` is still the accelerators.
  `num_members` counts members the config alone does not show (a backtest's folds).
  """
  ensemble = (num_members or 0) > 1 or is_ensemble(config)
  mesh = config.mesh
  if ensemble and mesh.members and mesh.data:
    count = mesh.members * mesh.data
  elif ensemble:
    count = len(os.sched_getaffinity(0))
  else:
    count = mesh.data
  if count <= 1:
    return
  if ('xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', '')
      or jax.config.jax_num_cpu_devices != -1):
    return
  jax.config.update('jax_num_cpu_devices', count)
