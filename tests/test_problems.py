"""Forecasting problems beyond the tutorial's shape: several target steps at once, several series
in one long table, and inputs known in advance; each against a plain NumPy loop per series or
scikit-learn, and a run with all of them killed, resumed and forecast past its data."""
import json
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from sklearn import preprocessing

from conftest import (PANEL_HORIZON, PANEL_LENGTHS, PANEL_SEASON, PANEL_WINDOW, Crashed,
                      assert_same_run, checkpoint_steps, crash_after_checkpoint, panel_config,
                      panel_csv, tiny_config)
from rnnjax import config as config_lib
from rnnjax import config_checks
from rnnjax import data as data_lib
from rnnjax import forecast
from rnnjax import metrics
from rnnjax import models
from rnnjax import prediction
from rnnjax import run as run_lib
from rnnjax import train
from rnnjax import windows
from rnnjax.errors import UserError

WINDOW, HORIZON, SEASON, LENGTHS = PANEL_WINDOW, PANEL_HORIZON, PANEL_SEASON, PANEL_LENGTHS


def _observed(path, name):
  """[T, 3] load, temp, price of one series, sorted by time, its future rows left out."""
  frame = pd.read_csv(path, dtype={'series': str})
  frame = frame[frame['series'] == name].sort_values('time')
  return frame[frame['load'].notna()][['load', 'temp', 'price']].to_numpy(np.float64)


@pytest.fixture(scope='module')
def panel(tmp_path_factory):
  path = panel_csv(tmp_path_factory.mktemp('panel'))
  config = panel_config(path)
  config_checks.validate(config)
  return path, config, data_lib.prepare(config.data)


def _loop_windows(values, fraction=0.2):
  """Training and validation (inputs, targets) of one series by a plain loop."""
  pairs = [(values[s:s + WINDOW], values[s + WINDOW:s + WINDOW + HORIZON, 0])
           for s in range(len(values) - WINDOW - HORIZON + 1)]
  n_train = math.floor(len(pairs) * (1 - fraction))
  return pairs[:n_train], pairs[n_train:]


def test_panel_windows_and_targets_match_a_numpy_loop_per_series(panel, caplog):
  path, config, _ = panel
  with caplog.at_level(logging.WARNING):
    data = data_lib.prepare(config.data)
  assert data.series_ids == ('a', 'b'), f'series kept: {data.series_ids}'
  assert "series 'short'" in caplog.text and 'left out' in caplog.text, (
      f'the too-short series was not named in a warning:\n{caplog.text}')
  assert data.columns == ('load', 'temp', 'price') and data.steps == (1, 2, 3, 4)
  for part, starts in (('train', data.train_starts), ('val', data.val_starts)):
    want = [pair for name in data.series_ids
            for pair in _loop_windows(_observed(path, name))[part == 'val']]
    x, y = windows.gather_windows(data.values_TF, starts, WINDOW, data.steps)
    np.testing.assert_array_equal(x, np.stack([p[0] for p in want]),
                                  err_msg=f'{part} inputs differ from the loop over each series')
    np.testing.assert_array_equal(y, np.stack([p[1] for p in want]),
                                  err_msg=f'{part} targets y[t+1..t+h] differ from the loop')
    np.testing.assert_array_equal(data.targets(starts), y)


def test_no_window_spans_two_series(panel):
  _, _, data = panel
  for starts in (data.train_starts, data.val_starts):
    first = data.series_index(starts)
    last = data.series_index(data.target_positions(starts)[:, -1])
    assert np.array_equal(first, last), 'a window reads into the next series'
    assert np.all(data.target_positions(starts)[:, -1] < data.bounds[first + 1])


def test_each_series_is_scaled_by_its_own_scaler_fit_on_its_training_part(panel):
  path, _, data = panel
  for i, name in enumerate(data.series_ids):
    values = _observed(path, name)
    train_pairs, _ = _loop_windows(values)
    fit_end = len(train_pairs) - 1 + WINDOW + HORIZON  # past the last training target
    want = preprocessing.MinMaxScaler().fit(values[:fit_end]).transform(values)
    got = data.scaled_TF[data.bounds[i]:data.bounds[i + 1]]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6,
                               err_msg=f'series {name!r} is not scaled by its own training part')
  scaled = data.scaled_TF[data.target_positions(data.val_starts), 0]
  np.testing.assert_allclose(data.unscale_target(scaled, data.val_starts),
                             data.targets(data.val_starts), rtol=1e-5, atol=1e-4,
                             err_msg='unscale_target does not use each series\' own scaler')


def test_per_step_and_per_series_scores_and_baselines_match_numpy(panel):
  path, _, data = panel
  starts = data.val_starts
  got = metrics.forecast_metrics(data, starts, data.targets(starts) + 1.0, SEASON, 'val')
  rows = {name: [] for name in data.series_ids}  # (true [H], persistence [H], seasonal [H])
  for name in data.series_ids:
    y = _observed(path, name)[:, 0]
    n_windows = len(y) - WINDOW - HORIZON + 1
    for s in range(math.floor(n_windows * 0.8), n_windows):
      t = s + WINDOW - 1
      steps = np.arange(1, HORIZON + 1)
      lags = SEASON * np.ceil(steps / SEASON).astype(int)
      rows[name].append((y[t + steps], np.full(HORIZON, y[t]), y[t + steps - lags]))
  every = np.array([r for name in data.series_ids for r in rows[name]])  # [N, 3, H]
  rmse = lambda a, b: float(np.sqrt(np.mean((a - b) ** 2)))  # noqa: E731
  assert got['val_rmse'] == pytest.approx(1.0) and len(got['per_step']) == HORIZON
  for j, entry in enumerate(got['per_step']):
    assert entry['step'] == j + 1
    assert entry['val_rmse'] == pytest.approx(1.0)
    assert entry['baseline_persistence_rmse'] == pytest.approx(
        rmse(every[:, 1, j], every[:, 0, j]), rel=1e-12), f'persistence at step {j + 1}'
    assert entry['baseline_seasonal_naive_rmse'] == pytest.approx(
        rmse(every[:, 2, j], every[:, 0, j]), rel=1e-12), f'seasonal naive at step {j + 1}'
  assert set(got['per_series']) == {'a', 'b'}
  for name, entry in got['per_series'].items():
    mine = np.array(rows[name])
    assert entry['baseline_persistence_rmse'] == pytest.approx(
        rmse(mine[:, 1], mine[:, 0]), rel=1e-12), f'persistence of series {name!r}'
    assert entry['baseline_seasonal_naive_rmse'] == pytest.approx(
        rmse(mine[:, 2], mine[:, 0]), rel=1e-12), f'seasonal naive of series {name!r}'
  assert got['baseline_persistence_rmse'] == pytest.approx(
      rmse(every[:, 1], every[:, 0]), rel=1e-12), 'persistence over every series and step'


def test_a_season_reaching_before_a_series_start_names_the_series(tmp_path):
  config = panel_config(panel_csv(tmp_path), **{'data.season': 60, 'data.val_fraction': 0.5})
  data = data_lib.prepare(config.data)
  with pytest.raises(UserError, match="series 'b'"):
    metrics.baseline_forecasts(data, data.val_starts, 60)


def test_multi_step_with_horizon_1_equals_the_single_step_model():
  def trained(multi_step):
    config = tiny_config(**{'data.horizon': 1, 'data.multi_step': multi_step,
                            'train.epochs': 2})
    data = data_lib.prepare(config.data)
    return jax.jit(train.make_train(config, data))(jax.random.PRNGKey(3))
  (single, single_history), (multi, multi_history) = trained(False), trained(True)
  for a, b in zip(jax.tree.leaves((single, single_history)),
                  jax.tree.leaves((multi, multi_history)), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b),
                                  err_msg='multi_step with horizon 1 trains differently')


def test_future_inputs_at_the_target_times_reach_the_forecast_and_nothing_later_does(tmp_path):
  """The leak test: the forecast reads the known-future columns at its target times, and no
  value after its last target, nor any past-only value after its last input."""
  config = panel_config(panel_csv(tmp_path), **{'data.calendar': ('hour_of_day',)})
  model = models.from_config(config)
  assert model.num_known == 3 and model.num_steps == HORIZON  # price, hour sin, hour cos
  series = np.random.RandomState(2).normal(size=(60, 5)).astype(np.float32)
  steps = config_lib.target_steps(config.data)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, WINDOW, 5)),
                      jnp.zeros((1, HORIZON, 3)))['params']
  predict = jax.jit(prediction.window_predictor(model, WINDOW, steps, num_known=3))
  start = 10
  last_input, last_target = start + WINDOW - 1, start + WINDOW - 1 + HORIZON

  def forecast_of(s):
    return np.asarray(predict(params, jnp.asarray(s), jnp.asarray([start], jnp.int32)))[0]

  base = forecast_of(series)
  for column, what in ((2, 'price'), (3, 'calendar')):
    changed = series.copy()
    changed[last_input + 2, column] += 1.0
    assert not np.allclose(forecast_of(changed), base), (
        f'the {what} at a target time does not reach the forecast')
  later = series.copy()
  later[last_input + 1:, :2] += 100.0   # past-only columns after the last input (targets too)
  later[last_target + 1:] += 100.0       # everything after the last target
  np.testing.assert_array_equal(forecast_of(later), base,
                                err_msg='the forecast reads values it cannot know at forecast time')


# ---------------------------------------------------------------------------- a whole run

@pytest.fixture(scope='module')
def panel_run(tmp_path_factory):
  """An ensemble of 3 trained to the end: 4 steps of 2 series, a future feature, the calendar."""
  directory = tmp_path_factory.mktemp('panel_run')
  path = panel_csv(directory)
  config = panel_config(path, **{'data.calendar': ('hour_of_day',), 'num_seeds': 3,
                            'train.epochs': 6, 'train.checkpoint_every': 2})
  workdir = str(directory / 'reference')
  run_lib.train_and_evaluate(config, workdir, progress=False)
  return path, config, workdir


def test_multi_step_panel_calendar_ensemble_killed_and_resumed_then_forecast(panel_run, tmp_path,
                                                                             caplog, monkeypatch):
  """Killed after its second checkpoint, re-run, the run ends as if never stopped. (A real
  SIGKILL of scripts/train.py is tests/test_checkpoint.py's; here the process's death is an
  exception right after the save, so the runs share one process and its compiled code.)"""
  path, config, reference = panel_run
  workdir = tmp_path / 'killed'
  crash_after_checkpoint(monkeypatch, 4)
  with pytest.raises(Crashed):
    run_lib.train_and_evaluate(config, str(workdir), progress=False)
  monkeypatch.undo()
  assert checkpoint_steps(workdir)[-1] == 4 and not (workdir / 'metrics.json').exists()
  run_lib.train_and_evaluate(config, str(workdir), progress=False)
  assert_same_run(str(workdir), reference, 'multi-step panel ensemble killed and re-run')

  results = json.loads((workdir / 'metrics.json').read_text())
  assert results['num_members'] == 3 and set(results['per_series']) == {'a', 'b'}
  assert [entry['step'] for entry in results['per_step']] == list(range(1, HORIZON + 1))
  baselines = {f'baseline_{name}_rmse' for name in metrics.BASELINES}
  for where, entry in [('per_step', e) for e in results['per_step']] + [
      ('per_series', e) for e in results['per_series'].values()]:
    assert baselines <= set(entry), f'{where} entry without every baseline: {sorted(entry)}'
  assert {'baseline_linear_rmse', 'baseline_linear_mae', 'val_rmse_skill_vs_linear',
          'baseline_linear_fit_windows'} <= set(results), sorted(results)

  out = tmp_path / 'forecast.csv'
  with caplog.at_level(logging.WARNING):
    forecast.forecast_csv(str(workdir), path, str(out))  # scripts/predict.py's work
  assert "['short']" in caplog.text, f'the unknown series was not named:\n{caplog.text}'
  frame = pd.read_csv(out, dtype={'series': str}, parse_dates=['input_end', 'target_time'])
  assert list(frame.columns[:6]) == ['series', 'input_end', 'step', 'target_time', 'forecast',
                                     'forecast_std'], list(frame.columns)
  data = data_lib.prepare(panel_config(path).data)
  for i, name in enumerate(data.series_ids):
    rows = frame[frame['series'] == name]
    n = LENGTHS[name]
    assert len(rows) == (n - WINDOW + 1) * HORIZON, f'series {name!r}: {len(rows)} rows'
    np.testing.assert_array_equal(rows['step'].to_numpy().reshape(-1, HORIZON),
                                  np.tile(np.arange(1, HORIZON + 1), (n - WINDOW + 1, 1)))
    lead = (rows['target_time'] - rows['input_end']) / pd.Timedelta(hours=1)
    np.testing.assert_array_equal(lead.to_numpy(), rows['step'].to_numpy(),
                                  err_msg='target_time is not input_end + step hours')
    past_end = rows['target_time'] > rows['input_end'].max()
    assert rows.loc[past_end, 'actual'].isna().all() and rows.loc[~past_end, 'actual'].notna().all()
    assert np.isfinite(rows['forecast']).all()
    # The validation windows of this series, scored from the file, give metrics.json's score.
    val = data.val_starts[data.series_index(data.val_starts) == i] - data.bounds[i]
    scored = rows.set_index(['input_end', 'step']).loc[
        [(rows['input_end'].iloc[0] + pd.Timedelta(hours=int(s)), k)
         for s in val for k in range(1, HORIZON + 1)]]
    assert metrics.rmse(scored['forecast'], scored['actual']) == pytest.approx(
        results['per_series'][name]['val_rmse'], rel=1e-4), (
            f'predict.py and the run score series {name!r} differently')


def test_a_missing_future_feature_past_the_end_names_series_and_time(panel_run, tmp_path):
  path, _, workdir = panel_run
  frame = pd.read_csv(path, dtype={'series': str})
  b = frame[frame['series'] == 'b'].sort_values('time')
  cut = frame.drop(index=b.index[-2:])  # the last two future rows of series 'b'
  cut.to_csv(tmp_path / 'cut.csv', index=False)
  out = tmp_path / 'out.csv'
  out.write_text('an earlier forecast\n')
  with pytest.raises(UserError, match=r"series 'b': the future features \['price'\] are missing "
                                      r'at 2025-01-05 21:00:00'):
    forecast.forecast_csv(workdir, str(tmp_path / 'cut.csv'), str(out))
  assert out.read_text() == 'an earlier forecast\n', 'a failed forecast replaced --out'
  png = tmp_path / 'a.png'
  one = forecast.forecast_csv(workdir, path, str(out), series='a', plot_path=str(png))
  assert set(one['series']) == {'a'} and len(one) == (LENGTHS['a'] - WINDOW + 1) * HORIZON
  assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', '--plot did not write a PNG'
  with pytest.raises(UserError, match=r"--plot='.*nowhere/a.png': the folder .* does not exist"):
    forecast.forecast_csv(workdir, path, str(out), plot_path=str(tmp_path / 'nowhere' / 'a.png'))
  with pytest.raises(UserError, match="--series='z' is not in"):
    forecast.forecast_csv(workdir, path, str(out), series='z')


def test_a_swept_ensemble_with_early_stopping_and_a_diverging_member_on_every_new_shape(
    tmp_path):
  """Sweeps, early stopping and divergence on multi-step windows of several series with future
  inputs: the member whose learning rate overflows is left out, the others are scored."""
  config = panel_config(panel_csv(tmp_path), **{
      'data.calendar': ('day_of_week',), 'num_seeds': 3, 'train.epochs': 6,
      'train.early_stopping_patience': 1, 'train.learning_rate': 0.05})
  # Member 2's first Adam update moves its parameters by 1e30: its forecast squared overflows
  # float32 on any JAX release, so it diverges by construction.
  config.sweep.learning_rate = (0.05, 0.002, 1e30)
  results = run_lib.train_and_evaluate(config, str(tmp_path / 'run'), progress=False)
  assert [m['learning_rate'] for m in results['members']] == pytest.approx([0.05, 0.002, 1e30])
  assert results['diverged_members'] == [2], results['diverged_members']
  alive = results['members'][:2]
  assert all(1 <= m['best_epoch'] <= m['epochs_run'] for m in alive), alive
  assert np.isfinite(results['val_rmse'])
  assert results['member_val_rmse_mean'] == pytest.approx(np.mean([m['val_rmse'] for m in alive]))
  assert set(results['per_series']) == {'a', 'b'} and len(results['per_step']) == HORIZON
  rmse = [results['per_series'][name]['val_rmse'] for name in ('a', 'b')]
  assert min(rmse) <= results['val_rmse'] <= max(rmse), (
      'the score over every series does not lie between the per-series scores')
