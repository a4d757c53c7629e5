"""The quantile and gaussian heads: outputs, losses, unscaling, training, and whole runs.

References: losses against numbers worked out by hand, CRPS against its closed form and a NumPy
integral, unscaling against scikit-learn's own inverse_transform, a fitted quantile head
against the known quantiles of the noise it was trained on, and a finished run's files.
"""
import functools
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from conftest import tiny_config
from rnnjax import config as config_lib
from rnnjax import data as data_lib
from rnnjax import forecast
from rnnjax import losses
from rnnjax import models
from rnnjax import prediction
from rnnjax import run as run_lib
from rnnjax import scoring_rules
from rnnjax import sources
from rnnjax import train as train_lib

LEVELS = (0.1, 0.5, 0.9)
Z90 = 1.2815515655446004  # the standard normal's 0.9 quantile


# ---------------------------------------------------------------------------- losses


def test_pinball_loss_matches_hand_numbers():
  # Step 1, y = 1 against (0, 1, 2): errors y - q = 1, 0, -1 -> 0.1 * 1, 0, (1 - 0.9) * 1.
  # Step 2, y = 5 against (2, 3, 4): errors 3, 2, 1 -> 0.3, 1.0, 0.9.
  pred = np.array([[[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]]], np.float32)
  y = np.array([[1.0, 5.0]], np.float32)
  want = ((0.1 + 0.0 + 0.1) / 3 + (0.3 + 1.0 + 0.9) / 3) / 2
  got = losses.pinball(jnp.asarray(pred), jnp.asarray(y), LEVELS)
  assert got.shape == (1,), f'one term per window, got shape {got.shape}'
  np.testing.assert_allclose(np.asarray(got), [want], rtol=1e-6,
                             err_msg='pinball loss differs from the hand-computed value')
  np.testing.assert_allclose(scoring_rules.pinball(pred, y, LEVELS).mean(), want, rtol=1e-6,
                             err_msg='scoring_rules.pinball (NumPy) differs from the training loss')
  config = config_lib.override(config_lib.default_config(), {'model.head': 'quantile'})
  np.testing.assert_allclose(np.asarray(losses.for_model(config.model)(pred, y)), [want],
                             rtol=1e-6, err_msg='for_model does not give the quantile head pinball')


def test_gaussian_nll_matches_hand_numbers():
  # mean 1, scale 2, y 3: z = 1 -> log 2 + 1/2 + log(2 pi) / 2; mean 0, scale 0.5, y 0: z = 0.
  pred = np.array([[[1.0, 2.0], [0.0, 0.5]]], np.float32)
  y = np.array([[3.0, 0.0]], np.float32)
  half_log_2pi = 0.5 * math.log(2 * math.pi)
  want = ((math.log(2.0) + 0.5 + half_log_2pi) + (math.log(0.5) + half_log_2pi)) / 2
  np.testing.assert_allclose(np.asarray(losses.gaussian_nll(pred, y)), [want], rtol=1e-6,
                             err_msg='gaussian NLL differs from the hand-computed value')
  config = config_lib.override(config_lib.default_config(), {'model.head': 'gaussian'})
  assert losses.for_model(config.model) is losses.gaussian_nll
  assert losses.for_model(config_lib.default_config().model) is losses.squared_error


# ---------------------------------------------------------------------------- CRPS


def _normal_cdf(x, mean, scale):
  return 0.5 * (1.0 + np.vectorize(math.erf)((x - mean) / (scale * math.sqrt(2.0))))


def _crps_integral(cdf, y, lo, hi, n=100_001):
  """integral of (F(x) - 1{x >= y})^2 dx over [lo, hi]: F^2 below y, (1 - F)^2 above, each by
  the trapezoid rule (split at y, so no jump inside either)."""
  below, above = np.linspace(lo, y, n), np.linspace(y, hi, n)
  return np.trapezoid(cdf(below) ** 2, below) + np.trapezoid((1.0 - cdf(above)) ** 2, above)


def test_crps_gaussian_matches_hand_value_and_the_integral():
  # y at the mean of N(0, 1): 2 phi(0) - 1 / sqrt(pi) = sqrt(2 / pi) - 1 / sqrt(pi).
  assert scoring_rules.crps_gaussian(0.0, 1.0, 0.0) == pytest.approx(
      math.sqrt(2 / math.pi) - 1 / math.sqrt(math.pi), rel=1e-12)
  # mean 1, scale 2, y 2.5: z = 0.75.
  z = 0.75
  phi, cdf = math.exp(-z * z / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(z / math.sqrt(2)))
  hand = 2.0 * (z * (2 * cdf - 1) + 2 * phi - 1 / math.sqrt(math.pi))
  assert scoring_rules.crps_gaussian(1.0, 2.0, 2.5) == pytest.approx(hand, rel=1e-12)
  for mean, scale, y in ((1.0, 2.0, 2.5), (-3.0, 0.5, 1.0), (10.0, 4.0, 9.0)):
    integral = _crps_integral(lambda x, m=mean, s=scale: _normal_cdf(x, m, s), y,
                              mean - 40 * scale, mean + 40 * scale)
    assert scoring_rules.crps_gaussian(mean, scale, y) == pytest.approx(integral, rel=1e-6), (
        f'closed-form CRPS of N({mean}, {scale}^2) at y={y} differs from the integral')


def test_crps_of_a_normal_mixture_matches_the_integral_and_one_member_the_closed_form():
  means, scales = np.array([[0.0], [2.0], [-1.0]]), np.array([[1.0], [0.5], [3.0]])
  y = np.array([0.7])

  def mixture(x):
    return np.mean([_normal_cdf(x, m, s) for m, s in zip(means[:, 0], scales[:, 0], strict=True)], axis=0)
  got = scoring_rules.crps_gaussian_mixture(means, scales, y)[0]
  assert got == pytest.approx(_crps_integral(mixture, 0.7, -40, 40), rel=1e-6)
  np.testing.assert_allclose(scoring_rules.crps_gaussian_mixture(means[:1], scales[:1], y),
                             scoring_rules.crps_gaussian(means[0], scales[0], y), rtol=1e-12)


def test_crps_from_quantiles_is_the_integral_of_the_interpolated_cdf():
  q = np.array([[[0.0, 1.0, 3.0]], [[-2.0, -1.5, -1.4]]])
  y = np.array([[2.0], [-5.0]])
  # The CDF through (q, tau), on past the ends with the outer slopes: 0.4 per unit below 1, so
  # 0 at -0.25; 0.2 per unit above 1, so 1 at 3.5. Second: 0.8 per unit -> 0 at -2.125;
  # 4 per unit -> 1 at -1.375.
  knots = [([-0.25, 0.0, 1.0, 3.0, 3.5]), ([-2.125, -2.0, -1.5, -1.4, -1.375])]
  p = [0.0, 0.1, 0.5, 0.9, 1.0]
  got = scoring_rules.crps_from_quantiles(q, y, LEVELS)
  assert got.shape == (2, 1)
  for i, x in enumerate(knots):
    want = _crps_integral(lambda z, x=x: np.interp(z, x, p), y[i, 0], -10, 10)
    assert got[i, 0] == pytest.approx(want, rel=1e-6), (
        f'forecast {i}: CRPS from quantiles {got[i, 0]} vs the integral {want}')


# ---------------------------------------------------------------------------- the heads

# One model shape per head for every test below, so each head's forward pass compiles once.
X_SHAPE = (8, 6, 1)


@functools.cache
def _head(head, skip=False):
  """(model, jitted apply) of a one-layer forecaster of 3 steps with a 2-input highway."""
  model = models.Forecaster(hidden_sizes=(4,), num_steps=3, head=head, quantiles=LEVELS,
                            highway=2, skip_lags=(0, 1, 2) if skip else ())
  return model, jax.jit(model.apply)


def _random_params(head, seed, size):
  """Every parameter drawn afresh from N(0, size^2), not the initial values."""
  model, _ = _head(head)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros(X_SHAPE))['params']
  leaves, tree = jax.tree.flatten(shapes)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree.unflatten(tree, [jax.random.normal(k, a.shape) * size
                                   for k, a in zip(keys, leaves, strict=True)])


def test_quantiles_stay_ordered_for_random_parameters_and_inputs():
  _, apply = _head('quantile')
  x = jnp.asarray(np.random.RandomState(0).normal(size=X_SHAPE) * 5, jnp.float32)
  for seed, size in ((0, 0.3), (1, 1.0), (2, 3.0), (3, 30.0)):
    out = np.asarray(apply({'params': _random_params('quantile', seed, size)}, x))
    assert out.shape == (8, 3, 3), f'quantile head output {out.shape}, want (B, S, Q)'
    gaps = np.diff(out, axis=-1)
    assert np.all(gaps >= 0), f'parameters ~ N(0, {size}^2): quantiles out of order, {gaps.min()}'
    # A gap is softplus(raw) > 0; it reads 0 only where float32 cannot tell it from the location
    # (raw below about -15 for a location near 1), which large random parameters reach.
    if size < 1.0:
      assert np.all(gaps > 0), f'parameters ~ N(0, {size}^2): equal quantiles, {gaps.min()}'


def test_gaussian_scale_is_positive_for_extreme_inputs():
  _, apply = _head('gaussian')
  x = np.zeros(X_SHAPE, np.float32)
  x[0], x[1] = 1e4, -1e4
  for seed, size in ((0, 1.0), (1, 100.0), (2, 1e4)):
    out = np.asarray(apply({'params': _random_params('gaussian', seed, size)}, jnp.asarray(x)))
    assert out.shape == (8, 3, 2), f'gaussian head output {out.shape}, want (B, S, 2)'
    scale = out[..., 1]
    assert np.all(np.isfinite(scale)) and np.all(scale >= models.SCALE_FLOOR), (
        f'parameters ~ N(0, {size}^2): scales {scale.ravel()} not all >= {models.SCALE_FLOOR}')


@pytest.mark.parametrize('head', ['quantile', 'gaussian'])
def test_skip_and_highway_shift_the_whole_distribution(head):
  """The location paths move every quantile (or the mean) together and leave the spread."""
  x = jnp.asarray(np.random.RandomState(1).normal(size=X_SHAPE), jnp.float32)
  params = _random_params(head, 0, 0.5)
  plain, skipped = _head(head)[1], _head(head, skip=True)[1]
  a = np.asarray(plain({'params': params}, x))
  anchor = np.asarray(x)[:, [-1, -2, -3], 0, None]   # the skip's value per step, [B, S, 1]
  moved = np.asarray(skipped({'params': params}, x)) - a
  without = dict(params, highway={'kernel': jnp.zeros_like(params['highway']['kernel']),
                                  'bias': params['highway']['bias']})
  highway = a - np.asarray(plain({'params': without}, x))
  linear = np.asarray(x)[:, -2:, 0] @ np.asarray(params['highway']['kernel'])  # [B, S]
  if head == 'gaussian':
    np.testing.assert_allclose(moved, np.concatenate([anchor, 0 * anchor], -1), atol=1e-5)
    np.testing.assert_allclose(highway[..., 0], linear, atol=1e-5)
    np.testing.assert_allclose(highway[..., 1], 0.0, atol=1e-6)
  else:
    np.testing.assert_allclose(moved, np.repeat(anchor, 3, axis=-1), atol=1e-5)
    np.testing.assert_allclose(highway, np.repeat(linear[..., None], 3, axis=-1), atol=1e-5)


@pytest.mark.parametrize('head', ['quantile', 'gaussian'])
def test_the_spread_starts_at_initial_scale(head):
  model, apply = _head(head)
  x = jnp.asarray(np.random.RandomState(2).normal(size=X_SHAPE), jnp.float32)
  params = jax.jit(model.clone(initial_scale=0.3).init)(jax.random.PRNGKey(0), x)['params']
  out = np.asarray(apply({'params': params}, x))
  if head == 'gaussian':
    np.testing.assert_allclose(out[..., 1], 0.3, rtol=1e-5)
  else:  # the 0.1 and 0.9 quantiles of N(median, 0.3^2)
    np.testing.assert_allclose(out[..., 0] - out[..., 1], -Z90 * 0.3, rtol=1e-5)
    np.testing.assert_allclose(out[..., 2] - out[..., 1], Z90 * 0.3, rtol=1e-5)


def test_the_point_head_has_no_spread_parameters():
  point = models.from_config(tiny_config())
  x = jnp.ones((2, 24, 1), jnp.float32)
  params = jax.eval_shape(point.init, jax.random.PRNGKey(0), x)['params']
  assert set(params) == {'rnn_0', 'rnn_1', 'head'}, f'point head parameters {sorted(params)}'
  assert jax.eval_shape(point.apply, {'params': params}, x).shape == (2, 1)


# ---------------------------------------------------------------------------- units


def _series(n=300, level=20.0, seed=0):
  times = pd.date_range('2025-01-01', periods=n, freq='h')
  values = level + np.cumsum(np.random.RandomState(seed).normal(size=n))
  return times, values


@pytest.mark.parametrize('scaler', ['minmax', 'standard'])
def test_unscaling_matches_sklearn_inverse_transform(scaler):
  config = tiny_config(**{'data.scaler': scaler, 'data.window': 5, 'data.horizon': 2})
  times, values = _series()
  data = data_lib.prepare(config.data, times, values[:, None], ('temperature',))
  rng = np.random.RandomState(3)
  mean = rng.normal(size=(4, 1))
  scale = rng.uniform(0.01, 2.0, size=(4, 1))
  out = data.unscale_distribution(np.stack([mean, scale], -1), 'gaussian')
  inverse = data.target_scaler.inverse_transform
  for sign in (-1.0, 1.0):
    np.testing.assert_allclose(
        out[..., 0] + sign * out[..., 1],
        inverse((mean + sign * scale).reshape(-1, 1)).reshape(mean.shape), rtol=1e-12,
        err_msg=f'{scaler}: unscaled mean {"+-"[sign < 0]} scale is not sklearn\'s inverse '
                'transform of the scaled bound')
  q = np.sort(rng.normal(size=(4, 1, 3)), axis=-1)
  np.testing.assert_allclose(data.unscale_distribution(q, 'quantile'),
                             inverse(q.reshape(-1, 1)).reshape(q.shape), rtol=1e-12,
                             err_msg=f'{scaler}: quantiles are not unscaled as values')


def test_each_series_is_unscaled_by_its_own_scaler(tmp_path):
  """Two series a hundred times apart in level and spread, scaled each by its own scaler."""
  times, a = _series(200, 10.0, seed=1)
  _, b = _series(200, 0.0, seed=2)
  frame = pd.concat([pd.DataFrame({'site': 'a', 'time': times, 'temperature': a}),
                     pd.DataFrame({'site': 'b', 'time': times, 'temperature': 1000 + 100 * b})])
  frame.to_csv(tmp_path / 'two.csv', index=False)
  config = tiny_config(**{'data.source': 'csv', 'data.path': str(tmp_path / 'two.csv'),
                          'data.id_column': 'site', 'data.scaler': 'standard',
                          'data.window': 5, 'data.horizon': 2})
  data = data_lib.prepare(config.data)
  starts = data.val_starts
  which = data.series_index(starts)
  assert set(which) == {0, 1}, 'validation windows of both series expected'
  rng = np.random.RandomState(4)
  scaled = np.stack([rng.normal(size=(2, len(starts), 1)),
                     rng.uniform(0.1, 1.0, size=(2, len(starts), 1))], -1)  # 2 members
  out = data.unscale_distribution(scaled, 'gaussian', starts)
  for i, scaler in enumerate(data.target_scalers):
    rows = which == i
    for sign in (-1.0, 1.0):
      bound = scaled[:, rows, :, 0] + sign * scaled[:, rows, :, 1]
      np.testing.assert_allclose(
          out[:, rows, :, 0] + sign * out[:, rows, :, 1],
          scaler.inverse_transform(bound.reshape(-1, 1)).reshape(bound.shape), rtol=1e-12,
          err_msg=f'series {data.series_ids[i]}: bounds not unscaled by its own scaler')
  ratio = out[:, which == 1, :, 1].mean() / out[:, which == 0, :, 1].mean()
  assert 30 < ratio < 300, f'series b spreads 100 x series a; unscaled scales differ {ratio:.1f} x'


# ---------------------------------------------------------------------------- training


def test_a_trained_quantile_head_recovers_the_noise_quantiles():
  """A random walk y[t+1] = y[t] + N(0, sigma^2): the 0.1, 0.5 and 0.9 quantiles of the next
  value are y[t] - 1.2816 sigma, y[t], y[t] + 1.2816 sigma. With model.normalize='last' the
  network reads the changes and adds the last value back, so it need learn only the spread,
  which starts 5 times too wide (the seasonal-naive errors over 24 steps). Six data seeds gave
  offsets within 0.10 sigma of these and coverage 0.77-0.80 before the tolerances were set."""
  sigma, n = 0.5, 2000
  rng = np.random.RandomState(0)
  values = np.cumsum(rng.normal(scale=sigma, size=n))
  times = pd.date_range('2025-01-01', periods=n, freq='h')
  config = tiny_config(**{
      'data.window': 8, 'data.horizon': 1, 'data.scaler': 'standard',
      'model.hidden_sizes': (4,), 'model.dropout': 0.0, 'model.normalize': 'last',
      'model.head': 'quantile', 'train.epochs': 6, 'train.batch_size': 64,
      'train.learning_rate': 2e-2, 'train.lr_schedule': 'cosine'})
  data = data_lib.prepare(config.data, times, values[:, None], ('y',))
  state, _ = jax.jit(train_lib.make_train(config, data))(jax.random.PRNGKey(0))
  trainer = train_lib.make_trainer(config, data)
  starts = data.val_starts
  q = data.unscale_distribution(
      prediction.predict_windows(trainer, state.params, data.scaled_TF, starts), 'quantile',
      starts)[:, 0]
  last = data.values_TF[starts + config.data.window - 1, 0]
  offsets = (q - last[:, None]).mean(axis=0) / sigma
  np.testing.assert_allclose(offsets, [-Z90, 0.0, Z90], atol=0.15,
                             err_msg='fitted 0.1 / 0.5 / 0.9 quantiles (in sigmas from the last '
                                     f'value) are {offsets}, not {-Z90:.3f}, 0, {Z90:.3f}')
  y = data.targets(starts)[:, 0]
  coverage = np.mean((q[:, 0] <= y) & (y <= q[:, 2]))
  # The binomial spread of coverage over 400 windows is 0.02; the quantiles' own error adds
  # about as much.
  assert 0.72 <= coverage <= 0.88, f'the 80% interval holds {coverage:.3f} of the targets'


# ---------------------------------------------------------------------------- whole runs

POINT_KEYS = {
    'val_rmse', 'val_mae', 'val_mse_scaled', 'train_rmse', 'train_mae',
    'baseline_persistence_rmse', 'baseline_persistence_mae', 'baseline_seasonal_naive_rmse',
    'baseline_seasonal_naive_mae', 'baseline_linear_rmse', 'baseline_linear_mae',
    'baseline_linear_fit_windows', 'val_rmse_skill_vs_persistence',
    'val_rmse_skill_vs_seasonal_naive', 'val_rmse_skill_vs_linear', 'compile_seconds',
    'train_seconds', 'train_seconds_this_process', 'seconds', 'epochs_run'}
DISTRIBUTION_KEYS = {
    'val_interval_level', 'val_coverage', 'val_interval_width', 'val_interval_score',
    'val_pinball', 'val_crps', 'val_crps_skill_vs_naive', 'baseline_naive_coverage',
    'baseline_naive_interval_width', 'baseline_naive_interval_score', 'baseline_naive_pinball',
    'baseline_naive_crps'}


@pytest.fixture(scope='module', params=['quantile', 'gaussian'])
def finished(request, tmp_path_factory):
  """(config, workdir, metrics) of a tiny finished run with the head."""
  config = tiny_config(**{'model.head': request.param, 'model.hidden_sizes': (4,),
                          'train.epochs': 1})
  workdir = str(tmp_path_factory.mktemp(request.param) / 'w')
  return config, workdir, run_lib.train_and_evaluate(config, workdir, progress=False)


def test_metrics_json_holds_the_distribution_scores(finished):
  config, workdir, _ = finished
  with open(os.path.join(workdir, 'metrics.json')) as f:
    written = json.load(f)
  want = POINT_KEYS | DISTRIBUTION_KEYS
  assert set(written) == want, (
      f'{config.model.head}: keys missing {sorted(want - set(written))}, unexpected '
      f'{sorted(set(written) - want)}')
  assert written['val_interval_level'] == 0.8
  for key in DISTRIBUTION_KEYS - {'val_interval_level'}:
    assert isinstance(written[key], float) and math.isfinite(written[key]), (key, written[key])
  for key in ('val_coverage', 'baseline_naive_coverage'):
    assert 0.0 <= written[key] <= 1.0, (key, written[key])


def test_predict_writes_the_distribution_and_metrics_json_scores_it(finished, tmp_path):
  """scripts/predict.py's forecast_csv on the run's own series: the columns, and the coverage,
  width, pinball and RMSE of its validation rows, in NumPy, equal metrics.json's."""
  config, workdir, written = finished
  s = config.data.synthetic
  times, values = sources.synthetic_series(s.num_days, s.slope, s.amplitude, s.noise, s.start)
  csv_path, out_path = tmp_path / 'own.csv', tmp_path / 'forecast.csv'
  pd.DataFrame({'time': times, 'temperature': values}).to_csv(csv_path, index=False)
  # Every digit: the checks below relate columns exactly.
  forecast.forecast_csv(workdir, str(csv_path), str(out_path), plot_path=str(tmp_path / 'f.png'),
                        digits=17)
  out = pd.read_csv(out_path)
  middle = ['q0.1', 'q0.5', 'q0.9'] if config.model.head == 'quantile' else ['mean', 'scale']
  assert list(out.columns) == ['input_end', 'step', 'target_time', 'forecast', *middle, 'lower',
                               'upper', 'actual'], f'forecast columns {list(out.columns)}'
  assert (tmp_path / 'f.png').read_bytes()[:4] == b'\x89PNG'
  if config.model.head == 'quantile':
    np.testing.assert_array_equal(out['forecast'], out['q0.5'])
    np.testing.assert_array_equal(out['lower'], out['q0.1'])
    np.testing.assert_array_equal(out['upper'], out['q0.9'])
    q = out[middle].to_numpy()
  else:
    np.testing.assert_array_equal(out['forecast'], out['mean'])
    assert np.all(out['scale'] > 0)
    np.testing.assert_allclose(out['lower'], out['mean'] - Z90 * out['scale'], rtol=1e-9)
    np.testing.assert_allclose(out['upper'], out['mean'] + Z90 * out['scale'], rtol=1e-9)
    q = out[['mean']].to_numpy() + out[['scale']].to_numpy() * np.array([-Z90, 0.0, Z90])
  d = config.data
  n_windows = len(values) - d.window - d.horizon + 1
  val = slice(math.floor(n_windows * (1 - d.val_fraction)), n_windows)
  y, lower, upper = (out[k].to_numpy()[val] for k in ('actual', 'lower', 'upper'))
  assert written['val_coverage'] == pytest.approx(np.mean((lower <= y) & (y <= upper)), abs=1e-9)
  assert written['val_interval_width'] == pytest.approx(np.mean(upper - lower), rel=1e-5)
  assert written['val_rmse'] == pytest.approx(
      np.sqrt(np.mean((out['forecast'].to_numpy()[val] - y) ** 2)), rel=1e-5)
  loop = np.mean([max(t * (yi - qi), (t - 1) * (yi - qi))
                  for yi, row in zip(y, q[val], strict=True)
                  for t, qi in zip(LEVELS, row, strict=True)])
  assert written['val_pinball'] == pytest.approx(loop, rel=1e-5)


def test_an_ensembles_forecast_columns_are_its_mixture():
  rng = np.random.RandomState(8)
  config = config_lib.override(config_lib.default_config(), {'model.head': 'gaussian'})
  members = np.stack([rng.normal(size=(3, 5, 1)), rng.uniform(0.5, 1, (3, 5, 1))], -1)
  columns = forecast.distribution_columns(config, members, member_axis=True)
  assert list(columns) == ['forecast', 'mean', 'scale', 'lower', 'upper']
  np.testing.assert_allclose(columns['mean'], members[..., 0].mean(0))
  variance = np.mean(members[..., 1] ** 2 + members[..., 0] ** 2, 0) - columns['mean'] ** 2
  np.testing.assert_allclose(columns['scale'], np.sqrt(variance), rtol=1e-9)
  for name, level in (('lower', 0.1), ('upper', 0.9)):  # the mixture's CDF at its bounds
    cdf = np.mean([_normal_cdf(columns[name], *member.transpose(2, 0, 1)) for member in members],
                  axis=0)
    np.testing.assert_allclose(cdf, level, atol=1e-9, err_msg=f'{name} of the normal mixture')
  config.model.head = 'quantile'
  q = np.sort(rng.normal(size=(2, 5, 1, 3)), axis=-1)
  columns = forecast.distribution_columns(config, q, member_axis=True)
  assert list(columns) == ['forecast', 'q0.1', 'q0.5', 'q0.9', 'lower', 'upper']
  np.testing.assert_array_equal(columns['forecast'], columns['q0.5'])
  np.testing.assert_array_equal(columns['lower'], columns['q0.1'])
  assert np.all(columns['q0.1'] < columns['q0.5']) and np.all(columns['q0.5'] < columns['q0.9'])
