"""rnnjax.evaluate.score: [members, windows, steps] forecasts scored against NumPy on the raw
series."""
import jax
import numpy as np
import pandas as pd
import pytest
from scipy import special

from conftest import tiny_config
from rnnjax import data as data_lib
from rnnjax import evaluate
from rnnjax import host_memory
from rnnjax import scoring_rules
from rnnjax import train as train_lib


def _dataset():
  config = tiny_config()
  config.data.window, config.data.horizon = 5, 3
  values = np.sin(np.arange(200) / 4.0)[:, None] * 10 + 20
  data = data_lib.prepare(config.data, pd.date_range('2025-01-01', periods=200, freq='h'),
                          values, ('temperature',))
  return config, data


def _scaled_forecasts(data, offsets_M):
  """[M, N, 1] scaled forecasts: each member's forecast is the truth plus its offset (degrees)."""
  out = {}
  for part, starts in (('train', data.train_starts), ('val', data.val_starts)):
    true = data.values_TF[starts + 5 - 1 + 3, 0]
    raw = true[None, :] + np.asarray(offsets_M, float)[:, None]
    out[part] = data.target_scaler.transform(raw.reshape(-1, 1)).reshape(raw.shape)[..., None]
  return out


def test_members_mean_band_and_per_member_errors_match_numpy():
  config, data = _dataset()
  offsets = np.array([1.0, -0.5, 2.0, 40.0])  # member 3 diverged: left out of mean and band
  diverged = np.array([False, False, False, True])
  results, panels, members = evaluate.score(config, data, _scaled_forecasts(data, offsets),
                                            diverged)
  alive = offsets[~diverged]
  assert results['val_rmse'] == pytest.approx(abs(alive.mean()), rel=1e-6), results['val_rmse']
  assert results['val_mae'] == pytest.approx(abs(alive.mean()), rel=1e-6)
  true, mean, band = panels['val']
  np.testing.assert_allclose(mean - true, alive.mean(), rtol=1e-6)
  low, high = np.quantile(alive, 0.1), np.quantile(alive, 0.9)
  np.testing.assert_allclose(band[0] - true, low, rtol=1e-6)
  np.testing.assert_allclose(band[1] - true, high, rtol=1e-6)
  assert results['val_band_coverage'] == (1.0 if low <= 0 <= high else 0.0)
  assert len(members) == 4
  for k, member in enumerate(members):
    assert member['val_rmse'] == pytest.approx(abs(offsets[k]), rel=1e-6), (k, member)
    assert member['train_mae'] == pytest.approx(abs(offsets[k]), rel=1e-6), (k, member)


def test_a_single_run_is_one_member_with_no_band():
  config, data = _dataset()
  results, panels, _ = evaluate.score(config, data, _scaled_forecasts(data, [0.25]),
                                      np.zeros(1, bool))
  assert results['val_rmse'] == pytest.approx(0.25, rel=1e-6)
  assert panels['val'][2] is None and 'val_band_coverage' not in results
  times = pd.date_range('2025-01-01', periods=200, freq='h')
  for part, starts in (('train', data.train_starts), ('val', data.val_starts)):
    assert list(panels['times'][part]) == list(times[starts + 5 - 1 + 3]), (
        f'the {part} panel\'s times are not its targets\' (window 5, horizon 3)')
  assert (panels['xlabel'], panels['ylabel']) == (
      'Target time (the synthetic series, hourly from 2025-01-01 10:00)', 'temperature'), (
      'a config of the synthetic source says so on the time axis; the target names the values')


def test_forecasts_of_the_wrong_shape_are_refused():
  config, data = _dataset()
  scaled = _scaled_forecasts(data, [0.0, 1.0])
  scaled['val'] = scaled['val'][:, :-1]
  with pytest.raises(ValueError, match='val forecasts have shape'):
    evaluate.score(config, data, scaled, np.zeros(2, bool))
  scaled['val'] = _scaled_forecasts(data, [0.0, 1.0])['val'][..., 0]  # no step axis
  with pytest.raises(ValueError, match='val forecasts have shape'):
    evaluate.score(config, data, scaled, np.zeros(2, bool))


@pytest.mark.parametrize('num_seeds', [1, 3])
def test_warm_up_prepares_every_program_evaluate_runs(num_seeds, monkeypatch, tmp_path):
  """The forecasting programs are traced and compiled while training runs (rnnjax.training_loop starts
  evaluate.warm_up in a helper thread): evaluate must then find all of them in JAX's cache."""
  from rnnjax import run as run_lib
  seen = {}
  evaluate_for_real = evaluate.evaluate

  def counting(config, data, trainer, state, history, members):
    sizes = lambda: (trainer.predict_jit._cache_size(),  # noqa: E731
                     trainer.predict_members_jit._cache_size())
    seen['before'] = sizes()
    out = evaluate_for_real(config, data, trainer, state, history, members)
    seen['after'] = sizes()
    return out

  monkeypatch.setattr(evaluate, 'evaluate', counting)
  run_lib.train_and_evaluate(tiny_config(num_seeds=num_seeds), str(tmp_path), progress=False)
  assert sum(seen['before']) > 0, f'nothing was prepared before evaluate: {seen}'
  assert seen['after'] == seen['before'], (
      f'evaluate compiled programs the warm-up did not prepare (cache sizes of predict_jit, '
      f'predict_members_jit before and after): {seen}')


def test_a_score_that_disagrees_with_training_is_reported(caplog):
  """The scorer's validation MSE of each member against the one training computed."""
  import types
  config = tiny_config(**{'train.early_stopping_patience': 2})
  state = types.SimpleNamespace(best_val_loss=np.array([0.5, 0.25, 0.1], np.float32))
  per_member = [{'val_mse_scaled': 0.5}, {'val_mse_scaled': 0.3}, {'val_mse_scaled': 9.0}]
  with caplog.at_level('WARNING'):
    evaluate._check_against_training(config, state, {}, per_member,
                                     np.array([False, False, True]), True)
  assert 'member 1' in caplog.text and '0.3 when scored, but 0.25 in training' in caplog.text
  assert 'member 0' not in caplog.text, 'an agreeing member was reported'
  assert 'member 2' not in caplog.text, 'a diverged member was checked'
  caplog.clear()
  history = {'val_loss': np.array([0.9, 0.4, 0.2], np.float32), 'active': np.ones(3, bool)}
  with caplog.at_level('WARNING'):
    evaluate._check_against_training(tiny_config(), None, history, [{'val_mse_scaled': 0.2}],
                                     np.zeros(1, bool), False)
  assert caplog.text == '', f'the last epoch\'s val_loss was not the one compared:\n{caplog.text}'


def test_gaussian_members_are_mixed_and_scored_on_the_mixture():
  """Two gaussian members, the truth + 1 and the truth - 3 with scales 1 and 2 (degrees)."""
  config, data = _dataset()
  config.model.head = 'gaussian'
  unit = 1.0 / data.target_scaler.scale_[0]  # degrees per scaled unit (MinMaxScaler)
  scaled = {}
  for part, means in _scaled_forecasts(data, [1.0, -3.0]).items():
    scales = np.broadcast_to(np.array([1.0, 2.0])[:, None, None] / unit, means.shape)
    scaled[part] = np.stack([means, scales], -1)
  results, panels, members = evaluate.score(config, data, scaled, np.zeros(2, bool))
  # Point errors are the mixture mean's: the truth - 1.
  assert results['val_rmse'] == pytest.approx(1.0, rel=1e-6)
  assert [m['val_rmse'] for m in members] == pytest.approx([1.0, 3.0], rel=1e-6)
  assert results['val_crps'] == pytest.approx(
      scoring_rules.crps_gaussian_mixture(np.array([[1.0], [-3.0]]), np.array([[1.0], [2.0]]),
                                          np.array([0.0]))[0], rel=1e-6)
  grid = np.linspace(-20, 20, 400_001)
  mixture = (special.ndtr(grid - 1.0) + special.ndtr((grid + 3.0) / 2.0)) / 2
  low, high = np.interp([0.1, 0.9], mixture, grid)
  true, _, band = panels['val']
  np.testing.assert_allclose(band[0] - true, low, atol=1e-3)
  np.testing.assert_allclose(band[1] - true, high, atol=1e-3)
  assert panels['band_label'] == '80% central interval'
  assert 'val_band_coverage' not in results and 'val_coverage' in results


def test_a_point_ensemble_band_is_labelled_a_spread_across_seeds():
  config, data = _dataset()
  _, panels, _ = evaluate.score(config, data, _scaled_forecasts(data, [0.0, 1.0]),
                                np.zeros(2, bool))
  assert panels['band_label'] == 'Spread across seeds (q0.1-q0.9), not a predictive interval'


def test_memory_needed_counts_members_windows_steps_and_outputs():
  _, data = _dataset()
  windows = len(data.train_starts) + len(data.val_starts)
  config = tiny_config()
  assert host_memory.memory_needed(config, data, 7) == 7 * windows * 1 * host_memory.BYTES_PER_FORECAST
  # A probabilistic head's distribution scores copy its validation forecasts whole besides.
  config = tiny_config(**{'model.head': 'quantile'})
  assert host_memory.memory_needed(config, data, 2) == 2 * len(config.model.quantiles) * (
      windows * host_memory.BYTES_PER_FORECAST
      + len(data.val_starts) * host_memory.BYTES_PER_DISTRIBUTION_FORECAST)
  # With the trainer, each member's training state and two parameter-sized arrays besides.
  config = tiny_config()
  trainer = train_lib.make_trainer(config, data)
  state = trainer.init(jax.random.PRNGKey(0))
  nbytes = lambda tree: sum(np.asarray(a).nbytes for a in jax.tree.leaves(tree))
  assert host_memory.memory_needed(config, data, 3, trainer) == (
      host_memory.memory_needed(config, data, 3) + 3 * (nbytes(state) + 2 * nbytes(state.params)))


def test_a_run_whose_scoring_does_not_fit_is_refused_before_training(monkeypatch, tmp_path):
  from rnnjax import run as run_lib
  from rnnjax.errors import UserError
  monkeypatch.setattr(host_memory, "available_memory", lambda: 2**20)  # 1 MiB available
  workdir = tmp_path / 'w'
  with pytest.raises(UserError, match=r'training and scoring 1000 members needs about .* GiB '
                                      r'of memory \(1000 members x \d+ windows x 1 steps, and '
                                      r'their training states\).*lower num_seeds'):
    run_lib.train_and_evaluate(tiny_config(num_seeds=1000), str(workdir), progress=False)
  assert not workdir.exists(), 'a refused run created its workdir'


def test_batch_larger_than_the_training_windows_is_warned(caplog, tmp_path):
  from rnnjax import run as run_lib
  # tiny_config's 20 days hold about 300 training windows; a batch of 1,000 pads each epoch's
  # one batch with about 700 masked windows.
  config = tiny_config(**{'train.batch_size': 1000, 'train.epochs': 1})
  run_lib.train_and_evaluate(config, str(tmp_path / 'w'), progress=False)
  said = [r.getMessage() for r in caplog.records if 'batch_size=1000 ' in r.getMessage()]
  assert said and 'training windows' in said[0], [r.getMessage() for r in caplog.records]


def test_proc_fields_are_read_in_bytes_and_missing_ones_are_none(tmp_path):
  status = tmp_path / 'status'
  status.write_text('Name:\tpython\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\n')
  assert host_memory.proc_kib_field(str(status), 'VmHWM') == 2048 * 1024
  assert host_memory.proc_kib_field(str(status), 'VmHW') is None, 'a field matched by prefix'
  assert host_memory.proc_kib_field(str(status), 'MemAvailable') is None
  assert host_memory.proc_kib_field(str(tmp_path / 'absent'), 'VmHWM') is None
