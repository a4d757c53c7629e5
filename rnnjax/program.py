"""The compiled programs of a run: init and n-epoch chunks, for one model or sharded members.

`Program` is one interface for all: `single_program` jits one model's init and chunk on one
device; `data_program` splits one model's minibatches over the 'data' axis of a mesh;
`members_program` vmaps the init and chunk over an ensemble's members and splits the member
axis over the mesh's 'members' axis, each member's minibatches over its 'data' axis, with
`shard_map`. Each program compiles when first used, with `compiler_options`, which passes XLA
only the options the running XLA knows.

Members program: every local device of a host, and every host after
`jax.distributed.initialize()`, runs the vmapped program on its own members; devices along
'data' sum each member's gradients (`rnnjax.train.train_step`), members never talk to each
other. A member count that the members axis does not divide is padded with copies of the last
member, which are dropped from every result and never saved. Inside a device, members train in
vmapped groups of `ensemble_vmap_size` (all at once on a GPU or TPU, one at a time on a CPU,
see `vmap_group_size`).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from rnnjax import devices
from rnnjax import ensemble
from rnnjax import train as train_lib
from rnnjax import train_data

# Members vmapped together on a CPU device when ensemble_vmap_size is 0. On a CPU a member
# trains fastest alone: vmapping batches the small products without making them cheaper, and
# a large group overflows the caches (docs/benchmarks.md has the timings by group size).
CPU_VMAP_SIZE = 1


@dataclasses.dataclass
class Program:
  """One run or one ensemble behind one interface; its XLA programs compile when first needed.

  init() -> state; run(state, num_epochs) -> (state, history of [E] or [M, E] arrays, E =
  num_epochs);
  abstract_state: shapes/shardings of a saved state; to_saved / from_saved: between the
  running state and the saved one (an ensemble drops its padding members); members: None for a
  single run, else the ensemble's member plan. The builders below give `lower_init` () -> the
  init lowered, `lower_run` n -> the n-epoch chunk lowered, and `call_init` / `call_run`, which
  call the compiled programs; a builder starts `compile_seconds` with its own tracing. A
  resumed run never compiles the init.
  """
  lower_init: Callable[[], jax.stages.Lowered]
  lower_run: Callable[[int], jax.stages.Lowered]
  call_init: Callable[[jax.stages.Compiled], Any]
  call_run: Callable[[jax.stages.Compiled, Any], tuple[Any, dict]]
  abstract_state: Any
  members: ensemble.Members | None
  compile_seconds: float = 0.0
  to_saved: Callable = lambda state: state
  from_saved: Callable = lambda state: state
  compiled: dict = dataclasses.field(default_factory=dict)

  def init(self):
    return self.call_init(self._compile('init'))

  def run(self, state, num_epochs: int):
    return self.call_run(self._compile(num_epochs), state)

  def _compile(self, piece):
    """The compiled init (piece 'init') or n-epoch chunk (piece n); the seconds spent tracing,
    lowering and compiling (or reading the persistent cache) go to `compile_seconds`."""
    if piece not in self.compiled:
      start = time.perf_counter()
      lowered = self.lower_init() if piece == 'init' else self.lower_run(piece)
      self.compiled[piece] = lowered.compile(
          compiler_options=compiler_options(runs_once=piece == 'init'))
      self.compile_seconds += time.perf_counter() - start
    return self.compiled[piece]


def single_program(trainer: train_lib.Trainer, config) -> Program:
  """The plain `jax.jit` programs of one model with seed `train.seed`."""
  key = jax.random.PRNGKey(config.train.seed)
  start = time.perf_counter()
  abstract_state = jax.eval_shape(trainer.init, key)  # traces the init: counted as compiling
  run_epochs = jax.jit(trainer.run_epochs, static_argnums=2, donate_argnums=0)
  return Program(
      lower_init=lambda: jax.jit(trainer.init).lower(key),
      lower_run=lambda n: run_epochs.lower(abstract_state, trainer.device_data, n),
      call_init=lambda compiled: compiled(key),
      call_run=lambda compiled, state: compiled(state, trainer.device_data),
      abstract_state=abstract_state, members=None,
      compile_seconds=time.perf_counter() - start)


def data_program(trainer: train_lib.Trainer, config, mesh: Mesh) -> Program:
  """One model whose minibatches are split over the mesh's 'data' axis (`trainer` built with
  `data_shards` = its size): every device holds the state and the series, draws the same
  global batch, trains on its part and sums the gradients with the others."""
  replicated = NamedSharding(mesh, P())
  key = devices.global_array(np.asarray(jax.random.PRNGKey(config.train.seed)), replicated)
  device_data = jax.tree.map(lambda a: devices.global_array(np.asarray(a), replicated),
                             trainer.device_data)
  start = time.perf_counter()
  abstract_state = jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated),
      jax.eval_shape(trainer.init, key))  # traces the init: counted as compiling

  def lower_run(n):
    run = jax.shard_map(lambda state, dd: trainer.run_epochs(state, dd, n), mesh=mesh,
                        in_specs=(P(), P()), out_specs=P(), check_vma=False)
    return jax.jit(run, donate_argnums=0).lower(abstract_state, device_data)

  return Program(
      lower_init=lambda: jax.jit(trainer.init, out_shardings=replicated).lower(key),
      lower_run=lower_run,
      call_init=lambda compiled: compiled(key),
      call_run=lambda compiled, state: compiled(state, device_data),
      abstract_state=abstract_state, members=None,
      compile_seconds=time.perf_counter() - start,
      from_saved=lambda state: jax.device_put(state, replicated))


def members_program(trainer: train_lib.Trainer, config, members: ensemble.Members,
                    member_data: train_data.DeviceData | None = None,
                    mesh: Mesh | None = None) -> Program:
  """The vmapped, member-sharded programs, with the same interface as a single run's.

  Members read `trainer.device_data`, or with `member_data` (every leaf [M, ...], e.g. backtest
  folds: each its own scaled series and window starts) their own row of it, split over the
  devices with the members. mesh: a ('members', 'data') mesh (`rnnjax.devices.training_mesh`,
  `trainer` built with `data_shards` = its data axis' size); None: every device on 'members'.
  """
  if mesh is None:
    mesh = Mesh(np.array(jax.devices()).reshape(-1, 1),
                (devices.MEMBERS_AXIS, devices.DATA_AXIS))
  if devices.data_shards(mesh) != trainer.data_shards:
    raise ValueError(f'the trainer splits batches over {trainer.data_shards} devices, the '
                     f'mesh over {devices.data_shards(mesh)}: build both from one mesh.')
  num_devices = mesh.shape[devices.MEMBERS_AXIS]
  size = members.size
  padded = math.ceil(size / num_devices) * num_devices
  take_M = np.minimum(np.arange(padded), size - 1)  # pad with copies of the last member
  shard = NamedSharding(mesh, P(devices.MEMBERS_AXIS))
  replicated = NamedSharding(mesh, P())
  keys_M = devices.global_array(ensemble.member_keys(members.seeds)[take_M], shard)
  hparams = {k: devices.global_array(v[take_M], shard) for k, v in members.hparams.items()}
  spec = P(devices.MEMBERS_AXIS)
  if member_data is None:
    device_data = jax.tree.map(lambda a: devices.global_array(np.asarray(a), replicated),
                               trainer.device_data)
    data_spec = P()
  else:
    device_data = jax.tree.map(lambda a: devices.global_array(np.asarray(a)[take_M], shard),
                               member_data)
    data_spec = spec
  # shard_map: each device runs the vmapped program on its own members. Members never talk to
  # each other, so the program has no collectives for the partitioner to insert.
  sinit = jax.shard_map(jax.vmap(trainer.init), mesh=mesh, in_specs=(spec, spec),
                        out_specs=spec, check_vma=False)
  start = time.perf_counter()  # tracing the init for its shapes counts as compiling
  shapes = jax.eval_shape(sinit, keys_M, hparams)
  trace_seconds = time.perf_counter() - start
  running_state = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=shard),
                               shapes)
  group = vmap_group_size(config, padded // num_devices)

  def lower_run(n):
    def vrun(state, dd):  # this device's members, `group` at a time
      if member_data is None:
        return jax.lax.map(lambda s: trainer.run_epochs(s, dd, n), state, batch_size=group)
      return jax.lax.map(lambda sd: trainer.run_epochs(*sd, n), (state, dd), batch_size=group)
    srun = jax.shard_map(vrun, mesh=mesh, in_specs=(spec, data_spec), out_specs=spec,
                         check_vma=False)
    return jax.jit(srun, donate_argnums=0).lower(running_state, device_data)

  def call_run(compiled, state):
    state, history = compiled(state, device_data)
    return state, jax.tree.map(lambda h: h[:size], history)

  return Program(
      lower_init=lambda: jax.jit(sinit).lower(keys_M, hparams),
      lower_run=lower_run,
      call_init=lambda compiled: compiled(keys_M, hparams),
      call_run=call_run,
      abstract_state=jax.tree.map(  # the saved state: no padding members
          lambda s: jax.ShapeDtypeStruct((size,) + s.shape[1:], s.dtype, sharding=replicated),
          shapes),
      members=members, compile_seconds=trace_seconds,
      to_saved=lambda state: jax.tree.map(lambda a: a[:size], state),
      from_saved=lambda state: jax.tree.map(
          lambda a: jax.device_put(jnp.asarray(a)[take_M], shard), state))


def make_program(trainer: train_lib.Trainer, config, members: ensemble.Members | None,
                 mesh: Mesh | None = None) -> Program:
  """The program of a run on `mesh` (`rnnjax.devices.training_mesh`): for a single run
  (members None) `single_program` without a mesh, else `data_program`; `members_program` for
  an ensemble."""
  if members is None:
    return single_program(trainer, config) if mesh is None else data_program(trainer, config, mesh)
  return members_program(trainer, config, members, mesh=mesh)


def vmap_group_size(config, members_per_device: int) -> int:
  """How many of a device's members one vmapped group trains together.

  `ensemble_vmap_size` > 0 is taken as given (at most the device's members); 0 means every
  member at once on a GPU or TPU, and `CPU_VMAP_SIZE` on a CPU. Groups run one after another
  inside the same compiled program (`lax.map` with a batch size).
  """
  size = config.ensemble_vmap_size or (
      CPU_VMAP_SIZE if jax.default_backend() == 'cpu' else members_per_device)
  return max(1, min(size, members_per_device))


# rnnjax's choice of XLA:CPU options for its training programs and for a program that runs
# once (the init); `compiler_options` passes on those the running XLA knows.
CPU_OPTIONS = {
    'train': {'xla_backend_optimization_level': 1},
    'runs_once': {'xla_backend_optimization_level': 0, 'xla_cpu_use_fusion_emitters': False},
}


def compiler_options(runs_once: bool = False) -> dict:
  """XLA options for rnnjax's programs on the default backend, only those this XLA knows.

  On a CPU (`CPU_OPTIONS`), LLVM optimisation level 1 instead of XLA's default 3: the tutorial's
  training program compiles faster and runs no slower. A program that runs once for
  microseconds (`runs_once`: the init) gets level 0 and, where XLA:CPU still has it (jaxlib
  0.10; gone by 0.12), its older elemental kernel emitter, which compiles the tutorial's init
  several times faster (both measured by `scripts/benchmark.py --only=xla_opt`, in
  docs/benchmarks.md). Passed per compilation, so the process's other JAX programs keep
  theirs; an option set in XLA_FLAGS is left to apply, and an option this XLA does not know is
  dropped (`option_supported`), so every version compiles with its defaults where rnnjax's
  choice does not exist.
  """
  backend = jax.default_backend()
  if backend != 'cpu':
    return {}
  flags = os.environ.get('XLA_FLAGS', '')
  options = CPU_OPTIONS['runs_once' if runs_once else 'train']
  return {k: v for k, v in options.items()
          if k not in flags and option_supported(backend, k, v)}


@functools.cache
def option_supported(backend: str, name: str, value) -> bool:
  """Whether the running XLA accepts compile option `name`=`value` on `backend`.

  XLA publishes no list of its options, and an unknown one fails the whole compilation
  ('No such compile option'). So each option is tried once per process on a one-operation
  program (milliseconds), and rnnjax's own programs only ever get options that passed.
  """
  del backend  # part of the cache key: the answer holds for one backend
  probe = jax.jit(lambda x: x + 1).lower(np.float32(0))
  try:
    probe.compile(compiler_options={name: value})
  except Exception as e:  # noqa: BLE001 - any refusal means the option must not be passed
    logging.info('XLA option %s=%r not supported here (%s); using XLA default', name, value,
                 str(e).splitlines()[0] if str(e) else type(e).__name__)
    return False
  return True
