"""Epochs of drawn batches (train.steps_per_epoch), drawing by series (data.sample) and the
per-epoch validation subset (train.val_windows): the steps taken, the draws against counts and
against their own slices, padding, the validation loss against NumPy, and bad settings."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_trees_close, assert_trees_equal, panel_config, panel_csv, tiny_config
from rnnjax import backtest as backtest_lib
from rnnjax import config as config_lib
from rnnjax import config_checks
from rnnjax import data as data_lib
from rnnjax import evaluate
from rnnjax import sources
from rnnjax import tensorboard
from rnnjax import optimizer
from rnnjax import train as train_lib
from rnnjax import train_data
from rnnjax.errors import UserError


def _train(config, data=None):
  """`jax.jit(make_train(config, data))` from PRNGKey(0): (data, final state, history)."""
  data = data_lib.prepare(config.data) if data is None else data
  state, history = jax.jit(train_lib.make_train(config, data))(jax.random.PRNGKey(0))
  return data, state, jax.device_get(history)


def _optimizer_counts(opt_state) -> dict:
  """{path: value} of every step counter in an optimizer state."""
  return {jax.tree_util.keystr(path): int(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]
          if 'count' in jax.tree_util.keystr(path)}


def _windows_numpy(data, starts):
  """Inputs [N, W, F] and single-step targets [N] by a plain loop over the window starts."""
  w, h = data.window, data.horizon
  x = np.stack([data.scaled_TF[s:s + w] for s in starts])
  y = np.array([data.scaled_TF[s + w - 1 + h, 0] for s in starts], np.float64)
  return x, y


def _mse_numpy(model, params, data, starts) -> float:
  x, y = _windows_numpy(data, starts)
  pred = np.asarray(model.apply({'params': params}, jnp.asarray(x)), np.float64)
  return float(np.mean((pred[:, 0] - y) ** 2))


def _device_data(lengths, capacity=None, series_capacity=None):
  """DeviceData of series holding `lengths` training windows each, laid end to end, padded to
  `capacity` training windows and `series_capacity` series (None: their own counts)."""
  num_train = sum(lengths)
  size = capacity or num_train
  bounds = np.full((series_capacity or len(lengths)) + 1, num_train, np.int32)
  bounds[:len(lengths) + 1] = np.concatenate([[0], np.cumsum(lengths)])
  starts = np.zeros(size, np.int32)
  starts[:num_train] = np.arange(num_train)
  return train_data.DeviceData(
      series_TF=jnp.zeros((size + 40, 1), jnp.float32), train_starts=jnp.asarray(starts),
      val_starts=jnp.zeros(1, jnp.int32), num_train=jnp.int32(num_train),
      num_val=jnp.int32(1), train_bounds=jnp.asarray(bounds),
      num_train_series=jnp.int32(len(lengths)))


# ---------------------------------------------------------------------------- steps per epoch

def test_an_epoch_takes_steps_per_epoch_steps_and_the_schedule_counts_them(monkeypatch):
  """With train.steps_per_epoch=5 two epochs take 10 optimizer steps, and the learning-rate
  schedule and the logged learning rates are built on 5 steps per epoch."""
  seen = []
  build = optimizer.lr_factor

  def recording(config, steps_per_epoch):
    seen.append(steps_per_epoch)
    return build(config, steps_per_epoch)

  monkeypatch.setattr(optimizer, 'lr_factor', recording)
  config = tiny_config(**{'train.steps_per_epoch': 5, 'train.epochs': 2,
                          'train.lr_schedule': 'cosine', 'train.warmup_epochs': 1})
  data, state, history = _train(config)
  counts = _optimizer_counts(state.opt_state)
  assert counts and set(counts.values()) == {10}, (
      f'2 epochs of 5 drawn batches should be 10 optimizer steps; the counters say {counts}')
  assert seen and set(seen) == {5}, (
      f'the schedule was built for {seen} steps per epoch, not the 5 an epoch takes')
  assert tensorboard.batches_per_epoch(len(data.train_starts), 32, 5) == 5, (
      'the logged learning rates are averaged over the wrong number of steps per epoch')
  assert np.all(np.isfinite(history['loss'])) and history['loss'].shape == (2,), (
      f'history of drawn epochs: {history}')


def test_steps_per_epoch_0_visits_every_window_and_unused_keys_change_nothing():
  """The default trains ceil(windows / batch) steps per epoch; data.sample='window' and a
  train.val_windows at least the validation windows (read as all of them) train bit for bit as
  the defaults do."""
  config = tiny_config(**{'train.epochs': 2})
  data, state, history = _train(config)
  expected = 2 * math.ceil(len(data.train_starts) / config.train.batch_size)
  counts = _optimizer_counts(state.opt_state)
  assert set(counts.values()) == {expected}, (
      f'steps_per_epoch=0 should take {expected} steps in 2 epochs; the counters say {counts}')
  same = tiny_config(**{'train.epochs': 2, 'data.sample': 'window',
                        'train.val_windows': len(data.val_starts) + 100})
  _, same_state, same_history = _train(same, data)
  assert_trees_equal(same_state.params, state.params,
                     'train.val_windows above the validation windows (clamped to all of them)')
  assert_trees_equal(same_history, history, 'the history with the new keys at their meaning of '
                     'the defaults')


def test_a_drawn_step_trains_on_the_windows_batch_draws_names():
  """The loss of a one-step epoch is NumPy's MSE of the starting parameters on the windows
  `batch_draws` names for step 0 under the epoch's key (dropout 0)."""
  config = tiny_config(**{'train.steps_per_epoch': 1, 'train.epochs': 1,
                          'train.batch_size': 16, 'model.dropout': 0.0})
  data = data_lib.prepare(config.data)
  trainer = train_lib.make_trainer(config, data)
  start = trainer.init(jax.random.PRNGKey(0))
  _, history = jax.jit(trainer.run_epochs, static_argnums=2)(start, trainer.device_data, 1)
  perm_key, _ = jax.random.split(jax.random.fold_in(start.key, 0))
  idx, mask = train_data.batch_draws(perm_key, 0, jnp.arange(16), trainer.device_data)
  assert np.all(np.asarray(mask)), 'a drawn batch has padding'
  starts = data.train_starts[np.asarray(idx)]
  expected = _mse_numpy(trainer.model, start.params, data, starts)
  np.testing.assert_allclose(float(history['loss'][0]), expected, rtol=1e-5, err_msg=(
      'the epoch\'s loss is not the MSE on the windows batch_draws names: the step trained on '
      'other windows'))


# ---------------------------------------------------------------------------- the draws

@pytest.mark.parametrize('sample', ['window', 'series'])
def test_a_slice_of_positions_draws_the_slice_of_the_global_batch(sample):
  """Any positions of step s's batch draw what the whole epoch's draw holds there, whatever
  order they come in, traced or not: a device holding a slice of a batch draws its part."""
  dd = _device_data([50, 7, 300])
  key = jax.random.PRNGKey(3)
  idx, mask = train_data.epoch_draws(key, 4, 12, dd, sample)
  idx = np.asarray(idx)
  assert idx.shape == (4, 12) and np.asarray(mask).all(), f'{idx.shape}, mask {mask}'
  assert len(np.unique(idx)) > 12, f'the draws barely differ across steps: {idx}'
  sliced = jax.jit(lambda s, p: train_data.batch_draws(key, s, p, dd, sample)[0])
  for s in range(4):
    for positions in ([4, 5, 6, 7, 8], [11, 0], list(range(12))):
      np.testing.assert_array_equal(
          np.asarray(sliced(jnp.int32(s), jnp.asarray(positions, jnp.int32))),
          idx[s, positions],
          err_msg=f'step {s} positions {positions}: not the slice of the global draw')


@pytest.mark.parametrize('sample', ['window', 'series'])
def test_a_padded_member_draws_only_its_own_windows_as_it_would_alone(sample):
  """Members padded to a longer member's capacity (a traced num_train, as backtest folds) draw
  only their real windows, the same ones as unpadded."""
  alone = _device_data([10, 20])
  padded = _device_data([10, 20], capacity=200, series_capacity=3)
  longer = _device_data([120, 40, 40], capacity=200, series_capacity=3)
  stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), padded, longer)
  key = jax.random.PRNGKey(7)
  draw = jax.jit(jax.vmap(lambda dd: train_data.epoch_draws(key, 50, 8, dd, sample)[0]))
  idx_M = np.asarray(draw(stacked))
  assert idx_M[0].max() < 30, f'the shorter member drew a padding window: max {idx_M[0].max()}'
  np.testing.assert_array_equal(idx_M[0], np.asarray(
      train_data.epoch_draws(key, 50, 8, alone, sample)[0]),
      err_msg='a padded member draws other windows than it does alone')
  assert idx_M[1].max() >= 30, 'the longer member never drew past the shorter one\'s windows'


def _counts(idx, edges):
  return np.array([np.sum((idx >= lo) & (idx < hi)) for lo, hi in zip(edges[:-1], edges[1:])])


def _chi_square(observed, expected) -> float:
  return float(np.sum((observed - expected) ** 2 / expected))


def test_series_sampling_weighs_every_series_alike_and_window_sampling_every_window():
  """Series holding 2000, 200 and 20 windows, 12,800 draws from a fixed key: 'series' draws
  each series a third of the time (within 5 binomial standard deviations) and the windows of
  the short one uniformly (chi-square, 19 degrees of freedom, below 50: p < 1e-4);
  'window' draws each series in proportion to its windows, uniformly over the index range
  (10 equal bins, chi-square below 35 with 9 degrees of freedom)."""
  lengths = [2000, 200, 20]
  edges = np.concatenate([[0], np.cumsum(lengths)])
  dd = _device_data(lengths)
  key = jax.random.PRNGKey(11)
  steps, batch = 200, 64
  n = steps * batch

  by_series = np.asarray(train_data.epoch_draws(key, steps, batch, dd, 'series')[0]).ravel()
  counts = _counts(by_series, edges)
  bound = 5 * math.sqrt(n * (1 / 3) * (2 / 3))
  assert np.all(np.abs(counts - n / 3) < bound), (
      f"data.sample='series' drew the series {counts} times in {n} draws; each should be "
      f'{n / 3:.0f} +- {bound:.0f}')
  short = by_series[by_series >= edges[2]] - edges[2]
  per_window = np.bincount(short, minlength=20)
  chi2 = _chi_square(per_window, len(short) / 20)
  assert chi2 < 50, (f"data.sample='series': the short series' windows are not drawn alike "
                     f'(chi-square {chi2:.1f}): {per_window}')

  by_window = np.asarray(train_data.epoch_draws(key, steps, batch, dd, 'window')[0]).ravel()
  counts = _counts(by_window, edges)
  share = np.asarray(lengths) / sum(lengths)
  bound = 5 * np.sqrt(n * share * (1 - share))
  assert np.all(np.abs(counts - n * share) < bound), (
      f"data.sample='window' drew the series {counts} times in {n} draws; in proportion to "
      f'their windows that is {np.round(n * share)} +- {np.round(bound)}')
  bins = _counts(by_window, np.linspace(0, sum(lengths), 11).round().astype(int))
  chi2 = _chi_square(bins, np.diff(np.linspace(0, sum(lengths), 11).round()) * n / sum(lengths))
  assert chi2 < 35, f"data.sample='window' is not uniform over the windows (chi-square {chi2:.1f})"


def test_train_bounds_hold_each_series_training_windows(tmp_path):
  """DeviceData.train_bounds of a panel: the i-th range of train_starts holds the i-th series'
  training windows and no other, and the entries after the last series repeat num_train."""
  config = panel_config(panel_csv(tmp_path))
  data = data_lib.prepare(config.data)
  dd = train_data.device_data(data)
  bounds = np.asarray(dd.train_bounds)
  num_series = int(dd.num_train_series)
  assert num_series == len(data.series_ids), f'{num_series} series with training windows'
  which = data.series_index(data.train_starts)
  for i in range(num_series):
    np.testing.assert_array_equal(
        np.flatnonzero(which == i), np.arange(bounds[i], bounds[i + 1]),
        err_msg=f'series {data.series_ids[i]!r}: train_bounds {bounds} name other windows')
  assert np.all(bounds[num_series:] == len(data.train_starts)), f'padding of {bounds}'


def test_series_sampling_trains_on_a_panel(tmp_path):
  """A panel trains with data.sample='series': every epoch its steps, a finite loss."""
  config = panel_config(panel_csv(tmp_path), **{
      'train.steps_per_epoch': 4, 'train.batch_size': 16, 'data.sample': 'series',
      'train.epochs': 2})
  _, state, history = _train(config)
  assert set(_optimizer_counts(state.opt_state).values()) == {8}, 'not 2 x 4 steps'
  assert np.all(np.isfinite(history['loss'])) and np.all(np.isfinite(history['val_loss'])), (
      f'a panel drawn by series does not train: {history}')


# ---------------------------------------------------------------------------- validation subset

def test_val_loss_reads_the_fixed_subset_and_the_scores_read_every_window(caplog):
  """With train.val_windows=25 each epoch's val_loss is NumPy's MSE over the 25 windows
  `val_subset` draws (the same on every call and for every train.seed), and evaluate's
  val_mse_scaled
  NumPy's over every validation window; the two programs agree, so nothing is warned."""
  config = tiny_config(**{'train.val_windows': 25, 'train.epochs': 2,
                          'train.steps_per_epoch': 3})
  data = data_lib.prepare(config.data)
  subset = train_data.val_subset(data.val_starts, 25)
  assert len(subset) == 25 and len(np.unique(subset)) == 25 and np.isin(
      subset, data.val_starts).all(), f'the subset is not 25 validation windows: {subset}'
  np.testing.assert_array_equal(train_data.val_subset(data.val_starts, 25), subset,
                                err_msg='the subset moved between two calls')
  other_seed = train_lib.make_trainer(
      config_lib.replaced(config, **{'train.seed': 3}), data).device_data
  np.testing.assert_array_equal(np.asarray(other_seed.val_starts)[:int(other_seed.num_val)],
                                subset, err_msg='another train.seed validates on other windows')
  trainer = train_lib.make_trainer(config, data)
  dd = trainer.device_data
  np.testing.assert_array_equal(np.asarray(dd.val_starts)[:int(dd.num_val)], subset,
                                err_msg='the device reads other validation windows')
  start = trainer.init(jax.random.PRNGKey(0))
  state, history = jax.jit(trainer.run_epochs, static_argnums=2)(start, dd, 2)
  history = jax.device_get(history)
  on_subset = _mse_numpy(trainer.model, state.params, data, subset)
  on_all = _mse_numpy(trainer.model, state.params, data, data.val_starts)
  np.testing.assert_allclose(float(history['val_loss'][-1]), on_subset, rtol=1e-5, err_msg=(
      'the last epoch\'s val_loss is not the MSE on the train.val_windows subset'))
  assert abs(on_all - on_subset) > 1e-4 * on_all, (
      'the subset and the whole validation set score alike: the test cannot tell them apart')
  with caplog.at_level('WARNING'):
    results, _, _ = evaluate.evaluate(config, data, trainer, state, history, None)
  np.testing.assert_allclose(results['val_mse_scaled'], on_all, rtol=1e-5, err_msg=(
      'metrics.json\'s validation scores do not read every validation window'))
  assert 'in training' not in caplog.text, (
      f'training\'s val_loss on the subset was compared with the whole set:\n{caplog.text}')


def test_a_backtest_fold_with_drawn_batches_and_a_val_subset_trains_as_alone():
  """Fold 0 of a refit backtest (the fewest windows, padded to the longest fold's) with
  train.steps_per_epoch and train.val_windows equals a run on its data alone."""
  config = tiny_config(**{'backtest.folds': 2, 'train.epochs': 2, 'train.steps_per_epoch': 3,
                          'train.val_windows': 12})
  bt = backtest_lib.make_backtest(config)
  state, history = bt.program.run(bt.program.init(), config.train.epochs)
  state, history = jax.device_get(state), jax.device_get(history)
  s = config.data.synthetic
  times, values = sources.synthetic_series(s.num_days, s.slope, s.amplitude, s.noise, s.start)
  origin = int(bt.folds.origins[0, 0])
  alone = data_lib.prepare(config.data, times[:origin], values[:origin, None], ('temperature',))
  assert len(alone.train_starts) < max(len(d.train_starts) for d in bt.folds.datasets), (
      'fold 0 is not padded: the test checks nothing')
  _, ref_state, ref_history = _train(config, alone)
  assert_trees_close(jax.tree.map(lambda a: a[0], state.params), ref_state.params,
                     'fold 0 vs its data alone', rtol=1e-5, atol=1e-6)
  for key in ('loss', 'val_loss'):
    np.testing.assert_allclose(history[key][0], ref_history[key], rtol=1e-5,
                               err_msg=f'fold 0: {key} per epoch vs its data alone')


# ---------------------------------------------------------------------------- bad settings

@pytest.mark.parametrize('key, value, words', [
    ('train.steps_per_epoch', -1, ['train.steps_per_epoch', '-1', '>= 0', '--config.']),
    ('train.steps_per_epoch', True, ['train.steps_per_epoch', 'True', 'integer']),
    ('train.val_windows', -5, ['train.val_windows', '-5', '>= 0', '--config.']),
    ('data.sample', 'uniform', ['data.sample', "'uniform'", 'window', 'series']),
])
def test_bad_values_are_refused_naming_the_key_and_the_value(key, value, words):
  config = tiny_config()
  config.unlock()  # a wrong type is what a config file can hold
  config.update_from_flattened_dict({key: value})
  with pytest.raises(UserError) as e:
    config_checks.validate(config)
  missing = [w for w in words if w not in str(e.value)]
  assert not missing, f'{key}={value!r}: the message lacks {missing}: {e.value}'


def test_series_sampling_without_drawn_batches_is_refused_with_the_fix():
  with pytest.raises(UserError) as e:
    config_checks.validate(tiny_config(**{'data.sample': 'series'}))
  for words in ('data.sample', 'train.steps_per_epoch=0', '--config.train.steps_per_epoch',
                'data.sample="window"'):
    assert words in str(e.value), f'the message lacks {words!r}: {e.value}'


def test_a_drawn_batch_larger_than_the_training_windows_is_refused():
  """batch_size above the training windows is an error when batches are drawn (every batch
  would repeat windows), naming both numbers and the fix; with steps_per_epoch 0 it is not."""
  config = tiny_config(**{'train.steps_per_epoch': 3, 'train.batch_size': 5000})
  data = data_lib.prepare(config.data)
  n = len(data.train_starts)
  with pytest.raises(UserError) as e:
    train_lib.make_trainer(config, data)
  for words in ('train.batch_size=5000', f'{n} training windows', 'train.steps_per_epoch=3',
                f'--config.train.batch_size={n}'):
    assert words in str(e.value), f'the message lacks {words!r}: {e.value}'
  config_checks.check_draws(tiny_config(**{'train.batch_size': 5000}), n)
  config_checks.check_draws(tiny_config(**{'train.steps_per_epoch': 3,
                                           'train.batch_size': n}), n)
