"""Many seeds at once: `jit(vmap(train))` over members, split over every device.

Member k of a run trains with seed `train.seed + k` and its own sweep values; a run with
`num_seeds=1` and no sweep is a single run and goes through `rnnjax.run.single_program`.
The member axis is split over `jax.devices()` with a 1-D `Mesh` ('members') and `shard_map`:
every local device of a host, and every host after `jax.distributed.initialize()`, runs the
vmapped program on its own members, with no communication between them. A member count that the
device count does not divide is padded with copies of the last member, which are dropped from
every result and never saved. Inside a device, members train in vmapped groups of
`ensemble_vmap_size` (all at once on a GPU or TPU, one at a time on a CPU, see
`vmap_group_size`), and `use_every_cpu_core` makes each core of a CPU-only machine a device.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from rnnjax import config as config_lib
from rnnjax import data as data_lib
from rnnjax import metrics as metrics_lib
from rnnjax import train as train_lib
from rnnjax.errors import UserError

# Members vmapped together on a CPU device when ensemble_vmap_size is 0. On a CPU a member
# trains fastest alone: vmapping batches the small products without making them cheaper, and
# a large group overflows the caches (16 members on 2 cores: 0.25 s per member-epoch one at a
# time, 0.30 in groups of 4, 0.31 in groups of 8; docs/benchmarks.md).
CPU_VMAP_SIZE = 1
MEMBER_METRICS = ('val_rmse', 'val_mae', 'val_mse_scaled', 'train_rmse', 'train_mae')


@dataclasses.dataclass(frozen=True)
class Members:
  """The plan of an ensemble: one seed and one set of hyper-parameters per member.

  Attributes:
    seeds: [M] int seeds, train.seed + k.
    hparams: dict name -> [M] float32 values (learning_rate, weight_decay, clip_norm, dropout).
    swept: names of the hyper-parameters that vary between members.
  """
  seeds: np.ndarray
  hparams: dict
  swept: tuple[str, ...]

  @property
  def size(self) -> int:
    return len(self.seeds)

  def records(self) -> list[dict]:
    """One dict per member: index, seed, and the value of each swept hyper-parameter."""
    out = []
    for k, seed in enumerate(self.seeds):
      record = {'member': k, 'seed': int(seed)}
      record.update({name: float(self.hparams[name][k]) for name in self.swept})
      out.append(record)
    return out


def use_every_cpu_core(config) -> None:
  """Makes every CPU core a JAX device for an ensemble, so members train side by side.

  XLA:CPU runs a small recurrent program on one core: its time steps are sequential and each
  step's products are too small to split between threads. Members are independent, so with one
  CPU device per core `make_program` gives each core its own members (docs/benchmarks.md: a
  member of an 8- or 64-member run costs 0.54-0.71 of a single run on 2 cores, against 1.0
  with one device). Call before JAX first touches a device. Single runs are left alone, and so
  is a CPU device count the user set (`jax_num_cpu_devices` or XLA_FLAGS). Only CPU devices are
  affected: where a GPU or TPU is present, `jax.devices()` is still the accelerators.
  """
  import os
  if config.num_seeds == 1 and all(config.sweep[k] is None for k in config_lib.SWEEPABLE):
    return
  if ('xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', '')
      or jax.config.jax_num_cpu_devices != -1):
    return
  cores = len(os.sched_getaffinity(0))
  if cores > 1:
    jax.config.update('jax_num_cpu_devices', cores)


def plan_members(config) -> Members | None:
  """Members from `num_seeds` and `sweep`; None for a single run. Checks before any compile.

  Without `sweep.grid`, every swept list holds one value per member (`num_seeds` values). With
  `sweep.grid=True`, members are every combination of the swept lists, each trained with
  `num_seeds` seeds (member k = combination k // num_seeds).

  Raises:
    UserError: num_seeds < 1, a list of the wrong length, or a shape-changing key swept.
  """
  num_seeds = config.num_seeds
  if isinstance(num_seeds, bool) or not isinstance(num_seeds, int) or num_seeds < 1:
    raise UserError(f'num_seeds must be an integer >= 1, got {num_seeds!r}.')
  for name in config_lib.SHAPE_CHANGING:
    if config.sweep.get(name) is not None:
      raise UserError(f'sweep.{name} changes array shapes or the compiled program, so members '
                      'of one run cannot differ in it; train one workdir per value instead. '
                      f'Sweepable keys: {", ".join(config_lib.SWEEPABLE)}.')
  swept = {name: tuple(config.sweep[name]) for name in config_lib.SWEEPABLE
           if config.sweep[name] is not None}
  for name, values in swept.items():
    if not values:
      raise UserError(f'sweep.{name} is empty; give at least one value or leave it unset.')
    if not config.sweep.grid and len(values) != num_seeds:
      raise UserError(f'sweep.{name} has {len(values)} values but num_seeds={num_seeds}: give '
                      'one value per member, or set sweep.grid=True to train every combination.')
  if not swept and num_seeds == 1:
    return None
  base = {k: float(v) for k, v in train_lib.default_hparams(config).items()}
  if config.sweep.grid and swept:
    combos = list(itertools.product(*swept.values()))
    rows = [dict(zip(swept, combo)) for combo in combos for _ in range(num_seeds)]
  else:
    rows = [{name: values[k] for name, values in swept.items()} for k in range(num_seeds)]
  hparams = {name: np.array([row.get(name, base[name]) for row in rows], np.float32)
             for name in base}
  probe = config.copy_and_resolve_references()
  for row in rows:  # every member's values must pass the same checks as a single run's
    with probe.unlocked():
      probe.train.learning_rate = float(row.get('learning_rate', base['learning_rate']))
      probe.train.weight_decay = float(row.get('weight_decay', base['weight_decay']))
      probe.train.clip_norm = float(row.get('clip_norm', base['clip_norm']))
      probe.model.dropout = float(row.get('dropout', base['dropout']))
    config_lib.validate(probe)
  seeds = config.train.seed + np.arange(len(rows))
  return Members(seeds=seeds, hparams=hparams, swept=tuple(swept))


def member_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, axis 'members'."""
  return Mesh(np.array(jax.devices()), ('members',))


def _global_array(host_value: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """An array laid out by `sharding`, built from the same host value on every process."""
  return jax.make_array_from_callback(host_value.shape, sharding, lambda idx: host_value[idx])


def to_host(tree):
  """NumPy copies of (possibly multi-host sharded) arrays, the same on every process."""
  def get(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)
  return jax.tree.map(get, tree)


def member_keys(seeds: np.ndarray) -> np.ndarray:
  """[M, 2] uint32 keys: row k is `jax.random.PRNGKey(seeds[k])`, as a single run draws it."""
  return np.stack([np.asarray(jax.random.PRNGKey(int(s))) for s in seeds])


def train_many(config, data: data_lib.Dataset, members: Members | None = None):
  """Trains every member in one program: `jit(vmap(make_train(config, data)))`.

  The same code path as a single run, so member k equals `jit(make_train(...))` with seed
  `train.seed + k` and its sweep values. For one device; `make_program` splits members over
  devices and chunks of epochs.

  Args:
    config: the run's config; members default to `plan_members(config)` (num_seeds, sweep).
    data: from `rnnjax.data.prepare`.
    members: an explicit member plan.

  Returns:
    (TrainState, history), every leaf with a leading member axis [M, ...].
  """
  members = members or plan_members(config)
  if members is None:  # num_seeds=1 and no sweep: a one-member ensemble
    members = Members(seeds=np.array([config.train.seed]),
                      hparams={k: np.array([v], np.float32)
                               for k, v in train_lib.default_hparams(config).items()},
                      swept=())
  train = train_lib.make_train(config, data)
  hparams = {k: jnp.asarray(v) for k, v in members.hparams.items()}
  return jax.jit(jax.vmap(train))(jnp.asarray(member_keys(members.seeds)), hparams)


def make_program(trainer: train_lib.Trainer, config, members: Members):
  """The vmapped, member-sharded program with the same interface as a single run's."""
  from rnnjax.run import Program  # the driver owns the interface

  mesh = member_mesh()
  num_devices = mesh.devices.size
  size = members.size
  padded = math.ceil(size / num_devices) * num_devices
  take = np.minimum(np.arange(padded), size - 1)  # pad with copies of the last member
  shard = NamedSharding(mesh, P('members'))
  replicated = NamedSharding(mesh, P())
  keys = _global_array(member_keys(members.seeds)[take], shard)
  hparams = {k: _global_array(v[take], shard) for k, v in members.hparams.items()}
  device_data = jax.tree.map(lambda a: _global_array(np.asarray(a), replicated),
                             trainer.device_data)
  vinit = jax.vmap(trainer.init)
  # shard_map: each device runs the vmapped program on its own members. Members never talk to
  # each other, so the program has no collectives for the partitioner to insert.
  sinit = jax.shard_map(vinit, mesh=mesh, in_specs=(P('members'), P('members')),
                        out_specs=P('members'), check_vma=False)
  start = time.perf_counter()  # tracing the init for its shapes counts as compiling
  shapes = jax.eval_shape(sinit, keys, hparams)
  trace_seconds = time.perf_counter() - start
  running_state = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=shard),
                               shapes)
  group = vmap_group_size(config, padded // num_devices)

  def lower_run(n):
    def vrun(state, dd):  # this device's members, `group` at a time
      return jax.lax.map(lambda s: trainer.run_epochs(s, dd, n), state, batch_size=group)
    srun = jax.shard_map(vrun, mesh=mesh, in_specs=(P('members'), P()),
                         out_specs=P('members'), check_vma=False)
    return jax.jit(srun, donate_argnums=0).lower(running_state, device_data)

  def call_run(compiled, state):
    state, history = compiled(state, device_data)
    return state, jax.tree.map(lambda h: h[:size], history)

  return Program(
      lower_init=lambda: jax.jit(sinit).lower(keys, hparams),
      lower_run=lower_run,
      call_init=lambda compiled: compiled(keys, hparams),
      call_run=call_run,
      abstract_state=jax.tree.map(  # the saved state: no padding members
          lambda s: jax.ShapeDtypeStruct((size,) + s.shape[1:], s.dtype, sharding=replicated),
          shapes),
      members=members, compile_seconds=trace_seconds,
      to_saved=lambda state: jax.tree.map(lambda a: a[:size], state),
      from_saved=lambda state: jax.tree.map(
          lambda a: jax.device_put(jnp.asarray(a)[take], shard), state))


def vmap_group_size(config, members_per_device: int) -> int:
  """How many of a device's members one vmapped group trains together.

  `ensemble_vmap_size` > 0 is taken as given (at most the device's members); 0 means every
  member at once on a GPU or TPU, and `CPU_VMAP_SIZE` on a CPU. Groups run one after another
  inside the same compiled program (`lax.map` with a batch size).
  """
  size = config.ensemble_vmap_size or (
      CPU_VMAP_SIZE if jax.default_backend() == 'cpu' else members_per_device)
  return max(1, min(size, members_per_device))


def evaluate(config, data: data_lib.Dataset, trainer: train_lib.Trainer, params, state,
             history: dict, members: Members) -> tuple[dict, dict, pd.DataFrame]:
  """Scores the ensemble-mean forecast and every member; builds plot panels and history rows.

  Returns:
    (metrics, panels for plots.plot_predictions, history frame).
  """
  size = members.size
  params = jax.tree.map(lambda a: a[:size], to_host(params))
  diverged = to_host(state.diverged)[:size]
  alive = ~diverged
  series = trainer.device_data.series_TF
  low_q, high_q = min(config.ensemble_quantiles), max(config.ensemble_quantiles)
  results, panels, per_member = {}, {}, [dict() for _ in range(size)]
  for part, starts in (('train', data.train_starts), ('val', data.val_starts)):
    scaled_MN = train_lib.predict_windows(trainer, params, series, starts,
                                          config.train.val_batch_size, member_axis=True)
    forecast_MN = data.unscale_target(scaled_MN)
    true = data.targets(starts)
    mean = forecast_MN[alive].mean(axis=0)
    band = (np.quantile(forecast_MN[alive], low_q, axis=0),
            np.quantile(forecast_MN[alive], high_q, axis=0))
    results.update(metrics_lib.forecast_metrics(data, starts, mean, config.data.season, part))
    panels[part] = (true, mean, band)
    scaled_true = data.scaled_TF[data.target_positions(starts), 0]
    if part == 'val':
      results['val_mse_scaled'] = float(np.mean((scaled_MN[alive].mean(0) - scaled_true) ** 2))
      results['val_spread_mean'] = float(forecast_MN[alive].std(axis=0).mean())
      results['val_band_coverage'] = float(np.mean((true >= band[0]) & (true <= band[1])))
    for k in range(size):
      per_member[k].update({
          f'{part}_rmse': metrics_lib.rmse(forecast_MN[k], true),
          f'{part}_mae': metrics_lib.mae(forecast_MN[k], true)})
      if part == 'val':
        per_member[k]['val_mse_scaled'] = float(np.mean((scaled_MN[k] - scaled_true) ** 2))
  active = np.asarray(history['active'], bool)
  best_epoch = to_host(state.best_epoch)[:size]
  for k, record in enumerate(members.records()):
    per_member[k] = {**record, **per_member[k], 'diverged': bool(diverged[k]),
                     'epochs_run': int(active[k].sum()), 'best_epoch': int(best_epoch[k])}
  results['members'] = per_member
  results['num_members'] = size
  results['diverged_members'] = [int(k) for k in np.flatnonzero(diverged)]
  results['ensemble_quantiles'] = [low_q, high_q]
  for key in MEMBER_METRICS:
    values = np.array([m[key] for m, ok in zip(per_member, alive) if ok])
    results[f'member_{key}_mean'] = float(values.mean())
    results[f'member_{key}_std'] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
  loss = np.where(active, history['loss'], np.nan)
  val = np.where(active, history['val_loss'], np.nan)
  keep = alive[:, None]
  columns = {'epoch': np.arange(1, loss.shape[1] + 1),
             'loss': np.nanmean(np.where(keep, loss, np.nan), axis=0),
             'val_loss': np.nanmean(np.where(keep, val, np.nan), axis=0)}
  for k in range(size):
    columns[f'loss_member{k}'] = loss[k]
    columns[f'val_loss_member{k}'] = val[k]
  return results, panels, pd.DataFrame(columns)
