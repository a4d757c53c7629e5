"""Runs that survive being killed: resume, damaged checkpoints, divergence, signals, overwrite.

The reference for every resumed run is the same run left alone: a resumed run must end with the
same history and bit-identical parameters, because the state a checkpoint holds (parameters,
optimizer state, RNG key, epoch) is everything the next epoch reads.
"""
import glob
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import (Crashed, ROOT, TRAIN_CHECKPOINT_EVERY, TRAIN_EPOCHS,
                      assert_same_run, assert_trees_equal,
                      checkpoint_steps, copy_of_run, crash_after_checkpoint, diverge_from_step,
                      diverging_script, file_tree, finish_script, leaves_with_paths, script_env,
                      start_script, steps_per_epoch, tiny_config, train_cmd)
from rnnjax import checkpoint as ckpt_lib
from rnnjax import run as run_lib
from rnnjax import trained_run
from rnnjax.errors import Diverged, UserError

TIMEOUT = 300  # seconds for a subprocess run; generous because others may share the machine
POLL_TIMEOUT = 120  # seconds to wait for a checkpoint to appear
EPOCHS, CHECKPOINT_EVERY = TRAIN_EPOCHS, TRAIN_CHECKPOINT_EVERY
# The tutorial config shrunk so a run takes seconds but still spans six checkpoint chunks,
# leaving time to kill it in the middle.
def _run_to_completion(cmd, log_dir, name):
  code, _, stderr = finish_script(start_script(cmd, log_dir, name))
  assert code == 0, f'{name}: train.py exited with {code}:\n{stderr[-3000:]}'


def _wait_for_step(proc, workdir, min_step):
  deadline = time.monotonic() + POLL_TIMEOUT
  while time.monotonic() < deadline:
    steps = checkpoint_steps(workdir)
    if steps and steps[-1] >= min_step:
      return steps[-1]
    if proc.poll() is not None:
      break
    time.sleep(0.02)
  proc.kill()
  code, _, stderr = finish_script(proc)
  pytest.fail(f'no checkpoint step >= {min_step} appeared in {workdir} '
              f'(steps {checkpoint_steps(workdir)}, '
              f'exit code {code}):\n{stderr[-3000:]}')


def _read(path):
  with open(path) as f:
    return f.read()


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, compile_cache):
  """The subprocess run of TRAIN_ARGS, left alone from start to finish."""
  directory = tmp_path_factory.mktemp('uninterrupted')
  workdir = directory / 'w'
  _run_to_completion(train_cmd(workdir), str(directory), 'uninterrupted')
  return str(workdir)


def test_sigkill_then_rerun_equals_uninterrupted_run(tmp_path, uninterrupted):
  workdir = tmp_path / 'w'
  proc = start_script(train_cmd(workdir), str(tmp_path), 'killed')
  step = _wait_for_step(proc, workdir, 2 * CHECKPOINT_EVERY)
  proc.send_signal(signal.SIGKILL)
  code, _, stderr = finish_script(proc)
  assert code == -signal.SIGKILL, (
      f'the run was not killed mid-training (exit code {code} after checkpoint {step}); the test '
      f'needs a longer run:\n{stderr[-2000:]}')
  assert checkpoint_steps(workdir)[-1] < EPOCHS and not (workdir / 'metrics.json').exists(), (
      f'the run had finished before the kill (steps {checkpoint_steps(workdir)}); nothing was '
      'resumed')

  _, kept_meta = ckpt_lib.load_for_inference(str(workdir))
  _run_to_completion(train_cmd(workdir), str(tmp_path), 'resumed')
  assert_same_run(str(workdir), uninterrupted, 'killed at a checkpoint >= '
                   f'{2 * CHECKPOINT_EVERY} and re-run')
  metrics = json.loads(_read(str(workdir / 'metrics.json')))
  assert kept_meta['train_seconds'] > 0, kept_meta
  assert metrics['train_seconds'] == pytest.approx(
      kept_meta['train_seconds'] + metrics['train_seconds_this_process'], rel=1e-9), (
          f"train_seconds {metrics['train_seconds']} is not the killed process's "
          f"{kept_meta['train_seconds']} (in the checkpoint it resumed from) plus the resumed "
          f"process's {metrics['train_seconds_this_process']}")


def test_sigterm_saves_exits_143_and_rerun_equals_uninterrupted_run(tmp_path, uninterrupted):
  workdir = tmp_path / 'w'
  proc = start_script(train_cmd(workdir), str(tmp_path), 'terminated')
  _wait_for_step(proc, workdir, 1)
  proc.send_signal(signal.SIGTERM)
  code, _, stderr = finish_script(proc)
  assert code == 128 + signal.SIGTERM, (
      f'train.py exited with {code} after SIGTERM, expected {128 + signal.SIGTERM}:\n'
      f'{stderr[-3000:]}')
  assert 'Traceback' not in stderr, f'SIGTERM printed a traceback:\n{stderr[-3000:]}'
  assert re.search(r'run .* again to resume', stderr), (
      f'stderr does not tell the user to re-run to resume:\n{stderr[-2000:]}')
  said = re.search(r'checkpoint at epoch (\d+)', stderr)
  assert said, f'stderr does not say at which epoch it saved:\n{stderr[-2000:]}'
  stopped_at = int(said.group(1))
  assert stopped_at in checkpoint_steps(workdir) and stopped_at < EPOCHS, (
      f'stderr says a checkpoint was saved at epoch {stopped_at}, but checkpoints/ holds '
      f'steps {checkpoint_steps(workdir)} of {EPOCHS} epochs')
  _, meta = ckpt_lib.load_for_inference(str(workdir))
  assert meta['epochs_done'] == stopped_at, (
      f'the newest usable checkpoint is epoch {meta["epochs_done"]}, not {stopped_at}')
  assert not (workdir / 'metrics.json').exists(), 'an interrupted run wrote metrics.json'

  _run_to_completion(train_cmd(workdir), str(tmp_path), 'resumed')
  assert_same_run(str(workdir), uninterrupted, 'SIGTERM then re-run')


def test_ensemble_resumed_after_a_crash_equals_uninterrupted_ensemble(tmp_path, monkeypatch):
  config = tiny_config(**{'num_seeds': 3, 'train.epochs': 4, 'train.checkpoint_every': 2})
  reference = str(tmp_path / 'reference')
  run_lib.train_and_evaluate(config, reference, progress=False)

  workdir = str(tmp_path / 'crashed')
  crash_after_checkpoint(monkeypatch, 2)
  with pytest.raises(Crashed):
    run_lib.train_and_evaluate(config, workdir, progress=False)
  monkeypatch.undo()
  assert checkpoint_steps(workdir) == [2], (
      f'after the crash checkpoints/ holds {checkpoint_steps(workdir)}')

  metrics = run_lib.train_and_evaluate(config, workdir, progress=False)
  assert metrics['num_members'] == 3, f'the resumed run has {metrics["num_members"]} members'
  assert_same_run(workdir, reference, 'ensemble of 3 crashed after epoch 2 and re-run')
  state, _ = ckpt_lib.load_for_inference(workdir)
  for leaf in jax.tree.leaves(state['params']):
    assert leaf.shape[0] == 3, f'a saved parameter has {leaf.shape[0]} members, not 3'


@pytest.fixture(scope='module')
def three_checkpoints(tmp_path_factory, finished_tiny_run):
  """A finished 3-epoch run that kept a checkpoint after every epoch (a copy of the session's)."""
  workdir, config, metrics = copy_of_run(
      finished_tiny_run, tmp_path_factory.mktemp('three_checkpoints') / 'w')
  assert config.train.epochs == 3 and config.train.max_to_keep == 3
  assert checkpoint_steps(workdir) == [1, 2, 3], f'checkpoints/ holds {checkpoint_steps(workdir)}'
  state, _ = ckpt_lib.load_for_inference(workdir)
  return workdir, config, metrics, state


def _truncate_newest_state(workdir):
  """Cuts the newest step's array data files in half, as a write cut short would."""
  step = checkpoint_steps(workdir)[-1]
  data_files = glob.glob(os.path.join(workdir, ckpt_lib.LATEST_DIR, str(step), 'state', 'd', '*'))
  assert data_files, f'no array data files found in step {step}: the Orbax layout changed'
  for path in data_files:
    with open(path, 'r+b') as f:
      f.truncate(os.path.getsize(path) // 2)
  return step


def test_truncated_newest_checkpoint_is_skipped_with_a_warning(three_checkpoints, tmp_path,
                                                               caplog):
  source, _, _, _ = three_checkpoints
  workdir = str(tmp_path / 'w')
  shutil.copytree(source, workdir)
  damaged = _truncate_newest_state(workdir)

  with caplog.at_level(logging.WARNING):
    state, meta = ckpt_lib.load_for_inference(workdir)
  assert meta['epochs_done'] == damaged - 1 and int(state['epoch']) == damaged - 1, (
      f'with step {damaged} damaged, load_for_inference returned epoch {meta["epochs_done"]} '
      f'(state epoch {int(state["epoch"])}), not the previous step {damaged - 1}')
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state['params'])), (
      'the previous step restored non-finite parameters')
  step_path = os.path.join(workdir, ckpt_lib.LATEST_DIR, str(damaged))
  warned = [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and step_path in r.getMessage()]
  assert warned, (f'no warning names the skipped checkpoint {step_path}; warnings were: '
                  f'{[r.getMessage()[:200] for r in caplog.records]}')


def test_resume_over_a_truncated_checkpoint_replaces_it(three_checkpoints, tmp_path):
  source, config, metrics, state_before = three_checkpoints
  workdir = str(tmp_path / 'w')
  shutil.copytree(source, workdir)
  damaged = _truncate_newest_state(workdir)

  rerun = run_lib.train_and_evaluate(config, workdir, progress=False)
  assert rerun['val_rmse'] == metrics['val_rmse'], (
      f'resuming from step {damaged - 1} gave val_rmse {rerun["val_rmse"]}, the first run '
      f'{metrics["val_rmse"]}')
  # metrics.json describes the retrained final epoch; the checkpoints must hold it too, or
  # scripts/predict.py forecasts with the older step's parameters.
  state, meta = ckpt_lib.load_for_inference(workdir)
  assert meta['epochs_done'] == damaged, (
      f'after re-running, the newest usable checkpoint is epoch {meta["epochs_done"]}: the '
      f'damaged step {damaged} was left in place instead of being saved again')
  assert_trees_equal(state['params'], state_before['params'],
                      f'params of the re-saved step {damaged}')


def test_divergence_raises_keeps_last_good_checkpoint(tmp_path, monkeypatch):
  # The optimizer's updates turn NaN at the first step of epoch 3, by construction: two good
  # checkpoints are written first, whatever a JAX release's arithmetic does with large losses.
  config = tiny_config(**{'train.epochs': 8})
  diverge_from_step(2 * steps_per_epoch(config), monkeypatch.setattr)
  workdir = str(tmp_path / 'w')
  with pytest.raises(Diverged) as raised:
    run_lib.train_and_evaluate(config, workdir, progress=False)
  message = str(raised.value)
  assert 'non-finite' in message and 'learning_rate' in message, (
      f'the Diverged message neither says what happened nor what to change: {message}')
  said = re.search(r'non-finite at epoch (\d+)', message)
  assert said, f'the Diverged message does not name the epoch: {message}'
  epoch = int(said.group(1))
  assert epoch == 3, f'the updates went NaN in epoch 3, but the message names epoch {epoch}'
  assert checkpoint_steps(workdir) and checkpoint_steps(workdir)[-1] == epoch - 1, (
      f'diverged at epoch {epoch}, but checkpoints/ holds {checkpoint_steps(workdir)} '
      '(checkpoint_every=1)')
  assert str(epoch - 1) in message, f'the message does not name the kept checkpoint: {message}'
  state, meta = ckpt_lib.load_for_inference(workdir)
  assert meta['epochs_done'] == epoch - 1, f'restored epoch {meta["epochs_done"]}'
  for name, leaf in leaves_with_paths(state['params']):
    assert np.all(np.isfinite(leaf)), f'the kept checkpoint has non-finite params at {name}'
  assert not os.path.exists(os.path.join(workdir, 'metrics.json')), (
      'a diverged run wrote metrics.json')


def test_divergence_through_the_cli_exits_3_without_traceback(tmp_path):
  workdir = tmp_path / 'w'
  step = 2 * steps_per_epoch(tiny_config())  # the first step of epoch 3
  proc = subprocess.run(
      diverging_script('train.py', step, '--config', 'configs/seed_gru.py',
                       '--workdir', str(workdir), '--config.data.synthetic.num_days=20',
                       '--config.model.hidden_sizes=(8,8)', '--config.train.epochs=8',
                       '--config.train.checkpoint_every=1'),
      cwd=ROOT, env=script_env(), capture_output=True,
      text=True, timeout=TIMEOUT)
  assert proc.returncode == 3, (
      f'a diverged run exited with {proc.returncode}, expected 3:\n{proc.stderr[-3000:]}')
  assert 'Traceback' not in proc.stderr, f'divergence printed a traceback:\n{proc.stderr[-3000:]}'
  assert 'diverged' in proc.stderr, f'stderr does not say the run diverged:\n{proc.stderr[-2000:]}'
  assert 'epoch 3' in proc.stderr, f'stderr does not name epoch 3:\n{proc.stderr[-2000:]}'
  assert checkpoint_steps(workdir) == [1, 2], (
      f'checkpoints after diverging in epoch 3: {checkpoint_steps(workdir)}')
  assert not (workdir / 'metrics.json').exists(), 'a diverged run wrote metrics.json'


def test_different_config_in_a_used_workdir_is_refused_unless_overwrite(three_checkpoints,
                                                                         tmp_path):
  source, first, _, _ = three_checkpoints
  workdir = str(tmp_path / 'w')
  shutil.copytree(source, workdir)
  before = file_tree(workdir)

  second = first.copy_and_resolve_references()
  second.train.learning_rate = 0.002
  with pytest.raises(UserError) as raised:
    run_lib.train_and_evaluate(second, workdir, progress=False)
  assert 'train.learning_rate' in str(raised.value), (
      f'the refusal does not name the differing key: {raised.value}')
  after = file_tree(workdir)
  changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
  assert not changed, f'a refused run changed files in the workdir: {changed[:10]}'

  run_lib.train_and_evaluate(second, workdir, overwrite=True, progress=False)
  saved = json.loads(_read(os.path.join(workdir, 'config.json')))
  assert saved['train']['learning_rate'] == 0.002, (
      f'after overwrite config.json has learning_rate {saved["train"]["learning_rate"]}')
  _, meta = ckpt_lib.load_for_inference(workdir)
  assert json.loads(meta['config'])['train']['learning_rate'] == 0.002, (
      'after overwrite the newest checkpoint still comes from the first config')


def test_early_stopping_stops_and_reports_the_best_epoch(tmp_path):
  patience, epochs = 2, 30
  # A large step on 20 days: validation loss stops improving within about ten epochs.
  config = tiny_config(**{'train.learning_rate': 0.03, 'train.epochs': epochs,
                          'train.early_stopping_patience': patience,
                          'train.checkpoint_every': 5})
  workdir = str(tmp_path / 'w')
  metrics = run_lib.train_and_evaluate(config, workdir, progress=False)
  epochs_run = metrics['epochs_run']
  assert epochs_run < epochs, f'early stopping never stopped: {epochs_run} of {epochs} epochs'

  history = np.genfromtxt(os.path.join(workdir, 'history.csv'), delimiter=',', names=True)
  assert len(history) == epochs_run, (
      f'history.csv has {len(history)} rows for {epochs_run} epochs run')
  val = history['val_loss']
  best_epoch = int(np.argmin(val)) + 1
  assert epochs_run == best_epoch + patience, (
      f'stopped after epoch {epochs_run}; the best val_loss was at epoch {best_epoch}, so with '
      f'patience {patience} it should stop after epoch {best_epoch + patience}')

  state, _ = ckpt_lib.load_for_inference(workdir)
  assert int(state['best_epoch']) == best_epoch, (
      f'checkpoint best_epoch={int(state["best_epoch"])}, history says {best_epoch}')
  assert metrics['val_mse_scaled'] == pytest.approx(val.min(), rel=1e-5, abs=1e-7), (
      f'val_mse_scaled={metrics["val_mse_scaled"]} is not the best epoch\'s val_loss '
      f'{val.min()} (last epoch\'s: {val[-1]}): the reported params are not the best ones')

  trained = trained_run.load_run(workdir)
  assert_trees_equal(trained.params, state['best_params'], 'load_run params vs best_params')
  assert not all(np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(state['params']), jax.tree.leaves(state['best_params']), strict=True)), (
          'the last and the best params are equal; the test cannot tell them apart')


@pytest.fixture(scope='module')
def hidden_4_run(tmp_path_factory):
  """A finished run of tiny_config with one GRU layer of 4 (another config than
  `three_checkpoints`'): (workdir, config). Tests copy the workdir before changing it."""
  workdir = str(tmp_path_factory.mktemp('hidden_4') / 'w')
  config = tiny_config(**{'model.hidden_sizes': (4,)})
  run_lib.train_and_evaluate(config, workdir, progress=False)
  return workdir, config


def test_checkpoints_from_an_incompatible_config_are_refused(three_checkpoints, hidden_4_run,
                                                             tmp_path):
  """config.json says one run, checkpoints/ holds another's (copied in by hand): refused with
  the differing key named, and nothing in the workdir is touched."""
  other, _ = hidden_4_run
  source, config, _, _ = three_checkpoints
  workdir = str(tmp_path / 'w')
  shutil.copytree(source, workdir)
  shutil.rmtree(os.path.join(workdir, ckpt_lib.LATEST_DIR))
  shutil.copytree(os.path.join(other, ckpt_lib.LATEST_DIR),
                  os.path.join(workdir, ckpt_lib.LATEST_DIR))
  before = sorted(os.listdir(os.path.join(workdir, ckpt_lib.LATEST_DIR)))
  with pytest.raises(UserError, match='another config.*hidden_sizes'):
    run_lib.train_and_evaluate(config, workdir, progress=False)
  assert sorted(os.listdir(os.path.join(workdir, ckpt_lib.LATEST_DIR))) == before, \
      'the refused run changed the checkpoints'


def test_missing_config_json_with_another_runs_checkpoints_is_refused_then_overwritten(
    hidden_4_run, tmp_path):
  """checkpoints/ of one config, config.json deleted by hand: another config is refused without
  writing anything (the original command still resumes), and --overwrite replaces the run."""
  source, first = hidden_4_run
  workdir = str(tmp_path / 'w')
  shutil.copytree(source, workdir)
  os.remove(os.path.join(workdir, 'config.json'))
  before = file_tree(workdir)
  with pytest.raises(UserError, match='another config.*hidden_sizes.*--overwrite'):
    run_lib.train_and_evaluate(tiny_config(), workdir, progress=False)
  assert file_tree(workdir) == before, 'the refused run wrote into the workdir'
  metrics = run_lib.train_and_evaluate(first, workdir, progress=False)  # its own run resumes
  assert metrics['epochs_run'] == first.train.epochs
  os.remove(os.path.join(workdir, 'config.json'))
  replaced = run_lib.train_and_evaluate(tiny_config(), workdir, overwrite=True, progress=False)
  assert replaced['epochs_run'] == tiny_config().train.epochs
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['model']['hidden_sizes'] == [8, 8], 'config.json is not the new run'


def test_second_ctrl_c_stops_at_once_without_waiting_for_the_chunk(tmp_path):
  """One SIGINT waits for the chunk to end and saves; a second one stops the process without
  waiting for the chunk and says what is kept (here, before the first checkpoint: nothing)."""
  workdir = tmp_path / 'w'
  # One 1000-epoch chunk before the first checkpoint (over ten seconds here) to interrupt.
  proc = start_script(train_cmd(workdir, '--config.train.epochs=2000',
                           '--config.train.checkpoint_every=1000'), str(tmp_path), 'interrupted')
  deadline = time.monotonic() + POLL_TIMEOUT
  while '0/2000' not in _read(proc.logs[1]):  # the progress bar: training has begun
    assert time.monotonic() < deadline and proc.poll() is None, 'the run never started training'
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  # Two signals that arrive while the main thread is inside one C++ call (compiling the chunk)
  # reach Python as one: the second is sent once the first has been answered.
  while 'Ctrl-C again to stop at once' not in _read(proc.logs[1]):
    assert time.monotonic() < deadline and proc.poll() is None, (
        f'the first SIGINT was never answered:\n{_read(proc.logs[1])[-2000:]}')
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  code, _, stderr = finish_script(proc)
  assert code == 128 + signal.SIGINT, f'exit code {code} after two SIGINTs:\n{stderr[-3000:]}'
  assert 'Traceback' not in stderr, stderr[-3000:]
  assert 'stopped at once; no checkpoint was saved yet' in stderr, (
      f'the second SIGINT did not say what is kept:\n{stderr[-2000:]}')
  assert checkpoint_steps(workdir) == [], (
      f'checkpoints {checkpoint_steps(workdir)}: the run finished the chunk instead of stopping '
      'at once')
  assert not (workdir / 'metrics.json').exists()


def test_async_save_keeps_the_values_of_a_state_the_next_chunk_donates(tmp_path):
  """The next chunk donates the state's buffers while Orbax still writes them in the
  background: the checkpoint must hold the values at the save, not what reuses the memory."""
  checkpointer = ckpt_lib.Checkpointer(str(tmp_path), max_to_keep=2)
  assert checkpointer.asynchronous, 'a single process should save in the background'
  state = {'w': jnp.arange(4_000_000, dtype=jnp.float32)}  # 16 MB: a write that takes a while
  expected = np.asarray(state['w']).copy()
  checkpointer.save(1, state, {'epochs_done': 1})
  overwrite = jax.jit(lambda s: {'w': s['w'] * 0 - 1}, donate_argnums=0)
  for _ in range(3):
    state = overwrite(state)
  jax.block_until_ready(state)
  checkpointer.close()
  restored, meta = ckpt_lib.load_for_inference(str(tmp_path))
  assert meta == {'epochs_done': 1}, meta
  np.testing.assert_array_equal(np.asarray(restored['w']), expected,
                                err_msg='the checkpoint holds values written after the save')
