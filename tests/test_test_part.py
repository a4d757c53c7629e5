"""data.test_fraction: a test part no choice of the run has seen.

References: the window arithmetic of the tutorial (sample s reads x[s:s+window], its targets
y[s+window-1+step]) written out with Python loops, and a second run whose test-part values were
changed, which must train and choose exactly as the first.
"""
import math

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_config
from rnnjax import data as data_lib
from rnnjax import metrics as metrics_lib
from rnnjax import run as run_lib
from rnnjax import windows
from rnnjax.config_checks import validate
from rnnjax.errors import UserError


@pytest.mark.parametrize('n, window, horizon, first_step, val, test', [
    (100, 10, 3, 3, 0.2, 0.2), (100, 10, 3, 1, 0.2, 0.2), (337, 24, 13, 1, 0.25, 0.1),
    (337, 24, 13, 13, 0.2, 0.0), (60, 5, 1, 1, 0.5, 0.3)])
def test_parts_follow_the_rule_written_out_window_by_window(n, window, horizon, first_step, val,
                                                            test):
  test_points = math.floor(test * n)
  boundary = n - test_points
  before, test_windows = [], []
  for s in range(n - window - horizon + 1):
    targets = [s + window - 1 + step for step in range(first_step, horizon + 1)]
    if min(targets) >= boundary:
      test_windows.append(s)
    elif max(targets) < boundary:
      before.append(s)
  n_train = math.floor(len(before) * (1 - val))
  train, val_starts, test_starts = windows.part_starts(n, window, horizon, val, test,
                                                       first_step)
  assert list(train) == before[:n_train], 'training windows are not the first of those before ' \
      'the test part'
  assert list(val_starts) == before[n_train:], 'validation windows are not the rest of them'
  assert list(test_starts) == test_windows, 'test windows are not those whose targets all lie ' \
      f'in the last {test_points} points'


def test_zero_test_fraction_leaves_the_split_as_before():
  starts = windows.window_starts(4800, 24, 13)
  train, val = windows.split_starts(starts, 0.2)
  parts = windows.part_starts(4800, 24, 13, 0.2, 0.0)
  np.testing.assert_array_equal(parts[0], train)
  np.testing.assert_array_equal(parts[1], val)
  assert len(parts[2]) == 0


def _panel_csv(path, lengths, seed=0):
  rng = np.random.default_rng(seed)
  frames = []
  for name, n in lengths.items():
    times = pd.date_range('2025-01-01', periods=n, freq='h')
    values = 10 + 5 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 0.3, n)
    frames.append(pd.DataFrame({'id': name, 'time': times, 'temperature': values}))
  pd.concat(frames).to_csv(path, index=False)
  return path


def test_each_series_of_a_panel_has_its_own_last_points_as_test_part(tmp_path):
  lengths = {'a': 300, 'b': 451}
  config = tiny_config(**{'data.source': 'csv', 'data.id_column': 'id',
                          'data.test_fraction': 0.2,
                          'data.path': str(_panel_csv(tmp_path / 'p.csv', lengths))})
  data = data_lib.prepare(config.data)
  for i, (name, n) in enumerate(lengths.items()):
    lo = data.bounds[i]
    boundary = lo + n - math.floor(0.2 * n)
    mine = data.series_index(data.test_starts) == i
    first = data.target_positions(data.test_starts[mine]).min()
    assert first == boundary, f'series {name}: test part starts at {first - lo}, not at ' \
        f'{boundary - lo}'
    for part in (data.train_starts, data.val_starts):
      own = part[data.series_index(part) == i]
      assert data.target_positions(own).max() < boundary, f'series {name}: a training or ' \
          'validation target lies in the test part'


def _series_csv(path, values, start='2025-01-01'):
  times = pd.date_range(start, periods=len(values), freq='h')
  pd.DataFrame({'time': times, 'temperature': values}).to_csv(path, index=False)
  return str(path)


@pytest.fixture(scope='module')
def two_runs(tmp_path_factory):
  """Two runs whose series differ only in the test part: metrics of each."""
  tmp = tmp_path_factory.mktemp('test_part')
  n = 480
  rng = np.random.default_rng(1)
  values = 10 + 5 * np.sin(2 * np.pi * np.arange(n) / 24) + rng.normal(0, 0.5, n)
  changed = values.copy()
  boundary = n - math.floor(0.2 * n)
  changed[boundary:] = changed[boundary:] * 3.0 - 7.0
  out = []
  for name, series in (('same', values), ('changed', changed)):
    config = tiny_config(**{'data.source': 'csv', 'data.test_fraction': 0.2,
                            'data.path': _series_csv(tmp / f'{name}.csv', series),
                            'train.epochs': 4, 'train.early_stopping_patience': 2,
                            'num_seeds': 2})
    out.append(run_lib.train_and_evaluate(config, str(tmp / name), progress=False))
  return out


def test_nothing_the_run_chooses_sees_the_test_part(two_runs):
  same, changed = two_runs
  for key in ('val_rmse', 'train_rmse', 'baseline_persistence_rmse', 'member_val_rmse_mean'):
    assert same[key] == changed[key], f'{key} moved when only the test part changed'
  assert [m['best_epoch'] for m in same['members']] == [
      m['best_epoch'] for m in changed['members']], 'early stopping chose by the test part'
  assert same['test_rmse'] != changed['test_rmse'], 'the test score ignores the test part'


def test_test_scores_sit_beside_the_validation_ones(two_runs):
  metrics = two_runs[0]
  for key in ('rmse', 'mae', 'rmse_skill_vs_persistence', 'rmse_skill_vs_seasonal_naive',
              'rmse_skill_vs_linear'):
    assert f'test_{key}' in metrics, f'test_{key} missing beside val_{key}'
  for key in ('persistence_rmse', 'persistence_mae', 'seasonal_naive_rmse', 'linear_rmse'):
    assert f'test_baseline_{key}' in metrics, f'test_baseline_{key} missing'
  assert metrics['test_start'] == str(pd.Timestamp('2025-01-01') + pd.Timedelta(hours=384)
                                      ).replace(' ', 'T'), 'test_start is not the first test ' \
      'target time (point 384 of 480)'
  for member in metrics['members']:
    assert 'test_rmse' in member, 'a member has no test score of its own'
  assert 'member_test_rmse_mean' in metrics


def test_test_scores_against_numpy(tmp_path):
  """Persistence and seasonal naive on the test part, recomputed from the raw values."""
  n = 400
  values = 20 + np.cos(np.arange(n) / 5.0) * 3 + np.arange(n) * 0.01
  config = tiny_config(**{'data.source': 'csv', 'data.test_fraction': 0.25, 'train.epochs': 1,
                          'data.path': _series_csv(tmp_path / 's.csv', values)})
  metrics = run_lib.train_and_evaluate(config, str(tmp_path / 'w'), progress=False)
  window, horizon = 24, 13
  boundary = n - 100
  targets = np.arange(boundary, n)
  persistence = values[targets - horizon]
  seasonal = values[targets - 24]
  np.testing.assert_allclose(metrics['test_baseline_persistence_rmse'],
                             np.sqrt(np.mean((persistence - values[targets]) ** 2)), rtol=1e-12)
  np.testing.assert_allclose(metrics['test_baseline_seasonal_naive_rmse'],
                             np.sqrt(np.mean((seasonal - values[targets]) ** 2)), rtol=1e-12)
  assert len(targets) == n - boundary and window > 0


def test_multi_step_panel_has_test_per_step_and_per_series(tmp_path):
  config = tiny_config(**{'data.source': 'csv', 'data.id_column': 'id', 'data.multi_step': True,
                          'data.horizon': 4, 'data.test_fraction': 0.2, 'train.epochs': 1,
                          'data.path': str(_panel_csv(tmp_path / 'p.csv', {'a': 300, 'b': 360}))})
  metrics = run_lib.train_and_evaluate(config, str(tmp_path / 'w'), progress=False)
  assert [e['step'] for e in metrics['test_per_step']] == [1, 2, 3, 4]
  assert set(metrics['test_per_step'][0]) >= {'test_rmse', 'baseline_persistence_rmse'}
  assert set(metrics['test_per_series']) == {'a', 'b'}
  starts = {name: entry['test_start'] for name, entry in metrics['test_per_series'].items()}
  assert starts == {'a': '2025-01-11T00:00:00', 'b': '2025-01-13T00:00:00'}, \
      'per-series test_start is not each series\' point n - floor(0.2 n)'
  assert metrics['test_start'] == min(starts.values())


def test_without_a_test_part_no_test_key_is_written(finished_tutorial_keys):
  assert not [k for k in finished_tutorial_keys if k.startswith('test')], \
      'a run without data.test_fraction wrote test scores'


@pytest.fixture(scope='module')
def finished_tutorial_keys(finished_tiny_run):
  _, config, metrics = finished_tiny_run
  assert config.data.test_fraction == 0
  return set(metrics)


def test_renamed_names_every_validation_key_for_the_test_part():
  scores = {'val_rmse': 1.0, 'baseline_persistence_rmse': 2.0, 'val_rmse_skill_vs_persistence':
            0.5, 'per_step': [{'step': 1, 'val_rmse': 1.0, 'baseline_persistence_rmse': 2.0}],
            'per_series': {'a': {'val_rmse': 1.0}}, 'val_interval_level': 0.8}
  assert metrics_lib.renamed(scores, 'test') == {
      'test_rmse': 1.0, 'test_baseline_persistence_rmse': 2.0,
      'test_rmse_skill_vs_persistence': 0.5,
      'test_per_step': [{'step': 1, 'test_rmse': 1.0, 'baseline_persistence_rmse': 2.0}],
      'test_per_series': {'a': {'test_rmse': 1.0}}, 'test_interval_level': 0.8}


def test_the_verdict_names_the_part():
  results = {'test_rmse': 1.0, 'test_baseline_persistence_rmse': 2.0,
             'test_baseline_seasonal_naive_rmse': 0.5, 'test_baseline_linear_rmse': 1.5}
  line = metrics_lib.verdict(results, 'test')
  assert line.startswith('test_rmse 1 beats persistence (2'), line
  assert 'does not beat seasonal naive (0.5' in line, line
  assert 'beats linear ridge (1.5' in line, line


def test_a_test_part_leaving_no_training_window_is_refused_with_the_counts():
  with pytest.raises(UserError) as e:
    windows.check_lengths(200, 24, 13, 0.2, test_fraction=0.9)
  message = str(e.value)
  assert 'test_fraction=0.9' in message and 'last 180 points' in message, message
  assert '0 training' in message, message
  n = int(message.split('at least ')[1].split()[0])
  windows.check_lengths(n, 24, 13, 0.2, test_fraction=0.9)  # the length it names suffices
  with pytest.raises(UserError):
    windows.check_lengths(n - 1, 24, 13, 0.2, test_fraction=0.9)


@pytest.mark.parametrize('value', [1.0, -0.1, 1.5])
def test_a_test_fraction_out_of_range_is_refused(value):
  with pytest.raises(UserError, match='data.test_fraction'):
    validate(tiny_config(**{'data.test_fraction': value}))


def test_lags_and_a_test_part_together(tmp_path):
  """Windows start max(lags) in, test windows still have every target in the last 20%."""
  n = 500
  values = 10 + 5 * np.sin(2 * np.pi * np.arange(n) / 24)
  config = tiny_config(**{'data.source': 'csv', 'data.test_fraction': 0.2, 'data.lags': (24, 48),
                          'data.path': _series_csv(tmp_path / 's.csv', values)})
  data = data_lib.prepare(config.data)
  assert data.train_starts.min() == 48, 'a window reads a lag from before the series'
  boundary = n - 100
  assert data.target_positions(data.test_starts).min() == boundary
  assert data.target_positions(data.val_starts).max() == boundary - 1
  assert len(data.test_starts) == 100
