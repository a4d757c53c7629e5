"""The levers of configs/hourly.py: baseline skip, per-window normalisation, calendar inputs and
the learning-rate schedule, each against an independent reference, and a run that uses them all
trained, reloaded and forecast past the end of its data."""
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from conftest import tiny_config
from rnnjax import config as config_lib
from rnnjax import config_checks
from rnnjax import data as data_lib
from rnnjax import fitted_init
from rnnjax import forecast
from rnnjax import inputs
from rnnjax import linear_baseline
from rnnjax import metrics
from rnnjax import models
from rnnjax import optimizer
from rnnjax import prediction
from rnnjax import run as run_lib
from rnnjax import train
from rnnjax import trained_run
from rnnjax import windows
from rnnjax.config import override
from rnnjax.errors import UserError

WINDOW, HORIZON, SEASON = 24, 13, 24


def _model(**overrides) -> models.Forecaster:
  config = tiny_config(**{'data.window': WINDOW, 'data.horizon': HORIZON,
                          'data.season': SEASON, **overrides})
  config_checks.validate(config)
  return models.from_config(config)


def _zero_head(params):
  """The same parameters with the head's kernel and bias zero: the network's output is 0."""
  params = jax.tree.map(lambda a: a, params)
  params['head'] = jax.tree.map(jnp.zeros_like, params['head'])
  return params


def _series(n=200, features=1, seed=0):
  return np.random.RandomState(seed).normal(size=(n, features)).astype(np.float32)


@pytest.mark.parametrize('skip', ['persistence', 'seasonal_naive'])
def test_skip_with_a_silent_network_is_the_naive_baseline(skip):
  model = _model(**{'model.skip': skip})
  series = _series()
  starts = np.arange(0, 200 - WINDOW - HORIZON + 1, dtype=np.int32)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, WINDOW, 1)))['params']
  predict = prediction.window_predictor(model, WINDOW, HORIZON)
  got = np.asarray(predict(_zero_head(params), jnp.asarray(series), jnp.asarray(starts)))[:, 0]
  positions = starts + windows.target_offset(WINDOW, HORIZON)
  if skip == 'persistence':
    want = metrics.persistence_forecast(series[:, 0], positions, HORIZON)
  else:
    want = metrics.seasonal_naive_forecast(series[:, 0], positions, SEASON, HORIZON)
  np.testing.assert_array_equal(got, want, err_msg=f'model.skip={skip} with a zero head is not '
                                'the baseline rnnjax.metrics computes')
  # With the head's own parameters the network adds its correction on top.
  full = np.asarray(predict(params, jnp.asarray(series), jnp.asarray(starts)))[:, 0]
  assert not np.allclose(full, want), 'the network adds nothing to the skip'


def test_highway_is_a_linear_map_of_the_last_inputs_that_starts_silent():
  k = 6
  model = _model(**{'model.highway': k})
  plain = _model()
  x = jnp.asarray(_series(n=5 * WINDOW).reshape(5, WINDOW, 1))
  params = model.init(jax.random.PRNGKey(0), x)['params']
  without = {name: p for name, p in params.items() if name != 'highway'}
  np.testing.assert_array_equal(
      np.asarray(model.apply({'params': params}, x)),
      np.asarray(plain.apply({'params': without}, x)),
      err_msg='a fresh highway changes the forecast')
  w = np.linspace(-1.0, 1.0, k).astype(np.float32)[:, None]
  set_params = _zero_head(params)
  set_params['highway'] = {'kernel': jnp.asarray(w), 'bias': jnp.asarray([0.25])}
  want = np.asarray(x)[:, -k:, 0] @ w + 0.25
  np.testing.assert_allclose(np.asarray(model.apply({'params': set_params}, x)), want,
                             rtol=1e-6, atol=1e-6,
                             err_msg='highway output is not x[:, -k:, 0] @ w + b')


def test_seasonal_skip_needs_a_window_that_holds_the_seasonal_value():
  config = tiny_config(**{'model.skip': 'seasonal_naive', 'data.window': 11, 'data.horizon': 13,
                          'data.season': 24})
  with pytest.raises(UserError, match=r'data.window >= 12'):
    config_checks.validate(config)
  config.data.window = 12
  config_checks.validate(config)  # the value 24 steps before the target is the window's first


@pytest.mark.parametrize('normalize', ['last', 'mean'])
def test_normalised_forecast_moves_with_a_level_shift_of_the_window(normalize):
  """Inputs minus the window's statistic in, the target's statistic back out: adding c to every
  value column adds c to the forecast; the calendar columns are not shifted."""
  model = _model(**{'model.normalize': normalize, 'data.calendar': ('hour_of_day',)})
  x = jnp.asarray(_series(n=4 * WINDOW, features=3).reshape(4, WINDOW, 3))
  future = jnp.asarray(_series(n=4, features=2, seed=1)).reshape(4, 1, 2)  # [B, steps, K]
  params = model.init(jax.random.PRNGKey(0), x, future)['params']
  shift = jnp.asarray([[[5.0, 0.0, 0.0]]])  # columns: target, calendar sin, calendar cos
  base = model.apply({'params': params}, x, future)
  moved = model.apply({'params': params}, x + shift, future)
  np.testing.assert_allclose(np.asarray(moved), np.asarray(base) + 5.0, atol=1e-5,
                             err_msg=f'normalize={normalize}: a level shift of the window did '
                             'not shift the forecast by the same amount')
  plain = _model(**{'data.calendar': ('hour_of_day',)})
  unnormalised = plain.apply({'params': params}, x + shift, future)
  assert not np.allclose(np.asarray(unnormalised), np.asarray(base) + 5.0, atol=1e-3), (
      'the check above cannot fail: an unnormalised model moves the same way')


@pytest.mark.parametrize('lags', [(), (24, 48)])
def test_scale_normalised_forecast_follows_an_affine_change_of_the_window(monkeypatch, lags):
  """normalize='last_scale' (floor 0): the window times a > 0 plus c gives the forecast times a
  plus c, lags and a second value column included; 'last' alone does not scale so."""
  monkeypatch.setattr(models, 'NORMALIZE_FLOOR', 0.0)
  overrides = {'model.normalize': 'last_scale', 'data.lags': lags}
  model = _model(**overrides)
  columns = 2 + len(lags)
  num_known = model.num_known
  x = jnp.asarray(_series(n=4 * WINDOW, features=columns).reshape(4, WINDOW, columns))
  future = (jnp.asarray(_series(n=4, features=num_known, seed=1)).reshape(4, 1, num_known)
            if num_known else None)
  params = model.init(jax.random.PRNGKey(0), x, future)['params']
  a, c = 3.0, 5.0
  # Every column but the second (its own feature) is the target or a lag of it: a x + c.
  factor = jnp.asarray([a, 7.0] + [a] * len(lags))
  offset = jnp.asarray([c, -2.0] + [c] * len(lags))
  moved_future = None if future is None else future * a + c
  base = model.apply({'params': params}, x, future)
  moved = model.apply({'params': params}, x * factor[None, None] + offset[None, None],
                      moved_future)
  np.testing.assert_allclose(np.asarray(moved), a * np.asarray(base) + c, rtol=1e-4, atol=1e-4,
                             err_msg='an affine change of the window did not change the '
                             'forecast the same way')
  last = _model(**{**overrides, 'model.normalize': 'last'})
  unscaled = last.apply({'params': params}, x * factor[None, None] + offset[None, None],
                        moved_future)
  assert not np.allclose(np.asarray(unscaled), a * np.asarray(base) + c, atol=1e-2), (
      'the check above cannot fail: normalize=last moves the same way')


def test_scale_normalisation_is_refused_for_a_distribution_head():
  with pytest.raises(UserError, match='last_scale'):
    config_checks.validate(tiny_config(**{'model.normalize': 'last_scale',
                                          'model.head': 'quantile'}))


@pytest.mark.parametrize('normalize', ['last', 'none'])
def test_a_ridge_highway_starts_as_the_ridge_regression_fitted_by_hand(normalize):
  """model.highway_init='ridge': at initialisation the model forecasts what scikit-learn's Ridge,
  fitted on the training windows gathered here with NumPy indexing, forecasts."""
  from sklearn import linear_model
  config = tiny_config(**{'model.highway': 12, 'model.highway_init': 'ridge',
                          'model.normalize': normalize})
  config_checks.validate(config)
  data = data_lib.prepare(config.data)
  state = train.make_trainer(config, data).init(jax.random.PRNGKey(0))
  scaled = data.scaled_TF[:, 0].astype(np.float64)
  offset = data.window - 1 + data.horizon

  def design(starts):
    rows = np.stack([scaled[s + data.window - 12:s + data.window] for s in starts])
    last = scaled[starts + data.window - 1] if normalize == 'last' else np.zeros(len(starts))
    return rows - last[:, None], last

  inputs, last = design(data.train_starts)
  fit = linear_model.Ridge(alpha=fitted_init.RIDGE_ALPHA).fit(
      inputs, scaled[data.train_starts + offset] - last)
  val_inputs, val_last = design(data.val_starts)
  expected = fit.predict(val_inputs) + val_last
  x, _ = windows.gather_windows(data.scaled_TF, data.val_starts, data.window, data.steps)
  got = models.from_config(config).apply({'params': state.params}, jnp.asarray(x))
  np.testing.assert_allclose(np.asarray(got)[:, 0], expected, atol=1e-4,
                             err_msg='the model does not start as the ridge regression')
  silent = train.make_trainer(tiny_config(**{'model.highway': 12, 'model.normalize': normalize}),
                              data).init(jax.random.PRNGKey(0))
  plain = models.from_config(config).apply({'params': silent.params}, jnp.asarray(x))
  assert not np.allclose(np.asarray(plain)[:, 0], expected, atol=1e-3), (
      'the check above cannot fail: a zero highway forecasts the same')


def test_a_ridge_highway_without_a_highway_is_refused():
  with pytest.raises(UserError, match='model.highway'):
    config_checks.validate(tiny_config(**{'model.highway_init': 'ridge'}))


def test_calendar_features_match_hand_computed_phases():
  times = pd.DatetimeIndex(['2025-01-06 06:00', '2025-07-02 18:00'])  # a Monday; day 183
  got = inputs.calendar_features(times, ('hour_of_day', 'day_of_week', 'day_of_year', 'month'))
  assert got.shape == (2, 8) and got.dtype == np.float32
  angle = 2 * np.pi * np.array([
      [6 / 24, (0 + 6 / 24) / 7, (5 + 6 / 24) / 365.25, 0 / 12],
      [18 / 24, (2 + 18 / 24) / 7, (182 + 18 / 24) / 365.25, 6 / 12]])
  want = np.stack([np.sin(angle), np.cos(angle)], axis=2).reshape(2, 8)
  np.testing.assert_allclose(got, want, atol=1e-6, err_msg='calendar sin/cos phases')
  np.testing.assert_allclose(got[0, :2], [1.0, 0.0], atol=1e-6, err_msg='06:00 is a quarter day')


def test_calendar_at_the_target_time_reaches_the_forecast_and_nothing_later_does():
  """The future-input leak test: the forecast reads the calendar at its target time, and no
  value after the window's last input, calendar or not, beyond that one row."""
  model = _model(**{'data.calendar': ('hour_of_day',)})
  series = _series(n=120, features=3)  # target, sin, cos
  start, target = 10, 10 + windows.target_offset(WINDOW, HORIZON)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, WINDOW, 3)),
                      jnp.zeros((1, 1, 2)))['params']
  predict = jax.jit(prediction.window_predictor(model, WINDOW, HORIZON, num_known=2))

  def forecast_of(s):
    return float(predict(params, jnp.asarray(s), jnp.asarray([start], jnp.int32))[0, 0])

  base = forecast_of(series)
  at_target = series.copy()
  at_target[target, 1:] += 1.0
  assert forecast_of(at_target) != base, 'the calendar at the target time does not reach the model'
  later = series.copy()
  later[start + WINDOW:target, 0] += 100.0  # values between the last input and the target
  later[target, 0] += 100.0                 # the target itself
  later[target + 1:] += 100.0               # everything after the target
  later[start + WINDOW:target, 1:] += 100.0  # calendar between the window and the target
  assert forecast_of(later) == base, 'the forecast reads values it cannot know at forecast time'


def test_cosine_schedule_scales_each_update_by_its_factor():
  config = tiny_config(**{'train.lr_schedule': 'cosine', 'train.warmup_epochs': 1,
                          'train.epochs': 4})
  steps_per_epoch = 3
  factor = optimizer.lr_factor(config, steps_per_epoch)
  assert factor(0) == 0.0 and float(factor(3)) == pytest.approx(1.0)
  assert float(factor(12)) == pytest.approx(0.0, abs=1e-7)
  assert 0.0 < float(factor(7)) < 1.0
  assert optimizer.lr_factor(tiny_config(), steps_per_epoch) is None
  hparams = train.default_hparams(config)
  params = {'w': jnp.ones(3)}
  grads = {'w': jnp.asarray([0.5, -1.0, 2.0])}
  plain, scheduled = optimizer.make_optimizer(hparams), optimizer.make_optimizer(hparams, schedule=factor)
  plain_state, scheduled_state = plain.init(params), scheduled.init(params)
  for step in range(8):
    u_plain, plain_state = plain.update(grads, plain_state, params)
    u_sched, scheduled_state = scheduled.update(grads, scheduled_state, params)
    np.testing.assert_allclose(np.asarray(u_sched['w']),
                               float(factor(step)) * np.asarray(u_plain['w']), rtol=1e-5,
                               atol=1e-9, err_msg=f'update at step {step} is not factor * Adam')


def test_levers_default_off_leave_the_tutorial_model_unchanged():
  """The tutorial's Forecaster and parameter tree, exactly as before the levers existed."""
  model = models.from_config(config_lib.default_config())
  assert (model.skip_lags, model.normalize, model.num_known, model.num_steps) == (
      (), 'none', 0, 1)
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 24, 1)))['params']
  assert params['head']['kernel'].shape == (24, 1), 'the head reads more than the last state'


@pytest.fixture(scope='module')
def levers_run(tmp_path_factory):
  config = tiny_config(**{
      'data.calendar': ('hour_of_day', 'day_of_week'), 'model.skip': 'seasonal_naive',
      'model.highway': 4,
      'model.normalize': 'last', 'train.lr_schedule': 'cosine', 'train.warmup_epochs': 1,
      'train.early_stopping_patience': 2, 'data.synthetic.start': '2025-01-01 10:00'})
  workdir = str(tmp_path_factory.mktemp('levers') / 'run')
  results = run_lib.train_and_evaluate(config, workdir, progress=False)
  return config, workdir, results


def test_a_run_with_every_lever_forecasts_past_its_data_with_the_calendar(levers_run):
  config, workdir, results = levers_run
  data = data_lib.prepare(config.data)
  frame = forecast.forecast_frame(trained_run.load_run(workdir), data.timestamps, data.values_TF)
  val = frame.iloc[data.val_starts]
  assert metrics.rmse(val['forecast'], val['actual']) == pytest.approx(results['val_rmse'],
                                                                        abs=1e-3), (
      'predict.py and the run score different forecasts for the validation windows')
  ahead = frame[frame['actual'].isna()]
  assert len(ahead) == HORIZON and np.isfinite(ahead['forecast']).all(), (
      'windows whose target lies past the data have no finite forecast')
  step = pd.Timedelta(hours=1)
  assert (ahead['target_time'].diff().iloc[1:] == step).all()
  assert ahead['target_time'].iloc[0] == data.timestamps[-1] + step
  # Same values, clock moved by 6 hours: the calendar inputs change, so must the forecasts.
  shifted = forecast.forecast_frame(trained_run.load_run(workdir),
                                    data.timestamps + pd.Timedelta(hours=6), data.values_TF)
  assert not np.allclose(shifted['forecast'], frame['forecast']), (
      'forecasts do not depend on the calendar of the timestamps')


def test_a_ridge_highway_reads_the_known_lags_at_the_target_time():
  """With data.lags (24,) and horizon 13, the value 24 steps before the target is a highway
  input; on a noise-free daily cycle the fitted highway alone then forecasts it closely."""
  config = tiny_config(**{'model.highway': 4, 'model.highway_init': 'ridge',
                          'model.normalize': 'last', 'data.lags': (24,),
                          'data.synthetic.noise': 0.0, 'data.synthetic.slope': 0.0})
  config_checks.validate(config)
  data = data_lib.prepare(config.data)
  state = train.make_trainer(config, data).init(jax.random.PRNGKey(0))
  assert state.params['highway']['kernel'].shape == (4 + 1, 1), \
      'the highway does not read the known lag at the target time'
  x, y = windows.gather_windows(data.scaled_TF, data.val_starts, data.window, data.steps)
  future = windows.gather_future(data.scaled_TF, data.val_starts, data.window, data.steps, 1)
  got = models.from_config(config).apply({'params': state.params}, jnp.asarray(x),
                                         jnp.asarray(future))
  error = float(np.sqrt(np.mean((np.asarray(got) - y) ** 2)))
  spread = float(np.std(y))
  assert error < 0.01 * spread, f'the fitted highway misses a pure daily cycle by {error}'


def test_an_all_columns_ridge_highway_starts_as_the_linear_baseline():
  """highway_columns='all' over the whole window reads what the linear baseline reads (every
  column, and the known inputs at the target time), so the model starts as that baseline."""
  config = tiny_config(**{'model.highway': 24, 'model.highway_columns': 'all',
                          'model.highway_init': 'ridge', 'model.normalize': 'last',
                          'data.lags': (24,), 'data.calendar': ('hour_of_day',)})
  config_checks.validate(config)
  data = data_lib.prepare(config.data)
  state = train.make_trainer(config, data).init(jax.random.PRNGKey(0))
  design, last = linear_baseline.linear_design(data, data.val_starts)
  expected = linear_baseline.fit_linear(data).ridge.predict(design).reshape(len(last), -1) + last
  model = models.from_config(config)
  predict = prediction.window_predictor(model, data.window, data.steps, model.num_known)
  got = np.asarray(predict(state.params, jnp.asarray(data.scaled_TF),
                           jnp.asarray(data.val_starts)))
  np.testing.assert_allclose(got, expected, atol=2e-3, err_msg=(
      'a ridge highway on every column does not start as the linear baseline'))
  target_only = train.make_trainer(override(config, {'model.highway_columns': 'target'}), data)
  other = np.asarray(_start_forecast(target_only, data, data.val_starts))
  assert not np.allclose(other, expected, atol=2e-3), (
      'the check above cannot fail: the target-only highway forecasts the same')


def _start_forecast(trainer, data, starts):
  """[N, S] scaled forecasts of `starts` by the model as `trainer` initialises it."""
  params = trainer.init(jax.random.PRNGKey(0)).params
  return trainer.predict(params, jnp.asarray(data.scaled_TF), jnp.asarray(starts))


def _val_mse(trainer, params, data):
  """The validation loss computed here: NumPy's mean squared error of the scaled forecasts."""
  _, y = windows.gather_windows(data.scaled_TF, data.val_starts, data.window, data.steps)
  pred = np.asarray(trainer.predict(params, jnp.asarray(data.scaled_TF),
                                    jnp.asarray(data.val_starts)), np.float64)
  return float(np.mean((pred - y) ** 2))


@pytest.mark.parametrize('score_start', [False, True])
def test_early_stopping_scores_the_start_only_when_asked(score_start):
  """With a learning rate of 0 no epoch changes the model, so no epoch beats the start: with
  train.score_start the best epoch stays 0, the starting ridge, with its validation loss."""
  config = tiny_config(**{'model.highway': 12, 'model.highway_init': 'ridge',
                          'train.early_stopping_patience': 2, 'train.epochs': 2,
                          'train.score_start': score_start})
  config_checks.validate(config)
  data = data_lib.prepare(config.data)
  trainer = train.make_trainer(config, data)
  hparams = {**train.default_hparams(config), 'learning_rate': jnp.float32(0.0)}
  start = trainer.init(jax.random.PRNGKey(0), hparams)
  state, history = trainer.run_epochs(start, trainer.device_data, 2)
  assert int(state.best_epoch) == (0 if score_start else 1), (
      f'train.score_start={score_start}: best epoch {int(state.best_epoch)}')
  assert float(state.best_val_loss) == pytest.approx(_val_mse(trainer, start.params, data),
                                                     rel=1e-4)
  np.testing.assert_allclose(history['val_loss'], float(state.best_val_loss), rtol=1e-6)


def test_a_fixed_highway_keeps_its_ridge_while_the_network_trains():
  config = tiny_config(**{'model.highway': 12, 'model.highway_init': 'ridge',
                          'model.highway_fixed': True, 'train.learning_rate': 1e-2,
                          'train.weight_decay': 1e-2})
  config_checks.validate(config)
  data = data_lib.prepare(config.data)
  trainer = train.make_trainer(config, data)
  start = trainer.init(jax.random.PRNGKey(0))
  state, _ = trainer.run_epochs(start, trainer.device_data, 2)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(
      a, b, err_msg='model.highway_fixed: training moved the fitted ridge'),
      state.params['highway'], start.params['highway'])
  assert not np.allclose(state.params['head']['kernel'], start.params['head']['kernel']), (
      'the network did not train beside the fixed highway')


@pytest.mark.parametrize('overrides, match', [
    ({'model.highway': 12, 'model.highway_fixed': True}, 'highway_init'),
    ({'train.score_start': True}, 'early_stopping_patience'),
    ({'model.highway': 12, 'model.highway_columns': 'every'}, 'highway_columns'),
])
def test_highway_and_start_levers_refuse_what_they_cannot_do(overrides, match):
  with pytest.raises(UserError, match=match):
    config_checks.validate(tiny_config(**overrides))
