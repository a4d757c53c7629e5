"""`train_and_evaluate(config, workdir)`: one run (or one ensemble) from config to artifacts.

The Python loop here only steps over chunks of epochs: after each compiled chunk it updates the
progress bar, records history, checks for divergence, early stopping and preemption signals,
and saves checkpoints. Everything the workdir receives:

  config.json      the config of the run (a different config there is refused)
  checkpoints/     Orbax checkpoints of the whole training state (see rnnjax.checkpoint)
  best/            the checkpoint after the best validation loss
  history.csv      epoch, loss, val_loss (scaled MSE; ensembles: member means, then per member)
  metrics.json     errors in the series' own units, baselines, timings (written last)
  loss.png, predictions.png
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from typing import Any, Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
import pandas as pd
import tqdm

from rnnjax import checkpoint as ckpt_lib
from rnnjax import config as config_lib
from rnnjax import data as data_lib
from rnnjax import ensemble
from rnnjax import metrics as metrics_lib
from rnnjax import plots
from rnnjax import train as train_lib
from rnnjax.errors import Diverged, Interrupted, UserError

OUTPUTS = ('config.json', 'history.csv', 'metrics.json', 'loss.png', 'predictions.png',
           ckpt_lib.LATEST_DIR, ckpt_lib.BEST_DIR)


@dataclasses.dataclass
class Program:
  """One run or one ensemble behind one interface; its XLA programs compile when first needed.

  init() -> state; run(state, num_epochs) -> (state, history of [n] or [M, n] arrays);
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
    lowering and compiling go to `compile_seconds`."""
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


def compiler_options(runs_once: bool = False) -> dict:
  """XLA options for rnnjax's programs on the default backend.

  On a CPU, LLVM optimisation level 1 instead of XLA's default 3: the tutorial's training program
  compiles about 1 s faster and runs no slower (`scripts/benchmark.py --only=xla_opt`, in
  docs/benchmarks.md). A program that runs once for microseconds (`runs_once`: the init) gets
  level 0 and XLA:CPU's older elemental kernel emitter, which compiles the tutorial's init in
  0.3 s instead of 0.55 s (its kernels are slower, which a program run once never notices).
  Passed per compilation, so the process's other JAX programs keep theirs; an option set in
  XLA_FLAGS is left to apply.
  """
  if jax.default_backend() != 'cpu':
    return {}
  options = {'xla_backend_optimization_level': 0 if runs_once else 1}
  if runs_once:
    options['xla_cpu_use_fusion_emitters'] = False
  flags = os.environ.get('XLA_FLAGS', '')
  return {k: v for k, v in options.items() if k not in flags}


def _atomic_write(path: str, write: Callable[[str], None]) -> None:
  """Writes through a temporary file in the same directory, then renames it into place."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix=os.path.splitext(path)[1])
  os.close(fd)
  try:
    write(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; outputs are ordinary files
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _config_diff(old: dict, new: dict, prefix: str = '') -> list[str]:
  out = []
  for k in sorted(set(old) | set(new)):
    a, b = old.get(k), new.get(k)
    if isinstance(a, dict) and isinstance(b, dict):
      out += _config_diff(a, b, f'{prefix}{k}.')
    elif a != b:
      out.append(f'{prefix}{k}: {a!r} -> {b!r}')
  return out


def prepare_workdir(workdir: str, config, overwrite: bool) -> None:
  """Checks the workdir can take this run; with `overwrite`, removes a previous run's outputs.

  Raises:
    UserError: the workdir is a file or unwritable, or holds a run with another config.
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f'--workdir={workdir!r} is a file, not a directory; choose another path.')
  parent = workdir if os.path.isdir(workdir) else os.path.dirname(os.path.abspath(workdir))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.access(parent, os.W_OK | os.X_OK):
    raise UserError(f'--workdir={workdir!r} cannot be written ({parent!r} is not writable).')
  saved = os.path.join(workdir, 'config.json')
  if os.path.isfile(saved):
    with open(saved) as f:
      try:
        old = json.load(f)
      except json.JSONDecodeError:
        old = {'<unreadable config.json>': True}
    diff = _config_diff(old, json.loads(config_lib.to_json(config)))
    if diff and not overwrite:
      raise UserError(
          f'--workdir={workdir!r} holds a run with a different config ('
          + '; '.join(diff[:5]) + (' ...' if len(diff) > 5 else '')
          + '). Use another workdir, or pass --overwrite to replace that run.')
    if diff and jax.process_index() == 0:
      for name in OUTPUTS:
        path = os.path.join(workdir, name)
        if os.path.isdir(path):
          shutil.rmtree(path)
        elif os.path.exists(path):
          os.remove(path)
  os.makedirs(workdir, exist_ok=True)
  if not os.path.isfile(saved) and jax.process_index() == 0:
    _atomic_write(saved, lambda p: open(p, 'w').write(config_lib.to_json(config)))
  if jax.process_count() > 1:  # every host sees the prepared workdir before going on
    multihost_utils.sync_global_devices('rnnjax: workdir prepared')


class _Signals:
  """Records SIGTERM/SIGINT during training instead of dying mid-chunk."""

  def __init__(self):
    self.received = None

  @contextlib.contextmanager
  def catching(self):
    if threading.current_thread() is not threading.main_thread():
      yield self
      return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum, frame):
      self.received = signum
    for s in previous:
      signal.signal(s, handler)
    try:
      yield self
    finally:
      for s, h in previous.items():
        signal.signal(s, h)


def _meta(config, data: data_lib.Dataset, history: dict, epochs_done: int,
          members: ensemble.Members | None) -> dict:
  return {
      'config': config_lib.to_json(config),
      'scaler': data_lib.scaler_state(data.scaler),
      'target_scaler': data_lib.scaler_state(data.target_scaler),
      'columns': list(data.columns),
      'window': data.window, 'horizon': data.horizon,
      'epochs_done': epochs_done,
      'history': {k: np.asarray(v).tolist() for k, v in history.items()},
      'members': None if members is None else members.records(),
  }


def _check_checkpoint_config(workdir: str, config, meta: dict) -> None:
  diff = _config_diff(json.loads(meta['config']), json.loads(config_lib.to_json(config)))
  if diff:
    raise UserError(f'the checkpoints in {workdir!r} come from another config ('
                    + '; '.join(diff[:5]) + '). Pass --overwrite to start over, or use another '
                    'workdir.')


def _chunk_length(config, done: int) -> int:
  t = config.train
  next_checkpoint = (done // t.checkpoint_every + 1) * t.checkpoint_every
  chunk = t.epochs_per_chunk or t.checkpoint_every
  return min(chunk, t.epochs - done, next_checkpoint - done)


def train_and_evaluate(config, workdir: str, overwrite: bool = False,
                       progress: bool = True) -> dict:
  """Trains (or resumes) the run `config` describes in `workdir` and writes every artifact.

  Args:
    config: a ConfigDict from `rnnjax.config.default_config()` or a file in configs/.
    workdir: directory for checkpoints and outputs; running again resumes.
    overwrite: replace a run with a different config found in `workdir`.
    progress: show a progress bar.

  Returns:
    The metrics written to metrics.json.

  Raises:
    UserError: bad config, data or workdir (nothing in the workdir is touched).
    Diverged: the loss went non-finite; the last good checkpoint is kept.
    Interrupted: SIGTERM/SIGINT; a checkpoint was saved first.
  """
  config_lib.validate(config)
  members = ensemble.plan_members(config)
  data = data_lib.prepare(config.data)
  metrics_lib.seasonal_naive_forecast(data.values_TF[:, 0], data.target_positions(
      data.val_starts), config.data.season, data.horizon)  # a bad season fails before training
  prepare_workdir(workdir, config, overwrite)

  trainer = train_lib.make_trainer(config, data)
  program = (single_program(trainer, config) if members is None
             else ensemble.make_program(trainer, config, members))
  checkpointer = ckpt_lib.Checkpointer(workdir, config.train.max_to_keep)
  history = {'loss': [], 'val_loss': [], 'active': []}
  done, train_seconds = 0, 0.0
  latest_meta = ckpt_lib.newest_meta(checkpointer.latest)
  if latest_meta is not None:
    _check_checkpoint_config(workdir, config, latest_meta)
  restored = checkpointer.restore_latest(program.abstract_state)
  if restored is not None:
    state, meta = restored
    state = program.from_saved(state)
    done = meta['epochs_done']
    # JSON gives float64; keep the dtypes a chunk returns so a resumed history matches.
    history = {k: [np.asarray(v, bool if k == 'active' else np.float32)]
               for k, v in meta['history'].items()}
    logging.info('resuming %s from epoch %d', workdir, done)
  else:
    state = program.init()
    history = {k: [] for k in history}
  best_saved = (np.inf if restored is None
                else float(np.min(ensemble.to_host(state.best_val_loss))))

  signals = _Signals()
  bar = tqdm.tqdm(total=config.train.epochs, initial=done, unit='epoch', disable=not progress,
                  dynamic_ncols=True)
  all_stopped = bool(np.all(ensemble.to_host(state.stopped)))
  with signals.catching():
    while done < config.train.epochs and not all_stopped:
      n = _chunk_length(config, done)
      start = time.perf_counter()
      compile_before = program.compile_seconds
      state, chunk = program.run(state, n)
      chunk = ensemble.to_host(chunk)
      train_seconds += time.perf_counter() - start - (program.compile_seconds - compile_before)
      done += n
      for k in history:
        history[k].append(np.asarray(chunk[k]))
      loss, val = np.asarray(chunk['loss'])[..., -1], np.asarray(chunk['val_loss'])[..., -1]
      bar.update(n)
      bar.set_postfix(loss=f'{_finite_mean(loss):.5f}', val_loss=f'{_finite_mean(val):.5f}')
      flags = ensemble.to_host({'diverged': state.diverged, 'stopped': state.stopped,
                                'best': state.best_val_loss})
      diverged = flags['diverged']
      all_stopped = bool(np.all(flags['stopped']))
      if members is None and bool(diverged):
        bar.close()
        raise Diverged(_divergence_message(workdir, history, checkpointer))
      if done % config.train.checkpoint_every == 0 or done == config.train.epochs or \
          signals.received or all_stopped:
        # best/ gets this state if validation improved since the last checkpoint was saved.
        best_now = float(np.min(np.where(diverged, np.inf, flags['best'])))
        checkpointer.save(done, program.to_saved(state),
                          _meta(config, data, _joined(history), done, members),
                          is_best=best_now < best_saved)
        best_saved = min(best_saved, best_now)
      if signals.received:
        bar.close()
        checkpointer.close()
        raise Interrupted(f'received signal {signals.received}: saved a checkpoint at epoch '
                          f'{done}; run the same command again to resume.', signals.received)
  bar.close()
  checkpointer.save(done, program.to_saved(state),
                    _meta(config, data, _joined(history), done, members))
  checkpointer.close()
  if members is not None and np.all(ensemble.to_host(state.diverged)):
    raise Diverged('every member of the ensemble diverged (non-finite loss); lower '
                   'train.learning_rate or set train.clip_norm.')
  history = _joined(history)
  results = evaluate_and_write(config, data, trainer, state, history, workdir, members)
  if jax.process_index() != 0:  # one process writes the workdir's files
    return results
  results['compile_seconds'] = program.compile_seconds
  results['train_seconds'] = train_seconds
  results['epochs_run'] = int(np.max(np.sum(history['active'], axis=-1)))
  _atomic_write(os.path.join(workdir, 'metrics.json'),
                lambda p: open(p, 'w').write(json.dumps(results, indent=1, sort_keys=True)))
  return results


def _finite_mean(values) -> float:
  finite = np.asarray(values)[np.isfinite(values)]
  return float(finite.mean()) if finite.size else float('nan')


def _joined(history: dict) -> dict:
  return {k: (np.concatenate(v, axis=-1) if v else np.zeros((0,))) for k, v in history.items()}


def _divergence_message(workdir: str, history: dict, checkpointer) -> str:
  loss = np.concatenate(history['loss'])
  val = np.concatenate(history['val_loss'])
  epoch = int(np.flatnonzero(~(np.isfinite(loss) & np.isfinite(val)))[0]) + 1
  steps = checkpointer.latest.all_steps()
  kept = (f'the last good checkpoint is epoch {max(steps)} in '
          f'{os.path.join(workdir, ckpt_lib.LATEST_DIR)}' if steps else 'no checkpoint was saved')
  return (f'training diverged: the loss became non-finite at epoch {epoch}; {kept}. Lower '
          'train.learning_rate, set train.clip_norm, or set train.skip_nonfinite_updates=True.')


def evaluate_and_write(config, data: data_lib.Dataset, trainer: train_lib.Trainer, state,
                       history: dict, workdir: str, members) -> dict:
  """Forecasts train and validation windows, scores them and writes history, plots, metrics."""
  early = config.train.early_stopping_patience > 0
  params = train_lib.final_params(state, early)
  series = trainer.device_data.series_TF
  panels, results = {}, {}
  if members is None:
    for part, starts in (('train', data.train_starts), ('val', data.val_starts)):
      scaled = train_lib.predict_windows(trainer, params, series, starts,
                                         config.train.val_batch_size)
      forecast = data.unscale_target(scaled)
      results.update(metrics_lib.forecast_metrics(data, starts, forecast, config.data.season,
                                                  part))
      if part == 'val':
        results['val_mse_scaled'] = float(np.mean(
            (scaled - data.scaled_TF[data.target_positions(starts), 0]) ** 2))
      panels[part] = (data.targets(starts), forecast, None)
    frame = pd.DataFrame({'epoch': np.arange(1, len(history['loss']) + 1),
                          'loss': history['loss'], 'val_loss': history['val_loss']})
    frame = frame[np.asarray(history['active'], bool)]
  else:
    results, panels, frame = ensemble.evaluate(config, data, trainer, params, state, history,
                                               members)
  if jax.process_index() != 0:
    return results
  _atomic_write(os.path.join(workdir, 'history.csv'), lambda p: frame.to_csv(p, index=False))
  _atomic_write(os.path.join(workdir, 'loss.png'), lambda p: plots.plot_loss(history, p))
  _atomic_write(os.path.join(workdir, 'predictions.png'),
                lambda p: plots.plot_predictions(panels, p))
  return results
