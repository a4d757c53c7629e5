"""Shared test settings: loud shape errors and a small, fast config."""
import os
import sys

# The tests check what programs compute, not how fast: XLA:CPU's LLVM backend at optimisation
# level 0 compiles the many small test programs about 10% faster (the whole suite) and runs
# them fast enough. Set before JAX starts; subprocesses inherit it. A level the caller set wins.
if 'xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                             + ' --xla_backend_optimization_level=0').strip()

import jax  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position

jax.config.update('jax_numpy_rank_promotion', 'raise')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CACHE = {}


@pytest.fixture(scope='session', autouse=True)
def compile_cache(tmp_path_factory):
  """One persistent JAX compilation cache for the test session, in-process and in subprocesses.

  Tests build fresh closures and start fresh script processes, so the same small programs would
  be compiled again and again (seconds each on CPU); the cache holds compiled code only, and it
  starts empty every session.
  """
  from jax.experimental.compilation_cache import compilation_cache
  from rnnjax import compile_cache as compile_cache_lib
  previous = (jax.config.jax_compilation_cache_dir,
              jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update('jax_compilation_cache_dir', None)
  path = compile_cache_lib.enable(
      {compile_cache_lib.ENV_VAR: str(tmp_path_factory.getbasetemp() / 'jax_compilation_cache')})
  compilation_cache.reset_cache()
  _CACHE['dir'] = path
  yield path
  _CACHE.clear()
  jax.config.update('jax_compilation_cache_dir', previous[0])
  jax.config.update('jax_persistent_cache_min_compile_time_secs', previous[1])
  compilation_cache.reset_cache()


def tiny_config(**overrides):
  """The tutorial config shrunk to train in a second or two: 20 days, GRU (8, 8), 3 epochs.

  overrides: dotted keys, e.g. tiny_config(**{'train.epochs': 5}).
  """
  from rnnjax.config import default_config, override
  c = default_config()
  c.data.synthetic.num_days = 20
  c.model.hidden_sizes = (8, 8)
  c.train.epochs = 3
  c.train.checkpoint_every = 1
  return override(c, overrides)


@pytest.fixture
def config():
  return tiny_config()


def file_tree(directory):
  """{relative path: bytes} of every file under `directory`: compare two to see what changed."""
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        out[os.path.relpath(path, directory)] = f.read()
  return out


def script_env(**extra):
  """Environment for running scripts/*.py in a subprocess with this checkout importable.

  XLA_FLAGS in `extra` are added to the session's (which hold the optimisation level above).
  """
  env = dict(os.environ)
  if 'XLA_FLAGS' in extra:
    extra['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') + ' ' + extra['XLA_FLAGS']).strip()
  env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
  env.setdefault('JAX_PLATFORMS', 'cpu')
  if 'dir' in _CACHE:
    env['JAX_COMPILATION_CACHE_DIR'] = _CACHE['dir']
    env['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  env.update(extra)
  return env


PYTHON = sys.executable


def nonfinite_updates_from(step: int):
  """An optax transformation that passes updates through, then makes them NaN from `step` on.

  Chained after rnnjax's optimizer it makes a run diverge by construction, at the first epoch
  holding optimizer step `step` (0-based), whatever the JAX release's arithmetic would do.
  """
  import jax.numpy as jnp
  import optax

  def init(params):
    del params
    return jnp.zeros([], jnp.int32)

  def update(updates, count, params=None):
    del params
    poison = jnp.where(count >= step, jnp.nan, 0.0).astype(jnp.float32)
    return jax.tree.map(lambda u: u + poison, updates), count + 1

  return optax.GradientTransformation(init, update)


def diverge_from_step(step: int, setattr_fn=setattr):
  """Makes every optimizer `rnnjax.train` builds go NaN from optimizer step `step` on.

  setattr_fn: pytest's `monkeypatch.setattr` in a test (undone after it); plain setattr in a
  subprocess that exits anyway.
  """
  import optax
  from rnnjax import train as train_lib
  build = train_lib.make_optimizer

  def make_optimizer(*args, **kwargs):
    return optax.chain(build(*args, **kwargs), nonfinite_updates_from(step))

  setattr_fn(train_lib, 'make_optimizer', make_optimizer)


def steps_per_epoch(config) -> int:
  """Optimizer steps in one epoch of a single run of `config` (every training window)."""
  import math
  from rnnjax import data as data_lib
  data = data_lib.prepare(config.data)
  return math.ceil(len(data.train_starts) / config.train.batch_size)


def diverging_script(script: str, step: int, *args) -> list[str]:
  """A command running scripts/`script` with `args`, its optimizer going NaN from `step` on."""
  path = os.path.join(ROOT, 'scripts', script)
  code = ('import runpy, sys; sys.path.insert(0, {tests!r}); import conftest; '
          'conftest.diverge_from_step({step}); sys.argv[0] = {path!r}; '
          'runpy.run_path({path!r}, run_name="__main__")').format(
              tests=os.path.dirname(os.path.abspath(__file__)), step=step, path=path)
  return [PYTHON, '-c', code, *args]


def read_events(folder):
  """[(tag, step, value)] of every scalar in the TensorBoard event files under `folder`, file by
  file in name order, read by hand from the TFRecord framing (each record's length and data
  checked against their masked CRC-32C) and tensorboardX's Event protocol buffer: independent
  of the writer's own code."""
  import struct
  from tensorboardX.crc32c import crc32c
  from tensorboardX.proto.event_pb2 import Event

  def masked(data):
    x = crc32c(data) & 0xffffffff
    return (((x >> 15) | (x << 17)) + 0xa282ead8) & 0xffffffff

  rows = []
  for name in sorted(os.listdir(folder)):
    if 'tfevents' not in name:
      continue
    with open(os.path.join(folder, name), 'rb') as f:
      content = f.read()
    at = 0
    while at < len(content):
      header = content[at:at + 8]
      (length,), (header_crc,) = struct.unpack('<Q', header), struct.unpack(
          '<I', content[at + 8:at + 12])
      data = content[at + 12:at + 12 + length]
      (data_crc,) = struct.unpack('<I', content[at + 12 + length:at + 16 + length])
      assert header_crc == masked(header) and data_crc == masked(data), (
          f'{name}: a record at byte {at} fails its CRC')
      at += 16 + length
      event = Event.FromString(data)
      rows += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
  return rows
