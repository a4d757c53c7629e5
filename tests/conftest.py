"""Shared test settings (loud shape errors, a small fast config) and the helpers several test
files use: scripts in subprocesses, crashes after a checkpoint, tree comparisons, a resumed run
against an uninterrupted one, event files read back, other spellings of a file, a train.py command
line, a small long-format panel, and the linear baseline solved by NumPy."""
import os
import sys

# The tests check what programs compute, not how fast: XLA:CPU's LLVM backend at optimisation
# level 0 compiles the many small test programs about 10% faster (the whole suite) and runs
# them fast enough. Set before JAX starts; subprocesses inherit it. A level the caller set wins.
if 'xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                             + ' --xla_backend_optimization_level=0').strip()

import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import pandas as pd  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position

jax.config.update('jax_numpy_rank_promotion', 'raise')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CACHE = {}


@pytest.fixture(scope='session', autouse=True)
def compile_cache(tmp_path_factory):
  """One persistent JAX compilation cache for the test session, in-process and in subprocesses.

  Tests build fresh closures and start fresh script processes, so the same small programs would
  be compiled again and again (seconds each on CPU); the cache holds compiled code only, and it
  starts empty every session. Under pytest-xdist every worker has a temporary folder of its
  own inside the session's: the cache lives in the session's, so a program one worker compiled
  is read by the other (most test files train the same tiny shapes).
  """
  from jax.experimental.compilation_cache import compilation_cache
  from rnnjax import compile_cache as compile_cache_lib
  previous = (jax.config.jax_compilation_cache_dir,
              jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update('jax_compilation_cache_dir', None)
  session_temp = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):
    session_temp = session_temp.parent
  path = compile_cache_lib.enable(
      {compile_cache_lib.ENV_VAR: str(session_temp / 'jax_compilation_cache')})
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


FINISHED_EPOCHS = 3  # tiny_config's epochs; the finished run keeps a checkpoint of each


@pytest.fixture(scope='session')
def finished_tiny_run(tmp_path_factory, compile_cache):
  """A finished in-process run of tiny_config that kept the checkpoint of every epoch:
  (workdir, config, metrics). Trained once per test process for the files that read such a
  run; use `copy_of_run` for a workdir of your own, never change this one."""
  import copy
  from rnnjax import run as run_lib
  del compile_cache  # trained after the session's cache is set up
  workdir = str(tmp_path_factory.mktemp('finished_tiny_run') / 'w')
  config = tiny_config(**{'train.max_to_keep': FINISHED_EPOCHS})
  assert config.train.epochs == FINISHED_EPOCHS
  metrics = run_lib.train_and_evaluate(config, workdir, progress=False)
  return workdir, config, copy.deepcopy(metrics)


def copy_of_run(run, destination):
  """(workdir, config, metrics) of a copy of `run` (a `finished_tiny_run`) at `destination`,
  with a config and metrics of its own."""
  import copy
  import shutil
  source, config, metrics = run
  shutil.copytree(source, str(destination))
  return str(destination), config.copy_and_resolve_references(), copy.deepcopy(metrics)


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
  """Makes every optimizer `rnnjax.optimizer` builds go NaN from optimizer step `step` on.

  setattr_fn: pytest's `monkeypatch.setattr` in a test (undone after it); plain setattr in a
  subprocess that exits anyway.
  """
  import optax
  from rnnjax import optimizer
  build = optimizer.make_optimizer

  def make_optimizer(*args, **kwargs):
    return optax.chain(build(*args, **kwargs), nonfinite_updates_from(step))

  setattr_fn(optimizer, 'make_optimizer', make_optimizer)


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


# ---------------------------------------------------------------------------- shared helpers

SUBPROCESS_TIMEOUT = 300  # seconds for a script run; generous because others may share the machine


def start_script(cmd, log_dir, name, cwd=ROOT):
  """Starts `cmd` in `cwd` with stdout/stderr in files `log_dir`/`name`.out and .err (a full
  pipe would stall a long run); `finish_script` waits for it."""
  import subprocess
  out = open(os.path.join(log_dir, f'{name}.out'), 'w')
  err = open(os.path.join(log_dir, f'{name}.err'), 'w')
  proc = subprocess.Popen(cmd, cwd=cwd, env=script_env(), stdout=out, stderr=err)
  proc.logs = (out.name, err.name)
  out.close()
  err.close()
  return proc


def finish_script(proc):
  """Waits for a `start_script` process (failing the test after SUBPROCESS_TIMEOUT s); returns
  (returncode, stdout, stderr)."""
  import subprocess
  try:
    proc.wait(timeout=SUBPROCESS_TIMEOUT)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()
    pytest.fail(f'{proc.args} did not finish in {SUBPROCESS_TIMEOUT} s')
  with open(proc.logs[0]) as out, open(proc.logs[1]) as err:
    return proc.returncode, out.read(), err.read()


def checkpoint_steps(workdir):
  """Finished checkpoint steps in `workdir` (Orbax renames a step's temporary directory when it
  is done), ascending."""
  from rnnjax import checkpoint as ckpt_lib
  directory = os.path.join(str(workdir), ckpt_lib.LATEST_DIR)
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


class Crashed(Exception):
  """Stands in for the process dying right after a checkpoint was written."""


def crash_after_checkpoint(monkeypatch, epoch: int) -> None:
  """Makes the run raise `Crashed` right after its checkpoint of `epoch` is saved, as a process
  killed there would stop; `monkeypatch.undo()` lets the next run resume normally."""
  from rnnjax import checkpoint as ckpt_lib
  save = ckpt_lib.Checkpointer.save

  def save_then_crash(self, step, *args, **kwargs):
    save(self, step, *args, **kwargs)
    if step == epoch:
      raise Crashed(step)

  monkeypatch.setattr(ckpt_lib.Checkpointer, 'save', save_then_crash)


def leaves_with_paths(tree):
  """[(keystr path, NumPy leaf)] of `tree`, in its flattening order."""
  return [(jax.tree_util.keystr(path), np.asarray(leaf))
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def assert_trees_equal(actual, expected, what):
  """Asserts two pytrees have the same leaves (paths) with bit-identical values, naming the
  differing ones."""
  a, e = dict(leaves_with_paths(actual)), dict(leaves_with_paths(expected))
  assert a.keys() == e.keys(), f'{what}: leaves differ: {sorted(a.keys() ^ e.keys())}'
  differing = [k for k in a if not np.array_equal(a[k], e[k])]
  assert not differing, (
      f'{what}: {len(differing)} of {len(a)} leaves differ, e.g. {differing[:5]}')


def assert_trees_close(actual, expected, what, rtol, atol):
  """Asserts two pytrees have the same leaves (paths) and values within rtol/atol."""
  a, e = leaves_with_paths(actual), leaves_with_paths(expected)
  assert [p for p, _ in a] == [p for p, _ in e], f'{what}: the trees differ'
  for (path, x), (_, y) in zip(a, e, strict=True):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f'{what}: {path}')


def assert_same_run(resumed, reference, what):
  """A resumed workdir ends as the uninterrupted `reference`: the newest checkpoint's epoch,
  bit-identical parameters and state, metrics (timings aside), history.csv to the byte, and
  event files holding the same scalars in one file."""
  import json
  from rnnjax import checkpoint as ckpt_lib
  state, meta = ckpt_lib.load_for_inference(resumed)
  ref_state, ref_meta = ckpt_lib.load_for_inference(reference)
  assert meta['epochs_done'] == ref_meta['epochs_done'], (
      f'{what}: newest checkpoint is epoch {meta["epochs_done"]}, uninterrupted run\'s is '
      f'{ref_meta["epochs_done"]}')
  assert_trees_equal(state['params'], ref_state['params'], f'{what}: final params')
  assert_trees_equal(state, ref_state, f'{what}: final training state')

  def read(path):
    with open(path) as f:
      return f.read()
  metrics = json.loads(read(os.path.join(resumed, 'metrics.json')))
  ref_metrics = json.loads(read(os.path.join(reference, 'metrics.json')))
  timings = {'train_seconds', 'compile_seconds', 'train_seconds_this_process', 'seconds'}
  differing = {k for k in ref_metrics if k not in timings and metrics.get(k) != ref_metrics[k]}
  assert not differing, f'{what}: metrics differ: ' + ', '.join(
      f'{k}={metrics.get(k)!r} vs {ref_metrics[k]!r}' for k in sorted(differing))
  history = pd.read_csv(os.path.join(resumed, 'history.csv'))
  ref_history = pd.read_csv(os.path.join(reference, 'history.csv'))
  assert list(history.columns) == list(ref_history.columns) and \
      len(history) == len(ref_history), (
          f'{what}: history.csv has columns {list(history.columns)} and {len(history)} rows; the '
          f'uninterrupted run\'s {list(ref_history.columns)} and {len(ref_history)} rows')
  # Losses are float32 on the device; compare them as float32 whatever the file's precision.
  np.testing.assert_array_equal(
      history.to_numpy(np.float32), ref_history.to_numpy(np.float32),
      err_msg=f'{what}: history.csv values differ from the uninterrupted run\'s')
  events = read_events(os.path.join(resumed, 'tensorboard'))
  ref_events = read_events(os.path.join(reference, 'tensorboard'))
  assert len(os.listdir(os.path.join(resumed, 'tensorboard'))) == 1 and events == ref_events, (
      f'{what}: the event files hold {len(events)} scalars, the uninterrupted run\'s '
      f'{len(ref_events)}: an epoch logged twice or lost, or another value')
  # The same run must leave the same file, not the same numbers printed at another precision.
  text, ref_text = (read(os.path.join(d, 'history.csv')) for d in (resumed, reference))
  assert text == ref_text, (
      f'{what}: history.csv holds the same float32 values but is written differently from the '
      f'uninterrupted run\'s:\n{text[:300]}\nvs\n{ref_text[:300]}')


SPELLINGS = ('same', 'dot_dot', 'symlink', 'hard_link')


def other_spelling(path, spelling):
  """Another name of the existing file `path` (a pathlib.Path): itself ('same'), through
  `sub/..` ('dot_dot'), or a symbolic or hard link made in a folder `sub` beside it ('symlink',
  'hard_link')."""
  folder = path.parent / 'sub'
  folder.mkdir(exist_ok=True)
  name = {'same': path, 'dot_dot': folder / '..' / path.name,
          'symlink': folder / f'link{path.suffix}', 'hard_link': folder / f'hard{path.suffix}'}[
              spelling]
  if spelling == 'symlink':
    os.symlink(path, name)
  elif spelling == 'hard_link':
    os.link(path, name)
  return name


# A train.py command line of the tutorial shrunk to seconds, checkpointing every 2 epochs of 12.
TRAIN_EPOCHS, TRAIN_CHECKPOINT_EVERY = 12, 2
TRAIN_ARGS = ['--config', 'configs/seed_gru.py', '--config.data.synthetic.num_days=30',
              '--config.model.hidden_sizes=(8,8)', f'--config.train.epochs={TRAIN_EPOCHS}',
              f'--config.train.checkpoint_every={TRAIN_CHECKPOINT_EVERY}']


def train_cmd(workdir, *extra):
  """The command that runs scripts/train.py with TRAIN_ARGS (and `extra`) into `workdir`."""
  return [PYTHON, os.path.join(ROOT, 'scripts', 'train.py'), '--workdir', str(workdir),
          *TRAIN_ARGS, *extra]


# The linear baseline by NumPy alone: the reference rnnjax.linear_baseline is tested against.
LINEAR_ALPHA = 0.1  # rnnjax.linear_baseline.LINEAR_ALPHA, restated so the check is independent


def loop_design(data, starts):
  """(inputs [N, P], last scaled target [N], scaled targets [N, S]) by a loop over the windows:
  every column of the window, then the known-future columns at each target time."""
  steps, known = np.asarray(data.steps), data.num_known
  rows, lasts, targets = [], [], []
  for s in np.asarray(starts):
    end = s + data.window - 1  # the last input
    future = data.scaled_TF[end + steps, data.num_features - known:] if known else []
    rows.append(np.concatenate([np.ravel(data.scaled_TF[s:end + 1]), np.ravel(future)]))
    lasts.append(data.scaled_TF[end, 0])
    targets.append(data.scaled_TF[end + steps, 0])
  return (np.array(rows, np.float64), np.array(lasts, np.float64),
          np.array(targets, np.float64))


def ridge_solve(x, y, alpha):
  """Closed-form ridge with an unpenalised intercept (as scikit-learn): (w [P, S], b [S])."""
  mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
  xc = x - mean_x
  w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - mean_y))
  return w, mean_y - mean_x @ w


def linear_reference_forecast(data, fit_starts, starts):
  """[N, S] the linear baseline by NumPy: fitted on `fit_starts`, in the series' units."""
  x, last, y = loop_design(data, fit_starts)
  w, b = ridge_solve(x, y - last[:, None], LINEAR_ALPHA)
  x_eval, last_eval, _ = loop_design(data, starts)
  scaled = x_eval @ w + b + last_eval[:, None]
  out = np.empty_like(scaled)
  for i, series in enumerate(data.series_index(starts)):
    out[i] = data.target_scalers[series].inverse_transform(scaled[i][:, None])[:, 0]
  return out


# A small panel of three series (one too short for any window) in one long-format CSV.
PANEL_WINDOW, PANEL_HORIZON, PANEL_SEASON = 8, 4, 6
PANEL_LENGTHS = {'a': 120, 'b': 90, 'short': 10}  # 'short' holds no training and validation window


def panel_csv(directory, future_rows=PANEL_HORIZON, shuffle=True) -> str:
  """A long-format CSV: series, time, load (target), temp (past only), price (known ahead).

  Each series starts at its own time; `future_rows` rows after its last load carry only the
  price. Rows are shuffled: the reader must sort each series by time itself.
  """
  rng = np.random.RandomState(0)
  frames = []
  for k, (name, n) in enumerate(PANEL_LENGTHS.items()):
    total = n + future_rows
    t = np.arange(total)
    price = np.cos(t / 3.0 + k)
    load = (5 * np.sin(2 * np.pi * t / PANEL_SEASON + k) + 2 * price + rng.normal(0, 0.2, total)
            + 10 * k)
    temp = rng.normal(20, 3, total)
    load[n:], temp[n:] = np.nan, np.nan
    frames.append(pd.DataFrame({
        'series': name, 'time': pd.date_range(f'2025-01-0{k + 1} 0{k}:00', periods=total,
                                               freq='h'),
        'load': load, 'temp': temp, 'price': price}))
  frame = pd.concat(frames, ignore_index=True)
  if shuffle:
    frame = frame.sample(frac=1.0, random_state=1)
  path = os.path.join(str(directory), 'panel.csv')
  frame.to_csv(path, index=False)
  return path


def panel_config(path, **overrides):
  """tiny_config reading `panel_csv`'s file: multi-step, a past-only and a known-future input."""
  return tiny_config(**{
      'data.source': 'csv', 'data.path': path, 'data.target': 'load', 'data.features': ('temp',),
      'data.future_features': ('price',), 'data.id_column': 'series', 'data.window': PANEL_WINDOW,
      'data.horizon': PANEL_HORIZON, 'data.multi_step': True, 'data.season': PANEL_SEASON,
      'model.hidden_sizes': (4,), **overrides})
