"""`rnnjax.run.train_and_evaluate`: what a finished workdir holds, against independent references.

References: the pure `make_train` (the same training without the chunk loop, checkpoints or
reloading), NumPy on the raw series for errors and baselines, and the window arithmetic of the
tutorial (sample s reads x[s:s+window], target y[s+window-1+horizon]).
"""
import json
import math
import os
import shutil
import types

import jax
import numpy as np
import pandas as pd
import pytest

from conftest import (Crashed, copy_of_run, crash_after_checkpoint, linear_reference_forecast,
                      read_events, tiny_config)
from rnnjax import checkpoint as ckpt_lib
from rnnjax import data as data_lib
from rnnjax import forecast
from rnnjax import models
from rnnjax import program as program_lib
from rnnjax import run as run_lib
from rnnjax import sources
from rnnjax import train as train_lib
from rnnjax import trained_run
from rnnjax import training_loop

TIMINGS = ('compile_seconds', 'train_seconds_this_process', 'seconds')


@pytest.fixture(scope='module')
def finished(tmp_path_factory, finished_tiny_run):
  """(config, workdir, returned metrics) of one finished tiny run (a copy of the session's)."""
  workdir, config, metrics = copy_of_run(finished_tiny_run,
                                         tmp_path_factory.mktemp('run') / 'w')
  return config, workdir, metrics


@pytest.fixture(scope='module')
def pure_training(finished):
  """(data, final TrainState, history) of the pure make_train with the run's config and seed."""
  config = finished[0]
  data = data_lib.prepare(config.data)
  state, history = jax.jit(train_lib.make_train(config, data))(
      jax.random.PRNGKey(config.train.seed))
  return data, state, history


@pytest.fixture(scope='module')
def series(finished):
  """The run's own raw series: (timestamps [T], values [T, 1])."""
  s = finished[0].data.synthetic
  times, values = sources.synthetic_series(s.num_days, s.slope, s.amplitude, s.noise, s.start)
  return times, values[:, None]


@pytest.fixture(scope='module')
def frame(finished, series):
  """forecast_frame of the reloaded workdir over the run's own series."""
  return forecast.forecast_frame(trained_run.load_run(finished[1]), *series)


def _split(config, n_points):
  """(n_windows, n_train) by the tutorial's arithmetic: the first 80 % of windows train."""
  d = config.data
  n_windows = n_points - d.window - d.horizon + 1
  return n_windows, math.floor(n_windows * (1 - d.val_fraction))


def test_metrics_json_is_what_train_and_evaluate_returned(finished):
  _, workdir, metrics = finished
  with open(os.path.join(workdir, 'metrics.json')) as f:
    written = json.load(f)
  metrics = dict(metrics)
  seconds, written_seconds = metrics.pop('seconds'), written.pop('seconds')
  assert written == pytest.approx(metrics, rel=1e-12), (
      f'metrics.json differs from the returned metrics:\n{written}\nvs\n{metrics}')
  assert written_seconds == pytest.approx(seconds, rel=1e-12), (written_seconds, seconds)
  phases = {'prepare', 'compile', 'train', 'checkpoints', 'evaluate', 'plots'}
  assert set(seconds) == phases and all(v >= 0 for v in seconds.values()), (
      f"metrics['seconds'] should time each phase {sorted(phases)}: {seconds}")
  assert seconds['compile'] == metrics['compile_seconds'], seconds
  assert seconds['train'] == metrics['train_seconds_this_process'], seconds


def test_a_point_run_reports_the_same_metrics_as_ever(finished):
  """The point head's metrics.json keeps its keys: the distribution scores are the
  probabilistic heads' alone (tests/test_heads.py)."""
  _, _, metrics = finished
  want = {'val_rmse', 'val_mae', 'val_mse_scaled', 'train_rmse', 'train_mae',
          'baseline_persistence_rmse', 'baseline_persistence_mae',
          'baseline_seasonal_naive_rmse', 'baseline_seasonal_naive_mae',
          'baseline_linear_rmse', 'baseline_linear_mae', 'baseline_linear_fit_windows',
          'val_rmse_skill_vs_persistence', 'val_rmse_skill_vs_seasonal_naive',
          'val_rmse_skill_vs_linear', 'compile_seconds', 'train_seconds',
          'train_seconds_this_process', 'seconds', 'epochs_run'}
  assert set(metrics) == want, (f'point run metrics: missing {sorted(want - set(metrics))}, '
                                f'unexpected {sorted(set(metrics) - want)}')


def test_reloaded_forecasts_equal_in_memory_training(finished, pure_training, series, frame):
  config, _, _ = finished
  data, state, _ = pure_training
  window = config.data.window
  starts = np.arange(len(series[1]) - window + 1)
  x_BWF = data.scaled_TF[starts[:, None] + np.arange(window)[None, :]]
  model = models.from_config(config)
  expected = data.unscale_target(model.apply({'params': state.params}, x_BWF))[:, 0]
  assert len(frame) == len(starts), f'{len(frame)} rows for {len(starts)} complete windows'
  # make_train is one compiled scan over all epochs, the run one call per epoch: equal up to
  # float32 rounding, not bit for bit.
  np.testing.assert_allclose(
      frame['forecast'].to_numpy(), expected, rtol=0, atol=1e-5,
      err_msg='forecasts from the reloaded checkpoint differ from the parameters the pure '
              'make_train trains with the same config and seed')


def test_val_and_train_errors_match_numpy_on_forecast_frame(finished, series, frame):
  config, _, metrics = finished
  n_windows, n_train = _split(config, len(series[1]))
  # Row s of the frame is the window starting at s; the last `horizon` rows have no target.
  for part, rows in (('val', slice(n_train, n_windows)), ('train', slice(0, n_train))):
    err = (frame['forecast'] - frame['actual']).to_numpy()[rows]
    assert np.all(np.isfinite(err)), f'{part} rows of forecast_frame lack an actual value'
    rmse, mae = np.sqrt(np.mean(err ** 2)), np.mean(np.abs(err))
    assert metrics[f'{part}_rmse'] == pytest.approx(rmse, abs=1e-5), (
        f'metrics {part}_rmse={metrics[f"{part}_rmse"]}, NumPy on the reloaded forecasts: {rmse}')
    assert metrics[f'{part}_mae'] == pytest.approx(mae, abs=1e-5), (
        f'metrics {part}_mae={metrics[f"{part}_mae"]}, NumPy on the reloaded forecasts: {mae}')


def test_baselines_match_numpy_on_the_raw_series(finished, series):
  config, _, metrics = finished
  d = config.data
  y = series[1][:, 0]
  n_windows, n_train = _split(config, len(y))
  target = np.arange(n_train, n_windows) + d.window - 1 + d.horizon
  # Seasonal naive may only look back whole seasons to a value known at forecast time.
  lag = d.season
  while lag < d.horizon:
    lag += d.season
  for name, guess in (('persistence', y[target - d.horizon]),
                      ('seasonal_naive', y[target - lag])):
    rmse = np.sqrt(np.mean((guess - y[target]) ** 2))
    mae = np.mean(np.abs(guess - y[target]))
    assert metrics[f'baseline_{name}_rmse'] == pytest.approx(rmse, rel=1e-12), (
        f'baseline_{name}_rmse={metrics[f"baseline_{name}_rmse"]}, NumPy: {rmse}')
    assert metrics[f'baseline_{name}_mae'] == pytest.approx(mae, rel=1e-12), (
        f'baseline_{name}_mae={metrics[f"baseline_{name}_mae"]}, NumPy: {mae}')


def test_linear_baseline_in_metrics_json_is_the_ridge_of_the_training_windows(finished):
  """metrics.json's linear baseline against a NumPy ridge solve on the run's training windows
  (tests/test_linear_baseline.py), fitted on all of them."""
  config, _, metrics = finished
  data = data_lib.prepare(config.data)
  want = linear_reference_forecast(data, data.train_starts, data.val_starts)
  true = data.targets(data.val_starts)
  assert metrics['baseline_linear_rmse'] == pytest.approx(
      np.sqrt(np.mean((want - true) ** 2)), rel=1e-7)
  assert metrics['baseline_linear_fit_windows'] == len(data.train_starts)
  assert metrics['val_rmse_skill_vs_linear'] == pytest.approx(
      1.0 - metrics['val_rmse'] / metrics['baseline_linear_rmse'], rel=1e-12)


def test_history_csv_matches_training_history(finished, pure_training):
  config, workdir, _ = finished
  history = pd.read_csv(os.path.join(workdir, 'history.csv'))
  epochs = config.train.epochs
  assert list(history['epoch']) == list(range(1, epochs + 1)), (
      f'history.csv epochs are {list(history["epoch"])}, expected 1..{epochs}')

  _, meta = ckpt_lib.load_for_inference(workdir)
  for key in ('loss', 'val_loss'):
    np.testing.assert_array_equal(
        history[key].to_numpy(np.float32), np.asarray(meta['history'][key], np.float32),
        err_msg=f'history.csv {key} differs from the history saved in the final checkpoint')

  _, _, pure = pure_training
  for key in ('loss', 'val_loss', 'grad_norm'):
    np.testing.assert_allclose(
        history[key].to_numpy(), np.asarray(pure[key]), rtol=1e-5,
        err_msg=f'history.csv {key} differs from the pure make_train history of the same config')


def test_event_file_holds_the_history_csv_values_and_the_learning_rate(finished):
  config, workdir, _ = finished
  folder = os.path.join(workdir, 'tensorboard')
  assert len(os.listdir(folder)) == 1, f'tensorboard/ holds {os.listdir(folder)}, not one file'
  rows = read_events(folder)
  history = pd.read_csv(os.path.join(workdir, 'history.csv'))
  epochs = list(history['epoch'])
  for tag in ('loss', 'val_loss', 'grad_norm', 'learning_rate'):
    steps = [step for t, step, _ in rows if t == tag]
    assert steps == epochs, f'tag {tag!r} is logged at epochs {steps}, history.csv has {epochs}'
  for tag in ('loss', 'val_loss', 'grad_norm'):
    np.testing.assert_array_equal(
        np.array([v for t, _, v in rows if t == tag], np.float32),
        history[tag].to_numpy(np.float32), err_msg=f'event file {tag} vs history.csv')
  rates = [v for t, _, v in rows if t == 'learning_rate']
  np.testing.assert_allclose(rates, config.train.learning_rate, rtol=1e-7,
                             err_msg='a constant schedule logs train.learning_rate every epoch')


def test_rerun_on_finished_workdir_trains_nothing_and_gives_same_metrics(finished, tmp_path,
                                                                       monkeypatch):
  config, source, metrics = finished
  workdir = str(tmp_path / 'w')
  shutil.copytree(source, workdir)
  state_before, _ = ckpt_lib.load_for_inference(workdir)
  steps_before = sorted(os.listdir(os.path.join(workdir, ckpt_lib.LATEST_DIR)))

  chunks, programs = [], []
  make_program = program_lib.single_program

  def counting_program(trainer, cfg):
    program = make_program(trainer, cfg)
    programs.append(program)
    run_chunk = program.run

    def counted(state, n):
      chunks.append(n)
      return run_chunk(state, n)
    program.run = counted
    return program

  monkeypatch.setattr(program_lib, 'single_program', counting_program)
  rerun = run_lib.train_and_evaluate(config, workdir, progress=False)
  assert not chunks, f'the re-run of a finished workdir trained {sum(chunks)} more epochs'
  assert not programs[0].compiled, (
      f'the re-run compiled {sorted(map(str, programs[0].compiled))}: a restored run needs no '
      'init, and a finished one no training program')

  differing = sorted(k for k in metrics.keys() | rerun.keys()
                     if k not in TIMINGS and rerun.get(k) != metrics.get(k))
  assert not differing, 'the re-run changed metrics: ' + ', '.join(
      f'{k}: {metrics.get(k)!r} -> {rerun.get(k)!r}' for k in differing)
  assert rerun['train_seconds_this_process'] == 0.0 and rerun['train_seconds'] > 0, (
      'the re-run of a finished run should report the run\'s training seconds, none its own')
  assert sorted(os.listdir(os.path.join(workdir, ckpt_lib.LATEST_DIR))) == steps_before, (
      'the re-run changed the checkpoints directory')
  state_after, _ = ckpt_lib.load_for_inference(workdir)
  for before, after in zip(jax.tree.leaves(state_before), jax.tree.leaves(state_after),
                           strict=True):
    np.testing.assert_array_equal(after, before, err_msg='the re-run changed the saved state')
  events = [read_events(os.path.join(d, 'tensorboard')) for d in (source, workdir)]
  assert events[1] == events[0], 'the re-run changed the event file\'s scalars'
  old = pd.read_csv(os.path.join(source, 'history.csv')).to_numpy(np.float32)
  new = pd.read_csv(os.path.join(workdir, 'history.csv')).to_numpy(np.float32)
  np.testing.assert_array_equal(new, old, err_msg='the re-run changed history.csv')


def _csv(tmp_path, values):
  path = tmp_path / 'series.csv'
  times = pd.date_range('2025-01-01', periods=len(values), freq='h')
  pd.DataFrame({'time': times, 'temperature': values}).to_csv(path, index=False)
  return str(path)


@pytest.mark.parametrize('flat_from', [300, 0])
def test_flat_validation_part_or_flat_series_finishes_with_a_null_skill(tmp_path, flat_from):
  """A series flat over its validation part (or flat throughout) gives the persistence baseline
  zero error: the run finishes, the skill is null in metrics.json, and a rerun finishes too."""
  values = sources.synthetic_series(num_days=20)[1]
  values[flat_from:] = 12.5
  config = tiny_config(**{'data.source': 'csv', 'data.path': _csv(tmp_path, values),
                          'train.epochs': 1})
  workdir = str(tmp_path / 'w')
  metrics = run_lib.train_and_evaluate(config, workdir, progress=False)
  assert metrics['baseline_persistence_rmse'] == 0.0, metrics['baseline_persistence_rmse']
  assert metrics['val_rmse_skill_vs_persistence'] is None, metrics
  assert math.isfinite(metrics['val_rmse']), metrics['val_rmse']
  with open(os.path.join(workdir, 'metrics.json')) as f:
    assert json.load(f)['val_rmse_skill_vs_persistence'] is None
  rerun = run_lib.train_and_evaluate(config, workdir, progress=False)
  assert rerun['val_rmse'] == metrics['val_rmse'], 'the rerun of a finished flat run differs'


def test_divergence_message_advises_only_what_is_not_already_set(tmp_path):
  history = {'loss': [np.array([0.5, np.nan], np.float32)],
             'val_loss': [np.array([0.4, np.nan], np.float32)]}
  checkpointer = types.SimpleNamespace(steps=lambda: [1])
  off = training_loop._divergence_message(tiny_config(), str(tmp_path), history, checkpointer)
  assert 'non-finite at epoch 2' in off and 'skip_nonfinite_updates=True' in off, off
  on = training_loop._divergence_message(tiny_config(**{'train.skip_nonfinite_updates': True}),
                                   str(tmp_path), history, checkpointer)
  assert 'skip_nonfinite_updates=True' not in on and 'already on' in on, on
  assert 'learning_rate' in on and 'epoch 1' in on, on


def test_a_checkpoint_without_grad_norm_resumes_with_it_empty_for_its_epochs(tmp_path,
                                                                          monkeypatch):
  """A run whose epoch-2 checkpoint was saved before grad_norm was recorded (its history
  without the key), resumed: history.csv's grad_norm is empty for epochs 1-2, then filled."""
  config = tiny_config()
  workdir = str(tmp_path / 'w')
  meta = run_lib._meta

  def old_meta(*args, **kwargs):
    out = meta(*args, **kwargs)
    del out['history']['grad_norm']
    return out

  monkeypatch.setattr(run_lib, '_meta', old_meta)
  crash_after_checkpoint(monkeypatch, 2)
  with pytest.raises(Crashed):
    run_lib.train_and_evaluate(config, workdir, progress=False)
  monkeypatch.undo()
  _, saved = ckpt_lib.load_for_inference(workdir)
  assert 'grad_norm' not in saved['history'], sorted(saved['history'])
  run_lib.train_and_evaluate(config, workdir, progress=False)
  history = pd.read_csv(os.path.join(workdir, 'history.csv'))
  assert list(history['epoch']) == [1, 2, 3], list(history['epoch'])
  grad_norm = history['grad_norm'].to_numpy()
  assert np.isnan(grad_norm[:2]).all() and np.isfinite(grad_norm[2]), (
      f'grad_norm should be empty for the 2 epochs of the old checkpoint, then set: {grad_norm}')
  logged = [step for tag, step, _ in read_events(os.path.join(workdir, 'tensorboard'))
            if tag == 'grad_norm']
  assert logged == [3], f'grad_norm is logged at epochs {logged}; only epoch 3 has one'
