"""data.lags and data.season='auto': lag columns against NumPy shifts, windows that never read
before their series, lags and seasons picked per time step, and a run with lags trained by
scripts/train.py and forecast by scripts/predict.py."""
import importlib.util
import json
import logging
import os
import re
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from conftest import PYTHON, ROOT, script_env, tiny_config
from rnnjax import backtest_folds
from rnnjax import config as config_lib
from rnnjax import config_checks
from rnnjax import data as data_lib
from rnnjax import forecast
from rnnjax import metrics
from rnnjax import models
from rnnjax import seasons
from rnnjax import train
from rnnjax import trained_run
from rnnjax import windows
from rnnjax.errors import UserError

TIMEOUT = 300  # seconds per subprocess; generous because others may share the machine


def _tutorial_config():
  """configs/seed_gru.py's config."""
  spec = importlib.util.spec_from_file_location('seed_gru',
                                                os.path.join(ROOT, 'configs', 'seed_gru.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _hourly(n, start='2025-01-06 00:00', weekly=0.0, seed=0):
  """n hourly points: a daily sine, `weekly` lower on Saturdays and Sundays, and noise 0.3."""
  times = pd.date_range(start, periods=n, freq='h')
  hours = np.arange(n)
  weekend = np.asarray(times.day_of_week >= 5, float)
  values = (20 + 3 * np.sin(2 * np.pi * hours / 24) - weekly * weekend
            + np.random.RandomState(seed).normal(scale=0.3, size=n))
  return times, values


def _write(path, times, values, series=None):
  frame = pd.DataFrame({'time': times, 'load': values})
  if series is not None:
    frame.insert(0, 'site', series)
  frame.to_csv(path, index=False)
  return str(path)


def _csv_config(path, **overrides):
  return tiny_config(**{'data.source': 'csv', 'data.path': path, 'data.target': 'load',
                        **overrides})


def _panel(tmp_path, lengths=(300, 240), **overrides):
  """A long-format CSV of hourly series of `lengths` points, prepared with `overrides`."""
  parts = [(np.full(n, f's{i}'), *_hourly(n, seed=i)) for i, n in enumerate(lengths)]
  path = _write(tmp_path / 'panel.csv', np.concatenate([t for _, t, _ in parts]),
                np.concatenate([v for _, _, v in parts]),
                np.concatenate([s for s, _, _ in parts]))
  config = _csv_config(path, **{'data.id_column': 'site', **overrides})
  return config, data_lib.prepare(config.data)


def _shifted(column, lag):
  """column[t - lag] at every t >= lag (NaN before): the NumPy reference of a lag column."""
  out = np.full(len(column), np.nan)
  out[lag:] = column[:-lag]
  return out


@pytest.mark.parametrize('lags,horizon,multi_step,past,known', [
    ((3, 24), 2, False, (), (3, 24)),      # both at least the one step 2: known
    ((1, 24), 2, False, (1,), (24,)),      # 1 < step 2 would read after the last input
    ((24, 6), 13, True, (6,), (24,)),      # steps 1..13: 6 is past-only
])
def test_lag_columns_are_the_numpy_shifted_scaled_target_within_each_series(
    tmp_path, lags, horizon, multi_step, past, known):
  config, d = _panel(tmp_path, **{'data.lags': lags, 'data.horizon': horizon,
                                  'data.multi_step': multi_step, 'data.window': 12,
                                  'data.calendar': ('hour_of_day',)})
  assert config_lib.split_lags(lags, d.steps) == (past, known), (
      f'lags {lags} with steps {d.steps} split into {config_lib.split_lags(lags, d.steps)}, '
      f'expected past-only {past} and known {known}')
  order = past + known
  assert d.scaled_TF.shape[1] == 1 + len(lags) + 2, (
      f'{d.scaled_TF.shape[1]} model input columns: expected the target, one per lag and the '
      'calendar pair')
  assert d.num_known == len(known) + 2, (
      f'num_known={d.num_known}: expected the {len(known)} known lags and the calendar pair')
  for i, (a, b) in enumerate(zip(d.bounds[:-1], d.bounds[1:])):
    scaled = d.scaled_TF[a:b]
    np.testing.assert_allclose(
        scaled[:, 0], d.target_scalers[i].transform(d.values_TF[a:b, :1])[:, 0], rtol=1e-6,
        err_msg=f'series {i}: column 0 is not the scaled target')
    for j, lag in enumerate(order):
      want = _shifted(scaled[:, 0], lag)
      np.testing.assert_array_equal(
          scaled[lag:, 1 + j], want[lag:],
          err_msg=f'series {i}: column {1 + j} is not the scaled target {lag} steps earlier')
  # The known lags, read at the target times, are the targets `lag` steps earlier.
  future = windows.gather_future(d.scaled_TF, d.train_starts, d.window, d.steps, d.num_known)
  positions = d.target_positions(d.train_starts)
  for j, lag in enumerate(known):
    np.testing.assert_array_equal(future[..., j], d.scaled_TF[positions - lag, 0],
                                  err_msg=f'known lag {lag} at the target times is not y[p - {lag}]')


def test_no_window_reads_before_its_series_start_in_a_panel(tmp_path):
  lags = (5, 48)
  _, d = _panel(tmp_path, lengths=(300, 240, 200), **{'data.lags': lags})
  for starts, part in ((d.train_starts, 'training'), (d.val_starts, 'validation')):
    series_start = d.bounds[d.series_index(starts)]
    earliest = starts - max(lags)
    assert np.all(earliest >= series_start), (
        f'{part} windows read lag values before their series starts: '
        f'{starts[earliest < series_start][:5]}')
    assert np.all(starts + d.window + d.horizon - 1 < d.bounds[d.series_index(starts) + 1]), (
        f'{part} windows cross into the next series')
  for i, n in enumerate(np.diff(d.bounds)):
    count = np.sum(d.series_index(np.concatenate([d.train_starts, d.val_starts])) == i)
    assert count == n - d.window - d.horizon + 1 - max(lags), (
        f'series {i} of {n} points has {count} windows; expected every window that starts '
        f'{max(lags)} points in or later')


def test_memory_and_scan_length_do_not_grow_with_the_lags(tmp_path):
  times, values = _hourly(600)
  shapes, scans = {}, {}
  for lags in ((24,), (168,), (24, 168)):
    config = tiny_config(**{'data.lags': lags})
    d = data_lib.prepare(config.data, times, values[:, None], ('temperature',))
    shapes[lags] = d.scaled_TF.shape
    trainer = train.make_trainer(config, d)
    params = trainer.init(jax.random.PRNGKey(0)).params
    jaxpr = str(jax.make_jaxpr(trainer.predict)(params, jnp.asarray(d.scaled_TF),
                                                jnp.asarray(d.val_starts[:4])))
    scans[lags] = set(int(n) for n in re.findall(r'length=(\d+)', jaxpr))
  assert shapes[(24,)] == shapes[(168,)] == (600, 2), (
      f'the model inputs grow with the lag size: {shapes}; one column per lag expected')
  assert shapes[(24, 168)] == (600, 3), f'two lags give {shapes[(24, 168)]}, expected (600, 3)'
  for lags, lengths in scans.items():
    assert lengths == {config_lib.default_config().data.window}, (
        f'lags {lags}: the model scans over {lengths} steps; the window is 24')


@pytest.mark.parametrize('freq,n,window,horizon,lags', [
    ('h', 500, 24, 13, (24, 48, 168)),
    ('30min', 800, 24, 13, (48, 96, 336)),
    ('D', 800, 7, 1, (7, 14, 28, 364)),
])
def test_auto_lags_follow_the_time_step(tmp_path, freq, n, window, horizon, lags):
  times = pd.date_range('2024-01-01', periods=n, freq=freq)
  values = np.sin(np.arange(n) / 5.0) + np.arange(n) * 0.01
  config = _csv_config(_write(tmp_path / 'series.csv', times, values),
                       **{'data.lags': 'auto', 'data.window': window, 'data.horizon': horizon})
  d = data_lib.prepare(config.data)
  assert d.lags == lags, f'{freq} data: lags="auto" read {d.lags}, expected {lags}'
  assert d.scaled_TF.shape[1] == 1 + len(lags)
  assert d.train_starts[0] == max(lags), 'the first window does not start after the longest lag'
  resolved = seasons.resolved_config(config, d)
  assert resolved.data.lags == lags and config.data.lags == 'auto', (
      'resolved_config must record the lags in a copy and leave the caller\'s config alone')


@pytest.mark.parametrize('freq,name', [
    ('10min', '10min'), ('15min', '15min'), ('30min', '30min'), ('h', 'hour'), ('D', 'day'),
    ('W-SUN', 'week'), ('7D', 'week'), ('MS', 'month'), ('ME', 'month'), ('QS', 'quarter'),
    ('2h', None), ('B', None), ('2MS', None),
])
def test_time_steps_name_their_row_of_the_season_table(freq, name):
  times = pd.date_range('2024-01-01', periods=30, freq=freq)
  assert seasons.step_name(times) == name, f'{freq}: {seasons.step_name(times)}'
  if name is not None:
    row = seasons.STEP_SEASONS[name]
    assert min(row.seasons) in row.lags, (
        f'the auto lags of {name} steps {row.lags} do not reach back its shortest season')


def test_auto_lags_on_a_short_series_fall_back_with_a_warning(tmp_path, caplog):
  times, values = _hourly(300)
  config = _csv_config(_write(tmp_path / 'short.csv', times, values), **{'data.lags': 'auto'})
  with caplog.at_level(logging.WARNING):
    d = data_lib.prepare(config.data)
  assert d.lags == (24, 48), (
      f'300 hourly points (264 windows) hold the lags 24 and 48 but not 168; read {d.lags}')
  said = ' '.join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
  assert '(168,)' in said and '(24, 48)' in said and '300 points' in said, (
      f'the warning should name the lags left out, those read, and the points: {said!r}')


def test_explicit_lags_longer_than_the_series_are_refused_with_the_counts(tmp_path):
  times, values = _hourly(200)
  config = _csv_config(_write(tmp_path / 'short.csv', times, values), **{'data.lags': (168,)})
  with pytest.raises(UserError) as info:
    data_lib.prepare(config.data)
  message = str(info.value)
  for part in ('200 points', '168 steps back', '0 training and 0 validation windows',
               'at most'):
    assert part in message, f'the refusal lacks {part!r}: {message}'


def test_a_panel_series_too_short_for_the_lags_is_left_out(tmp_path, caplog):
  with caplog.at_level(logging.WARNING):
    _, d = _panel(tmp_path, lengths=(400, 150), **{'data.lags': (168,)})
  assert d.series_ids == ('s0',), f'the 150-point series was kept: {d.series_ids}'
  assert any('s1' in r.getMessage() and '168' in r.getMessage() for r in caplog.records), (
      'no warning names the series left out and the lag')


def test_season_auto_picks_the_weekly_cycle_of_hourly_load(tmp_path):
  times, values = _hourly(8 * 168, weekly=8.0)
  config = _csv_config(_write(tmp_path / 'load.csv', times, values), **{'data.season': 'auto'})
  d = data_lib.prepare(config.data)
  errors = seasons.seasonal_naive_errors(d, (24, 168))
  resolved = seasons.resolved_config(config, d)
  assert resolved.data.season == 168, (
      f'a series with a weekend drop picked season {resolved.data.season}; errors {errors}')
  assert config.data.season == 'auto', 'the caller\'s config was changed'
  # The same errors as rnnjax.metrics' seasonal naive on the training windows (unscaled).
  positions = d.target_positions(d.train_starts)
  keep = positions[:, 0] >= 168 + d.horizon  # inside the series for both seasons
  target = d.values_TF[:, 0]
  rmse = {s: metrics.rmse(metrics.seasonal_naive_forecast(target, positions[keep], s, d.horizon),
                          target[positions[keep]]) for s in (24, 168)}
  assert (rmse[168] < rmse[24]) == (errors[168] < errors[24]), (rmse, errors)


def test_season_auto_picks_the_daily_cycle_of_the_tutorial():
  config = _tutorial_config()
  config.data.season = 'auto'
  d = data_lib.prepare(config.data)
  assert seasons.resolved_config(config, d).data.season == 24, (
      f'the tutorial\'s daily temperature picked another season: '
      f'{seasons.seasonal_naive_errors(d, (24, 168))}')


def test_season_auto_with_the_seasonal_skip_picks_a_season_the_window_holds(tmp_path):
  times, values = _hourly(8 * 168, weekly=8.0)
  config = _csv_config(_write(tmp_path / 'load.csv', times, values),
                       **{'data.season': 'auto', 'model.skip': 'seasonal_naive'})
  config_checks.validate(config)
  d = data_lib.prepare(config.data)
  assert seasons.resolved_config(config, d).data.season == 24, (
      'a window of 24 cannot hold the value a week before the target: only 24 qualifies')


def test_the_tutorial_config_reads_no_lags():
  config = _tutorial_config()
  assert config.data.lags == () and config.data.season == 24
  d = data_lib.prepare(config.data)
  assert d.scaled_TF.shape[1] == 1 and d.lags == () and d.train_starts[0] == 0
  assert seasons.resolved_config(config, d) is config, 'nothing to resolve: the same config'
  model = models.from_config(config)
  assert (model.num_known, model.num_past_lags, model.num_known_lags) == (0, 0, 0)


@pytest.mark.parametrize('key,value', [
    ('data.lags', 24), ('data.lags', (0,)), ('data.lags', (24, 24)), ('data.lags', 'weekly'),
    ('data.lags', (1.5,)), ('data.lags', (True,)), ('data.season', 'daily'),
    ('data.season', 0), ('data.season', 2.5),
])
def test_validate_refuses_bad_lags_and_seasons_naming_the_key(key, value):
  config = tiny_config(**{key: value})
  with pytest.raises(UserError, match=re.escape(key)):
    config_checks.validate(config)


@pytest.mark.parametrize('normalize', ['last', 'mean'])
def test_normalised_lags_move_with_the_target(normalize):
  """A head that reads only the known lag of one season at the target time forecasts the
  seasonal-naive value: the lag is shifted by the target's reference, which is added back."""
  config = tiny_config(**{'data.lags': (24,), 'model.normalize': normalize})
  times, values = _hourly(400)
  d = data_lib.prepare(config.data, times, values[:, None], ('temperature',))
  trainer = train.make_trainer(config, d)
  params = jax.tree.map(jnp.zeros_like, trainer.init(jax.random.PRNGKey(0)).params)
  hidden = config.model.hidden_sizes[-1]
  params['head']['kernel'] = params['head']['kernel'].at[hidden, 0].set(1.0)  # the known lag
  got = np.asarray(trainer.predict(params, jnp.asarray(d.scaled_TF), jnp.asarray(d.val_starts)))
  want = d.scaled_TF[d.target_positions(d.val_starts) - 24, 0]
  np.testing.assert_allclose(got, want, atol=1e-6, err_msg=(
      f'normalize={normalize!r}: the known lag is not normalised as the target'))


@pytest.mark.parametrize('overrides', [
    {'model.normalize': 'last', 'model.highway': 4, 'model.skip': 'persistence'},
    {'model.normalize': 'mean', 'model.skip': 'seasonal_naive', 'data.window': 30,
     'data.multi_step': True},
    {'data.calendar': ('hour_of_day',), 'model.head': 'quantile', 'model.dropout': 0.0},
])
def test_levers_work_with_lags(overrides):
  config = tiny_config(**{'data.lags': (6, 24), 'data.season': 24, 'train.epochs': 1,
                          **overrides})
  config_checks.validate(config)
  times, values = _hourly(400)
  d = data_lib.prepare(config.data, times, values[:, None], ('temperature',))
  state, history = jax.jit(train.make_train(config, d))(jax.random.PRNGKey(0))
  assert np.all(np.isfinite(history['loss'])), f'{overrides}: non-finite loss {history}'
  trainer = train.make_trainer(config, d)
  out = np.asarray(trainer.predict(state.params, jnp.asarray(d.scaled_TF),
                                   jnp.asarray(d.val_starts)))
  assert out.shape[:2] == (len(d.val_starts), len(d.steps)) and np.all(np.isfinite(out))


def _run(args):
  return subprocess.run([PYTHON, *args], cwd=ROOT, env=script_env(), capture_output=True,
                        text=True, timeout=TIMEOUT)


def test_train_then_predict_with_auto_lags_and_season_through_the_scripts(tmp_path):
  times, values = _hourly(30 * 24, weekly=8.0)
  csv = _write(tmp_path / 'load.csv', times, values)
  workdir, out = str(tmp_path / 'run'), str(tmp_path / 'forecast.csv')
  command = [os.path.join(ROOT, 'scripts', 'train.py'), '--config', 'configs/seed_gru.py',
             '--workdir', workdir, '--config.data.source=csv', f'--config.data.path={csv}',
             '--config.data.target=load', '--config.data.lags=auto',
             '--config.data.season=auto', '--config.train.epochs=2',
             '--config.model.hidden_sizes=(8,)']
  proc = _run(command)
  assert proc.returncode == 0, f'train.py exited with {proc.returncode}:\n{proc.stderr[-3000:]}'
  with open(os.path.join(workdir, 'config.json')) as f:
    saved = json.load(f)['data']
  assert (saved['lags'], saved['season']) == ([24, 48, 168], 168), (
      f'config.json records lags={saved["lags"]}, season={saved["season"]}: the resolved values '
      'belong there')

  again = _run(command)
  assert again.returncode == 0, (
      f'the same command again exited with {again.returncode}: the resolved config must not '
      f'count as another run\'s:\n{again.stderr[-3000:]}')

  proc = _run([os.path.join(ROOT, 'scripts', 'predict.py'), '--workdir', workdir, '--csv', csv,
               '--out', out])
  assert proc.returncode == 0, f'predict.py exited with {proc.returncode}:\n{proc.stderr[-3000:]}'
  frame = pd.read_csv(out, parse_dates=['input_end'])
  window = 24
  assert len(frame) == len(times) - window + 1 - 168, (
      f'{len(frame)} forecasts: one per window starting 168 points in or later expected')
  assert frame['input_end'].iloc[0] == times[168 + window - 1]
  # The validation windows' forecasts score what the run scored: the same lag inputs.
  with open(os.path.join(workdir, 'metrics.json')) as f:
    val_rmse = json.load(f)['val_rmse']
  config = trained_run.load_run(workdir).config
  d = data_lib.prepare(config.data)
  val = frame[frame['input_end'].isin(d.timestamps[d.val_starts + window - 1])]
  assert len(val) == len(d.val_starts)
  assert metrics.rmse(val['forecast'], val['actual']) == pytest.approx(val_rmse, rel=1e-4), (
      'predict.py forecasts the validation windows otherwise than the run did')

  run = trained_run.load_run(workdir)
  with pytest.raises(UserError, match=r'100 points.*24 after the 168 points.*data\.lags'):
    forecast.forecast_frame(run, times[:100], values[:100, None])


def test_backtest_folds_start_after_the_lags_and_pick_the_season_before_every_test_part(
    tmp_path):
  times, values = _hourly(8 * 168, weekly=8.0)
  config = _csv_config(_write(tmp_path / 'load.csv', times, values),
                       **{'data.lags': 'auto', 'data.season': 'auto', 'backtest.folds': 3})
  series = data_lib.load(config.data)
  resolved, folds = backtest_folds.resolved_folds(config, series)
  assert resolved.data.lags == (24, 48, 168) and resolved.data.season == 168, (
      f'the backtest resolved lags={resolved.data.lags}, season={resolved.data.season}')
  assert config.data.lags == 'auto', 'the caller\'s config was changed'
  first = folds.datasets[0]  # the season is chosen on its training windows
  last_target = int(first.train_starts[-1]) + first.window - 1 + first.horizon
  assert last_target < folds.origins.min(), (
      'the season was chosen on windows whose targets reach a fold\'s test part')
  for k, (d, test) in enumerate(zip(folds.datasets, folds.test_starts)):
    for part, starts in (('training', d.train_starts), ('validation', d.val_starts),
                         ('test', test)):
      assert starts.min() >= 168, f'fold {k}: a {part} window reads lags before the series'
    assert test[0] == folds.origins[k, 0] - d.window, (
        f'fold {k}: the first test window does not end just before the origin')
    assert d.train_starts[-1] + d.window - 1 + d.horizon < folds.origins[k, 0], (
        f'fold {k}: a training target lies at or after the origin')
