"""Training: steps change parameters, loss falls, runs repeat exactly, chunks and vmapped members
equal one long single run, the masked last batch, early stopping and divergence keep good state.

Compiling a training program is most of the cost here (several seconds each on two CPU cores),
so every test shares one small config and a few jitted functions (the `tiny` fixture), and changes
learning rate or dropout through `hparams`, which are traced values. That config has early
stopping on (patience 1) so the early-stopping test needs no program of its own; tests that need
every epoch to run check that their run did not stop.
"""
import importlib.util
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, assert_trees_equal, leaves_with_paths, tiny_config
from rnnjax import data as data_lib
from rnnjax import errors
from rnnjax import losses
from rnnjax import models
from rnnjax import prediction
from rnnjax import optimizer
from rnnjax import train as train_lib
from rnnjax import train_data
from rnnjax import windows


def _make_session(**overrides):
  config = tiny_config(**{'train.epochs': 2, **overrides})
  data = data_lib.prepare(config.data)
  trainer = train_lib.make_trainer(config, data)
  session = types.SimpleNamespace(config=config, data=data, trainer=trainer,
                                  dd=trainer.device_data, traces=0)

  def run_epochs(state, dd, num_epochs):
    session.traces += 1  # runs only while tracing
    return trainer.run_epochs(state, dd, num_epochs)

  session.run = jax.jit(run_epochs, static_argnums=2)
  init = jax.jit(trainer.init)

  def start(seed=0, key=None, **hparams):
    """A fresh state for `key` (default PRNGKey(seed)); hyper-parameters from the config unless
    given (always passed, so every call shares one compiled init)."""
    values = train_lib.default_hparams(config)
    values.update({k: jnp.float32(v) for k, v in hparams.items()})
    return init(jax.random.PRNGKey(seed) if key is None else key, values)

  session.start = start
  session.apply = jax.jit(trainer.model.apply)
  return session


@pytest.fixture(scope='module')
def tiny():
  """The tutorial's task and series shrunk (GRU 8/8, 20 days, batch 32, dropout 0.1), 2 epochs,
  early stopping after 1 epoch without a better val_loss."""
  return _make_session(**{'train.early_stopping_patience': 1})


def _windows_numpy(data, starts):
  """Inputs and targets by a plain loop over the window starts (independent of gather_windows)."""
  w, h = data.window, data.horizon
  x = np.stack([data.scaled_TF[s:s + w] for s in starts])
  y = np.array([data.scaled_TF[s + w - 1 + h, 0] for s in starts], np.float64)
  return x, y


def _mse(session, params, starts):
  x, y = _windows_numpy(session.data, starts)
  pred = np.asarray(session.apply({'params': params}, jnp.asarray(x)), np.float64)
  assert pred.shape == (len(starts), 1), f'forecasts have shape {pred.shape}, want [N, 1]'
  return float(np.mean((pred[:, 0] - y) ** 2))


# ---------------------------------------------------------------------------- one epoch


# One step of `train_step` on the first 32 training windows of the tiny config from
# PRNGKey(0)'s parameters, recorded when train_step became a function of its own.
RECORDED_STEP_LOSS = 0.19825104
RECORDED_HEAD_KERNEL = [0.79146188, 0.35015482, -0.25798506]  # head kernel [:3, 0] after it


def test_one_train_step_matches_recorded_values_and_adam_by_hand():
  """The step's loss is NumPy's mean squared error of the model's forecasts, and its update
  Adam's first one by hand: -learning_rate * g / (|g| + eps) for the gradient g."""
  config = tiny_config()
  data = data_lib.prepare(config.data)
  model = models.from_config(config)
  x, y = windows.gather_windows(data.scaled_TF, data.train_starts[:32], data.window, data.steps)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, data.window, 1)))['params']
  tx = optimizer.make_optimizer(optimizer.default_hparams(config))
  batch = train_lib.Batch(jnp.asarray(x), None, jnp.asarray(y), jnp.ones(32, bool))
  new, _, out = train_lib.train_step(model, tx, losses.for_model(config.model), params,
                                     tx.init(params), batch, jax.random.PRNGKey(1), 0.0)
  loss = out['loss']
  forecast = np.asarray(model.apply({'params': params}, jnp.asarray(x)), np.float64)
  assert float(loss) == pytest.approx(np.mean((forecast - y) ** 2), rel=1e-5), (
      'train_step reports another loss than the mean squared error of the batch')
  assert float(loss) == pytest.approx(RECORDED_STEP_LOSS, rel=1e-5)
  grads = jax.grad(lambda p: jnp.mean((model.apply({'params': p}, jnp.asarray(x)) - y) ** 2))(
      params)
  norm = np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2) for g in jax.tree.leaves(grads)))
  assert float(out['grad_norm']) == pytest.approx(norm, rel=1e-4), (
      'train_step reports another gradient norm than the gradients\' own')
  lr = config.train.learning_rate
  for (path, got), old, g in zip(leaves_with_paths(new), jax.tree.leaves(params),
                                 jax.tree.leaves(grads), strict=True):
    g, old = np.asarray(g, np.float64), np.asarray(old, np.float64)
    want = old - lr * g / (np.abs(g) + optimizer.ADAM_EPS)
    # Where the gradient is far from 0 the update is lr times its sign in any float order;
    # near 0 a summation order may flip it, so there only its size is checked.
    clear = np.abs(g) > 1e-4
    np.testing.assert_allclose(got[clear], want[clear], rtol=1e-5, atol=2e-6,
                               err_msg=f'{path}: the step is not Adam\'s first update')
    assert np.all(np.abs(got - old) <= lr * (1 + 1e-4)), f'{path}: a step larger than lr'
  np.testing.assert_allclose(np.asarray(new['head']['kernel'])[:3, 0], RECORDED_HEAD_KERNEL,
                             rtol=1e-5, err_msg='the step moved the head elsewhere than recorded')


def test_one_epoch_changes_every_parameter(tiny):
  state = tiny.start()
  new, history = tiny.run(state, tiny.dd, 1)
  unchanged = [path for (path, a), (_, b) in zip(leaves_with_paths(state.params),
                                                 leaves_with_paths(new.params), strict=True)
               if np.array_equal(a, b)]
  assert not unchanged, f'one epoch left these parameters unchanged: {unchanged}'
  assert int(new.epoch) == 1, f'epoch counter is {int(new.epoch)} after one epoch'
  assert history['loss'].shape == (1,) and history['val_loss'].shape == (1,), (
      f'history shapes {jax.tree.map(np.shape, history)} for a 1-epoch chunk')
  assert int(new.best_epoch) == 1 and float(new.best_val_loss) == float(history['val_loss'][0]), (
      'after the first epoch the best epoch should be 1 with its val_loss')
  assert_trees_equal(new.best_params, new.params, 'best_params after the first epoch')
  assert not bool(new.stopped) and not bool(new.diverged)


def test_loss_falls_on_tutorial_task(tiny):
  # The tutorial's series, window, horizon, batch, dropout and Adam, with a smaller GRU so the
  # test compiles in seconds; four 1-epoch chunks share the compiled epoch of the other tests.
  state = tiny.start(0)
  losses, val_losses = [], []
  for _ in range(4):
    state, history = tiny.run(state, tiny.dd, 1)
    losses.append(float(history['loss'][0]))
    val_losses.append(float(history['val_loss'][0]))
  assert np.isfinite(losses).all() and np.isfinite(val_losses).all(), (
      f'non-finite losses {losses} {val_losses}')
  assert not bool(state.stopped), f'the run stopped early: val losses {val_losses}'
  assert losses[-1] < losses[0], f'training loss did not fall over 4 epochs: {losses}'
  assert val_losses[-1] < val_losses[0], f'validation loss did not fall over 4 epochs: {val_losses}'


def test_grad_norm_is_the_global_norm_of_the_gradient_before_clipping():
  """One batch of every training window, no dropout, a clip far below the norm: the epoch's
  grad_norm is the norm of the hand-written MSE's gradient at the initial parameters (clipping
  acts on the update, after the norm is taken)."""
  session = _make_session(**{'train.batch_size': 10_000, 'train.epochs': 1})
  state = session.start(dropout=0.0, clip_norm=1e-3)
  x, y = _windows_numpy(session.data, session.data.train_starts)

  def mse(params):
    pred = session.trainer.model.apply({'params': params}, jnp.asarray(x))
    return jnp.mean((pred[:, 0] - jnp.asarray(y, jnp.float32)) ** 2)
  want = np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2)
                     for g in jax.tree.leaves(jax.grad(mse)(state.params))))
  _, history = session.run(state, session.dd, 1)
  assert history['grad_norm'].shape == (1,), jax.tree.map(np.shape, history)
  np.testing.assert_allclose(float(history['grad_norm'][0]), want, rtol=1e-4,
                             err_msg='grad_norm of one full batch vs the MSE gradient\'s norm')
  assert want > 100 * 1e-3, f'the clip ({1e-3}) should act: the norm is {want}'


# ---------------------------------------------------------------------------- repeatability


def test_same_seed_same_history_without_retracing(tiny):
  first_state, first = tiny.run(tiny.start(0), tiny.dd, 2)
  traces = tiny.traces
  again_state, again = tiny.run(tiny.start(0), tiny.dd, 2)
  other_state, other = tiny.run(tiny.start(1), tiny.dd, 2)
  assert tiny.traces == traces, 'a new key or state retraced the jitted epoch function'
  assert_trees_equal(again, first, 'history of two runs with seed 0')
  assert_trees_equal(again_state.params, first_state.params, 'params of two runs with seed 0')
  assert not np.array_equal(other['loss'], first['loss']), (
      f'seeds 0 and 1 gave the same loss history {first["loss"]}')


def test_chunked_epochs_equal_one_long_scan(tiny):
  state = tiny.start(3)
  # Early stopping is on in this config; the equality must hold either way.
  a, h1 = tiny.run(state, tiny.dd, 1)
  a, h2 = tiny.run(a, tiny.dd, 1)
  b, h = tiny.run(state, tiny.dd, 2)
  assert_trees_equal(a, b, 'state after 1+1 epochs vs 2 epochs in one call')
  assert_trees_equal(jax.tree.map(lambda x, y: jnp.concatenate([x, y]), h1, h2), h,
                      'history of 1+1 epochs vs 2 epochs in one call')


# ---------------------------------------------------------------------------- the masked batch


def test_epoch_loss_is_mean_over_every_training_window(tiny):
  # With learning rate 0 the parameters never move, so the reported epoch loss must be the MSE
  # of the initial parameters over all training windows, each counted once, whatever the batch
  # split; the ragged last batch is padded and the padding must not count.
  n_train, batch = len(tiny.data.train_starts), tiny.config.train.batch_size
  assert n_train % batch != 0, f'{n_train} windows / batch {batch}: no ragged batch to test'
  state = tiny.start(learning_rate=0.0, dropout=0.0)
  new, history = tiny.run(state, tiny.dd, 1)
  assert_trees_equal(new.params, state.params, 'params after an epoch at learning rate 0')
  want = _mse(tiny, state.params, tiny.data.train_starts)
  assert abs(float(history['loss'][0]) - want) < 1e-5, (
      f'epoch loss {float(history["loss"][0]):.7f} != MSE over all {n_train} training windows '
      f'{want:.7f}: windows dropped, repeated or padding counted')
  want_val = _mse(tiny, state.params, tiny.data.val_starts)
  assert abs(float(history['val_loss'][0]) - want_val) < 1e-5, (
      f'val_loss {float(history["val_loss"][0]):.7f} != MSE over the validation windows '
      f'{want_val:.7f}')


def test_epoch_order_of_the_real_windows_does_not_depend_on_the_padding():
  """A member padded to a longer fold's windows visits its own windows in the order a run
  holding only them would: a permutation of the real ones first, the padding after, in order."""
  key = jax.random.PRNGKey(3)
  alone = np.asarray(train_data.epoch_order(key, 30, 30))
  assert sorted(alone) == list(range(30)), f'not a permutation: {alone}'
  assert not np.array_equal(alone, np.arange(30)), 'the order is not shuffled'
  for size, num_valid in ((50, 30), (64, jnp.int32(30))):
    padded = np.asarray(jax.jit(train_data.epoch_order, static_argnums=1)(key, size, num_valid))
    np.testing.assert_array_equal(padded[:30], alone,
                                  err_msg=f'padding to {size} reordered the real windows')
    np.testing.assert_array_equal(padded[30:], np.arange(30, size),
                                  err_msg='the padding is not after the real windows, in order')
  other = np.asarray(train_data.epoch_order(jax.random.PRNGKey(4), 30, 30))
  assert not np.array_equal(other, alone), 'another key gives the same order'


# ---------------------------------------------------------------------------- stopping


def test_early_stopping_freezes_state_at_stop_and_keeps_best_params(tiny):
  # Learning rate 2e-2 makes val_loss rise within a few epochs on this series and seed.
  state = tiny.start(2, learning_rate=2e-2)
  states, val_losses, active = [state], [], []
  for _ in range(5):
    state, history = tiny.run(state, tiny.dd, 1)
    states.append(state)
    val_losses.append(float(history['val_loss'][0]))
    active.append(bool(history['active'][0]))
  stop = next((e for e in range(2, 6) if val_losses[e - 1] >= min(val_losses[:e - 1])), None)
  assert stop is not None and stop < 5, (
      f'precondition: val_loss should rise within 4 epochs at lr 2e-2, got {val_losses}')
  stopped_state = states[stop]
  assert bool(stopped_state.stopped) and not bool(stopped_state.diverged), (
      f'val_loss rose at epoch {stop} ({val_losses}) but the state is not stopped')
  assert int(stopped_state.epoch) == stop, (
      f'stopped at epoch {stop}, state says epoch {int(stopped_state.epoch)}')
  best_epoch = int(np.argmin(val_losses[:stop])) + 1
  assert int(stopped_state.best_epoch) == best_epoch, (
      f'best_epoch {int(stopped_state.best_epoch)}, val losses {val_losses[:stop]} say {best_epoch}')
  assert float(stopped_state.best_val_loss) == min(val_losses[:stop])
  assert_trees_equal(stopped_state.best_params, states[best_epoch].params,
                      f'best_params vs the params after best epoch {best_epoch}')
  assert np.isclose(_mse(tiny, stopped_state.best_params, tiny.data.val_starts),
                    min(val_losses[:stop]), rtol=1e-5, atol=1e-7), (
                        'best_params do not give best_val_loss on the validation windows')
  assert active == [True] * stop + [False] * (5 - stop), (
      f'history active flags {active} for a stop at epoch {stop}')
  for later in states[stop + 1:]:
    assert_trees_equal(later, stopped_state, 'a stopped state after another epoch')


def _all_finite(tree):
  return all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(tree))


def test_nan_in_series_marks_diverged_and_keeps_last_finite_epoch(tiny):
  good, _ = tiny.run(tiny.start(0), tiny.dd, 2)
  assert not bool(good.stopped), 'precondition: two clean epochs should not stop'
  # A NaN inside the first training window's inputs poisons the next epoch.
  poisoned = tiny.dd._replace(series_TF=tiny.dd.series_TF.at[5, 0].set(jnp.nan))
  after, history = tiny.run(good, poisoned, 2)
  assert np.isnan(history['loss'][0]), f'epoch 3 on a NaN series should report NaN: {history}'
  assert bool(after.diverged) and bool(after.stopped), (
      f'non-finite loss: diverged={bool(after.diverged)} stopped={bool(after.stopped)}')
  assert int(after.epoch) == 2, f'epoch should stay at the last finite one (2), got {after.epoch}'
  assert _all_finite(after.params), 'diverged state holds non-finite params'
  assert_trees_equal(after.params, good.params, 'params after divergence vs last finite epoch')
  assert_trees_equal(after.opt_state, good.opt_state, 'opt_state after divergence')
  assert_trees_equal(after.best_params, good.best_params, 'best_params after divergence')
  assert list(np.asarray(history['active'])) == [True, False], (
      f'active flags {history["active"]}: the member should be inactive after diverging')


def test_huge_learning_rate_diverges_with_finite_params(tiny):
  # Adam's first update moves every parameter with a non-zero gradient by the learning rate,
  # so the next forecast is about 1e30 and its square overflows float32 (max 3.4e38) on any
  # JAX release: the first epoch is non-finite by construction.
  start = tiny.start(0, learning_rate=1e30)
  state, history = tiny.run(start, tiny.dd, 2)
  loss = np.asarray(history['loss'])
  assert bool(state.diverged), f'learning rate 1e30 should diverge, losses {loss}'
  assert not np.isfinite(loss[0]), f'epoch 1 should be non-finite, losses {loss}'
  assert int(state.epoch) == 0, (
      f'state epoch {int(state.epoch)}: a run non-finite in epoch 1 keeps epoch 0 ({loss})')
  assert _all_finite(state.params) and _all_finite(state.opt_state), (
      'a diverged run must keep the finite parameters of its last finite epoch')


# Member k of jit(vmap(train)) equals the single run with seed k: tests/test_ensemble.py.


def test_skip_nonfinite_updates_steps_over_nan_batches():
  """optax.apply_if_finite: batches whose loss is NaN leave the parameters alone, the epoch
  loss averages the applied batches, and the run goes on instead of diverging."""
  config = tiny_config(**{'train.skip_nonfinite_updates': True, 'train.epochs': 2})
  data = data_lib.prepare(config.data)
  trainer = train_lib.make_trainer(config, data)
  poisoned = trainer.device_data._replace(
      series_TF=trainer.device_data.series_TF.at[5, 0].set(jnp.nan))
  state = trainer.init(jax.random.PRNGKey(0))
  state, history = jax.jit(trainer.run_epochs, static_argnums=2)(state, poisoned, 2)
  assert not bool(state.diverged), f'skipping NaN batches should not diverge: {history}'
  assert np.all(np.isfinite(history['loss'])), f'epoch losses {history["loss"]}'
  assert _all_finite(state.params), 'a skipped NaN update reached the parameters'
  assert int(state.opt_state.total_notfinite) > 0, \
      'apply_if_finite saw no non-finite step: the poisoned windows were never used'


# The first 2 epochs of each reference config (full size: 200 days, 3 layers of 24/50/24),
# recorded with jax 0.10.2 (python 3.11, the suite's LLVM level 0, see conftest.py) through
# `jax.jit(make_train(...))` when the epoch order became `train_data.epoch_order`; jax 0.12 agrees
# to 2e-6. A change anywhere in data, model, loss or optimizer shows here, even one that moves
# both sides of every other equality test.
GOLDEN_LOSSES = {
    'seed_gru': {'loss': (0.0563753359, 0.0115077393),
                 'val_loss': (0.014089331, 0.0120678293)},
    'lstm': {'loss': (0.0215020534, 0.00383157795),
             'val_loss': (0.00415307889, 0.000944956497)},
    'simple_rnn': {'loss': (0.124343783, 0.0386331417),
                   'val_loss': (0.0354162566, 0.0128755243)},
}


@pytest.mark.parametrize('name', sorted(GOLDEN_LOSSES))
def test_first_epochs_match_the_recorded_golden_losses(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, 'configs', f'{name}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.train.epochs = 2
  data = data_lib.prepare(config.data)
  _, history = jax.jit(train_lib.make_train(config, data))(jax.random.PRNGKey(config.train.seed))
  for key, expected in GOLDEN_LOSSES[name].items():
    np.testing.assert_allclose(
        np.asarray(history[key]), expected, rtol=1e-5,
        err_msg=f'configs/{name}.py: the first 2 epochs\' {key} moved from the recorded values')


def test_stacked_members_forecast_in_bounded_calls_as_each_member_alone(tiny, monkeypatch):
  """With the members x windows of a call capped, the members' forecasts are still each
  member's own (against the member's parameters through the single-model program)."""
  params_M = jax.tree.map(lambda *leaves: jnp.stack(leaves),
                          *[tiny.start(seed).params for seed in range(3)])
  starts = tiny.data.val_starts
  monkeypatch.setattr(prediction, 'MEMBER_WINDOWS_PER_CALL', 3 * 10)  # 10 windows per call
  calls = []
  fn = tiny.trainer.predict_members_jit
  trainer = tiny.trainer._replace(predict_members_jit=lambda *a: calls.append(1) or fn(*a))
  got = prediction.predict_windows(trainer, params_M, tiny.dd.series_TF, starts,
                                   member_axis=True)
  assert len(calls) == -(-len(starts) // 10), (
      f'{len(calls)} calls for {len(starts)} windows of 3 members at 30 member-windows a call')
  for k in range(3):
    one = jax.tree.map(lambda leaf, k=k: leaf[k], params_M)
    want = prediction.predict_windows(tiny.trainer, one, tiny.dd.series_TF, starts)
    np.testing.assert_allclose(got[k], want, rtol=1e-6, atol=1e-6,
                               err_msg=f'member {k} of the capped stacked forecast')


def test_partial_hparams_take_the_rest_from_the_config_and_unknown_keys_are_named():
  config = tiny_config(**{'train.weight_decay': 0.01})
  values = train_lib.complete_hparams(config, {'learning_rate': 0.5})
  assert float(values['learning_rate']) == 0.5 and float(values['weight_decay']) == (
      pytest.approx(0.01)), f'partial hparams did not fill in from the config: {values}'
  assert set(values) == set(train_lib.default_hparams(config))
  with pytest.raises(errors.UserError, match="'clip_norm', 'dropout', 'learning_rate'"):
    train_lib.complete_hparams(config, {'learning_rat': 0.5})
