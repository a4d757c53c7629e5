"""Backtests: fold boundaries against plain loops, a fold as a member against a run on that
fold's data alone, kill and resume, sharding, the files, and bad input."""
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pandas as pd
import pytest
from sklearn import preprocessing

from conftest import (ROOT, Crashed, assert_trees_close, checkpoint_steps, crash_after_checkpoint,
                      file_tree, linear_reference_forecast, read_events, script_env,
                      tiny_config)
from rnnjax import backtest as backtest_lib
from rnnjax import backtest_folds
from rnnjax import backtest_report
from rnnjax import data as data_lib
from rnnjax import sources
from rnnjax import train as train_lib
from rnnjax import trained_run
from rnnjax import workdir as workdir_lib
from rnnjax.errors import UserError
from rnnjax.sources import Series


WINDOW, HORIZON = 24, 13


def _config(**overrides):
  return tiny_config(**{'backtest.folds': 3, **overrides})


def _series(config):
  times, values = sources.synthetic_series(
      config.data.synthetic.num_days, config.data.synthetic.slope,
      config.data.synthetic.amplitude, config.data.synthetic.noise, config.data.synthetic.start)
  return times, values


def _panel(lengths):
  """Series of the given lengths, each its own level and scale."""
  out = []
  for i, (name, n) in enumerate(lengths.items()):
    times = pd.date_range('2025-01-01', periods=n, freq='h')
    t = np.arange(n)
    values = (10 * i + (i + 1) * np.sin(2 * np.pi * t / 24) + 0.01 * t)[:, None]
    out.append(Series(name, times, values, pd.DataFrame()))
  return out


# ---------------------------------------------------------------------------- fold boundaries

@pytest.mark.parametrize('lengths', [{'': 480}, {'a': 480, 'b': 400}], ids=['one', 'panel'])
def test_fold_boundaries_and_scalers_against_plain_loops(lengths):
  """Per fold and series: training and validation windows are those of a plain loop over the
  points before the origin (split as train.py splits), every target of them lies before the
  origin, the scalers are fit on that training part alone, the test windows are the next
  test_length windows (the first one's inputs end just before the origin), the last fold's
  test part ends with the series, and the training series is NaN from the origin on."""
  config = _config(**({'data.id_column': 'series'} if len(lengths) > 1 else {}))
  series = _panel(lengths)
  folds = backtest_folds.plan_folds(config, series, ('temperature',))
  assert folds.num_folds == 3
  for k, dataset in enumerate(folds.datasets):
    origins = folds.origins[k]
    which_test = dataset.series_index(folds.test_starts[k])
    for i, one in enumerate(series):
      base, origin = dataset.bounds[i], origins[i]
      n = origin  # the points the fold may read
      loop = [s for s in range(len(one.values_TF)) if s + WINDOW - 1 + HORIZON < n]
      n_train = int(len(loop) * 0.8)
      end = dataset.bounds[i + 1]
      train = [int(s) - base for s in dataset.train_starts if base <= s < end]
      val = [int(s) - base for s in dataset.val_starts if base <= s < end]
      assert train == loop[:n_train], f'fold {k} series {i}: training windows'
      assert val == loop[n_train:], f'fold {k} series {i}: validation windows'
      last_target = max(loop) + WINDOW - 1 + HORIZON
      assert last_target < origin, (
          f'fold {k}: a training target at {last_target} >= origin {origin}')
      fit_end = loop[n_train - 1] + WINDOW - 1 + HORIZON + 1
      reference = preprocessing.MinMaxScaler().fit(one.values_TF[:fit_end])
      np.testing.assert_array_equal(dataset.scalers[i].data_min_, reference.data_min_)
      np.testing.assert_array_equal(dataset.scalers[i].data_max_, reference.data_max_,
                                    err_msg=f'fold {k} series {i}: scaler not fit on its '
                                    'training part alone')
      test = [int(s) - base for s, w in zip(folds.test_starts[k], which_test, strict=True)
              if w == i]
      assert test == list(range(origin - WINDOW, origin - WINDOW + folds.test_length)), (
          f'fold {k} series {i}: test windows {test[:3]}... for origin {origin}')
      if k == folds.num_folds - 1:
        assert test[-1] == len(one.values_TF) - WINDOW - HORIZON, 'the last fold ends early'
      else:
        assert folds.origins[k + 1, i] - origin == folds.step
      seen = backtest_folds.training_series(dataset, origins)[base:dataset.bounds[i + 1], 0]
      assert np.all(np.isnan(seen[origin:])) and np.all(np.isfinite(seen[:origin])), (
          f'fold {k} series {i}: the training series is not NaN exactly from the origin on')
  # Default step: the shortest series' validation windows over the folds.
  counts = [len(one.values_TF) - WINDOW - HORIZON + 1 for one in series]
  assert folds.step == min(c - int(c * 0.8) for c in counts) // 3 == folds.test_length


def test_more_folds_than_the_data_allows_says_how_many_fit():
  series = _panel({'': 480})
  with pytest.raises(UserError, match=r'Use at most (\d+) folds') as refused:
    backtest_folds.plan_folds(_config(**{'backtest.folds': 3, 'backtest.step': 150}), series,
                              ('temperature',))
  most = int(re.search(r'Use at most (\d+) folds', str(refused.value)).group(1))
  assert most == 2, refused.value  # 444 windows: test parts at 294-443, 144-293; 0-143 is short
  planned = backtest_folds.plan_folds(
      _config(**{'backtest.folds': most, 'backtest.step': 150}), series, ('temperature',))
  assert planned.num_folds == most
  with pytest.raises(UserError, match='more folds than the validation part holds windows'):
    backtest_folds.plan_folds(_config(**{'backtest.folds': 500}), series, ('temperature',))


# ---------------------------------------------------------------------------- a fold as a member

def _alone(config, times, values, origin, seed):
  """train.py's run of the data before `origin` alone: its trainer, state and history."""
  data = data_lib.prepare(config.data, times[:origin], values[:origin, None], ('temperature',))
  trainer = train_lib.make_trainer(config, data)
  state = trainer.init(jax.random.PRNGKey(seed))
  state, history = jax.jit(trainer.run_epochs, static_argnums=2)(
      state, trainer.device_data, config.train.epochs)
  return data, trainer, state, history


@pytest.fixture(scope='module')
def trained():
  """3 folds x 2 seeds trained as one program, and its forecasts scored."""
  config = _config(**{'num_seeds': 2})
  bt = backtest_lib.make_backtest(config)
  state, history = bt.program.run(bt.program.init(), config.train.epochs)
  state = jax.device_get(state)
  frame, results = backtest_report.score_folds(config, bt.folds, bt.trainer, state.params,
                                               state.diverged, bt.base)
  return config, bt, state, jax.device_get(history), frame, results


@pytest.mark.parametrize('fold, seed', [(0, 1), (2, 0)])
def test_a_fold_as_a_member_equals_a_run_on_that_folds_data_alone(trained, fold, seed):
  """Member (fold, seed) of the one program equals scripts/train.py's run of the series cut at
  the fold's origin (fold 0 holds the fewest windows: its padding must change nothing), and its
  test forecasts equal that run's, unscaled by that run's own scaler."""
  config, bt, state, history, frame, _ = trained
  times, values = _series(config)
  origin = int(bt.folds.origins[fold, 0])
  data, trainer, ref_state, ref_history = _alone(config, times, values, origin, seed)
  m = fold * bt.base.size + seed
  assert bt.members.folds[m] == fold and bt.members.seeds[m] == seed
  member = jax.tree.map(lambda a: a[m], state)
  assert_trees_close(member.params, ref_state.params,
                      f'fold {fold} seed {seed}: params vs the run on the fold\'s data alone',
                      rtol=1e-5, atol=1e-6)
  for key in ('loss', 'val_loss'):
    np.testing.assert_allclose(history[key][m], ref_history[key], rtol=1e-5,
                               err_msg=f'fold {fold} seed {seed}: {key} per epoch')
  assert not bool(member.diverged), 'a fold read its NaN part (past its origin)'
  # Its test forecasts, from the reference alone: the whole series through its scaler.
  scaled = data.scalers[0].transform(values[:, None]).astype(np.float32)
  starts = bt.folds.test_starts[fold]
  forecast = trainer.predict_jit(ref_state.params, scaled, starts)
  expected = data.target_scalers[0].inverse_transform(np.asarray(forecast)).reshape(-1)
  rows = frame[(frame['fold'] == fold) & (frame['seed'] == seed)]
  np.testing.assert_allclose(rows['forecast'].to_numpy(), expected, rtol=1e-4, atol=1e-4,
                             err_msg='backtest.csv forecasts vs the run alone')
  np.testing.assert_array_equal(rows['actual'].to_numpy(),
                                values[starts + WINDOW - 1 + HORIZON])


def test_fold_scores_are_those_of_the_csv_rows(trained):
  """backtest.json's per-fold RMSE and baselines, recomputed with NumPy from backtest.csv; the
  mean, standard deviation and wins from the per-fold values."""
  _, bt, _, _, frame, results = trained
  for fold in results['folds']:
    rows = frame[frame['fold'] == fold['fold']]
    mean = rows.groupby(['input_end', 'step'])['forecast'].mean()
    first = rows[rows['seed'] == 0].set_index(['input_end', 'step'])
    err = mean - first['actual']
    assert np.isclose(fold['rmse'], np.sqrt(np.mean(err ** 2)), rtol=1e-9), fold['fold']
    for name in ('persistence', 'seasonal_naive', 'linear'):
      want = np.sqrt(np.mean((first[name] - first['actual']) ** 2))
      assert np.isclose(fold[f'baseline_{name}_rmse'], want, rtol=1e-9), (fold['fold'], name)
    assert len(first) == bt.folds.test_length
  rmse = np.array([f['rmse'] for f in results['folds']])
  assert np.isclose(results['mean']['rmse'], rmse.mean())
  assert np.isclose(results['std']['rmse'], rmse.std(ddof=1))
  for name in ('persistence', 'seasonal_naive', 'linear'):
    base = np.array([f[f'baseline_{name}_rmse'] for f in results['folds']])
    assert results['wins'][name] == int(np.sum(rmse < base))
    assert np.isclose(results['mean'][f'baseline_{name}_rmse'], base.mean())


def test_each_folds_linear_baseline_is_fitted_on_that_folds_training_windows(trained):
  """backtest.csv's linear forecasts of a fold: a NumPy ridge solve on the fold's own training
  windows (all before its origin), as backtest.json's per-fold keys say."""
  _, bt, _, _, frame, results = trained
  for k, (dataset, starts) in enumerate(zip(bt.folds.datasets, bt.folds.test_starts,
                                            strict=True)):
    assert dataset.train_starts[-1] + WINDOW - 1 + HORIZON < bt.folds.origins[k, 0]
    want = linear_reference_forecast(dataset, dataset.train_starts, starts)
    rows = frame[(frame['fold'] == k) & (frame['seed'] == 0)]
    np.testing.assert_allclose(rows['linear'].to_numpy(), want.reshape(-1), rtol=1e-7,
                               err_msg=f'fold {k}: the linear baseline is not its own ridge')
    fold = results['folds'][k]
    assert fold['baseline_linear_fit_windows'] == len(dataset.train_starts)
    assert np.isclose(fold['rmse_skill_vs_linear'],
                      1 - fold['rmse'] / fold['baseline_linear_rmse'])
  assert len({f['train_windows'] for f in results['folds']}) == bt.folds.num_folds


def test_without_refit_every_fold_scores_the_model_of_the_first_folds_data(tmp_path):
  # The `trained` fixture's epochs: the run on fold 0's data alone is then the program the
  # fold-as-a-member test compiled, read from the compilation cache.
  config = _config(**{'backtest.refit': False})
  bt = backtest_lib.make_backtest(config)
  assert bt.members.size == 1 and bt.members.folds is None
  state, _ = bt.program.run(bt.program.init(), config.train.epochs)
  state = jax.device_get(state)
  frame, results = backtest_report.score_folds(config, bt.folds, bt.trainer, state.params,
                                               state.diverged, bt.base)
  times, values = _series(config)
  data, trainer, ref_state, _ = _alone(config, times, values, int(bt.folds.origins[0, 0]), 0)
  assert_trees_close(jax.tree.map(lambda a: a[0], state.params), ref_state.params,
                      'the model trained once vs the run on the first fold\'s data',
                      rtol=1e-5, atol=1e-6)
  scaled = data.scalers[0].transform(values[:, None]).astype(np.float32)
  last = bt.folds.num_folds - 1
  forecast = trainer.predict_jit(ref_state.params, scaled, bt.folds.test_starts[last])
  np.testing.assert_allclose(
      frame[frame['fold'] == last]['forecast'].to_numpy(),
      data.target_scalers[0].inverse_transform(np.asarray(forecast)).reshape(-1),
      rtol=1e-4, atol=1e-4, err_msg='the last fold is not forecast by the first fold\'s model')
  assert len({f['train_windows'] for f in results['folds']}) == 1
  linear = linear_reference_forecast(bt.folds.datasets[0], bt.folds.datasets[0].train_starts,
                               bt.folds.test_starts[last])
  np.testing.assert_allclose(frame[frame['fold'] == last]['linear'].to_numpy(),
                             linear.reshape(-1), rtol=1e-7,
                             err_msg='the last fold\'s linear baseline is not the first fold\'s')


# ---------------------------------------------------------------------------- the command

def _run_script(workdir, *extra, devices=2):
  cmd = [sys.executable, os.path.join(ROOT, 'scripts', 'backtest.py'), '--config',
         os.path.join(ROOT, 'configs', 'seed_gru.py'), '--workdir', str(workdir),
         '--config.data.synthetic.num_days=20', '--config.model.hidden_sizes=(8,8)',
         '--config.train.epochs=2', '--config.train.checkpoint_every=1',
         '--config.backtest.folds=3', *extra]
  env = script_env(XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_script_on_two_devices_equals_an_in_process_run_killed_and_resumed(tmp_path, monkeypatch):
  """scripts/backtest.py with its 3 fold members split over 2 devices (padded to 4), and the
  same backtest in this process on one device, killed after its first checkpoint and run again:
  the same forecasts, scores and files."""
  proc = _run_script(tmp_path / 'script')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'backtest of 3 folds' in proc.stdout, proc.stdout
  config = _config(**{'train.epochs': 2, 'train.checkpoint_every': 1})
  workdir = tmp_path / 'killed'
  crash_after_checkpoint(monkeypatch, 1)
  with pytest.raises(Crashed):
    backtest_lib.run_backtest(config, str(workdir), progress=False)
  monkeypatch.undo()
  assert checkpoint_steps(workdir) == [1] and not (workdir / 'backtest.json').exists()
  results = backtest_lib.run_backtest(config, str(workdir), progress=False)
  assert results['epochs_run'] == 2
  script = pd.read_csv(tmp_path / 'script' / 'backtest.csv')
  resumed = pd.read_csv(workdir / 'backtest.csv')
  assert list(script.columns) == ['fold', 'member', 'seed', 'origin', 'input_end', 'step',
                                  'target_time', 'forecast', 'actual', 'persistence',
                                  'seasonal_naive', 'linear'], list(script.columns)
  assert len(script) == 3 * results['test_length']
  pd.testing.assert_frame_equal(script.drop(columns='forecast'),
                                resumed.drop(columns='forecast'))
  np.testing.assert_allclose(script['forecast'], resumed['forecast'], rtol=1e-5, atol=1e-5,
                             err_msg='2 devices vs 1 device killed and resumed: forecasts differ')
  saved = json.loads((tmp_path / 'script' / 'backtest.json').read_text())
  for a, b in zip(saved['folds'], results['folds'], strict=True):
    assert a['origin'] == b['origin'] and np.isclose(a['rmse'], b['rmse'], rtol=1e-5)
  assert (workdir / 'backtest.png').stat().st_size > 0
  assert (workdir / 'config.json').exists()
  logged, resumed_log = (read_events(d / 'tensorboard') for d in (tmp_path / 'script', workdir))
  keys = sorted((tag, step) for tag, step, _ in resumed_log)
  assert keys == sorted((tag, step) for tag, step, _ in logged), (
      'the killed and resumed backtest logs other tags or epochs than the script')
  assert len(keys) == len(set(keys)) == 3 * 4 * 2, f'3 members x 4 tags x 2 epochs: {keys}'
  rates = {tag for tag, _, value in resumed_log if tag.startswith('learning_rate/')
           and value == pytest.approx(config.train.learning_rate, rel=1e-6)}
  assert len(rates) == 3, f'each fold member logs train.learning_rate: {resumed_log}'
  with pytest.raises(UserError, match='holds a backtest .*workdir of scripts/train.py'):
    trained_run.load_run(str(workdir))  # scripts/predict.py's first step


@pytest.mark.parametrize('extra, message', [
    (['--config.backtest.folds=0'], 'backtest.folds must be an integer >= 1'),
    (['--config.backtest.step=200'], 'Use at most 2 folds'),
], ids=['no_folds', 'too_many_folds'])
def test_bad_backtest_input_exits_2_and_leaves_the_workdir_alone(tmp_path, extra, message):
  workdir = tmp_path / 'w'
  workdir.mkdir()
  (workdir / 'notes.txt').write_text('kept')
  before = file_tree(workdir)
  proc = _run_script(workdir, *extra, devices=1)
  assert proc.returncode == 2, f'exit {proc.returncode}:\n{proc.stderr[-2000:]}'
  assert message in proc.stderr, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  assert file_tree(workdir) == before, 'the refused backtest changed the workdir'


def test_a_train_workdir_is_not_taken_for_a_backtest(tmp_path):
  """The same config in a workdir of scripts/train.py: the backtest is refused before it
  trains, not resumed from the other run's checkpoints, and the workdir is left as it was."""
  config = _config(**{'train.epochs': 1})
  workdir = str(tmp_path / 'w')
  workdir_lib.prepare(workdir, config, overwrite=False)  # what train.py records first
  before = file_tree(workdir)
  with pytest.raises(UserError, match="different config.*run: None -> 'backtest'"):
    backtest_lib.run_backtest(config, workdir, progress=False)
  assert file_tree(workdir) == before


def test_a_quantile_backtest_scores_each_fold_from_its_csv_rows():
  """Per fold, coverage and width of the central interval and the pinball loss, recomputed
  with NumPy from backtest.csv's columns; the naive distribution's scores beside them."""
  head = 'quantile'
  config = _config(**{'model.head': head, 'backtest.folds': 2, 'train.epochs': 1})
  bt = backtest_lib.make_backtest(config)
  state, _ = bt.program.run(bt.program.init(), config.train.epochs)
  state = jax.device_get(state)
  frame, results = backtest_report.score_folds(config, bt.folds, bt.trainer, state.params,
                                               state.diverged, bt.base)
  named = ['q0.1', 'q0.5', 'q0.9']
  assert set(named + ['lower', 'upper']) <= set(frame.columns), list(frame.columns)
  for fold in results['folds']:
    rows = frame[frame['fold'] == fold['fold']]
    y, lower, upper = rows['actual'], rows['lower'], rows['upper']
    assert np.isclose(fold['coverage'], np.mean((y >= lower) & (y <= upper)))
    assert np.isclose(fold['interval_width'], np.mean(upper - lower))
    assert fold['interval_level'] == 0.8 and 0 <= fold['baseline_naive_coverage'] <= 1
    q = rows[named].to_numpy()
    levels = np.array([0.1, 0.5, 0.9])
    diff = y.to_numpy()[:, None] - q
    want = np.mean(np.maximum(levels * diff, (levels - 1) * diff))
    assert np.isclose(fold['pinball'], want), (fold['pinball'], want)
    np.testing.assert_array_equal(rows['forecast'], rows['q0.5'])
  assert 'naive_distribution_crps' in results['wins'] and 'crps' in results['mean']


def test_gaussian_columns_are_the_mean_scale_and_the_normal_interval():
  config = _config(**{'model.head': 'gaussian'})
  forecast = np.array([[[10.0, 2.0]], [[-1.0, 0.5]]])  # [N=2, S=1, (mean, scale)]
  columns = backtest_report.distribution_columns(config, forecast)
  z = 1.2815515655446004  # the standard normal's 0.9 quantile
  np.testing.assert_allclose(columns['mean'], [10.0, -1.0])
  np.testing.assert_allclose(columns['scale'], [2.0, 0.5])
  np.testing.assert_allclose(columns['lower'], [10.0 - 2.0 * z, -1.0 - 0.5 * z], rtol=1e-6)
  np.testing.assert_allclose(columns['upper'], [10.0 + 2.0 * z, -1.0 + 0.5 * z], rtol=1e-6)
  assert backtest_report.distribution_columns(_config(), forecast[..., 0]) == {}


def test_digits_out_of_range_are_refused_before_anything_is_written(tmp_path):
  with pytest.raises(UserError, match='--digits=18: give the significant digits'):
    backtest_lib.run_backtest(_config(), str(tmp_path / 'w'), progress=False, digits=18)
  assert not (tmp_path / 'w').exists(), 'a refused backtest created its workdir'
