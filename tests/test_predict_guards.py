"""What scripts/predict.py refuses so that it cannot destroy the run it reads or misread a series.

--out and --plot inside the workdir (by any spelling), --plot naming the --out or --csv file, a
figure format matplotlib cannot write, and a series at another time step than the run's training
data. One tiny run is trained in-process; most cases call `rnnjax.forecast` in-process, the main
ones also run scripts/predict.py, all started at once. Every refusal must leave the workdir, the
input and any existing output byte-identical.
"""
import dataclasses
import glob
import json
import os
import shutil
import subprocess

import pandas as pd
import pytest
from pandas.tseries.frequencies import to_offset

from conftest import (PYTHON, ROOT, SPELLINGS, copy_of_run, file_tree, other_spelling, script_env,
                      tiny_config)
from rnnjax import data as data_lib
from rnnjax import forecast
from rnnjax import predict_checks
from rnnjax import run as run_lib
from rnnjax import trained_run as trained_run_lib
from rnnjax.errors import UserError
from rnnjax.sources import synthetic_series

TIMEOUT = 300  # seconds per subprocess; generous because others may share the machine
PRECIOUS = b'an earlier file, not to be lost\n'


def _write_series(path, freq='h'):
  """Three days' worth of the synthetic series' values, one every `freq`."""
  _, values = synthetic_series(num_days=3, start='2025-03-01 00:00', seed=11)
  times = pd.date_range('2025-03-01 00:00', periods=len(values), freq=freq)
  pd.DataFrame({'time': times, 'temperature': values}).to_csv(path, index=False)


@pytest.fixture(scope='module')
def files(tmp_path_factory, finished_tiny_run):
  """A finished tiny run of the (hourly) synthetic series (a copy of the session's), and hourly
  and half-hourly inputs."""
  root = tmp_path_factory.mktemp('predict_guards')
  workdir = root / 'run'
  copy_of_run(finished_tiny_run, workdir)
  inputs = root / 'inputs'
  inputs.mkdir()
  _write_series(inputs / 'hourly.csv')
  _write_series(inputs / 'half_hourly.csv', '30min')
  return {'root': root, 'workdir': workdir, 'inputs': inputs,
          'hourly': inputs / 'hourly.csv', 'half_hourly': inputs / 'half_hourly.csv'}


@pytest.fixture(scope='module')
def trained_run(files):
  return trained_run_lib.load_run(str(files['workdir']))


def _trees(*folders):
  return {str(folder): file_tree(folder) for folder in folders}


def _changed(before, after):
  """The files that appeared, vanished or changed between two `_trees`."""
  return sorted(f'{folder}/{name}' for folder in before
                for name in set(before[folder]) | set(after[folder])
                if before[folder].get(name) != after[folder].get(name))


def _refused(files, tmp_path, *words, out=None, plot=None, csv=None, workdir=None):
  """Asserts forecast_csv refuses with exit code 2 and a message naming `words`, and that no
  file under the module's folder (workdir, inputs) or `tmp_path` changed; the message."""
  before = _trees(files['root'], tmp_path)
  with pytest.raises(UserError) as raised:
    forecast.forecast_csv(str(workdir or files['workdir']), str(csv or files['hourly']),
                          str(out or tmp_path / 'forecast.csv'),
                          plot_path=None if plot is None else str(plot))
  message = str(raised.value)
  assert raised.value.exit_code == 2, f'exit code {raised.value.exit_code}: {message}'
  for word in words:
    assert str(word) in message, f'the message does not say {str(word)!r}: {message}'
  changed = _changed(before, _trees(files['root'], tmp_path))
  assert not changed, f'a refused forecast changed {changed}; it said: {message}'
  return message


# --out inside the workdir: a path relative to the workdir, or a function of (files, tmp_path)
# that prepares and returns the path as the user spells it.
OUT_INSIDE_THE_WORKDIR = {
    'config_json': 'config.json',
    'metrics_json': 'metrics.json',
    'history_csv': 'history.csv',
    'checkpoint_file': 'checkpoints/1/meta/metadata',
    'new_file': 'forecast.csv',
    'new_file_in_a_subfolder': 'checkpoints/forecast.csv',
    'the_workdir_itself': lambda files, tmp: f'{files["workdir"]}/.',
    'dot_dot': lambda files, tmp: files['inputs'] / '..' / 'run' / 'metrics.json',
    'symlinked_folder': lambda files, tmp: _link(tmp / 'latest', files['workdir']) / 'config.json',
    'symlink_to_a_run_file': lambda files, tmp: _link(tmp / 'out.csv',
                                                      files['workdir'] / 'history.csv'),
}


def _link(link, target):
  os.symlink(target, link)
  return link


@pytest.mark.parametrize('case', sorted(OUT_INSIDE_THE_WORKDIR))
def test_out_inside_the_workdir_is_refused(files, tmp_path, case):
  spelling = OUT_INSIDE_THE_WORKDIR[case]
  out = (files['workdir'] / spelling if isinstance(spelling, str)
         else spelling(files, tmp_path))
  _refused(files, tmp_path, f'--out={str(out)!r}', 'inside the run\'s --workdir',
           'Name a file outside the workdir', out=out)


def test_out_relative_to_the_working_directory_inside_the_workdir_is_refused(
    files, tmp_path, monkeypatch):
  monkeypatch.chdir(files['workdir'] / 'checkpoints')
  _refused(files, tmp_path, "--out='../config.json'", 'inside the run\'s --workdir',
           out='../config.json')


def test_out_inside_a_workdir_given_through_a_link_is_refused(files, tmp_path):
  workdir = _link(tmp_path / 'run_link', files['workdir'])
  _refused(files, tmp_path, '--out=', 'inside the run\'s --workdir', workdir=workdir,
           out=files['workdir'] / 'config.json')


def test_out_that_is_a_link_inside_the_workdir_is_refused_wherever_it_points(files, tmp_path):
  # Writing the link would replace it with a file: the workdir would change.
  workdir = tmp_path / 'run'
  shutil.copytree(files['workdir'], workdir, symlinks=True)
  (tmp_path / 'elsewhere.csv').write_bytes(PRECIOUS)
  out = _link(workdir / 'latest.csv', tmp_path / 'elsewhere.csv')
  _refused(files, tmp_path, 'inside the run\'s --workdir', workdir=workdir, out=out)


def test_plot_inside_the_workdir_is_refused(files, tmp_path):
  _refused(files, tmp_path, f'--plot={str(files["workdir"] / "loss.png")!r}',
           'inside the run\'s --workdir', plot=files['workdir'] / 'loss.png')


@pytest.mark.parametrize('spelling', SPELLINGS)
def test_plot_that_is_the_out_file_is_refused(files, tmp_path, spelling):
  out = tmp_path / 'forecast.png'
  out.write_bytes(PRECIOUS)
  plot = other_spelling(out, spelling)
  _refused(files, tmp_path, f'--plot={str(plot)!r}', 'is the --out=', 'replace the forecast',
           'Name another file for --plot', out=out, plot=plot)


def test_plot_that_is_the_input_csv_is_refused(files, tmp_path):
  _refused(files, tmp_path, '--plot=', 'is the input --csv=', 'overwrite the series',
           plot=files['hourly'])


def test_plot_format_matplotlib_cannot_write_is_refused_naming_the_formats(files, tmp_path):
  from matplotlib.backend_bases import FigureCanvasBase
  (tmp_path / 'forecast.csv').write_bytes(PRECIOUS)
  message = _refused(files, tmp_path, "--plot=", "'txt'", 'e.g. --plot=',
                     plot=tmp_path / 'figure.txt')
  for name in FigureCanvasBase.get_supported_filetypes():
    assert name in message, f'the message does not list the supported format {name!r}: {message}'


def test_plot_format_is_read_from_the_extension_in_any_case(files, tmp_path):
  for name in ('figure.PDF', 'figure.svg', 'figure'):  # no extension: matplotlib's default
    predict_checks.check_plot(str(tmp_path / name), str(tmp_path / 'forecast.csv'))
  with pytest.raises(UserError, match="'TXT'"):
    predict_checks.check_plot(str(tmp_path / 'figure.TXT'), str(tmp_path / 'forecast.csv'))


def test_good_out_and_plot_still_write_the_forecast_and_the_figure(files, tmp_path):
  before = _trees(files['root'])
  out, plot = tmp_path / 'forecast.csv', tmp_path / 'forecast.svg'
  frame = forecast.forecast_csv(str(files['workdir']), str(files['hourly']), str(out),
                                plot_path=str(plot))
  assert len(pd.read_csv(out)) == len(frame) > 0, 'the forecast file does not hold the forecast'
  assert b'<svg' in plot.read_bytes()[:1000], 'the --plot file is not the SVG its name asks for'
  changed = _changed(before, _trees(files['root']))
  assert not changed, f'a forecast changed files of the run or its input: {changed}'


def test_run_records_the_hourly_step_of_the_tutorial_series(trained_run):
  steps = trained_run.steps
  assert list(steps) == [''], f'one series, one recorded step: {steps}'
  assert to_offset(steps['']) == to_offset(pd.Timedelta(hours=1)), (
      f'the tutorial series is hourly but the run recorded the step {steps[""]!r}')


def test_half_hourly_series_is_refused_by_an_hourly_run(files, tmp_path):
  out = tmp_path / 'forecast.csv'
  out.write_bytes(PRECIOUS)
  _refused(files, tmp_path, f'--csv={str(files["half_hourly"])!r}', 'steps by 30min',
           'steps by 1h', 'Resample', csv=files['half_hourly'], out=out)


def test_run_saved_without_a_step_forecasts_any_step(files, tmp_path):
  workdir = tmp_path / 'older_run'
  shutil.copytree(files['workdir'], workdir)
  metas = glob.glob(str(workdir / '**' / 'meta' / 'metadata'), recursive=True)
  assert metas, 'no checkpoint meta files: the Orbax layout changed'
  for path in metas:  # as a run saved before steps were recorded left them
    with open(path) as f:
      meta = json.load(f)
    for one in meta['series']:
      del one['step']
    with open(path, 'w') as f:
      json.dump(meta, f)
  frame = forecast.forecast_csv(str(workdir), str(files['half_hourly']),
                                str(tmp_path / 'forecast.csv'))
  assert len(frame) > 0 and frame['forecast'].notna().all(), 'no forecast from an older run'


@pytest.mark.parametrize('freq', ['h', '30min', '15s', 'D', '7D', 'W-SUN', 'MS', 'ME', 'B',
                                  'QS-JAN'])
def test_time_step_gives_back_the_timestamps_it_was_taken_from(freq):
  times = pd.date_range('2024-01-01', periods=40, freq=freq)
  step = trained_run_lib.time_step(times)
  rebuilt = pd.date_range(times[0], periods=len(times), freq=step)
  assert (rebuilt == times).all(), f'time_step of a {freq!r} series is {step!r}, another grid'


def test_check_step_reads_a_calendar_step_from_the_calendar(trained_run):
  months = dataclasses.replace(trained_run, steps={'': 'MS'})
  # April to July: the most common gap is 30 days, yet these are month starts.
  trained_run_lib.check_step(months, pd.date_range('2025-04-01', periods=4, freq='MS'))
  with pytest.raises(UserError, match='steps by ME'):
    trained_run_lib.check_step(months, pd.date_range('2025-04-30', periods=4, freq='ME'))


def test_each_series_of_a_panel_records_and_is_checked_against_its_own_step(trained_run,
                                                                            tmp_path):
  hourly = pd.date_range('2025-01-01', periods=24 * 12, freq='h')
  half_hourly = pd.date_range('2025-01-01', periods=24 * 12, freq='30min')
  _, values = synthetic_series(num_days=12)
  panel = pd.concat([pd.DataFrame({'site': name, 'time': times, 'temperature': values})
                     for name, times in (('a', hourly), ('b', half_hourly))])
  panel.to_csv(tmp_path / 'panel.csv', index=False)
  config = tiny_config(**{'data.source': 'csv', 'data.path': str(tmp_path / 'panel.csv'),
                          'data.id_column': 'site'})
  data = data_lib.prepare(config.data)
  # pylint: disable-next=protected-access
  saved = run_lib._meta(config, data, {}, 0, None, 0.0)['series']
  steps = {one['id']: to_offset(one['step']) for one in saved}
  assert steps == {'a': to_offset('1h'), 'b': to_offset('30min')}, (
      f'the checkpoint meta does not record each series\' own step: {steps}')
  run = dataclasses.replace(trained_run, steps={one['id']: one['step'] for one in saved})
  trained_run_lib.check_step(run, half_hourly, 'b')
  with pytest.raises(UserError, match="series 'a' steps by 30min"):
    trained_run_lib.check_step(run, half_hourly, 'a')


# scripts/predict.py, one case per kind of refusal, all at once (the others are checked in-process
# above): extra flags, then words stderr must hold. '{w}' is the workdir, '{in}' the inputs
# folder, '{out}' a folder for outputs; PRECIOUS_OUT already exist.
CLI_CASES = {
    'out_config_json': (['--out={w}/config.json'], ['--out=', 'config.json', 'inside']),
    'plot_is_out': (['--out={out}/same.png', '--plot={out}/sub/../same.png'],
                    ['--plot=', 'is the --out=']),
    'plot_txt': (['--out={out}/kept.csv', '--plot={out}/figure.txt'],
                 ['--plot=', "'txt'", 'png']),
    'half_hourly': (['--csv={in}/half_hourly.csv', '--out={out}/half.csv'],
                    ['--csv=', 'half_hourly.csv', '30min', '1h']),
}
PRECIOUS_OUT = ('same.png', 'kept.csv', 'half.csv')


@pytest.fixture(scope='module')
def cli(files, tmp_path_factory):
  """Runs scripts/predict.py for every case at once; {case: (returncode, stdout, stderr)} and
  the trees of the workdir, the inputs and the output folder before and after."""
  out = tmp_path_factory.mktemp('out')
  (out / 'sub').mkdir()
  for name in PRECIOUS_OUT:
    (out / name).write_bytes(PRECIOUS)
  names = {'w': files['workdir'], 'in': files['inputs'], 'out': out}
  before = _trees(files['root'], out)
  procs = {}
  for case, (args, _) in CLI_CASES.items():
    flags = {'--csv': str(files['hourly'])}
    flags.update(a.format(**names).split('=', 1) for a in args)
    cmd = [PYTHON, os.path.join(ROOT, 'scripts', 'predict.py'), f'--workdir={files["workdir"]}',
           *(f'{flag}={value}' for flag, value in flags.items())]
    procs[case] = subprocess.Popen(cmd, cwd=ROOT, env=script_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
  results = {}
  try:
    for case, proc in procs.items():
      stdout, stderr = proc.communicate(timeout=TIMEOUT)
      results[case] = (proc.returncode, stdout, stderr)
  finally:
    for proc in procs.values():
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  return results, before, _trees(files['root'], out)


@pytest.mark.parametrize('case', sorted(CLI_CASES))
def test_predict_script_refuses_with_a_message_and_exit_2(cli, case):
  results, _, _ = cli
  returncode, stdout, stderr = results[case]
  assert returncode == 2, f'{case}: predict.py exited {returncode}, expected 2:\n{stderr[-3000:]}'
  assert 'Traceback' not in stderr, f'{case}: predict.py printed a traceback:\n{stderr[-3000:]}'
  assert 'error: ' in stderr and 'wrote' not in stdout, (
      f'{case}: no error line, or it says it wrote a forecast:\n{stdout}\n{stderr[-3000:]}')
  for word in CLI_CASES[case][1]:
    assert word in stderr, f'{case}: stderr does not say {word!r}:\n{stderr[-3000:]}'


def test_predict_script_refusals_leave_every_file_as_it_was(cli):
  _, before, after = cli
  changed = _changed(before, after)
  assert not changed, (f'refused predict.py runs changed the workdir, the inputs or existing '
                       f'outputs: {changed}')
