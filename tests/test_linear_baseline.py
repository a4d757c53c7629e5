"""The linear baseline (`rnnjax.linear_baseline.fit_linear`): ridge regression on the model's
inputs, against a closed-form NumPy solve on windows gathered by a plain loop; what it may read;
its subsample cap; one fit serving every scored part."""
import numpy as np
import pandas as pd
import pytest

from conftest import (PANEL_HORIZON, PANEL_SEASON, linear_reference_forecast, loop_design,
                      panel_config, panel_csv, ridge_solve, tiny_config)
from rnnjax import data as data_lib
from rnnjax import evaluate as evaluate_lib
from rnnjax import linear_baseline
from rnnjax import metrics
from rnnjax import windows
from rnnjax.sources import Series


@pytest.fixture(scope='module')
def panel(tmp_path_factory):
  """2 series, 4 steps, a past-only and a known-future feature, and the hour of day."""
  config = panel_config(panel_csv(tmp_path_factory.mktemp('panel')),
                   **{'data.calendar': ('hour_of_day',)})
  return config, data_lib.prepare(config.data)


def test_linear_baseline_equals_a_closed_form_ridge_on_windows_gathered_by_a_loop(panel):
  config, data = panel
  assert data.num_known == 3 and data.num_features == 5, 'price and the hour: 3 known inputs'
  starts = data.val_starts
  want = linear_reference_forecast(data, data.train_starts, starts)
  linear = linear_baseline.fit_linear(data)
  assert linear.fit_windows == len(data.train_starts)
  got = metrics.baseline_forecasts(data, starts, PANEL_SEASON, linear)['linear']
  np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-7,
                             err_msg='the linear baseline differs from the NumPy ridge solve')
  true = data.targets(starts)
  scores = metrics.forecast_metrics(data, starts, true + 1.0, PANEL_SEASON, 'val', linear)
  rmse = lambda a, b: float(np.sqrt(np.mean((a - b) ** 2)))  # noqa: E731
  assert scores['baseline_linear_rmse'] == pytest.approx(rmse(want, true), rel=1e-7)
  assert scores['baseline_linear_mae'] == pytest.approx(np.mean(np.abs(want - true)), rel=1e-7)
  assert scores['val_rmse_skill_vs_linear'] == pytest.approx(
      1.0 - 1.0 / scores['baseline_linear_rmse'], rel=1e-12)
  assert scores['baseline_linear_fit_windows'] == len(data.train_starts)
  for j, entry in enumerate(scores['per_step']):
    assert entry['baseline_linear_rmse'] == pytest.approx(rmse(want[:, j], true[:, j]),
                                                          rel=1e-7), f'step {j + 1}'
  which = data.series_index(starts)
  for i, name in enumerate(data.series_ids):
    assert scores['per_series'][name]['baseline_linear_rmse'] == pytest.approx(
        rmse(want[which == i], true[which == i]), rel=1e-7), f'series {name!r}'


def test_linear_baseline_never_reads_the_validation_part():
  """Every value after the last training target replaced: the same fit, other forecasts."""
  config = tiny_config(**{'data.calendar': ('hour_of_day',)})
  times = pd.date_range('2025-01-01', periods=480, freq='h')
  t = np.arange(480)
  values = np.stack([10 + 5 * np.sin(2 * np.pi * t / 24) + 0.01 * t,
                     60 + 20 * np.cos(2 * np.pi * t / 24)], axis=1)
  values += np.random.RandomState(0).normal(0, 0.5, values.shape)
  columns = ('temperature', 'humidity')
  data = data_lib.prepare(config.data, times, values, columns)
  fit_end = int(data.train_starts[-1]) + windows.target_offset(data.window, data.horizon) + 1
  changed = values.copy()
  changed[fit_end:] = np.random.RandomState(1).normal(0, 100, changed[fit_end:].shape)
  other = data_lib.prepare(config.data, times, changed, columns)
  np.testing.assert_array_equal(other.train_starts, data.train_starts)
  before, after = linear_baseline.fit_linear(data), linear_baseline.fit_linear(other)
  np.testing.assert_array_equal(after.ridge.coef_, before.ridge.coef_,
                                err_msg='the fit changed with the validation part: it reads it')
  np.testing.assert_array_equal(after.ridge.intercept_, before.ridge.intercept_)
  assert not np.allclose(linear_baseline.linear_forecast(other, other.val_starts, after),
                         linear_baseline.linear_forecast(data, data.val_starts, before)), (
      'the validation forecasts do not read the validation inputs')


@pytest.mark.parametrize('multi_step', [False, True])
def test_linear_baseline_is_near_exact_on_a_noise_free_linear_recurrence(multi_step):
  """Two sines and a level obey a linear recurrence of order 5, which a 24-step window holds:
  the ridge is exact but for its penalty's pull towards persistence (0.2% of the naive error)."""
  config = tiny_config(**{'data.multi_step': multi_step})
  n = 24 * 30
  t = np.arange(n)
  values = (20 + 5 * np.sin(2 * np.pi * t / 24) + 2 * np.sin(2 * np.pi * t / 9 + 1))[:, None]
  data = data_lib.prepare(config.data, pd.date_range('2025-01-01', periods=n, freq='h'), values,
                          ('temperature',))
  scores = metrics.forecast_metrics(data, data.val_starts, data.targets(data.val_starts),
                                    config.data.season, 'val')
  naive = min(scores['baseline_persistence_rmse'], scores['baseline_seasonal_naive_rmse'])
  assert scores['baseline_linear_rmse'] < 1e-2 * naive, (
      f'linear baseline rmse {scores["baseline_linear_rmse"]:.3g} on a noise-free linear '
      f'recurrence, the naive baselines {naive:.3g}')


def test_the_fit_is_capped_at_evenly_spaced_windows_of_every_series():
  """A panel of more training windows than LINEAR_FIT_WINDOWS is fitted on that many, evenly
  spaced over all of them (so over every series), as a ridge fitted by hand on those shows."""
  config = tiny_config()
  lengths = (9000, 9000, 9000)
  series = []
  rng = np.random.RandomState(3)
  for i, n in enumerate(lengths):
    t = np.arange(n)
    values = (10 * i + 5 * np.sin(2 * np.pi * t / 24 + i) + rng.normal(0, 0.5, n))[:, None]
    series.append(Series(f's{i}', pd.date_range('2025-01-01', periods=n, freq='h'), values,
                         pd.DataFrame()))
  data = data_lib.assemble(config.data, series, ('temperature',))
  cap = linear_baseline.LINEAR_FIT_WINDOWS
  assert len(data.train_starts) > cap, 'the panel must hold more training windows than the cap'
  linear = linear_baseline.fit_linear(data)
  assert linear.fit_windows == cap
  chosen = data.train_starts[np.round(np.linspace(0, len(data.train_starts) - 1, cap)).astype(int)]
  assert set(data.series_index(chosen)) == {0, 1, 2}
  x, last, y = loop_design(data, chosen)
  w, b = ridge_solve(x, y - last[:, None], linear_baseline.LINEAR_ALPHA)
  np.testing.assert_allclose(linear.ridge.coef_.reshape(w.T.shape), w.T, rtol=1e-6, atol=1e-8,
                             err_msg='the capped fit is not the ridge of the evenly spaced windows')
  np.testing.assert_allclose(np.ravel(linear.ridge.intercept_), b, rtol=1e-6, atol=1e-8)
  scores = metrics.forecast_metrics(data, data.val_starts, data.targets(data.val_starts),
                                    config.data.season, 'val', linear)
  assert scores['baseline_linear_fit_windows'] == cap
  small = linear_baseline.fit_linear(data, max_windows=100)
  assert small.fit_windows == 100


def test_one_fit_serves_every_scored_part_under_its_own_prefix(panel, monkeypatch):
  """`evaluate.score` fits the linear baseline once; a part scored under another prefix (a test
  part) gets the same baseline keys, named by it, from the same fit."""
  config, data = panel
  fits = []
  fit = linear_baseline.fit_linear

  def counted(*args, **kwargs):
    fits.append(1)
    return fit(*args, **kwargs)
  monkeypatch.setattr(linear_baseline, 'fit_linear', counted)
  scaled = {part: data.scaled_TF[data.target_positions(starts), 0][None] + 0.01
            for part, starts in (('train', data.train_starts), ('val', data.val_starts))}
  results, panels, _ = evaluate_lib.score(config, data, scaled, np.zeros(1, bool))
  assert len(fits) == 1, f'the linear baseline was fitted {len(fits)} times for one run'
  for key in ('baseline_linear_rmse', 'baseline_linear_mae', 'val_rmse_skill_vs_linear',
              'baseline_linear_fit_windows'):
    assert key in results, f'{key} missing from {sorted(results)}'
  assert all('baseline_linear_rmse' in entry for entry in results['per_step'])
  assert all('baseline_linear_rmse' in entry for entry in results['per_series'].values())
  assert len(panels['lead']['baseline_linear_rmse']) == PANEL_HORIZON
  linear = fit(data)
  starts = data.val_starts
  forecast = data.targets(starts) + 1.0
  val = metrics.forecast_metrics(data, starts, forecast, PANEL_SEASON, 'val', linear)
  test = metrics.forecast_metrics(data, starts, forecast, PANEL_SEASON, 'test', linear)
  assert len(fits) == 1, 'forecast_metrics refitted a fit it was given'
  renamed = {k.replace('val_', 'test_'): v for k, v in val.items() if k not in
             ('per_step', 'per_series')}
  assert {k: v for k, v in test.items() if k not in ('per_step', 'per_series')} == renamed
  assert test['per_step'][0]['test_rmse'] == val['per_step'][0]['val_rmse']
  assert test['per_series']['a']['baseline_linear_rmse'] == \
      val['per_series']['a']['baseline_linear_rmse']
