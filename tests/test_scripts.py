"""scripts/train.py and scripts/predict.py through the command line, as a user runs them.

The library is tested in-process elsewhere; these tests check what only a subprocess shows: the
artifacts a finished run leaves, the forecast CSV, and that bad input ends with a one-line
message and an exit code instead of a traceback or a workdir that looks finished.
"""
import json
import math
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import PYTHON, ROOT, script_env
from rnnjax import metrics as metrics_lib
from rnnjax.sources import synthetic_series

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
TIMEOUT = 300  # seconds per subprocess; generous because others may share the machine
TUTORIAL_EPOCHS = 2
TUTORIAL_DAYS = 30


def _script(name):
  return os.path.join(ROOT, 'scripts', name)


def _run(args, env=None, timeout=TIMEOUT):
  return subprocess.run([PYTHON, *args], cwd=ROOT, env=env or script_env(), capture_output=True,
                        text=True, timeout=timeout)


def _tail(text, n=3000):
  return text[-n:]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """The tutorial config shortened to 2 epochs on 30 days and a GRU 8/8, by scripts/train.py."""
  workdir = str(tmp_path_factory.mktemp('scripts') / 'seed_gru')
  proc = _run([_script('train.py'), '--config', 'configs/seed_gru.py', '--workdir', workdir,
               f'--config.train.epochs={TUTORIAL_EPOCHS}',
               f'--config.data.synthetic.num_days={TUTORIAL_DAYS}',
               '--config.model.hidden_sizes=(8,8)'])
  assert proc.returncode == 0, (
      f'scripts/train.py exited with {proc.returncode} on the tutorial config:\n'
      f'{_tail(proc.stderr)}')
  return workdir, proc


def test_train_script_writes_every_artifact(trained):
  workdir, proc = trained
  present = sorted(os.listdir(workdir))
  for name in ('history.csv', 'metrics.json', 'loss.png', 'predictions.png', 'config.json',
               'checkpoints', 'tensorboard'):
    assert name in present, f'{name} missing from the workdir of a finished run; it has {present}'

  history = pd.read_csv(os.path.join(workdir, 'history.csv'))
  assert list(history.columns) == ['epoch', 'loss', 'val_loss', 'grad_norm'], (
      f'history.csv columns are {list(history.columns)}')
  assert len(history) == TUTORIAL_EPOCHS, (
      f'history.csv has {len(history)} rows after {TUTORIAL_EPOCHS} epochs')
  assert list(history['epoch']) == list(range(1, TUTORIAL_EPOCHS + 1)), (
      f'history.csv epochs are {list(history["epoch"])}')
  assert np.all(np.isfinite(history[['loss', 'val_loss', 'grad_norm']].to_numpy())), (
      f'non-finite losses in history.csv:\n{history}')

  with open(os.path.join(workdir, 'metrics.json')) as f:
    metrics = json.load(f)
  for key in ('val_rmse', 'val_mae', 'val_mse_scaled', 'baseline_persistence_rmse',
              'baseline_seasonal_naive_rmse', 'train_seconds', 'compile_seconds'):
    assert key in metrics, f'metrics.json lacks {key!r}; it has {sorted(metrics)}'
    value = metrics[key]
    assert isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value), f'metrics.json {key}={value!r} is not a finite number'

  for name in ('loss.png', 'predictions.png'):
    with open(os.path.join(workdir, name), 'rb') as f:
      head = f.read(8)
    assert head == PNG_MAGIC, f'{name} does not start with the PNG signature: {head!r}'

  with open(os.path.join(workdir, 'config.json')) as f:
    saved = json.load(f)
  assert saved['train']['epochs'] == TUTORIAL_EPOCHS and \
      saved['data']['synthetic']['num_days'] == TUTORIAL_DAYS, (
          'config.json does not hold the command-line overrides: train.epochs='
          f'{saved["train"]["epochs"]}, data.synthetic.num_days='
          f'{saved["data"]["synthetic"]["num_days"]}')

  checkpoints = os.path.join(workdir, 'checkpoints')
  steps = sorted(int(n) for n in os.listdir(checkpoints) if n.isdigit())
  assert steps and steps[-1] == TUTORIAL_EPOCHS, (
      f'checkpoints/ holds steps {steps} (entries {os.listdir(checkpoints)}); expected the final '
      f'step {TUTORIAL_EPOCHS}')
  assert os.path.isdir(os.path.join(checkpoints, str(steps[-1]), 'state')), (
      f'checkpoint step {steps[-1]} has no state item: '
      f'{os.listdir(os.path.join(checkpoints, str(steps[-1])))}')

  *_, said, last = proc.stdout.strip().splitlines()
  printed = json.loads(last)
  assert printed['val_rmse'] == pytest.approx(metrics['val_rmse'], abs=1e-4), (
      f'the script printed val_rmse={printed["val_rmse"]} but metrics.json holds '
      f'{metrics["val_rmse"]}')
  assert said == metrics_lib.verdict(metrics), (
      f'the line before the JSON should say which baselines the model beat: {said!r}')


def test_predict_script_writes_one_row_per_window(trained, tmp_path):
  workdir, _ = trained
  with open(os.path.join(workdir, 'config.json')) as f:
    config = json.load(f)
  window, horizon = config['data']['window'], config['data']['horizon']
  times, values = synthetic_series(num_days=3, start='2025-03-01 00:00', seed=11)
  csv_path, out_path = tmp_path / 'new.csv', tmp_path / 'forecast.csv'
  pd.DataFrame({'time': times, 'temperature': values}).to_csv(csv_path, index=False)

  proc = _run([_script('predict.py'), '--workdir', workdir, '--csv', str(csv_path),
               '--out', str(out_path), '--digits=17'])  # every digit: actual is compared exactly
  assert proc.returncode == 0, f'predict.py exited with {proc.returncode}:\n{_tail(proc.stderr)}'
  assert 'Traceback' not in proc.stderr, _tail(proc.stderr)

  out = pd.read_csv(out_path)
  assert list(out.columns) == ['input_end', 'step', 'target_time', 'forecast', 'actual'], (
      f'forecast CSV columns are {list(out.columns)}')
  assert (out['step'] == horizon).all(), f'a single-step run forecasts step {horizon} only'
  n_rows = len(values) - window + 1
  assert len(out) == n_rows, (
      f'{len(out)} forecast rows for {len(values)} points and window {window}; expected {n_rows}')
  assert np.all(np.isfinite(out['forecast'])), 'non-finite forecasts in the output CSV'

  input_end = pd.to_datetime(out['input_end'])
  target_time = pd.to_datetime(out['target_time'])
  np.testing.assert_array_equal(
      input_end.to_numpy(), times[window - 1:].to_numpy(),
      err_msg='input_end is not the time of each window\'s last input')
  np.testing.assert_array_equal(
      target_time.to_numpy(), (input_end + pd.Timedelta(hours=horizon)).to_numpy(),
      err_msg=f'target_time is not input_end + {horizon} hours (extrapolated hourly past the end)')

  known, future = out.iloc[:-horizon], out.iloc[-horizon:]
  assert future['actual'].isna().all(), (
      f'the last {horizon} rows target times after the series ends but have actual values:\n'
      f'{future}')
  np.testing.assert_allclose(
      known['actual'].to_numpy(), values[window - 1 + horizon:], rtol=0, atol=1e-9,
      err_msg='actual is not the observed value at target_time')


# Each case: extra command-line arguments, text stderr must contain, and files it needs.
# Every case also runs tiny (30 days, GRU 8/8, 1 epoch) in case its check is missing.
BAD_INPUTS = {
    'unknown_config_key': (['--config.train.epoch=5'], 'epoch'),
    'batch_not_split_by_mesh_data': (['--config.mesh.data=3'], 'a multiple of 3'),
    'mesh_members_of_one_model': (['--config.mesh.members=2'], 'mesh.members=2'),
    'mesh_members_not_dividing_devices': (['--config.num_seeds=2', '--config.mesh.members=7'],
                                          'mesh.members=7'),
    'window_zero': (['--config.data.window=0'], 'data.window'),
    'unknown_cell': (['--config.model.cell=transformer'], 'model.cell'),
    'csv_missing_file': (['--config.data.source=csv', '--config.data.path={dir}/absent.csv'],
                         'absent.csv'),
    'csv_missing_column': (['--config.data.source=csv', '--config.data.path={dir}/no_target.csv'],
                           'temperature'),
    'csv_nan_values': (['--config.data.source=csv', '--config.data.path={dir}/with_nan.csv'],
                       'line 7'),  # the first NaN is data row 5, file line 7 (after the header)
    'path_without_csv_source': (['--config.data.path={dir}/absent.csv'],
                                'data.source is "synthetic"'),
    'learning_rate_nan': (['--config.train.learning_rate=nan'], 'train.learning_rate'),
    'csv_inf_values': (['--config.data.source=csv', '--config.data.path={dir}/with_inf.csv'],
                       'inf and -inf count as missing'),
    'csv_missing_timestamps': (['--config.data.source=csv',
                                '--config.data.path={dir}/with_gaps.csv'],
                               '6 steps are missing in 2 gaps'),
    'csv_aware_and_naive_times': (['--config.data.source=csv',
                                   '--config.data.path={dir}/aware_and_naive.csv'],
                                  'mixes timestamps with and without a UTC offset'),
    'duplicate_features': (['--config.data.features=("humidity","humidity")'],
                           'more than once'),
    'fill_unknown_synthetic': (['--config.data.fill=zero'], 'data.fill'),
    'ensemble_quantiles_empty': (['--config.num_seeds=2', '--config.ensemble_quantiles=()'],
                                 'ensemble_quantiles'),
    'seasonal_skip_outside_the_window': (['--config.model.skip=seasonal_naive',
                                          '--config.data.window=8'], 'data.window >= 12'),
    'calendar_tuple_unquoted': (['--config.data.calendar=(hour_of_day,day_of_week)'],
                                'Quote each name'),
    'id_column_missing': (['--config.data.source=csv', '--config.data.path={dir}/panel.csv',
                           '--config.data.id_column=site'], "no column(s) ['site']"),
    'series_with_duplicate_timestamps': (['--config.data.source=csv',
                                          '--config.data.path={dir}/panel_duplicates.csv',
                                          '--config.data.id_column=series'],
                                         "series 'b': duplicate timestamps"),
    'multi_step_horizon_zero': (['--config.data.multi_step=True', '--config.data.horizon=0'],
                                'data.horizon must be a positive integer'),
    'head_unknown': (['--config.model.head=beta'], "model.head='beta' is not one of"),
    'quantile_outside_0_1': (['--config.model.head=quantile',
                              '--config.model.quantiles=(0.1,0.5,0.9,1.5)'],
                             'every level must lie strictly between 0 and 1'),
    'quantiles_unsorted': (['--config.model.head=quantile',
                            '--config.model.quantiles=(0.9,0.5,0.1)'],
                           'must be strictly increasing'),
}
# Config mistakes that scripts/train.py reports before it creates the workdir at all.
REFUSED_BEFORE_THE_WORKDIR = {'window_zero', 'unknown_cell', 'head_unknown',
                              'quantile_outside_0_1', 'quantiles_unsorted'}


@pytest.fixture(scope='module')
def bad_runs(tmp_path_factory):
  """Starts every bad-input run at once (they fail fast; in parallel they cost one import)."""
  directory = tmp_path_factory.mktemp('bad_inputs')
  times, values = synthetic_series(num_days=30)
  pd.DataFrame({'time': times, 'temp': values}).to_csv(directory / 'no_target.csv', index=False)
  with_nan = values.copy()
  with_nan[[5, 40, 41]] = np.nan
  pd.DataFrame({'time': times, 'temperature': with_nan}).to_csv(directory / 'with_nan.csv',
                                                                index=False)
  with_inf = values.copy()
  with_inf[7] = -np.inf
  pd.DataFrame({'time': times, 'temperature': with_inf}).to_csv(directory / 'with_inf.csv',
                                                                index=False)
  gaps = pd.DataFrame({'time': times, 'temperature': values})
  gaps.drop(index=[50, 51, 52, 300, 301, 302]).to_csv(directory / 'with_gaps.csv', index=False)
  stamps = np.array(times.strftime('%Y-%m-%d %H:%M:%S'), dtype=object)
  stamps[100:] = stamps[100:] + '+00:00'
  pd.DataFrame({'time': stamps, 'temperature': values}).to_csv(directory / 'aware_and_naive.csv',
                                                               index=False)
  panel = pd.concat([pd.DataFrame({'series': name, 'time': times, 'temperature': values})
                     for name in ('a', 'b')])
  panel.to_csv(directory / 'panel.csv', index=False)
  pd.concat([panel, panel[panel['series'] == 'b'].iloc[[10]]]).to_csv(
      directory / 'panel_duplicates.csv', index=False)
  runs = {}
  for name, (args, _) in BAD_INPUTS.items():
    workdir = directory / name
    cmd = [PYTHON, _script('train.py'), '--config', 'configs/seed_gru.py', '--workdir',
           str(workdir), '--config.data.synthetic.num_days=30', '--config.train.epochs=1',
           '--config.model.hidden_sizes=(8,8)'] + [a.format(dir=directory) for a in args]
    runs[name] = (subprocess.Popen(cmd, cwd=ROOT, env=script_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True), workdir)
  yield runs
  for proc, _ in runs.values():
    if proc.poll() is None:
      proc.kill()
      proc.wait()


@pytest.mark.parametrize('case', sorted(BAD_INPUTS))
def test_bad_input_exits_with_a_message_and_no_traceback(bad_runs, case):
  proc, workdir = bad_runs[case]
  _, stderr = proc.communicate(timeout=TIMEOUT)
  expected = BAD_INPUTS[case][1]
  assert proc.returncode == 2, f'{case}: train.py exited {proc.returncode} on bad input, not 2'
  assert 'Traceback' not in stderr, (
      f'{case}: train.py printed a traceback instead of a message:\n{_tail(stderr)}')
  assert expected in stderr, (
      f'{case}: stderr does not name the problem ({expected!r}):\n{_tail(stderr)}')
  assert not os.path.exists(workdir / 'metrics.json'), (
      f'{case}: a failed run left metrics.json, so the workdir looks like a finished run')
  if case in REFUSED_BEFORE_THE_WORKDIR:
    assert not os.path.exists(workdir), f'{case}: a bad config created {os.listdir(workdir)}'


def test_workdir_that_is_a_file_is_refused_and_left_alone(tmp_path):
  path = tmp_path / 'not_a_dir'
  path.write_bytes(b'precious\n')
  proc = _run([_script('train.py'), '--config', 'configs/seed_gru.py', '--workdir', str(path),
               '--config.data.synthetic.num_days=30', '--config.train.epochs=1',
               '--config.model.hidden_sizes=(8,8)'])
  assert proc.returncode != 0, 'train.py exited 0 with --workdir pointing at a file'
  assert 'Traceback' not in proc.stderr, _tail(proc.stderr)
  assert str(path) in proc.stderr, (
      f'stderr does not name the --workdir that is a file:\n{_tail(proc.stderr)}')
  assert path.read_bytes() == b'precious\n', 'train.py changed the file given as --workdir'
