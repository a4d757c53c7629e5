"""Errors against hand numbers, naive baselines against explicit loops."""
import math

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_config
from rnnjax import data as data_lib
from rnnjax import distribution_metrics
from rnnjax import metrics
from rnnjax import scoring_rules
from rnnjax.errors import UserError


def test_rmse_and_mae_hand_numbers():
  # errors 0, 0, 2: MSE 4/3, MAE 2/3.
  assert metrics.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3), rel=1e-15)
  assert metrics.mae([1, 2, 3], [1, 2, 5]) == pytest.approx(2 / 3, rel=1e-15)
  # errors -3, 4: MSE 12.5, MAE 3.5.
  assert metrics.rmse(np.array([0.0, 0.0]), np.array([3.0, -4.0])) == pytest.approx(
      math.sqrt(12.5), rel=1e-15)
  assert metrics.mae(np.array([0.0, 0.0]), np.array([3.0, -4.0])) == pytest.approx(3.5, rel=1e-15)
  assert metrics.rmse([2.5], [2.5]) == 0.0 and metrics.mae([2.5], [2.5]) == 0.0
  with pytest.raises(ValueError, match=r'shape \(2,\) scored against targets of shape \(2, 1\)'):
    metrics.rmse([1.0, 2.0], [[1.0], [2.0]])  # broadcasting would score 4 pairs
  assert isinstance(metrics.rmse(np.float32([1]), np.float32([2])), float), 'rmse not a float'


def test_rmse_is_computed_in_float64():
  # float32 would round 1e8 + 1 to 1e8 and report 0.
  pred = np.array([1e8 + 1], np.float64)
  assert metrics.rmse(pred, np.array([1e8])) == 1.0, 'rmse lost precision (not float64?)'


def _windows(n_points=60, window=4, horizon=3):
  starts = np.arange(n_points - window - horizon + 1)
  return starts, starts + window - 1 + horizon


def test_persistence_is_the_last_input():
  values = np.random.RandomState(0).normal(size=60)
  window, horizon = 4, 3
  starts, positions = _windows(60, window, horizon)
  want = np.array([values[s + window - 1] for s in starts])  # last input of each window
  np.testing.assert_array_equal(metrics.persistence_forecast(values, positions, horizon), want,
                                err_msg='persistence forecast is not the last input of the window')


def _seasonal_loop(values, positions, season, horizon):
  """The value k seasons before each target, for the fewest k whose lag is at least horizon."""
  out = []
  for p in positions:
    k = 1
    while k * season < horizon:
      k += 1
    out.append(values[p - k * season])
  return np.array(out)


@pytest.mark.parametrize('season,horizon', [(5, 3), (4, 4), (2, 5), (3, 7), (1, 6)])
def test_seasonal_naive_matches_explicit_loop(season, horizon):
  values = np.random.RandomState(1).normal(size=80)
  window = 4
  starts, positions = _windows(80, window, horizon)
  positions = positions[positions >= 2 * horizon + season]  # room for the lag
  got = metrics.seasonal_naive_forecast(values, positions, season, horizon)
  np.testing.assert_array_equal(got, _seasonal_loop(values, positions, season, horizon),
                                err_msg=f'seasonal naive (season={season}, horizon={horizon}) '
                                'differs from the explicit loop')
  lag = metrics.seasonal_lag(season, horizon)
  assert lag >= horizon and lag % season == 0, (
      f'lag {lag} must be a whole number of seasons no shorter than horizon {horizon}')


def test_seasonal_naive_before_series_start_is_user_error():
  values = np.arange(30.0)
  with pytest.raises(UserError, match='data.season=24'):
    metrics.seasonal_naive_forecast(values, np.array([20, 21]), 24, 13)


def _dataset():
  config = tiny_config()
  config.data.window, config.data.horizon = 5, 3
  values = np.sin(np.arange(200) / 4.0)[:, None] * 10 + 20
  return data_lib.prepare(config.data, pd.date_range('2025-01-01', periods=200, freq='h'),
                          values, ('temperature',))


def test_forecast_metrics_keys_and_values():
  d = _dataset()
  true = d.values_TF[d.val_starts + 5 - 1 + 3, 0]
  m = metrics.forecast_metrics(d, d.val_starts, true[:, None] + 1.0, season=24, prefix='val')
  assert set(m) == {
      'val_rmse', 'val_mae', 'baseline_persistence_rmse', 'baseline_persistence_mae',
      'baseline_seasonal_naive_rmse', 'baseline_seasonal_naive_mae', 'baseline_linear_rmse',
      'baseline_linear_mae', 'baseline_linear_fit_windows', 'val_rmse_skill_vs_persistence',
      'val_rmse_skill_vs_seasonal_naive', 'val_rmse_skill_vs_linear'}, (
          f'unexpected val metric keys {sorted(m)}')
  assert m['val_rmse'] == pytest.approx(1.0) and m['val_mae'] == pytest.approx(1.0), (
      f'forecast off by exactly 1 should give rmse = mae = 1, got {m}')
  positions = d.val_starts + 5 - 1 + 3
  series = d.values_TF[:, 0]
  persistence = np.array([series[s + 5 - 1] for s in d.val_starts])
  seasonal = _seasonal_loop(series, positions, 24, 3)
  persistence_rmse = np.sqrt(np.mean((persistence - true) ** 2))
  assert m['baseline_persistence_rmse'] == pytest.approx(persistence_rmse, rel=1e-12), (
      'persistence rmse is wrong')
  assert m['baseline_seasonal_naive_mae'] == pytest.approx(
      np.mean(np.abs(seasonal - true)), rel=1e-12), 'seasonal naive mae is wrong'
  assert m['val_rmse_skill_vs_persistence'] == pytest.approx(
      1.0 - 1.0 / persistence_rmse, rel=1e-12), 'skill is not 1 - rmse / persistence'
  seasonal_rmse = np.sqrt(np.mean((seasonal - true) ** 2))
  assert m['val_rmse_skill_vs_seasonal_naive'] == pytest.approx(
      1.0 - 1.0 / seasonal_rmse, rel=1e-12), 'skill is not 1 - rmse / seasonal naive rmse'

  train = metrics.forecast_metrics(d, d.train_starts, d.targets(d.train_starts), 24, 'train')
  assert set(train) == {'train_rmse', 'train_mae'}, f'unexpected train keys {sorted(train)}'
  assert train['train_rmse'] == 0.0, 'a perfect forecast should have rmse 0'


@pytest.mark.parametrize('model, persistence, seasonal, linear, expected', [
    (0.5, 7.0, 0.6, 0.55, 'val_rmse 0.5 beats persistence (7, skill 0.93), beats seasonal naive '
                          '(0.6, skill 0.17) and beats linear ridge (0.55, skill 0.09)'),
    (0.7, 7.0, 0.6, 0.5, 'val_rmse 0.7 beats persistence (7, skill 0.90), does not beat seasonal '
                         'naive (0.6, skill -0.17) and does not beat linear ridge (0.5, skill '
                         '-0.40)'),
    (0.6, 0.6, 0.0, 0.0, 'val_rmse 0.6 does not beat persistence (0.6, skill 0.00), does not '
                         'beat seasonal naive (0, skill undefined) and does not beat linear '
                         'ridge (0, skill undefined)'),
])
def test_verdict_says_which_baselines_the_model_beat(model, persistence, seasonal, linear,
                                                     expected):
  line = metrics.verdict({'val_rmse': model, 'baseline_persistence_rmse': persistence,
                          'baseline_seasonal_naive_rmse': seasonal,
                          'baseline_linear_rmse': linear})
  assert line == expected, line


# ---------------------------------------------------------------------------- distributions

LEVELS = (0.1, 0.5, 0.9)


def test_interval_scores_and_pinball_match_loops():
  rng = np.random.RandomState(5)
  y = rng.normal(size=(40, 3))
  q = np.sort(rng.normal(size=(40, 3, 3)), axis=-1)
  scores = scoring_rules.interval_scores(q[..., 0], q[..., 2], y, 0.8)
  inside = widths = penalised = 0.0
  for n in range(40):
    for s in range(3):
      lo, hi, t = q[n, s, 0], q[n, s, 2], y[n, s]
      inside += lo <= t <= hi
      widths += hi - lo
      penalised += (hi - lo) + 10.0 * (max(lo - t, 0) + max(t - hi, 0))  # 2 / (1 - 0.8) = 10
  assert scores['coverage'] == pytest.approx(inside / 120, rel=1e-12)
  assert scores['width'] == pytest.approx(widths / 120, rel=1e-12)
  assert scores['interval_score'] == pytest.approx(penalised / 120, rel=1e-12)
  loop = [[np.mean([max(tau * (y[n, s] - q[n, s, k]), (tau - 1) * (y[n, s] - q[n, s, k]))
                    for k, tau in enumerate(LEVELS)]) for s in range(3)] for n in range(40)]
  np.testing.assert_allclose(scoring_rules.pinball(q, y, LEVELS), loop, rtol=1e-12)
  with pytest.raises(ValueError, match='scored against targets'):
    scoring_rules.pinball(q[:, :1], y, LEVELS)


def test_crps_from_dense_quantiles_of_a_normal_is_its_closed_form():
  from scipy import special
  levels = np.arange(1, 200) / 200
  y = np.linspace(-3, 3, 13)
  q = 1.0 + 2.0 * special.ndtri(levels)[None, :] + np.zeros((13, 1))
  np.testing.assert_allclose(scoring_rules.crps_from_quantiles(q, y, levels),
                             scoring_rules.crps_gaussian(np.full(13, 1.0), np.full(13, 2.0), y),
                             rtol=2e-3)


@pytest.fixture(scope='module')
def panel(tmp_path_factory):
  """Two series of different lengths and levels, 3 steps at once, season 5."""
  path = tmp_path_factory.mktemp('panel') / 'panel.csv'
  rng = np.random.RandomState(6)
  frames = []
  for name, n, level in (('a', 120, 10.0), ('b', 90, -50.0)):
    t = np.arange(n)
    values = level + 3 * np.sin(2 * np.pi * t / 5) + rng.normal(size=n) * (1 + (name == 'b'))
    frames.append(pd.DataFrame({'site': name, 'time': pd.date_range('2025-01-01', periods=n,
                                                                    freq='h'), 'y': values}))
  pd.concat(frames).to_csv(path, index=False)
  config = tiny_config(**{'data.source': 'csv', 'data.path': str(path), 'data.target': 'y',
                          'data.id_column': 'site', 'data.window': 6, 'data.horizon': 3,
                          'data.multi_step': True, 'data.season': 5,
                          'model.head': 'gaussian'})
  return config, data_lib.prepare(config.data)


def _naive_loop(data, starts, season, levels):
  """For each window and step: the value `lag` before the target plus the quantiles of the
  same step's seasonal-naive errors over the training windows of the same series."""
  values, out = data.values_TF[:, 0], []
  for s in starts:
    series = data.series_index(np.array([s]))[0]
    rows = []
    for step in data.steps:
      lag = metrics.seasonal_lag(season, step)
      errors = []
      for t in data.train_starts:
        if data.series_index(np.array([t]))[0] != series:
          continue
        target = t + data.window - 1 + step
        if target - lag >= data.bounds[series]:
          errors.append(values[target] - values[target - lag])
      target = s + data.window - 1 + step
      rows.append(values[target - lag] + np.quantile(errors, levels))
    out.append(rows)
  return np.array(out)


def test_naive_distribution_matches_a_loop_per_series_and_step(panel):
  _, data = panel
  got = distribution_metrics.naive_distribution(data, data.val_starts, 5, LEVELS)
  assert got.shape == (len(data.val_starts), 3, 3)
  np.testing.assert_allclose(got, _naive_loop(data, data.val_starts, 5, LEVELS), rtol=1e-12,
                             err_msg='naive distribution differs from the loop')


def test_distribution_scores_of_a_gaussian_forecast(panel):
  config, data = panel
  starts = data.val_starts
  y = data.targets(starts)
  rng = np.random.RandomState(7)
  mean, scale = y + rng.normal(size=y.shape), rng.uniform(0.5, 2.0, size=y.shape)
  out = distribution_metrics.distribution_scores(data, starts, np.stack([mean, scale], -1), config)
  z = 1.2815515655446004
  inside = np.abs(y - mean) <= z * scale
  assert out['val_coverage'] == pytest.approx(inside.mean(), abs=1e-12)
  assert out['val_interval_width'] == pytest.approx(2 * z * np.mean(scale), rel=1e-9)
  assert out['val_crps'] == pytest.approx(
      np.mean(scoring_rules.crps_gaussian(mean, scale, y)), rel=1e-12)
  q = mean[..., None] + scale[..., None] * np.array([-z, 0.0, z])
  assert out['val_pinball'] == pytest.approx(np.mean(scoring_rules.pinball(q, y, LEVELS)), rel=1e-9)
  naive = _naive_loop(data, starts, 5, LEVELS)
  assert out['baseline_naive_coverage'] == pytest.approx(
      np.mean((naive[..., 0] <= y) & (y <= naive[..., 2])), abs=1e-12)
  assert out['baseline_naive_pinball'] == pytest.approx(
      np.mean(scoring_rules.pinball(naive, y, LEVELS)), rel=1e-9)
  assert out['val_interval_level'] == 0.8
  assert out['val_crps_skill_vs_naive'] == pytest.approx(
      1 - out['val_crps'] / out['baseline_naive_crps'], rel=1e-12)
  assert [entry['step'] for entry in out['per_step']] == [1, 2, 3]
  for j, entry in enumerate(out['per_step']):
    assert entry['val_coverage'] == pytest.approx(inside[:, j].mean(), abs=1e-12), entry
  which = data.series_index(starts)
  assert sorted(out['per_series']) == ['a', 'b']
  for i, name in enumerate(data.series_ids):
    assert out['per_series'][name]['val_coverage'] == pytest.approx(
        inside[which == i].mean(), abs=1e-12)
  with pytest.raises(ValueError, match='expected'):
    distribution_metrics.distribution_scores(data, starts, np.stack([mean, scale], -1)[:-1], config)
