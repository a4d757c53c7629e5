"""Series that used to be misread or badly reported: numeric and day-first time columns, fills
that invent most of a series, values whose scaling overflows, repeated header names, columns
with nothing to fill from, files that cannot be read.

Each case is checked in-process through `rnnjax.sources` and `rnnjax.data.prepare`; the main
ones also through scripts/train.py and scripts/predict.py, all started at once, for what only a
subprocess shows: exit 2, no traceback, nothing in the workdir or the --out file changed.
"""
import builtins
import errno
import logging
import os
import pathlib
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import PYTHON, ROOT, file_tree, script_env, tiny_config
from rnnjax import config as config_lib
from rnnjax import config_checks
from rnnjax import data as data_lib
from rnnjax import forecast
from rnnjax import inputs
from rnnjax import run as run_lib
from rnnjax import sources
from rnnjax.errors import UserError

TIMEOUT = 300  # seconds per subprocess; generous because others may share the machine
PRECIOUS = b'an earlier forecast, not to be lost\n'
# 2025-01-01 00:00 UTC in seconds since 1970-01-01, worked out by hand: 55 years of 365 days
# and the 14 leap days of 1972..2024, at 86400 s a day.
JAN_1_2025 = (55 * 365 + 14) * 86400


def _hours(n, start='2025-01-01T00:00'):
  """[n] hourly datetime64[s] from `start`: the reference, without pandas' parsing."""
  return np.datetime64(start, 's') + np.arange(n) * np.timedelta64(3600, 's')


def _write(path, columns, header=None):
  """A CSV of `columns` ({name: values}); `header` replaces the header line."""
  frame = pd.DataFrame(columns)
  frame.to_csv(path, index=False)
  if header is not None:
    with open(path) as f:
      lines = f.read().splitlines()
    with open(path, 'w') as f:
      f.write('\n'.join([header] + lines[1:]) + '\n')
  return str(path)


def _wave(n):
  return 10.0 + 5.0 * np.sin(np.arange(n) * 2.0 * np.pi / 24.0)


def _csv_config(path, **overrides):
  return tiny_config(**{'data.source': 'csv', 'data.path': str(path), **overrides})


def _message(fn, *args, **kwargs):
  with pytest.raises(UserError) as info:
    fn(*args, **kwargs)
  return str(info.value)


def _says(message, *words):
  for words_ in words:
    assert words_ in message, f'the message should mention {words_!r}: {message}'


# ---------------------------------------------------------------------- numeric time columns


def test_epoch_seconds_without_a_unit_are_refused_with_the_key_to_set(tmp_path):
  seconds = JAN_1_2025 + 3600 * np.arange(48)
  path = _write(tmp_path / 'epoch.csv', {'time': seconds, 'temperature': _wave(48)})
  message = _message(sources.load_csv, path, 'time', ['temperature'])
  _says(message, "column 'time'", str(JAN_1_2025), 'data.time_unit', '--config.data.time_unit=s',
        'line 2')
  assert '2025-01-01 00:00:00' in message, (
      f'the message should say what the example reads as in seconds: {message}')


@pytest.mark.parametrize('unit,start,step,step_seconds', [
    ('s', JAN_1_2025, 3600, 3600), ('ms', JAN_1_2025 * 1000, 3_600_000, 3600),
    ('D', JAN_1_2025 // 86400, 1, 86400)])
def test_epoch_numbers_with_their_unit_give_the_right_utc_times(tmp_path, unit, start, step,
                                                                step_seconds):
  path = _write(tmp_path / 'epoch.csv', {'time': start + step * np.arange(48),
                                         'temperature': _wave(48)})
  times, values = sources.load_csv(path, 'time', ['temperature'], time_unit=unit)
  assert str(times.tz) == 'UTC', f'Unix times should come back in UTC, got tz={times.tz}'
  want = np.datetime64('2025-01-01T00:00', 's') + np.arange(48) * np.timedelta64(step_seconds,
                                                                                 's')
  np.testing.assert_array_equal(times.tz_convert(None).to_numpy().astype('datetime64[s]'), want,
                                err_msg=f'time_unit={unit!r} read the wrong times')
  np.testing.assert_array_equal(values[:, 0], _wave(48))


def test_time_unit_for_a_column_of_dates_is_refused(tmp_path):
  stamps = pd.date_range('2025-01-01', periods=48, freq='h')
  path = _write(tmp_path / 'dates.csv', {'time': stamps, 'temperature': _wave(48)})
  message = _message(sources.load_csv, path, 'time', ['temperature'], time_unit='s')
  _says(message, 'data.time_unit', "column 'time'", 'no number', "--config.data.time_unit=''")


def test_epoch_column_with_a_word_names_its_line(tmp_path):
  seconds = (JAN_1_2025 + 3600 * np.arange(48)).astype(object)
  seconds[6] = 'soon'
  path = _write(tmp_path / 'epoch.csv', {'time': seconds, 'temperature': _wave(48)})
  message = _message(sources.load_csv, path, 'time', ['temperature'], time_unit='s')
  _says(message, 'line 8 (soon)', 'seconds')


@pytest.mark.parametrize('key,value', [('data.time_unit', 'sec'), ('data.dayfirst', 'yes'),
                                       ('data.max_fill_fraction', 1.5),
                                       ('data.max_fill_fraction', -0.1)])
def test_bad_reading_settings_are_refused_by_validate(key, value):
  config = config_lib.override(tiny_config(), {key: value})
  _says(_message(config_checks.validate, config), key)


# ------------------------------------------------------------------------ day / month order


def _day_month_file(tmp_path, first_day, days, stamp_format, name='dates.csv'):
  """Hourly readings over `days` days from `first_day`, written with `stamp_format`."""
  stamps = pd.date_range(first_day, periods=24 * days, freq='h')
  return _write(tmp_path / name, {'time': stamps.strftime(stamp_format),
                                  'temperature': _wave(24 * days)}), stamps


def test_day_first_dates_with_days_up_to_12_are_refused_not_read_month_first(tmp_path):
  # Every day <= 12: each date also reads month first, which spreads 12 days over 11 months.
  path, _ = _day_month_file(tmp_path, '2025-01-01', 12, '%d/%m/%Y %H:%M')
  message = _message(sources.load_csv, path, 'time', ['temperature'], fill='ffill')
  _says(message, "column 'time'", 'both ways', '--config.data.dayfirst=true',
        '--config.data.dayfirst=false', 'line 2 (01/01/2025 00:00)')


def test_day_first_dates_past_the_12th_say_that_only_day_first_reads_them(tmp_path):
  path, _ = _day_month_file(tmp_path, '2025-01-10', 5, '%d/%m/%Y %H:%M')
  message = _message(sources.load_csv, path, 'time', ['temperature'])
  _says(message, 'Only day first reads them all', 'line 74 (13/01/2025 00:00)',
        '--config.data.dayfirst=true')


@pytest.mark.parametrize('stamp_format,dayfirst', [('%d/%m/%Y %H:%M', 'true'),
                                                   ('%d.%m.%y %H:%M', 'true'),
                                                   ('%m/%d/%Y %H:%M', 'false'),
                                                   ('%m-%d-%Y %H:%M:%S', 'false')])
def test_dates_read_in_the_order_given(tmp_path, stamp_format, dayfirst):
  path, _ = _day_month_file(tmp_path, '2025-01-01', 14, stamp_format)
  times, _ = sources.load_csv(path, 'time', ['temperature'], dayfirst=dayfirst)
  np.testing.assert_array_equal(times.to_numpy().astype('datetime64[s]'), _hours(24 * 14),
                                err_msg=f'{stamp_format} with dayfirst={dayfirst!r} misread')


def test_wrong_order_names_the_impossible_dates_and_the_other_setting(tmp_path):
  path, _ = _day_month_file(tmp_path, '2025-01-10', 5, '%d/%m/%Y %H:%M')
  message = _message(sources.load_csv, path, 'time', ['temperature'], dayfirst='false')
  _says(message, 'month/day/year', 'line 74 (13/01/2025 00:00)', '--config.data.dayfirst=true')


@pytest.mark.parametrize('dayfirst', ['', 'true', 'false'])
def test_iso_dates_read_the_same_whatever_dayfirst_says(tmp_path, dayfirst):
  # pandas' own dayfirst=True reads 2025/01/02 as 1 February; rnnjax must not.
  path, _ = _day_month_file(tmp_path, '2025-01-01', 3, '%Y/%m/%d %H:%M')
  times, _ = sources.load_csv(path, 'time', ['temperature'], dayfirst=dayfirst)
  np.testing.assert_array_equal(times.to_numpy().astype('datetime64[s]'), _hours(72))


# ------------------------------------------------------------------------------------ fills


def _with_holes(tmp_path, n=30, drop=(), nan_rows=(), name='holes.csv', extra=None):
  frame = pd.DataFrame({'time': pd.date_range('2025-01-01', periods=n, freq='h'),
                        'temperature': _wave(n)})
  frame.loc[list(nan_rows), 'temperature'] = np.nan
  frame = frame.drop(index=list(drop))
  if extra is not None:
    frame = extra(frame)
  return _write(tmp_path / name, frame)


def test_fill_of_more_than_the_allowed_share_is_refused_with_counts(tmp_path):
  path = _with_holes(tmp_path, drop=(3, 4), nan_rows=(10,))  # 3 of 30 points invented
  message = _message(sources.load_csv, path, 'time', ['temperature'], fill='ffill',
                     max_fill_fraction=0.09)
  _says(message, '3 of its 30 points (10.0%)', '2 missing timestamps', '1 row with missing',
        'data.max_fill_fraction=0.09', '--config.data.max_fill_fraction=0.1')


def test_fill_within_the_share_is_logged_per_filled_series(tmp_path, caplog):
  def panel(frame):
    whole = pd.DataFrame({'time': pd.date_range('2025-01-01', periods=30, freq='h'),
                          'temperature': _wave(30)})
    return pd.concat([frame.assign(site='a'), whole.assign(site='b')])
  path = _with_holes(tmp_path, drop=(3, 4), nan_rows=(10,), extra=panel)
  with caplog.at_level(logging.WARNING):
    series = sources.load_series(path, 'time', ['temperature'], 'interpolate', 'site')
  assert [len(one.times) for one in series] == [30, 30], 'the panel did not load both series'
  lines = [r.getMessage() for r in caplog.records if 'filled' in r.getMessage()]
  assert len(lines) == 1, f'one warning for the one filled series, got {lines}'
  _says(lines[0], "series 'a'", '3 of its 30 points (10.0%)', '2 missing timestamps',
        '1 row with missing values')


def test_filling_day_first_dates_read_month_first_is_refused(tmp_path):
  # The reported case: 12 days read month first span 11 months, and ffill would invent the rest.
  path, _ = _day_month_file(tmp_path, '2025-01-01', 12, '%d/%m/%Y %H:%M')
  message = _message(sources.load_csv, path, 'time', ['temperature'], fill='ffill',
                     dayfirst='false')
  # Month first, 'd/01/2025 HH:00' is 2025-d-01: the 1st of each month, 24 hours each.
  span = (np.datetime64('2025-12-01T23') - np.datetime64('2025-01-01T00')) // np.timedelta64(1, 'h')
  _says(message, f'would invent {span + 1 - 12 * 24} of its {span + 1} points',
        'data.max_fill_fraction')


def test_default_share_is_the_configs(tmp_path):
  path = _with_holes(tmp_path, nan_rows=(1, 2, 3, 4))  # 4 of 30 > 0.1
  config = _csv_config(path, **{'data.fill': 'ffill', 'data.window': 4, 'data.horizon': 1})
  assert config.data.max_fill_fraction == config_lib.MAX_FILL_FRACTION == 0.1
  _says(_message(data_lib.prepare, config.data), 'data.max_fill_fraction=0.1')
  config.data.max_fill_fraction = 0.2
  assert len(data_lib.prepare(config.data).values_TF) == 30


# ---------------------------------------------------------------- values that do not scale


@pytest.mark.parametrize('scaler', ['minmax', 'standard'])
@pytest.mark.parametrize('row', [20, 190], ids=['training_part', 'validation_part'])
def test_values_near_the_float64_limit_are_refused_with_column_and_time(tmp_path, scaler, row):
  values = _wave(200)
  values[row], values[row + 1] = 1e308, -1e308
  path = _write(tmp_path / 'huge.csv', {'time': pd.date_range('2025-01-01', periods=200,
                                                              freq='h'),
                                        'humidity': _wave(200), 'temperature': values})
  config = _csv_config(path, **{'data.scaler': scaler, 'data.features': ('humidity',)})
  with warnings.catch_warnings():
    warnings.simplefilter('error', RuntimeWarning)  # no numpy overflow noise before the message
    message = _message(data_lib.prepare, config.data)
  stamp = str(pd.Timestamp('2025-01-01') + pd.Timedelta(hours=row))
  _says(message, "column 'temperature'", stamp, '1e+308', 'not measurements')


def test_value_that_does_not_scale_names_its_series_in_a_panel(tmp_path):
  stamps = pd.date_range('2025-01-01', periods=200, freq='h')
  huge = _wave(200)
  huge[50], huge[51] = 1e308, -1e308
  path = _write(tmp_path / 'panel.csv', pd.concat([
      pd.DataFrame({'site': 'a', 'time': stamps, 'temperature': _wave(200)}),
      pd.DataFrame({'site': 'b', 'time': stamps, 'temperature': huge})]))
  config = _csv_config(path, **{'data.id_column': 'site'})
  _says(_message(data_lib.prepare, config.data), "series 'b'", "column 'temperature'",
        str(stamps[50]))


def test_model_inputs_refuse_a_scaled_value_that_is_not_finite():
  # predict.py scales with the run's scalers and hands the result to model_inputs.
  times = pd.date_range('2025-01-01', periods=4, freq='h')
  scaled = np.zeros((4, 2), np.float32)
  scaled[2, 1] = np.inf
  _says(_message(inputs.model_inputs, scaled, times, ('hour_of_day',)), 'input column 1',
        str(times[2]))


# ----------------------------------------------------------------- header and empty columns


def test_repeated_header_name_is_refused_naming_it_and_the_file(tmp_path):
  path = _write(tmp_path / 'twice.csv', {'time': pd.date_range('2025-01-01', periods=48,
                                                                 freq='h'),
                                         'a': _wave(48), 'b': _wave(48)},
                header='time,temperature,temperature')
  message = _message(sources.load_csv, path, 'time', ['temperature'])
  _says(message, "['temperature'] more than once", path, "'temperature.1'")


@pytest.mark.parametrize('fill', ['none', 'ffill', 'interpolate'])
def test_column_with_no_number_is_named_alone(tmp_path, fill):
  path = _write(tmp_path / 'blank.csv', {'time': pd.date_range('2025-01-01', periods=48,
                                                                 freq='h'),
                                         'load': _wave(48), 'humidity': np.nan})
  message = _message(sources.load_csv, path, 'time', ['load', 'humidity'], fill=fill)
  _says(message, "['humidity']", 'no finite number')
  assert "'load'" not in message, f'the complete target column is named too: {message}'


def test_target_with_no_number_before_future_rows_is_named_alone(tmp_path):
  path = _write(tmp_path / 'blank.csv', {'time': pd.date_range('2025-01-01', periods=48,
                                                                 freq='h'),
                                         'load': np.nan, 'price': _wave(48)})
  message = _message(sources.load_series, path, 'time', ['load', 'price'], 'ffill',
                     future_columns=('price',))
  _says(message, "['load']", 'no finite number')
  assert "'price'" not in message, f'the known-future column is named too: {message}'


def test_missing_values_message_names_only_the_columns_with_gaps(tmp_path):
  load = _wave(48)
  load[5] = np.nan
  path = _write(tmp_path / 'gap.csv', {'time': pd.date_range('2025-01-01', periods=48,
                                                               freq='h'),
                                       'load': load, 'humidity': _wave(48)})
  message = _message(sources.load_csv, path, 'time', ['load', 'humidity'])
  _says(message, "'load' (1)", 'line 7')
  assert "'humidity'" not in message, f'a complete column is named: {message}'


# --------------------------------------------------------------------------- unreadable files


UNREADABLE = {  # case: (makes the path, what the message says of it)
    'directory': (os.mkdir, 'is a directory'),
    'empty_file': (lambda p: pathlib.Path(p).write_bytes(b''), 'is empty'),
    'binary_file': (lambda p: pathlib.Path(p).write_bytes(b'\x89PNG\r\n\x1a\n'
                                                          + bytes(range(256))), 'not UTF-8'),
    'latin1_text': (lambda p: pathlib.Path(p).write_bytes(
        'time,temperature\n2025-01-01 00:00,caf\xe9\n'.encode('latin-1')), 'not UTF-8'),
}


@pytest.mark.parametrize('case', sorted(UNREADABLE))
def test_unreadable_csv_is_a_user_error_naming_path_and_cause(tmp_path, case):
  make, cause = UNREADABLE[case]
  path = str(tmp_path / 'series.csv')
  make(path)
  _says(_message(sources.load_csv, path, 'time', ['temperature']), repr(path), cause)


def test_csv_without_read_permission_is_a_user_error(tmp_path, monkeypatch):
  # As root (the test machines) chmod 000 does not stop reading: the denial is simulated.
  path = _write(tmp_path / 'locked.csv', {'time': ['2025-01-01 00:00'], 'temperature': [1.0]})
  real_open = builtins.open

  def denying_open(file, *args, **kwargs):
    if os.fspath(file) == path:
      raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    return real_open(file, *args, **kwargs)

  monkeypatch.setattr(builtins, 'open', denying_open)
  _says(_message(sources.load_csv, path, 'time', ['temperature']), repr(path),
        os.strerror(errno.EACCES))


@pytest.mark.skipif(os.geteuid() == 0, reason='root reads a file whatever its mode')
def test_csv_with_mode_000_is_a_user_error(tmp_path):
  path = _write(tmp_path / 'locked.csv', {'time': ['2025-01-01 00:00'], 'temperature': [1.0]})
  os.chmod(path, 0)
  _says(_message(sources.load_csv, path, 'time', ['temperature']), repr(path),
        os.strerror(errno.EACCES))


# ------------------------------------------------------------------- through the scripts


def _script(name):
  return os.path.join(ROOT, 'scripts', name)


# case: (flags after the tiny config, words stderr must hold); {dir} is the fixture's folder.
TRAIN_CASES = {
    'epoch_seconds': (['--config.data.path={dir}/epoch.csv'],
                      ('holds numbers', '--config.data.time_unit=s')),
    'day_first': (['--config.data.path={dir}/day_first.csv'], ('--config.data.dayfirst=true',)),
    'fill_too_much': (['--config.data.path={dir}/holes.csv', '--config.data.fill=ffill'],
                      ('40 missing timestamps', 'data.max_fill_fraction')),
    'huge_minmax': (['--config.data.path={dir}/huge.csv'],
                    ("column 'temperature'", '2025-01-02 06:00:00')),
    'huge_standard': (['--config.data.path={dir}/huge.csv', '--config.data.scaler=standard'],
                      ("column 'temperature'", '2025-01-02 06:00:00')),
    'repeated_header': (['--config.data.path={dir}/twice.csv'],
                        ("['temperature'] more than once",)),
    'binary_file': (['--config.data.path={dir}/binary.csv'], ('binary.csv', 'not UTF-8')),
}
# case: (--csv in the fixture's folder, words stderr must hold), with a run trained on dates.
# Each process costs seconds of imports on a shared machine: the other cases are in-process.
PREDICT_CASES = {
    'predict_epoch_seconds': ('new_epoch.csv', ('holds numbers',)),
    'predict_huge': ('new_huge.csv', ('cannot be scaled', '2025-03-02 16:00:00')),
}


def _write_script_inputs(directory):
  """The CSVs of TRAIN_CASES (10 hourly days) and PREDICT_CASES (3 days)."""
  n = 240
  stamps = pd.date_range('2025-01-01', periods=n, freq='h')
  _write(directory / 'epoch.csv', {'time': JAN_1_2025 + 3600 * np.arange(n),
                                   'temperature': _wave(n)})
  _write(directory / 'day_first.csv', {'time': stamps.strftime('%d/%m/%Y %H:%M'),
                                       'temperature': _wave(n)})
  holes = pd.DataFrame({'time': stamps, 'temperature': _wave(n)}).drop(index=range(20, 60))
  _write(directory / 'holes.csv', holes)
  huge = _wave(n)
  huge[30], huge[31] = 1e308, -1e308  # 2025-01-02 06:00, in the training part
  _write(directory / 'huge.csv', {'time': stamps, 'temperature': huge})
  _write(directory / 'twice.csv', {'time': stamps, 'a': _wave(n), 'b': _wave(n)},
         header='time,temperature,temperature')
  UNREADABLE['binary_file'][0](str(directory / 'binary.csv'))
  n = 72
  stamps = pd.date_range('2025-03-01', periods=n, freq='h')
  _write(directory / 'new_epoch.csv', {'time': JAN_1_2025 + 3600 * np.arange(n),
                                       'temperature': _wave(n)})
  _write(directory / 'new_day_first.csv', {'time': stamps.strftime('%d/%m/%Y %H:%M'),
                                           'temperature': _wave(n)})
  huge = _wave(n)
  huge[40] = 1e308  # 2025-03-02 16:00
  _write(directory / 'new_huge.csv', {'time': stamps, 'temperature': huge})


@pytest.fixture(scope='module')
def script_runs(tmp_path_factory):
  """Every case of TRAIN_CASES through scripts/train.py, each in a workdir holding a file, and
  of PREDICT_CASES through scripts/predict.py with a tiny run trained here and an --out file
  that exists, all started at once.

  Returns:
    {case: (process, words, workdir, --out path or None, the workdir's files before)}.
  """
  directory = tmp_path_factory.mktemp('misread')
  _write_script_inputs(directory)
  trained = directory / 'trained'
  runs = {}
  for name, (args, words) in TRAIN_CASES.items():
    workdir = directory / name
    workdir.mkdir()
    (workdir / 'notes.txt').write_bytes(PRECIOUS)
    cmd = [PYTHON, _script('train.py'), '--config', 'configs/seed_gru.py', '--workdir',
           str(workdir), '--config.data.source=csv', '--config.train.epochs=1',
           '--config.model.hidden_sizes=(8,8)'] + [a.format(dir=directory) for a in args]
    runs[name] = (cmd, words, workdir, None)
  for name, (csv, words) in PREDICT_CASES.items():
    out = directory / f'{name}_out.csv'
    out.write_bytes(PRECIOUS)
    cmd = [PYTHON, _script('predict.py'), '--workdir', str(trained), '--csv',
           str(directory / csv), '--out', str(out)]
    runs[name] = (cmd, words, trained, out)
  before, procs = {}, {}
  for name, (cmd, _, workdir, out) in runs.items():
    if out is not None and not trained.exists():  # train while the train.py cases run
      run_lib.train_and_evaluate(tiny_config(**{'train.epochs': 1}), str(trained),
                                 progress=False)
    before[name] = file_tree(workdir)
    procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=script_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
  yield {name: (procs[name], *runs[name][1:], before[name], directory) for name in runs}
  for proc in procs.values():
    if proc.poll() is None:
      proc.kill()
      proc.wait()


@pytest.mark.parametrize('case', sorted([*TRAIN_CASES, *PREDICT_CASES]))
def test_bad_input_through_the_scripts_exits_2_and_changes_nothing(script_runs, case):
  proc, words, workdir, out, before, _ = script_runs[case]
  _, stderr = proc.communicate(timeout=TIMEOUT)
  tail = stderr[-3000:]
  assert proc.returncode == 2, f'{case}: exited {proc.returncode}, not 2:\n{tail}'
  assert 'Traceback' not in stderr, f'{case}: printed a traceback:\n{tail}'
  for words_ in words:
    assert words_ in stderr, f'{case}: stderr does not mention {words_!r}:\n{tail}'
  assert file_tree(workdir) == before, f'{case}: the files in {workdir} changed'
  if out is None:
    assert not os.path.exists(workdir / 'metrics.json'), f'{case}: a refused run wrote metrics'
  else:
    assert out.read_bytes() == PRECIOUS, f'{case}: the --out file was replaced'


def test_predict_refuses_day_first_dates_it_is_not_told_about(script_runs, tmp_path):
  *_, directory = script_runs['predict_huge']
  frame = pd.DataFrame({'time': pd.date_range('2025-03-01', periods=72, freq='h'),
                        'temperature': _wave(72)})
  frame['time'] = frame['time'].dt.strftime('%d/%m/%Y %H:%M')
  csv, out = _write(tmp_path / 'new.csv', frame), tmp_path / 'out.csv'
  out.write_bytes(PRECIOUS)
  message = _message(forecast.forecast_csv, str(directory / 'trained'), csv, str(out))
  _says(message, 'dayfirst', 'line 2 (01/03/2025 00:00)')
  assert out.read_bytes() == PRECIOUS, 'a refused forecast replaced the --out file'
  assert '--config.' not in message, f'predict.py takes no --config flags: {message}'
  _says(message, "settings the run was trained with")


def test_a_run_trained_on_day_first_dates_forecasts_day_first_dates(script_runs, tmp_path):
  *_, directory = script_runs['predict_huge']
  workdir = str(tmp_path / 'day_first_run')
  run_lib.train_and_evaluate(
      _csv_config(directory / 'day_first.csv', **{'data.dayfirst': 'true', 'train.epochs': 1}),
      workdir, progress=False)
  out = tmp_path / 'out.csv'
  frame = forecast.forecast_csv(workdir, str(directory / 'new_day_first.csv'), str(out))
  want = _hours(72, '2025-03-01T00:00')  # new_day_first.csv: 01/03/2025 00:00 is 1 March
  window = tiny_config().data.window
  got = pd.to_datetime(frame['input_end']).to_numpy().astype('datetime64[s]')
  np.testing.assert_array_equal(got, want[window - 1:window - 1 + len(got)],
                                err_msg='input_end of the forecast of day-first dates')
