"""rnnjax.forecast and scripts/predict.py: forecasts from a workdir, and the inputs they refuse.

One tiny run is trained in-process; the workdirs the cases need (unfinished, with a truncated
newest checkpoint) are copies of it. Cases where the command line is the point (exit code, no
traceback, what stderr shows) run scripts/predict.py, all started at once; the rest call the
library.
"""
import glob
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import (PYTHON, ROOT, SPELLINGS, copy_of_run, file_tree, other_spelling,
                      script_env, tiny_config)
from rnnjax import checkpoint as ckpt_lib
from rnnjax import forecast
from rnnjax import predict_checks
from rnnjax import trained_run
from rnnjax.sources import synthetic_series
from rnnjax.errors import UserError

TIMEOUT = 300  # seconds per subprocess; generous because others may share the machine
EPOCHS = 3
PRECIOUS = b'an earlier forecast, not to be lost\n'


def _read(path):
  with open(path, 'rb') as f:
    return f.read()


def _write_series(path, nan_rows=(), column='temperature', inf_rows=(), drop_rows=(),
                  zone=None):
  """Three days of the synthetic series; `zone` writes local times with their UTC offsets."""
  times, values = synthetic_series(num_days=3, start='2025-03-01 00:00', seed=11)
  if zone is not None:  # across the spring daylight-saving change: offsets +01:00, then +02:00
    times = pd.date_range('2025-03-29 00:00', periods=len(values), freq='h', tz=zone)
  values = values.copy()
  values[list(nan_rows)] = np.nan
  values[list(inf_rows)] = np.inf
  frame = pd.DataFrame({'time': times, column: values}).drop(index=list(drop_rows))
  frame.to_csv(path, index=False)
  return len(frame)


@pytest.fixture(scope='module')
def files(tmp_path_factory, finished_tiny_run):
  """A finished run (a copy of the session's), copies of it in the states predict.py must
  handle, and input series."""
  root = tmp_path_factory.mktemp('forecast')
  finished, config, _ = copy_of_run(finished_tiny_run, root / 'finished')
  assert config.train.epochs == config.train.max_to_keep == EPOCHS
  steps = sorted(int(n) for n in os.listdir(os.path.join(finished, 'checkpoints')) if n.isdigit())
  assert steps == list(range(1, EPOCHS + 1)), f'checkpoints/ holds steps {steps}'

  # Killed after epoch 2: the last checkpoint is epoch 2 and metrics.json was never written.
  unfinished = str(root / 'unfinished')
  shutil.copytree(finished, unfinished)
  os.remove(os.path.join(unfinished, 'metrics.json'))
  shutil.rmtree(os.path.join(unfinished, 'checkpoints', str(EPOCHS)))

  # The newest step's array data cut in half, as a write cut short would leave it.
  truncated = str(root / 'truncated')
  shutil.copytree(finished, truncated)
  data_files = glob.glob(os.path.join(truncated, 'checkpoints', str(EPOCHS), 'state', 'd', '*'))
  assert data_files, 'no array data files in the newest step: the Orbax layout changed'
  for path in data_files:
    with open(path, 'r+b') as f:
      f.truncate(os.path.getsize(path) // 2)

  series = str(root / 'series.csv')
  n_points = _write_series(series)
  with_nan = str(root / 'with_nan.csv')
  _write_series(with_nan, nan_rows=(5, 40))
  with_inf = str(root / 'with_inf.csv')
  _write_series(with_inf, inf_rows=(9,))
  with_gaps = str(root / 'with_gaps.csv')
  _write_series(with_gaps, drop_rows=(20, 21, 22))
  local_time = str(root / 'local_time.csv')
  _write_series(local_time, zone='Europe/Berlin')
  return {'root': root, 'finished': finished, 'unfinished': unfinished, 'truncated': truncated,
          'series': series, 'n_points': n_points, 'with_nan': with_nan, 'with_inf': with_inf,
          'with_gaps': with_gaps, 'local_time': local_time,
          'before': {'series': _read(series), 'with_nan': _read(with_nan)}}


# Each case: (workdir, csv, out, extra flags); paths relative to the fixture's root folder are
# given as '{root}/...'. Every case starts at once in `cli`.
CASES = {
    'out_folder_missing': ('finished', '{series}', '{root}/absent/forecast.csv', []),
    'unfinished': ('unfinished', '{series}', '{root}/unfinished_out.csv', []),
    'unfinished_allowed': ('unfinished', '{series}', '{root}/unfinished_allowed.csv',
                           ['--allow_unfinished']),
    'nan_in_csv': ('finished', '{with_nan}', '{root}/nan_out.csv', []),
    'truncated_checkpoint': ('truncated', '{series}', '{root}/truncated_out.csv', []),
    'inf_in_csv': ('finished', '{with_inf}', '{root}/inf_out.csv', []),
    'gaps_in_csv': ('finished', '{with_gaps}', '{root}/gaps_out.csv', []),
    'local_time_csv': ('finished', '{local_time}', '{root}/local_time_out.csv', []),
}


@pytest.fixture(scope='module')
def cli(files):
  """Runs scripts/predict.py for every case at once; {case: (returncode, stderr, out path)}.

  Before the runs, every out path that exists holds PRECIOUS, so a test can tell whether
  predict.py changed what was on disk.
  """
  root = files['root']
  for name in ('unfinished_out.csv', 'nan_out.csv'):
    (root / name).write_bytes(PRECIOUS)
  names = {k: v for k, v in files.items() if isinstance(v, str)} | {'root': str(root)}
  procs = {}
  for case, (workdir, csv, out, extra) in CASES.items():
    out = out.format(**names)
    cmd = [PYTHON, os.path.join(ROOT, 'scripts', 'predict.py'), '--workdir', files[workdir],
           '--csv', csv.format(**names), '--out', out, *extra]
    procs[case] = (subprocess.Popen(cmd, cwd=ROOT, env=script_env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True), out)
  results = {}
  try:
    for case, (proc, out) in procs.items():
      _, stderr = proc.communicate(timeout=TIMEOUT)
      results[case] = (proc.returncode, stderr, out)
  finally:
    for proc, _ in procs.values():
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  return results


def _refused(cli, case, *words):
  """Asserts `case` exited 2 with a message naming `words`, without a traceback; its stderr."""
  returncode, stderr, _ = cli[case]
  assert returncode == 2, f'{case}: predict.py exited {returncode}, expected 2:\n{stderr[-3000:]}'
  assert 'Traceback' not in stderr, f'{case}: predict.py printed a traceback:\n{stderr[-3000:]}'
  for word in words:
    assert word in stderr, f'{case}: stderr does not say {word!r}:\n{stderr[-3000:]}'
  return stderr


def test_out_in_a_missing_folder_is_refused(cli):
  out = cli['out_folder_missing'][2]
  _refused(cli, 'out_folder_missing', out, 'does not exist', 'mkdir')
  assert not os.path.exists(os.path.dirname(out)), 'predict.py created the missing --out folder'


def _refused_in_process(workdir, csv, out, *words):
  """Asserts forecast_csv refuses with exit code 2 and a message naming `words`."""
  with pytest.raises(UserError) as raised:
    forecast.forecast_csv(workdir, csv, out)
  assert raised.value.exit_code == 2, f'exit code {raised.value.exit_code}'
  for word in words:
    assert word in str(raised.value), f'the message does not say {word!r}: {raised.value}'


def test_out_that_is_a_folder_is_refused(files, tmp_path):
  (tmp_path / 'keep.txt').write_bytes(PRECIOUS)
  _refused_in_process(files['finished'], files['series'], str(tmp_path), str(tmp_path),
                      'is a folder', 'name a file')
  assert os.listdir(tmp_path) == ['keep.txt'] and _read(tmp_path / 'keep.txt') == PRECIOUS, (
      f'forecast_csv changed the folder given as out_path: {os.listdir(tmp_path)}')


@pytest.mark.parametrize('spelling', SPELLINGS)
def test_out_that_is_the_input_csv_is_refused(files, tmp_path, spelling):
  csv = tmp_path / 'series.csv'
  shutil.copy(files['series'], csv)
  out = other_spelling(csv, spelling)
  _refused_in_process(files['finished'], str(csv), str(out), str(out), 'is the input --csv',
                      'overwrite')
  assert _read(csv) == files['before']['series'], 'forecast_csv changed the input csv'


def test_unfinished_run_is_refused_with_the_epochs_it_holds(cli, files):
  before = file_tree(files['unfinished'])
  stderr = _refused(cli, 'unfinished', files['unfinished'], f'2 of {EPOCHS} epochs',
                    'no metrics.json', 'same scripts/train.py command', 'resume',
                    '--allow_unfinished')
  assert _read(cli['unfinished'][2]) == PRECIOUS, (
      f'a refused run replaced the existing --out file:\n{stderr[-2000:]}')
  assert file_tree(files['unfinished']) == before, 'predict.py changed the unfinished workdir'


def test_unfinished_run_with_allow_unfinished_warns_and_forecasts(cli, files):
  returncode, stderr, out = cli['unfinished_allowed']
  assert returncode == 0, f'--allow_unfinished exited {returncode}:\n{stderr[-3000:]}'
  assert 'Traceback' not in stderr, stderr[-3000:]
  assert f'2 of {EPOCHS} epochs' in stderr and 'unfinished' in stderr, (
      f'no warning that the run is unfinished:\n{stderr[-2000:]}')
  window = tiny_config().data.window
  frame = pd.read_csv(out)
  assert len(frame) == files['n_points'] - window + 1, f'{len(frame)} forecast rows'


def test_nan_in_csv_advises_predicts_fill_flag(cli, files):
  stderr = _refused(cli, 'nan_in_csv', files['with_nan'], 'line 7', '--fill=ffill',
                    '--fill=interpolate')
  assert '--config' not in stderr, f'the advice names a flag predict.py lacks:\n{stderr[-2000:]}'
  assert _read(cli['nan_in_csv'][2]) == PRECIOUS, 'a refused forecast replaced the --out file'
  assert _read(files['with_nan']) == files['before']['with_nan']


def test_inf_in_csv_is_named_like_a_missing_value(cli, files):
  _refused(cli, 'inf_in_csv', 'inf and -inf count as missing', 'line 11', '--fill=ffill')
  assert not os.path.exists(cli['inf_in_csv'][2]), 'a refused forecast wrote --out'


def test_missing_timestamps_in_csv_are_named_with_predicts_fill_flag(cli):
  stderr = _refused(cli, 'gaps_in_csv', 'timestamps are missing', '3 steps are missing in 1 gaps',
                    'line 21', 'line 22', '--fill=ffill')
  assert '--config' not in stderr, f'the advice names a flag predict.py lacks:\n{stderr[-2000:]}'
  assert not os.path.exists(cli['gaps_in_csv'][2]), 'a refused forecast wrote --out'


def test_local_times_across_daylight_saving_forecast_in_utc(cli, files):
  returncode, stderr, out = cli['local_time_csv']
  assert returncode == 0 and 'Traceback' not in stderr, (
      f'predict.py failed on local times with two UTC offsets:\n{stderr[-3000:]}')
  frame = pd.read_csv(out)
  window = tiny_config().data.window
  assert len(frame) == files['n_points'] - window + 1, f'{len(frame)} forecast rows'
  target_times = pd.to_datetime(frame['target_time'])
  steps = target_times.diff().dropna().unique()
  assert str(target_times.dt.tz) == 'UTC' and list(steps) == [pd.Timedelta('1h')], (
      f'target times are not hourly UTC instants: {frame["target_time"].head(30).tolist()}')


def test_truncated_checkpoint_warns_once_and_forecasts_with_the_previous_one(cli, files):
  returncode, stderr, out = cli['truncated_checkpoint']
  assert returncode == 0, f'predict.py exited {returncode}:\n{stderr[-3000:]}'
  step = os.path.join(files['truncated'], 'checkpoints', str(EPOCHS))
  assert f'skipping checkpoint {step}' in stderr, (
      f'no warning names the damaged step {step}:\n{stderr[-3000:]}')
  for noise in ('Traceback', 'Event loop is closed', 'never retrieved', 'read only'):
    assert noise not in stderr, f'stderr holds {noise!r}:\n{stderr[-3000:]}'
  # The unfinished copy's newest step is the same run's epoch 2.
  previous = pd.read_csv(cli['unfinished_allowed'][2])
  np.testing.assert_array_equal(pd.read_csv(out)['forecast'], previous['forecast'],
                                err_msg='the forecast is not the previous checkpoint\'s')


def test_restore_noise_is_silenced_but_not_other_errors(files, caplog, monkeypatch):
  unraisable = []
  hook = unraisable.append
  monkeypatch.setattr(sys, 'unraisablehook', hook)
  with caplog.at_level(logging.WARNING):
    for _ in range(3):  # the noise comes from racing threads: not every restore makes it
      run = trained_run.load_run(files['truncated'])
      assert run.epochs_done == EPOCHS - 1, f'restored epoch {run.epochs_done}'
  loop_closed = [u for u in unraisable if 'Event loop is closed' in str(u.exc_value)]
  assert not loop_closed, f'{len(loop_closed)} "Event loop is closed" errors reached the hook'
  names = {r.name for r in caplog.records}
  assert 'asyncio' not in names, f'asyncio logged: {[r.getMessage()[:200] for r in caplog.records]}'
  assert any('skipping checkpoint' in r.getMessage() for r in caplog.records), (
      'the skipping checkpoint warning was silenced too')
  assert sys.unraisablehook is hook, 'the unraisable hook was not put back'

  other = type('Unraisable', (), {'exc_value': ValueError('other')})()
  with trained_run._quiet_restore():  # pylint: disable=protected-access
    sys.unraisablehook(other)
  assert unraisable and unraisable[-1] is other, 'an unrelated unraisable exception was swallowed'


def test_alive_members_refuses_an_ensemble_that_all_diverged():
  np.testing.assert_array_equal(trained_run.alive_members([True, False, True], 'w'),
                                [False, True, False])
  with pytest.raises(UserError) as raised:
    trained_run.alive_members(np.array([True, True, True]), 'runs/w')
  message = str(raised.value)
  assert raised.value.exit_code == 2
  for words in ("'runs/w'", 'every member', 'diverged', 'no member to forecast with',
                'train.learning_rate'):
    assert words in message, f'the message does not say {words!r}: {message}'


@pytest.mark.parametrize('member', [None, 0])
def test_load_run_refuses_an_ensemble_that_all_diverged(files, monkeypatch, tmp_path, member):
  state, meta = ckpt_lib.load_for_inference(files['finished'])
  stacked = {**state, 'diverged': np.array([True, True])}
  monkeypatch.setattr(ckpt_lib, 'load_for_inference',
                      lambda workdir: (stacked, {**meta, 'members': [{}, {}]}))
  out = tmp_path / 'out.csv'
  out.write_bytes(PRECIOUS)
  with pytest.raises(UserError, match='every member of the ensemble') as raised:
    forecast.forecast_csv(files['finished'], files['series'], str(out), member)
  assert raised.value.exit_code == 2
  assert out.read_bytes() == PRECIOUS, 'a refused forecast replaced the --out file'


def test_check_paths_refuses_an_unwritable_out_folder(files, monkeypatch, tmp_path):
  monkeypatch.setattr(predict_checks.os, 'access', lambda path, mode: False)
  with pytest.raises(UserError, match='is not writable'):
    predict_checks.check_paths(files['series'], str(tmp_path / 'out.csv'))


def test_missing_csv_is_refused_before_loading_the_run(tmp_path):
  with pytest.raises(UserError, match='does not exist or is not a file') as raised:
    forecast.forecast_csv(str(tmp_path / 'no_workdir'), str(tmp_path / 'absent.csv'),
                          str(tmp_path / 'out.csv'))
  assert '--csv' in str(raised.value) and not os.path.exists(tmp_path / 'out.csv')


def test_fill_fills_the_gaps_predict_would_refuse(files, tmp_path):
  out = str(tmp_path / 'out.csv')
  frame = forecast.forecast_csv(files['finished'], files['with_nan'], out, fill='ffill')
  window = tiny_config().data.window
  assert len(frame) == files['n_points'] - window + 1, f'{len(frame)} forecast rows'
  assert np.all(np.isfinite(frame['forecast'])), 'non-finite forecasts after --fill=ffill'
  np.testing.assert_allclose(pd.read_csv(out)['forecast'], frame['forecast'], rtol=5e-6,
                             err_msg='the written CSV does not hold the returned forecasts '
                                     '(to its 6 significant digits)')


def test_forecasts_are_written_with_6_significant_digits_or_as_many_as_asked(files, tmp_path):
  short, exact = str(tmp_path / 'short.csv'), str(tmp_path / 'exact.csv')
  frame = forecast.forecast_csv(files['finished'], files['series'], short)
  forecast.forecast_csv(files['finished'], files['series'], exact, digits=17)
  for column in ('forecast', 'actual'):
    written = pd.read_csv(short, dtype=str)[column].dropna()
    mantissa = written.str.split('e').str[0].str.replace('-', '').str.replace('.', '')
    longest = mantissa.str.lstrip('0').str.len().max()
    assert longest <= 6, f'{column} written with {longest} significant digits: {list(written[:3])}'
    np.testing.assert_allclose(pd.read_csv(short)[column], frame[column], rtol=5e-6,
                               err_msg=f'{column} at 6 significant digits')
    np.testing.assert_array_equal(pd.read_csv(exact)[column], frame[column],
                                  err_msg=f'{column} at 17 digits is not every value exactly')
  with pytest.raises(UserError, match='--digits=0: give the significant digits'):
    forecast.forecast_csv(files['finished'], files['series'], str(tmp_path / 'no.csv'), digits=0)
  assert not os.path.exists(tmp_path / 'no.csv')


def test_csv_without_the_runs_columns_names_them(files, tmp_path):
  csv = tmp_path / 'other.csv'
  _write_series(csv, column='temp')
  with pytest.raises(UserError) as raised:
    forecast.forecast_csv(files['finished'], str(csv), str(tmp_path / 'out.csv'))
  message = str(raised.value)
  assert "['time', 'temperature']" in message and 'data.' not in message, (
      f'the message does not name the run\'s columns in predict.py\'s terms: {message}')
