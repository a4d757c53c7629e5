"""The quantile and gaussian heads: outputs, losses, unscaling and training.

References: losses against numbers worked out by hand, unscaling against scikit-learn's own
inverse_transform, a fitted quantile head against the known quantiles of the noise it was
trained on.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from conftest import tiny_config
from rnnjax import config as config_lib
from rnnjax import data as data_lib
from rnnjax import losses
from rnnjax import models
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
      train_lib.predict_windows(trainer, state.params, data.scaled_TF, starts), 'quantile',
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
