"""rnnjax.data against the tutorial's own loops, and the CSV loader's error messages."""
import json
import math
from datetime import datetime

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from conftest import tiny_config
from rnnjax import data as data_lib
from rnnjax import scaling
from rnnjax import sources
from rnnjax import windows
from rnnjax.errors import UserError


# The next two functions restate the tutorial's `get_serie_tiempo` and `get_datos`
# (shared/reference/keras_seed.py) for comparison: the seeded global generator and the Python
# for-loop windowing. Only the global random state is saved and restored around the seed call,
# so the reference does not leak into other tests.
def tutorial_series(datetime_start, num_dias=30, pendiente=0.005, amplitud=5, ruido_amplitud=1):
  saved = np.random.get_state()
  try:
    np.random.seed(7)
    num_datos = num_dias * 24
    x = np.linspace(0, num_dias * 2 * np.pi, num_datos)
    fechas = pd.date_range(start=datetime_start, periods=num_datos, freq='h')
    tendencia = np.linspace(0, pendiente * num_datos, num_datos)
    onda = amplitud * np.sin(x)
    ruido = np.random.normal(0, ruido_amplitud, num_datos)
    return fechas, tendencia + onda + ruido
  finally:
    np.random.set_state(saved)


def tutorial_windows(serie, tamanyo_ventana=24, adelanto_prediccion=12):
  x, y = [], []
  for i in range(len(serie) - tamanyo_ventana - adelanto_prediccion):
    x.append(serie[i:i + tamanyo_ventana])
    y.append(serie[i + tamanyo_ventana + adelanto_prediccion])
  x, y = np.array(x), np.array(y)
  n = math.floor(x.shape[0] * 0.8)
  w = tamanyo_ventana
  return (x[:n].reshape(-1, w, 1), y[:n].reshape(-1, 1), x[n:].reshape(-1, w, 1),
          y[n:].reshape(-1, 1))


TUTORIAL_START = datetime(2025, 1, 1, 10, 0, 0)


def rnnjax_windows(series_T, window, horizon, val_fraction=0.2):
  starts = windows.window_starts(len(series_T), window, horizon)
  train, val = windows.split_starts(starts, val_fraction)
  series_TF = series_T[:, None]
  x_train, y_train = windows.gather_windows(series_TF, train, window, horizon)
  x_val, y_val = windows.gather_windows(series_TF, val, window, horizon)
  return x_train, y_train, x_val, y_val


# ---------------------------------------------------------------------------- synthetic series


def test_synthetic_series_equals_tutorial_generator():
  ref_times, ref_values = tutorial_series(TUTORIAL_START, num_dias=200, ruido_amplitud=0.5)
  times, values = sources.synthetic_series(num_days=200, noise=0.5)
  assert values.shape == (4800,), f'200 days hourly should be 4800 points, got {values.shape}'
  np.testing.assert_array_equal(
      values, ref_values, err_msg='synthetic_series differs from the tutorial generator '
      '(np.random.seed(7); trend + 5 sin + N(0, 0.5))')
  assert times.equals(ref_times), (
      f'timestamps differ from the tutorial (hourly from 2025-01-01 10:00): '
      f'got {times[:2].tolist()} ... {times[-1]}, want {ref_times[:2].tolist()} ... {ref_times[-1]}')


def test_synthetic_series_leaves_global_random_state_alone():
  np.random.seed(1234)
  before = np.random.get_state()
  sources.synthetic_series(num_days=3)
  after = np.random.get_state()
  assert before[0] == after[0] and np.array_equal(before[1], after[1]) and \
      before[2:] == after[2:], 'synthetic_series changed NumPy global random state'


# ---------------------------------------------------------------------------- windows


@pytest.mark.parametrize('window,adelanto', [(24, 12), (5, 0), (48, 3), (1, 30)])
def test_windows_equal_tutorial_get_datos(window, adelanto):
  _, serie = tutorial_series(TUTORIAL_START, num_dias=200, ruido_amplitud=0.5)
  want = tutorial_windows(serie, window, adelanto)
  got = rnnjax_windows(serie, window, adelanto + 1)
  names = ('x_train', 'y_train', 'x_val', 'y_val')
  for name, g, w in zip(names, got, want, strict=True):
    assert g.shape == w.shape, (
        f'{name} shape {g.shape} != tutorial {w.shape} for window={window}, '
        f'adelanto={adelanto} (horizon={adelanto + 1})')
    np.testing.assert_array_equal(
        g, w, err_msg=f'{name} differs from the tutorial get_datos(serie, {window}, {adelanto})')


def test_window_starts_count_and_split_sizes():
  # Tutorial: len - window - adelanto windows, the first floor(0.8 n) train.
  starts = windows.window_starts(100, 10, 5)
  np.testing.assert_array_equal(starts, np.arange(100 - 10 - 4),
                                err_msg='window_starts: wrong number/order of starts')
  train, val = windows.split_starts(starts, 0.2)
  assert len(train) == math.floor(86 * 0.8) and len(val) == 86 - len(train), (
      f'split_starts(86 starts, 0.2) gave {len(train)} train / {len(val)} val')
  assert train[-1] < val[0], 'validation windows must all come after the training ones'
  assert len(windows.window_starts(10, 8, 5)) == 0, 'a series too short must give no windows'


def _multi_feature_case():
  rng = np.random.RandomState(0)
  series = rng.normal(size=(60, 3)).astype(np.float32)
  starts = rng.randint(0, 60 - 7 - 4 + 1, size=11).astype(np.int32)
  return series, starts, 7, 4


def test_gather_windows_numpy_matches_explicit_loop_with_target_index():
  series, starts, window, horizon = _multi_feature_case()
  x, y = windows.gather_windows(series, starts, window, horizon, target_index=2)
  want_x = np.stack([series[s:s + window] for s in starts])
  want_y = np.array([[series[s + window - 1 + horizon, 2]] for s in starts])
  np.testing.assert_array_equal(x, want_x, err_msg='gather_windows inputs differ from loop')
  np.testing.assert_array_equal(y, want_y,
                                err_msg='gather_windows target (target_index=2) differs from loop')
  _, y_steps = windows.gather_windows(series, starts, window, range(1, horizon + 1))
  want_steps = np.array([[series[s + window - 1 + k, 0] for k in range(1, horizon + 1)]
                         for s in starts])
  np.testing.assert_array_equal(
      y_steps, want_steps, err_msg='gather_windows targets of steps 1..horizon differ from loop')


def test_gather_windows_same_on_numpy_and_jax_and_under_jit():
  series, starts, window, horizon = _multi_feature_case()
  want_x, want_y = windows.gather_windows(series, starts, window, horizon, target_index=1)
  got_x, got_y = windows.gather_windows(jnp.asarray(series), jnp.asarray(starts), window,
                                        horizon, target_index=1)
  assert isinstance(got_x, jax.Array), 'jax input should give a jax output'
  np.testing.assert_array_equal(np.asarray(got_x), want_x, err_msg='jax x differs from numpy x')
  np.testing.assert_array_equal(np.asarray(got_y), want_y, err_msg='jax y differs from numpy y')
  jit_x, jit_y = jax.jit(
      lambda s, b: windows.gather_windows(s, b, window, horizon, target_index=1))(
          jnp.asarray(series), jnp.asarray(starts))
  np.testing.assert_array_equal(np.asarray(jit_x), want_x, err_msg='jitted x differs')
  np.testing.assert_array_equal(np.asarray(jit_y), want_y, err_msg='jitted y differs')


# ---------------------------------------------------------------------------- prepare / scaling


def _last_train_target(n_points, window, horizon, val_fraction):
  """Independent count: tutorial window count, floor split, target of the last training window."""
  n_windows = n_points - window - (horizon - 1)
  n_train = math.floor(n_windows * (1 - val_fraction))
  return (n_train - 1) + window + (horizon - 1)


def test_prepare_fits_minmax_scaler_on_training_part_only():
  config = tiny_config()
  d = data_lib.prepare(config.data)
  values = d.values_TF
  last = _last_train_target(len(values), 24, 13, 0.2)
  assert d.target_positions(d.train_starts)[-1] == last, 'last training target position is off'
  np.testing.assert_array_equal(
      d.scaler.data_max_, values[:last + 1].max(axis=0),
      err_msg='scaler.data_max_ is not the max of the training part (values[:last target + 1])')
  np.testing.assert_array_equal(
      d.scaler.data_min_, values[:last + 1].min(axis=0),
      err_msg='scaler.data_min_ is not the min of the training part')
  lo, hi = values[:last + 1].min(), values[:last + 1].max()
  np.testing.assert_allclose(d.scaled_TF[:, 0], (values[:, 0] - lo) / (hi - lo), rtol=0,
                             atol=1e-6, err_msg='scaled series is not (v - train min) / range')
  assert d.scaled_TF.dtype == np.float32, f'scaled series is {d.scaled_TF.dtype}, not float32'


def test_prepare_validation_outside_training_range_scales_outside_unit_interval():
  config = tiny_config()
  config.data.window, config.data.horizon = 4, 2
  # A rising ramp: every validation value is above the training maximum.
  values = np.arange(100, dtype=np.float64)[:, None]
  times = pd.date_range('2025-01-01', periods=100, freq='h')
  d = data_lib.prepare(config.data, times, values, ('temperature',))
  last = _last_train_target(100, 4, 2, 0.2)
  assert d.scaler.data_max_[0] == last, (
      f'scaler saw values up to {d.scaler.data_max_[0]}, training targets end at {last}')
  val_scaled = d.scaled_TF[d.target_positions(d.val_starts), 0]
  assert (val_scaled > 1.0).all(), (
      f'validation values above the training range should scale above 1 (scaler fit on training '
      f'part only); got min {val_scaled.min()}')
  train_scaled = d.scaled_TF[:last + 1, 0]
  assert train_scaled.min() == 0.0 and train_scaled.max() == 1.0, (
      f'training part should span exactly [0, 1], got [{train_scaled.min()}, {train_scaled.max()}]')


def test_unscale_target_inverts_scaling_with_extra_features():
  config = tiny_config()
  rng = np.random.RandomState(3)
  values = np.stack([rng.normal(20, 5, 300), rng.normal(1000, 300, 300)], axis=1)
  times = pd.date_range('2025-01-01', periods=300, freq='h')
  d = data_lib.prepare(config.data, times, values, ('temperature', 'pressure'))
  assert d.num_features == 2
  back = d.unscale_target(d.scaled_TF[:, 0])
  np.testing.assert_allclose(back, values[:, 0], rtol=1e-5, atol=1e-4,
                             err_msg='unscale_target does not invert the target column scaling')
  back_2d = d.unscale_target(d.scaled_TF[:10, :1])
  assert back_2d.shape == (10, 1), f'unscale_target changed the shape to {back_2d.shape}'


def test_prepare_standard_scaler_uses_training_mean_and_std():
  config = tiny_config(**{'data.scaler': 'standard'})
  d = data_lib.prepare(config.data)
  last = _last_train_target(len(d.values_TF), 24, 13, 0.2)
  train_part = d.values_TF[:last + 1, 0]
  np.testing.assert_allclose(d.scaler.mean_, [train_part.mean()], rtol=1e-12,
                             err_msg='standard scaler mean is not the training-part mean')
  np.testing.assert_allclose(d.scaler.scale_, [train_part.std()], rtol=1e-12,
                             err_msg='standard scaler scale is not the training-part std')
  np.testing.assert_allclose(d.unscale_target(d.scaled_TF[:, 0]), d.values_TF[:, 0], rtol=1e-5,
                             atol=1e-4, err_msg='unscale_target does not invert the standard scaler')


def test_prepare_unknown_scaler_is_user_error():
  config = tiny_config(**{'data.scaler': 'robust'})
  with pytest.raises(UserError, match='data.scaler'):
    data_lib.prepare(config.data)


@pytest.mark.parametrize('n_points', [37, 30])
def test_series_too_short_is_user_error(n_points):
  # window 24 + horizon 13: 37 points give 1 window (no room to split), 30 give none.
  config = tiny_config()
  values = np.linspace(0, 1, n_points)[:, None]
  times = pd.date_range('2025-01-01', periods=n_points, freq='h')
  with pytest.raises(UserError, match=f'{n_points} points') as info:
    data_lib.prepare(config.data, times, values, ('temperature',))
  assert 'too short' in str(info.value), f'message should say the series is too short: {info.value}'


def test_shortest_series_that_splits_is_accepted():
  # 38 points: 2 windows, floor(1.6) = 1 trains, 1 validates.
  config = tiny_config()
  values = np.linspace(0, 1, 38)[:, None]
  d = data_lib.prepare(config.data, pd.date_range('2025-01-01', periods=38, freq='h'), values,
                       ('temperature',))
  assert len(d.train_starts) == 1 and len(d.val_starts) == 1, (
      f'38 points should give 1 train and 1 val window, got {len(d.train_starts)}/{len(d.val_starts)}')


@pytest.mark.parametrize('kind', ['minmax', 'standard'])
def test_scaler_state_round_trips_through_json(kind):
  rng = np.random.RandomState(5)
  values = rng.normal(3, 2, size=(50, 2))
  scaler = scaling.make_scaler(kind).fit(values)
  state = json.loads(json.dumps(scaling.scaler_state(scaler)))
  rebuilt = scaling.scaler_from_state(state)
  assert type(rebuilt) is type(scaler), f'rebuilt a {type(rebuilt)}, not a {type(scaler)}'
  probe = rng.normal(3, 4, size=(7, 2))
  np.testing.assert_array_equal(rebuilt.inverse_transform(probe), scaler.inverse_transform(probe),
                                err_msg=f'{kind} scaler inverse_transform changed after round trip')
  np.testing.assert_array_equal(rebuilt.transform(probe), scaler.transform(probe),
                                err_msg=f'{kind} scaler transform changed after round trip')


# ---------------------------------------------------------------------------- load_csv


def _write(tmp_path, frame, name='series.csv'):
  path = tmp_path / name
  frame.to_csv(path, index=False)
  return str(path)


def _frame(n=30, start='2025-03-01 00:00', freq='h'):
  rng = np.random.RandomState(11)
  return pd.DataFrame({
      'time': pd.date_range(start, periods=n, freq=freq).strftime('%Y-%m-%d %H:%M:%S'),
      'temp': rng.normal(15, 3, n), 'wind': rng.normal(5, 1, n)})


def test_load_csv_round_trip_shuffled_rows_come_back_sorted(tmp_path):
  frame = _frame()
  shuffled = frame.sample(frac=1.0, random_state=0)
  assert not shuffled['time'].is_monotonic_increasing
  times, values = sources.load_csv(_write(tmp_path, shuffled), 'time', ['wind', 'temp'])
  want_times = pd.DatetimeIndex(pd.to_datetime(frame['time']))
  assert pd.DatetimeIndex(times).equals(want_times), 'timestamps not returned sorted/equal'
  assert values.dtype == np.float64 and values.shape == (30, 2), (
      f'values should be float64 [30, 2], got {values.dtype} {values.shape}')
  np.testing.assert_array_equal(values, frame[['wind', 'temp']].to_numpy(),
                                err_msg='values not in time order or columns not in asked order')


def test_load_csv_missing_file(tmp_path):
  missing = str(tmp_path / 'nope.csv')
  with pytest.raises(UserError, match='nope.csv'):
    sources.load_csv(missing, 'time', ['temp'])


def test_load_csv_missing_column_names_it_and_lists_columns(tmp_path):
  path = _write(tmp_path, _frame())
  with pytest.raises(UserError) as info:
    sources.load_csv(path, 'time', ['temp', 'humidity'])
  message = str(info.value)
  assert 'humidity' in message, f'message does not name the missing column: {message}'
  for column in ('time', 'temp', 'wind'):
    assert column in message.split('humidity', 1)[1], (
        f'message does not list the available column {column!r}: {message}')


@pytest.mark.parametrize('bad_value', ['', 'abc'])
def test_load_csv_bad_value_names_first_bad_line(tmp_path, bad_value):
  frame = _frame().astype({'temp': object})
  frame.loc[3, 'temp'] = bad_value   # data row 3 is line 5 (line 1 is the header)
  frame.loc[7, 'wind'] = np.nan      # line 9
  path = _write(tmp_path, frame)
  with pytest.raises(UserError) as info:
    sources.load_csv(path, 'time', ['temp', 'wind'])
  message = str(info.value)
  assert 'line 5' in message, f'message should name line 5, the first bad line: {message}'
  assert message.index('line 5') < message.index('line 9'), f'lines out of order: {message}'
  assert 'fill' in message, f'message should point to data.fill: {message}'


def test_load_csv_ffill_and_interpolate_fill_gaps_in_time_order(tmp_path):
  # Shuffled on disk, bad values at the start (23:00) and at 01:00, and no row at all for 02:00:
  # the fills add the 02:00 step and fill it like the bad values.
  frame = pd.DataFrame({
      'time': ['2025-01-01 03:00', '2024-12-31 23:00', '2025-01-01 01:00', '2025-01-01 00:00'],
      'temp': ['7.0', '', 'x', '1.0']})
  path = _write(tmp_path, frame)
  want_times = pd.DatetimeIndex(['2024-12-31 23:00', '2025-01-01 00:00', '2025-01-01 01:00',
                                 '2025-01-01 02:00', '2025-01-01 03:00'])
  # 3 of the 5 points are filled, more than data.max_fill_fraction's default allows.
  times, ffilled = sources.load_csv(path, 'time', ['temp'], fill='ffill', max_fill_fraction=1.0)
  assert times.equals(want_times), f'ffill should add the missing 02:00 step: got {list(times)}'
  # time order: 23:00 (missing, nothing before -> next value), 00:00=1, 01:00, 02:00 (missing),
  # 03:00=7
  np.testing.assert_array_equal(ffilled[:, 0], [1.0, 1.0, 1.0, 1.0, 7.0],
                                err_msg='ffill did not carry the last good value forward')
  times, interpolated = sources.load_csv(path, 'time', ['temp'], fill='interpolate',
                                         max_fill_fraction=1.0)
  assert times.equals(want_times), f'interpolate should add the 02:00 step: got {list(times)}'
  np.testing.assert_allclose(interpolated[:, 0], [1.0, 1.0, 3.0, 5.0, 7.0], rtol=1e-12,
                             err_msg='interpolate is not linear in time (01:00 and 02:00 are 1/3 '
                             'and 2/3 of the way from 00:00 to 03:00)')


@pytest.mark.parametrize('fill', ['ffill', 'interpolate'])
def test_load_csv_column_with_no_number_cannot_be_filled(tmp_path, fill):
  # Nothing to carry forward or interpolate from: returning NaN would only surface later as a
  # diverged run, so the loader must refuse and name the column.
  frame = _frame(n=6)
  frame['temp'] = 'n/a'
  with pytest.raises(UserError, match='temp'):
    times, values = sources.load_csv(_write(tmp_path, frame), 'time', ['temp', 'wind'], fill=fill)
    # Reached only if no error was raised: show what came back.
    pytest.fail(f'fill={fill!r} returned NaN values instead of an error: {values[:, 0]}')


def test_load_csv_unknown_fill_is_user_error(tmp_path):
  with pytest.raises(UserError, match='data.fill'):
    sources.load_csv(_write(tmp_path, _frame()), 'time', ['temp'], fill='zero')


def test_load_csv_unparseable_timestamp(tmp_path):
  frame = _frame()
  frame.loc[4, 'time'] = 'not a time'
  with pytest.raises(UserError) as info:
    sources.load_csv(_write(tmp_path, frame), 'time', ['temp'])
  message = str(info.value)
  assert 'line 6' in message and 'not a time' in message, (
      f'message should name line 6 and show the bad value: {message}')


def test_load_csv_duplicate_timestamps(tmp_path):
  frame = _frame()
  frame.loc[9, 'time'] = frame.loc[2, 'time']
  with pytest.raises(UserError) as info:
    sources.load_csv(_write(tmp_path, frame), 'time', ['temp'])
  message = str(info.value)
  assert 'duplicate' in message and 'line 4' in message and 'line 11' in message, (
      f'message should say duplicate and name lines 4 and 11: {message}')


def test_load_csv_through_prepare_config(tmp_path):
  frame = _frame(n=80)
  config = tiny_config(**{'data.source': 'csv', 'data.path': _write(tmp_path, frame),
                          'data.target': 'temp', 'data.features': ('wind',),
                          'data.window': 6, 'data.horizon': 2})
  d = data_lib.prepare(config.data)
  assert d.columns == ('temp', 'wind'), f'columns should be target first, got {d.columns}'
  np.testing.assert_array_equal(d.values_TF, frame[['temp', 'wind']].to_numpy(),
                                err_msg='prepare did not load the CSV values')


# ---------------------------------------------------------------------------- load_csv: time zones


def _local_frame(start, periods, zone='Europe/Berlin'):
  """Hourly local times written with their UTC offset, as a logger on local time writes them."""
  local = pd.date_range(start, periods=periods, freq='h', tz=zone)
  frame = pd.DataFrame({'time': [t.isoformat(sep=' ') for t in local],
                        'temp': np.arange(periods, dtype=np.float64)})
  return local, frame


@pytest.mark.parametrize('start', ['2025-03-29 22:00', '2025-10-25 22:00'],
                         ids=['spring_forward', 'fall_back'])
def test_load_csv_offsets_across_daylight_saving_are_utc_instants(tmp_path, start):
  local, frame = _local_frame(start, 8)
  offsets = {t[-6:] for t in frame['time']}
  assert offsets == {'+01:00', '+02:00'}, f'the test file should cross a DST change: {offsets}'
  shuffled = frame.sample(frac=1.0, random_state=1)
  times, values = sources.load_csv(_write(tmp_path, shuffled), 'time', ['temp'])
  want = pd.DatetimeIndex(local.tz_convert('UTC'))
  assert times.equals(want), f'times should be the UTC instants in order: got {list(times)}'
  assert str(times.tz) == 'UTC', f'zone-aware times should come back in UTC, got {times.tz}'
  np.testing.assert_array_equal(np.diff(times.asi8), np.full(7, np.diff(want.asi8)[0]),
                                err_msg='an hourly series across DST should be evenly spaced')
  np.testing.assert_array_equal(values[:, 0], np.arange(8.0),
                                err_msg='values are not in time order')


@pytest.mark.parametrize('suffix', ['+05:30', 'Z'])
def test_load_csv_one_offset_or_z_becomes_utc(tmp_path, suffix):
  naive = pd.date_range('2025-06-01 00:00', periods=5, freq='h')
  frame = pd.DataFrame({'time': [t.isoformat() + suffix for t in naive], 'temp': np.arange(5.0)})
  times, _ = sources.load_csv(_write(tmp_path, frame), 'time', ['temp'])
  shift = pd.Timedelta(hours=5, minutes=30) if suffix != 'Z' else pd.Timedelta(0)
  want = (naive - shift).tz_localize('UTC')
  assert times.equals(want), f'{suffix} times should be converted to UTC: got {list(times)}'


def test_load_csv_naive_times_stay_naive(tmp_path):
  frame = _frame(n=5)
  times, _ = sources.load_csv(_write(tmp_path, frame), 'time', ['temp'])
  assert times.tz is None, f'naive timestamps should stay naive, got tz={times.tz}'
  assert times.equals(pd.DatetimeIndex(pd.to_datetime(frame['time'])))


@pytest.mark.parametrize('first_aware', [True, False])
def test_load_csv_mixing_aware_and_naive_names_the_odd_lines(tmp_path, first_aware):
  # Rows 2 and 5 (lines 4 and 7) are the odd kind: naive among aware rows, or the other way round.
  _, frame = _local_frame('2025-03-29 22:00', 8)
  strip = [2, 5] if first_aware else [0, 1, 3, 4, 6, 7]
  frame.loc[strip, 'time'] = frame.loc[strip, 'time'].str[:-6]
  with pytest.raises(UserError) as info:
    sources.load_csv(_write(tmp_path, frame), 'time', ['temp'])
  message = str(info.value)
  assert 'with and without a UTC offset' in message, f'message should say what is mixed: {message}'
  for row in (2, 5):
    line = f'line {row + 2} ({frame.loc[row, "time"]})'
    assert line in message, f'message should name {line}: {message}'
  assert 'line 2 ' not in message, f'line 2 is of the common kind, not offending: {message}'


# ---------------------------------------------------------------------------- load_csv: inf


@pytest.mark.parametrize('text', ['inf', '-inf', '1e999'])
def test_load_csv_infinite_value_is_reported_like_a_missing_one(tmp_path, text):
  frame = _frame(n=10).astype({'temp': object})
  frame.loc[4, 'temp'] = text   # line 6
  with pytest.raises(UserError) as info:
    sources.load_csv(_write(tmp_path, frame), 'time', ['temp', 'wind'])
  message = str(info.value)
  assert 'line 6' in message and 'fill' in message, (
      f'message should name line 6 and point to data.fill: {message}')
  assert 'inf' in message, f'message should say that inf counts as missing: {message}'


def test_load_csv_infinite_values_are_filled(tmp_path):
  frame = _frame(n=10)
  want = frame[['temp', 'wind']].to_numpy().copy()
  frame = frame.astype({'temp': object, 'wind': object})
  frame.loc[3, 'temp'], frame.loc[7, 'wind'] = 'inf', '-inf'
  path = _write(tmp_path, frame)
  hours = np.arange(10.0)
  # 2 of the 10 rows are filled, more than data.max_fill_fraction's default allows.
  _, ffilled = sources.load_csv(path, 'time', ['temp', 'wind'], fill='ffill',
                                max_fill_fraction=1.0)
  want_ffill = want.copy()
  want_ffill[3, 0], want_ffill[7, 1] = want[2, 0], want[6, 1]
  np.testing.assert_array_equal(ffilled, want_ffill, err_msg='ffill did not replace inf/-inf')
  _, interpolated = sources.load_csv(path, 'time', ['temp', 'wind'], fill='interpolate',
                                     max_fill_fraction=1.0)
  want_interp = want.copy()
  keep_t, keep_w = hours != 3, hours != 7
  want_interp[:, 0] = np.interp(hours, hours[keep_t], want[keep_t, 0])
  want_interp[:, 1] = np.interp(hours, hours[keep_w], want[keep_w, 1])
  np.testing.assert_allclose(interpolated, want_interp, rtol=1e-12,
                             err_msg='interpolate did not replace inf/-inf linearly')


@pytest.mark.parametrize('fill', ['ffill', 'interpolate'])
def test_load_csv_column_of_only_inf_cannot_be_filled(tmp_path, fill):
  frame = _frame(n=6)
  frame['temp'] = 'inf'
  with pytest.raises(UserError, match="'temp'.*no finite number"):
    sources.load_csv(_write(tmp_path, frame), 'time', ['temp', 'wind'], fill=fill)


# ---------------------------------------------------------------------------- load_csv: time grid


def test_infer_step_is_the_most_common_difference():
  hours = pd.to_datetime(['2025-01-01 00:00', '2025-01-01 01:00', '2025-01-01 03:00',
                          '2025-01-01 04:00', '2025-01-01 05:00'])
  assert sources.infer_step(hours[::-1]) == pd.Timedelta(hours=1)
  # Tied counts (one 1 h, one 2 h difference): the smallest.
  assert sources.infer_step(hours[:3]) == pd.Timedelta(hours=1)
  days = pd.date_range('2025-01-01', periods=9, freq='D').delete([2, 5])
  assert sources.infer_step(days) == pd.Timedelta(days=1)
  assert sources.infer_step(hours[:2]) == pd.Timedelta(hours=1)
  assert sources.infer_step(hours[:1]) is None and sources.infer_step(hours[:0]) is None


def _gappy(tmp_path, drop=(5, 6, 20), n=30):
  """An hourly frame without rows `drop`, shuffled on disk; returns it as written and its path."""
  full = _frame(n=n)
  written = full.drop(list(drop)).sample(frac=1.0, random_state=2).reset_index(drop=True)
  return full, written, _write(tmp_path, written)


def test_load_csv_missing_timestamps_are_refused_by_default(tmp_path):
  full, written, path = _gappy(tmp_path)
  with pytest.raises(UserError) as info:
    sources.load_csv(path, 'time', ['temp'])
  message = str(info.value)
  line = {t: i + 2 for i, t in enumerate(written['time'])}
  for before, after, n in ((4, 7, 2), (19, 21, 1)):
    t0, t1 = full.loc[before, 'time'], full.loc[after, 'time']
    gap = f'{n} missing between line {line[t0]} ({t0}) and line {line[t1]} ({t1})'
    assert gap in message, f'message should name the gap {gap!r}: {message}'
  assert message.index(full.loc[4, 'time']) < message.index(full.loc[19, 'time']), (
      f'gaps should be listed in time order: {message}')
  for words in ('1 h', '3 steps are missing', '--config.data.fill=ffill',
                '--config.data.fill=interpolate'):
    assert words in message, f'message should mention {words!r}: {message}'


def test_load_csv_many_gaps_lists_the_first_few(tmp_path):
  _, _, path = _gappy(tmp_path, drop=range(2, 30, 3), n=32)
  with pytest.raises(UserError) as info:
    sources.load_csv(path, 'time', ['temp'])
  message = str(info.value)
  assert '10 steps are missing in 10 gaps' in message and 'and 5 more gaps' in message, (
      f'message should count all gaps and list the first 5: {message}')
  assert message.count('missing between') == 5, f'5 gaps should be listed: {message}'


def test_load_csv_fills_missing_timestamps_on_the_regular_grid(tmp_path):
  full, _, path = _gappy(tmp_path)
  want_times = pd.date_range(full['time'][0], periods=30, freq='h')
  present = ~np.isin(np.arange(30), [5, 6, 20])
  hours = np.arange(30.0)
  times, ffilled = sources.load_csv(path, 'time', ['temp', 'wind'], fill='ffill')
  assert times.equals(want_times), f'ffill should give every hour: got {list(times)}'
  want_ffill = full[['temp', 'wind']].copy()
  want_ffill.loc[~present] = np.nan
  want_ffill = want_ffill.ffill().to_numpy()
  np.testing.assert_array_equal(ffilled, want_ffill, err_msg='ffill of missing steps is wrong')
  times, interpolated = sources.load_csv(path, 'time', ['temp', 'wind'], fill='interpolate')
  assert times.equals(want_times), f'interpolate should give every hour: got {list(times)}'
  for k, column in enumerate(('temp', 'wind')):
    want = np.interp(hours, hours[present], full[column].to_numpy()[present])
    np.testing.assert_allclose(interpolated[:, k], want, rtol=1e-12,
                               err_msg=f'interpolation of missing steps in {column} is wrong')
  np.testing.assert_array_equal(interpolated[present], full[['temp', 'wind']].to_numpy()[present],
                                err_msg='filling changed values that were in the file')


def test_load_csv_fills_missing_local_hour_across_daylight_saving(tmp_path):
  local, frame = _local_frame('2025-03-29 22:00', 8)
  times, values = sources.load_csv(_write(tmp_path, frame.drop([4])), 'time', ['temp'],
                                    fill='interpolate', max_fill_fraction=1.0)  # 1 of 8
  assert times.equals(pd.DatetimeIndex(local.tz_convert('UTC'))), (
      f'the missing hour should be added on the UTC grid: got {list(times)}')
  np.testing.assert_allclose(values[:, 0], np.arange(8.0), rtol=1e-12,
                             err_msg='the missing hour should be interpolated')


@pytest.mark.parametrize('fill', ['none', 'ffill', 'interpolate'])
def test_load_csv_timestamp_off_the_grid_is_named(tmp_path, fill):
  frame = _frame(n=12, start='2025-03-01 00:00')
  stray = pd.DataFrame({'time': ['2025-03-01 10:30:00'], 'temp': [1.0], 'wind': [2.0]})
  written = pd.concat([frame.iloc[:6], stray, frame.iloc[6:]], ignore_index=True)
  with pytest.raises(UserError) as info:
    sources.load_csv(_write(tmp_path, written), 'time', ['temp'], fill=fill)
  message = str(info.value)
  assert 'off the series' in message and 'line 8 (2025-03-01 10:30:00)' in message, (
      f'message should name the off-grid line 8 (10:30): {message}')
  assert '1 h' in message and '(1 rows in all)' in message, message


def test_load_csv_stray_first_timestamp_is_the_one_named(tmp_path):
  frame = _frame(n=10, start='2025-03-01 00:00')
  stray = pd.DataFrame({'time': ['2025-02-28 23:45:00'], 'temp': [1.0], 'wind': [2.0]})
  written = pd.concat([frame, stray], ignore_index=True)
  with pytest.raises(UserError) as info:
    sources.load_csv(_write(tmp_path, written), 'time', ['temp'])
  message = str(info.value)
  assert 'line 12 (2025-02-28 23:45:00)' in message and '(1 rows in all)' in message, (
      f'message should name only the stray first timestamp (line 12): {message}')


@pytest.mark.parametrize('fill', ['none', 'ffill', 'interpolate'])
@pytest.mark.parametrize('n', [1, 2])
def test_load_csv_one_or_two_points_load(tmp_path, n, fill):
  frame = _frame(n=n)
  times, values = sources.load_csv(_write(tmp_path, frame), 'time', ['temp'], fill=fill)
  assert len(times) == n and values.shape == (n, 1), (
      f'{n} points should load as they are, got {len(times)} times, values {values.shape}')


@pytest.mark.parametrize('freq', ['MS', 'B'])
def test_load_csv_regular_calendar_series_is_unchanged(tmp_path, freq):
  # Months and business days have no single step in time, but no timestamp is missing.
  times = pd.date_range('2024-01-01', periods=30, freq=freq)
  values = np.arange(30.0)
  frame = pd.DataFrame({'time': times, 'temp': values})
  for fill in ('none', 'interpolate'):
    got_times, got = sources.load_csv(_write(tmp_path, frame), 'time', ['temp'], fill=fill)
    assert got_times.equals(times), f'fill={fill!r} changed a regular {freq} series'
    np.testing.assert_array_equal(got[:, 0], values)


def test_load_csv_of_the_tutorial_series_is_unchanged(tmp_path):
  times, values = sources.synthetic_series(num_days=20)
  frame = pd.DataFrame({'time': times, 'temperature': values})
  for fill in ('none', 'ffill', 'interpolate'):
    got_times, got = sources.load_csv(_write(tmp_path, frame), 'time', ['temperature'], fill=fill)
    assert got_times.equals(times), f'fill={fill!r} changed the tutorial timestamps'
    np.testing.assert_array_equal(got[:, 0], values,
                                  err_msg=f'fill={fill!r} changed the tutorial values')
