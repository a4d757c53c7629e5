"""Large panels in bounded memory: a panel of 200 series x 300 hours read, scored in chunks and
forecast in batches, each checked against the unbatched computation or an independent one
(pandas alone, NumPy alone, the model applied by hand)."""
import tracemalloc

import jax
import numpy as np
import pandas as pd
import pytest
from sklearn import preprocessing

from conftest import tiny_config
from rnnjax import chunked
from rnnjax import csv_file
from rnnjax import data as data_lib
from rnnjax import evaluate
from rnnjax import forecast
from rnnjax import linear_baseline
from rnnjax import metrics
from rnnjax import models
from rnnjax import prediction
from rnnjax import sources
from rnnjax import trained_run

NUM_SERIES, NUM_POINTS, WINDOW, SEASON = 200, 300, 24, 24


@pytest.fixture(scope='module')
def panel(tmp_path_factory):
  """(the generated frame, its CSV's path, the config reading it, the series read from it in
  chunks of 4,096 rows, and their dataset)."""
  frame = sources.synthetic_panel(NUM_SERIES, NUM_POINTS)
  path = str(tmp_path_factory.mktemp('large_panel') / 'panel.csv')
  frame.to_csv(path, index=False)
  config = tiny_config(**{
      'data.source': 'csv', 'data.path': path, 'data.target': 'value',
      'data.id_column': 'series', 'data.window': WINDOW, 'data.horizon': 1,
      'data.season': SEASON, 'model.hidden_sizes': (8,), 'train.epochs': 1})
  chunk_rows = csv_file.CSV_CHUNK_ROWS
  csv_file.CSV_CHUNK_ROWS = 4096  # 15 chunks, series across their edges
  try:
    loaded = data_lib.load(config.data)
  finally:
    csv_file.CSV_CHUNK_ROWS = chunk_rows
  data = data_lib.assemble(config.data, loaded, data_lib.input_columns(config.data))
  return frame, path, config, loaded, data


def test_the_generator_writes_every_series_hourly_and_refuses_an_empty_panel():
  frame = sources.synthetic_panel(3, 50, seed=1)
  assert list(frame.columns) == ['series', 'time', 'value']
  assert len(frame) == 150 and list(frame['series'].unique()) == ['s0', 's1', 's2']
  for _, one in frame.groupby('series'):
    assert (np.diff(one['time'].to_numpy()) == np.timedelta64(1, 'h')).all(), 'not hourly'
  pd.testing.assert_frame_equal(frame, sources.synthetic_panel(3, 50, seed=1),
                                obj='the same seed gives another panel')
  with pytest.raises(ValueError, match='num_series > 0'):
    sources.synthetic_panel(0, 50)


def test_a_panel_read_in_chunks_is_what_pandas_reads_whole(panel):
  """read_csv keeps text as categoricals chunk by chunk; each series must still come out as
  pandas alone reads and groups the file: order of first appearance, times, values."""
  _, path, _, loaded, _ = panel
  whole = pd.read_csv(path, dtype={'series': str})
  expected = list(whole.groupby('series', sort=False))
  assert [one.name for one in loaded] == [name for name, _ in expected], 'series order changed'
  for one, (name, rows) in zip(loaded, expected, strict=True):
    np.testing.assert_array_equal(one.times, pd.DatetimeIndex(pd.to_datetime(rows['time'])),
                                  err_msg=f'series {name!r}: times differ from pandas\'')
    np.testing.assert_array_equal(one.values_TF[:, 0], rows['value'].to_numpy(),
                                  err_msg=f'series {name!r}: values differ from pandas\'')


def test_the_assembled_panel_is_each_series_scaled_on_its_own_training_part(panel):
  """The joined arrays, filled series by series, against a scaler fitted by hand per series."""
  frame, _, config, _, data = panel
  assert len(data.series_ids) == NUM_SERIES and data.bounds[-1] == NUM_SERIES * NUM_POINTS
  windows = NUM_POINTS - WINDOW - 1 + 1
  n_train = int(windows * (1 - config.data.val_fraction))
  fit_end = n_train - 1 + WINDOW + 1  # past the last training target
  for i, (name, rows) in enumerate(frame.groupby('series', sort=False)):
    values = rows['value'].to_numpy()[:, None]
    lo, hi = data.bounds[i], data.bounds[i + 1]
    np.testing.assert_array_equal(data.values_TF[lo:hi], values, err_msg=f'series {name!r}')
    scaled = preprocessing.MinMaxScaler().fit(values[:fit_end]).transform(values)
    np.testing.assert_array_equal(data.scaled_TF[lo:hi], scaled.astype(np.float32),
                                  err_msg=f'series {name!r} is not scaled on its own training part')
  assert len(data.train_starts) == NUM_SERIES * n_train


def test_series_rows_select_what_a_mask_per_series_selects():
  rng = np.random.RandomState(0)
  grouped = np.repeat(np.arange(6), rng.randint(0, 5, 6))
  for which in (grouped, rng.permutation(grouped), np.zeros(0, int)):
    rows = chunked.series_rows(which)
    assert [i for i, _ in rows] == sorted(set(which.tolist())), 'series missing or out of order'
    for i, index in rows:
      np.testing.assert_array_equal(np.arange(len(which))[index], np.flatnonzero(which == i),
                                    err_msg=f'series {i}: other rows than its mask')


def test_means_of_one_chunk_are_numpys_and_of_several_close_to_it():
  rng = np.random.RandomState(1)
  for values in (rng.normal(size=(1000, 3)), rng.normal(size=1000).astype(np.float32),
                 rng.normal(size=1000) > 0, jax.numpy.asarray(rng.normal(size=100), 'float32')):
    one, several = chunked.Means(), chunked.Means()
    one.add('x', values)
    for chunk in chunked.window_chunks(len(values), 128):
      several.add('x', values[chunk])
    assert one.mean('x') == float(np.mean(values)), f'one chunk of {values.dtype} is not np.mean'
    assert several.mean('x') == pytest.approx(float(np.mean(values)), rel=1e-6, abs=1e-7)
  assert np.isnan(chunked.Means().mean('nothing'))


def _rmse(a, b):
  return float(np.sqrt(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


def test_chunked_metrics_equal_one_chunk_and_numpy_per_series(panel, monkeypatch):
  _, _, config, _, data = panel
  starts = data.val_starts
  forecast_NS = data.targets(starts) + np.random.RandomState(2).normal(0, 0.5, (len(starts), 1))
  linear = linear_baseline.fit_linear(data)
  whole = metrics.forecast_metrics(data, starts, forecast_NS, SEASON, 'val', linear)
  monkeypatch.setattr(chunked, 'CHUNK_WINDOWS', 1000)  # 12 chunks, series across their edges
  assert len(chunked.window_chunks(len(starts))) > 10
  chunks = metrics.forecast_metrics(data, starts, forecast_NS, SEASON, 'val', linear)
  for key, value in whole.items():
    if key != 'per_series':
      assert chunks[key] == pytest.approx(value, rel=1e-12), f'{key} changed with chunks'
  # Each series against NumPy on the raw values: the model's and persistence's errors.
  values_T = data.values_TF[:, 0]
  last_N = starts + WINDOW - 1
  for i, name in enumerate(data.series_ids[:20]):
    mine = (last_N >= data.bounds[i]) & (last_N < data.bounds[i + 1])
    true = values_T[last_N[mine] + 1]
    entry = chunks['per_series'][name]
    assert entry['val_rmse'] == pytest.approx(_rmse(forecast_NS[mine, 0], true), rel=1e-12), name
    assert entry['baseline_persistence_rmse'] == pytest.approx(
        _rmse(values_T[last_N[mine]], true), rel=1e-12), f'{name}: persistence'
    assert entry == pytest.approx(whole['per_series'][name], rel=1e-12), name


def _assert_close(got, want, where: str, rel: float) -> None:
  """Nested dicts and lists of scores equal to `rel` (floats) or exactly (anything else)."""
  if isinstance(want, dict):
    assert list(got) == list(want), f'{where}: keys {sorted(set(got) ^ set(want))} differ'
    for key in want:
      _assert_close(got[key], want[key], f'{where}[{key!r}]', rel)
  elif isinstance(want, list):
    assert len(got) == len(want), f'{where}: {len(got)} entries, expected {len(want)}'
    for i, (a, b) in enumerate(zip(got, want)):
      _assert_close(a, b, f'{where}[{i}]', rel)
  elif isinstance(want, float):
    assert got == pytest.approx(want, rel=rel, nan_ok=True), f'{where}: {got} != {want}'
  else:
    assert got == want, f'{where}: {got!r} != {want!r}'


def test_scoring_in_chunks_equals_scoring_in_one(panel, monkeypatch):
  """Two members, every part: the same scores (to 1e-6: the scaled losses are float32 sums)
  and the same panels."""
  _, _, config, _, data = panel
  rng = np.random.RandomState(3)
  scaled = {part: (data.scaled_TF[data.target_positions(starts), 0][None]
                   + rng.normal(0, 0.02, (2, len(starts), 1))).astype(np.float32)
            for part, starts in data.parts.items()}
  alive = np.zeros(2, bool)
  whole, whole_panels, whole_members = evaluate.score(config, data, scaled, alive)
  monkeypatch.setattr(chunked, 'CHUNK_WINDOWS', 999)
  chunks, chunk_panels, chunk_members = evaluate.score(config, data, scaled, alive)
  _assert_close(chunks, whole, 'scores', 1e-6)
  _assert_close(chunk_members, whole_members, 'members', 1e-6)
  for part in data.parts:
    for got, want in zip(chunk_panels[part][:2] + chunk_panels[part][2],
                         whole_panels[part][:2] + whole_panels[part][2], strict=True):
      np.testing.assert_array_equal(got, want, err_msg=f'the {part} panel changed with chunks')


def _traced_peak(fn) -> int:
  tracemalloc.start()
  try:
    fn()
    return tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()


def test_scoring_memory_does_not_grow_with_the_windows(panel, monkeypatch):
  """Scoring 44,000 training windows in chunks of 1,024 allocates a fraction of what the same
  scores of one chunk of all of them do: the float64 copies are per chunk, not per window."""
  _, _, _, _, data = panel
  starts = data.train_starts
  forecast_NS = data.targets(starts)
  linear = linear_baseline.fit_linear(data)
  score = lambda: metrics.forecast_metrics(data, starts, forecast_NS, SEASON, 'val', linear)  # noqa: E731
  monkeypatch.setattr(chunked, 'CHUNK_WINDOWS', len(starts))
  whole = _traced_peak(score)
  monkeypatch.setattr(chunked, 'CHUNK_WINDOWS', 1024)
  chunks = _traced_peak(score)
  assert whole > 10 * 8 * len(starts), f'one chunk of every window took only {whole} bytes'
  assert chunks < whole / 5, (f'scoring in chunks of 1,024 windows took {chunks} bytes at once, '
                              f'against {whole} for one chunk of {len(starts)}')


@pytest.fixture(scope='module')
def untrained_run(panel):
  """The panel's model at its initial parameters, as `trained_run.load_run` would give it."""
  _, _, config, _, data = panel
  model = models.from_config(config)
  x_BWF = np.zeros((1, WINDOW, data.num_features), np.float32)
  params = model.init(jax.random.PRNGKey(0), x_BWF, None)['params']
  predict = prediction.window_predictor(model, WINDOW, data.steps, model.num_known)
  scalers = {name: (s, t) for name, s, t in zip(data.series_ids, data.scalers,
                                                 data.target_scalers, strict=True)}
  return trained_run.TrainedRun(
      config=config, params=params, scalers=scalers, columns=data.columns, members=None,
      predict_jit=jax.jit(predict),
      predict_members_jit=jax.jit(jax.vmap(predict, in_axes=(0, None, None))))


def test_batched_forecasts_equal_one_shot(panel, untrained_run):
  _, _, _, _, data = panel
  run = untrained_run
  starts = data.val_starts[:3000]
  one_shot = prediction.predict_windows(run, run.params, data.scaled_TF, starts,
                                        batch_size=len(starts))
  batched = prediction.predict_windows(run, run.params, data.scaled_TF, starts,
                                       batch_size=1024)  # the last batch padded
  np.testing.assert_allclose(batched, one_shot, rtol=1e-6, atol=1e-7,
                             err_msg='batches of 1,024 windows forecast otherwise than one call')
  stacked = jax.tree.map(lambda a: np.stack([a, a]), run.params)
  members = prediction.predict_windows(run, stacked, data.scaled_TF, starts,
                                       batch_size=1024, member_axis=True)
  np.testing.assert_allclose(members, np.stack([one_shot, one_shot]), rtol=1e-6, atol=1e-7,
                             err_msg='stacked members forecast otherwise than one model')


def test_a_panel_forecast_gives_each_series_its_windows_and_one_forecast_past_its_end(
    panel, untrained_run):
  _, _, config, loaded, _ = panel
  run = untrained_run
  frame = forecast.forecast_series(run, loaded, 4096, 'series')
  counts = frame.groupby('series', sort=False).size()
  assert list(counts.index) == [one.name for one in loaded], 'series missing or reordered'
  assert (counts == NUM_POINTS - WINDOW + 1).all(), 'a series lacks windows (horizon 1)'
  future = frame[frame['actual'].isna()]
  assert list(future['series']) == [one.name for one in loaded], (
      'not exactly one forecast past the end of each series')
  for one in loaded[:: NUM_SERIES // 4]:  # the panel's rows are each series' own forecast
    alone = forecast.forecast_frame(run, one.times, one.values_TF, name=one.name)
    rows = frame[frame['series'] == one.name].drop(columns='series').reset_index(drop=True)
    pd.testing.assert_frame_equal(rows, alone, rtol=1e-6, obj=f'series {one.name!r}')
  # The last forecast of the last series, by hand: its scaler, its window, the model applied.
  one = loaded[-1]
  scaler, target_scaler = run.scalers[one.name]
  window_1WF = scaler.transform(one.values_TF[-WINDOW:]).astype(np.float32)[None]
  model = models.from_config(config)
  scaled = np.asarray(model.apply({'params': run.params}, window_1WF, None))
  by_hand = target_scaler.inverse_transform(scaled.reshape(-1, 1))[0, 0]
  assert frame['forecast'].iloc[-1] == pytest.approx(by_hand, rel=1e-5), (
      'the panel\'s last forecast is not the model applied to the last window by hand')
