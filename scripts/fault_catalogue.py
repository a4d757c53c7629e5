"""Runs a catalogue of bad inputs and faults through the scripts, as a user would make them, and
checks that each ends well.

  python scripts/fault_catalogue.py                      # every case, two at a time
  python scripts/fault_catalogue.py --only=window_zero,predict_out_is_config_json
  python scripts/fault_catalogue.py --list               # the cases, one line each

A case ends well when the script exits with the expected code (2 for input errors), its stderr
holds the words that name the problem, there is no traceback, every file that must survive
(the trained run it reads, the input CSV, an --out file already there) is byte-identical, a
refused train.py run leaves no metrics.json, and no temporary file (`.tmp-*`, an Orbax
`*.orbax-checkpoint-tmp*` folder) is left in a workdir. The catalogue prepares its inputs in a
scratch folder (the synthetic series as CSVs of every kind of damage, one small trained run,
and a workdir held by this process's lock), runs the cases, prints one line per case and a
closing 'N passed, M failed' line, and writes every result to --out (JSON). The unit tests
check each fix in-process; this is the end-to-end count, and tests/test_fault_catalogue.py runs
a sample of it.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

flags.DEFINE_string('only', None, 'Comma-separated case names to run (default: all).')
flags.DEFINE_bool('list', False, 'List the cases and exit.')
flags.DEFINE_integer('jobs', 2, 'Cases run at once.')
flags.DEFINE_string('out', 'runs/fault_catalogue.json', 'Where to write the results (JSON).')
flags.DEFINE_string('scratch', None, 'Folder for the inputs and workdirs (default: a new '
                    'temporary folder, removed at the end).')
FLAGS = flags.FLAGS

TIMEOUT = 300  # seconds per case
TRAIN = ['train.py', '--config', 'configs/seed_gru.py', '--workdir', '{w}',
         '--config.data.synthetic.num_days=30', '--config.train.epochs=1',
         '--config.model.hidden_sizes=(8,8)']
BACKTEST = ['backtest.py', '--config', 'configs/seed_gru.py', '--workdir', '{w}',
            '--config.data.synthetic.num_days=30', '--config.train.epochs=1',
            '--config.model.hidden_sizes=(8,8)', '--config.backtest.folds=2']
PREDICT = ['predict.py', '--workdir', '{run}', '--csv', '{d}/good.csv', '--out', '{out}']


def csv(name):
  return ['--config.data.source=csv', f'--config.data.path={{d}}/{name}']


@dataclasses.dataclass
class Case:
  """One bad input or fault.

  name: unique; script: 'train.py', 'backtest.py' or 'predict.py' followed by its arguments,
  with {d} the inputs folder, {w} a fresh workdir of this case, {run} the trained run, {out} a
  forecast file that exists before the case; code: the exit code expected; words: what stderr
  must say.
  """
  name: str
  args: list
  code: int
  words: tuple


def _cases() -> list[Case]:
  out = []

  def add(name, args, words, code=2):
    out.append(Case(name, list(args), code, (words,) if isinstance(words, str) else tuple(words)))

  def train(name, extra, words, code=2):
    add(name, TRAIN + list(extra), words, code)

  # The config, refused before JAX is imported.
  for key, values in {'data.window': ('0', '-1'), 'data.horizon': ('0', '-3'),
                      'train.epochs': ('0', '-1'), 'train.batch_size': ('0', '-8'),
                      'train.checkpoint_every': ('0',), 'train.max_to_keep': ('0',),
                      'train.val_batch_size': ('0',)}.items():
    for value in values:
      train(f'{key.split(".")[1]}_{value}', [f'--config.{key}={value}'],
            f'{key} must be a positive integer')
  for key in ('learning_rate', 'weight_decay', 'clip_norm'):
    for value in ('nan', 'inf'):
      train(f'{key}_{value}', [f'--config.train.{key}={value}'], f'train.{key}')
  train('dropout_nan', ['--config.model.dropout=nan'], 'model.dropout')
  train('hidden_sizes_empty', ['--config.model.hidden_sizes=()'], 'model.hidden_sizes')
  train('hidden_sizes_zero', ['--config.model.hidden_sizes=(8,0)'], 'model.hidden_sizes')
  train('hidden_sizes_words', ['--config.model.hidden_sizes=(8,x)'], 'model.hidden_sizes')
  train('cell_unknown', ['--config.model.cell=transformer'], 'model.cell')
  train('activation_unknown', ['--config.model.activation=softmax'], 'model.activation')
  train('implementation_unknown', ['--config.model.implementation=cuda'],
        'model.implementation')
  train('head_unknown', ['--config.model.head=beta'], "model.head='beta' is not one of")
  train('quantiles_outside', ['--config.model.head=quantile',
                              '--config.model.quantiles=(0.1,0.5,0.9,1.5)'],
        'every level must lie strictly between 0 and 1')
  train('quantiles_unsorted', ['--config.model.head=quantile',
                               '--config.model.quantiles=(0.9,0.5,0.1)'],
        'must be strictly increasing')
  train('quantiles_empty', ['--config.model.head=quantile', '--config.model.quantiles=()'],
        'model.quantiles is empty')
  train('quantiles_without_interval', ['--config.model.head=quantile',
                                       '--config.model.quantiles=(0.2,0.5,0.8)'],
        'lacks the bounds of the central')
  train('interval_one', ['--config.model.interval=1.0'], 'model.interval')
  train('interval_negative', ['--config.model.interval=-0.5'], 'model.interval')
  train('fill_unknown', ['--config.data.fill=zero'], 'data.fill')
  train('scaler_unknown', ['--config.data.scaler=robust'], 'data.scaler')
  train('source_unknown', ['--config.data.source=parquet'], 'data.source')
  train('skip_unknown', ['--config.model.skip=drift'], 'model.skip')
  train('normalize_unknown', ['--config.model.normalize=zscore'], 'model.normalize')
  train('lr_schedule_unknown', ['--config.train.lr_schedule=step'], 'train.lr_schedule')
  train('warmup_longer_than_training', ['--config.train.lr_schedule=cosine',
                                        '--config.train.warmup_epochs=5'],
        'train.warmup_epochs')
  train('highway_longer_than_window', ['--config.model.highway=30'], 'model.highway')
  train('calendar_unknown', ['--config.data.calendar=("minute",)'], 'not calendar inputs')
  train('calendar_unquoted', ['--config.data.calendar=(hour_of_day,day_of_week)'],
        'Quote each name')
  train('features_twice', ['--config.data.features=("humidity","humidity")'], 'more than once')
  train('seasonal_skip_outside_window', ['--config.model.skip=seasonal_naive',
                                         '--config.data.window=8'], 'data.window >= 12')
  train('ensemble_quantiles_empty', ['--config.num_seeds=2', '--config.ensemble_quantiles=()'],
        'ensemble_quantiles')
  train('ensemble_vmap_size_negative', ['--config.ensemble_vmap_size=-1'], 'ensemble_vmap_size')
  train('sweep_length_mismatch', ['--config.num_seeds=3',
                                  '--config.sweep.learning_rate=(0.001,0.01)'],
        'sweep.learning_rate has 2 values but num_seeds=3')
  train('sweep_negative_learning_rate', ['--config.num_seeds=2',
                                         '--config.sweep.learning_rate=(0.001,-1.0)'],
        'learning_rate')
  train('sweep_changes_shapes', ['--config.num_seeds=2',
                                 '--config.sweep.hidden_sizes=((8,),(16,))'],
        'changes array shapes')
  train('multi_step_horizon_zero', ['--config.data.multi_step=True', '--config.data.horizon=0'],
        'data.horizon must be a positive integer')
  # The command line.
  train('unknown_key', ['--config.train.epoch=3'], "unknown config key: 'epoch'")
  train('integer_as_words', ['--config.train.epochs=ten'], "invalid literal for int() with base "
                                                           "10: 'ten'")
  train('stray_argument', ['stray'], "unexpected argument(s) ['stray']")
  add('config_file_missing', ['train.py', '--config', 'configs/absent.py', '--workdir', '{w}'],
      'could not load the --config file')
  add('config_file_broken', ['train.py', '--config', '{d}/broken_config.py', '--workdir', '{w}'],
      'SyntaxError')
  add('workdir_flag_missing', ['train.py', '--config', 'configs/seed_gru.py'],
      'Flag --workdir must have a value')
  add('config_flag_missing', ['train.py', '--workdir', '{w}'], 'Flag --config must have a value')

  # The workdir.
  train('workdir_empty', [], '--workdir', code=2)
  out[-1].args[out[-1].args.index('{w}')] = ''
  for name, path in (('workdir_is_a_file', '{d}/good.csv'),
                     ('workdir_inside_a_file', '{d}/good.csv/run'),
                     ('workdir_in_proc', '/proc/rnnjax_run'),
                     ('workdir_in_sys', '/sys/rnnjax_run'),
                     ('workdir_in_use', '{d}/held')):
    train(name, [], {'workdir_is_a_file': 'is a file', 'workdir_inside_a_file': 'which is a file',
                     'workdir_in_use': 'is in use by another run'}.get(name, path.split('/')[1]))
    out[-1].args[out[-1].args.index('{w}')] = path
  train('workdir_of_another_config', ['--config.train.learning_rate=0.01'],
        'holds a run with a different config')
  out[-1].args[out[-1].args.index('{w}')] = '{d}/finished'
  add('backtest_in_a_train_workdir', BACKTEST[:4] + ['{d}/finished'] + BACKTEST[5:],
      'holds a run with a different config')

  # The data.
  train('csv_missing', csv('absent.csv'), 'does not exist')
  train('csv_is_a_folder', csv('folder'), '')
  train('csv_empty', csv('empty.csv'), 'empty.csv')
  train('csv_binary', csv('binary.csv'), 'binary.csv')
  train('csv_header_only', csv('header_only.csv'), 'too short')
  train('path_without_csv_source', ['--config.data.path={d}/good.csv'],
        'data.source is "synthetic"')
  train('target_missing', csv('no_target.csv'), "no column(s) ['temperature']")
  train('feature_missing', csv('good.csv') + ['--config.data.features=("wind",)'],
        "no column(s) ['wind']")
  train('time_column_missing', csv('good.csv') + ['--config.data.time_column=date'],
        "no column(s) ['date']")
  train('missing_values', csv('with_nan.csv'), 'line 7')
  train('infinite_value', csv('with_inf.csv'), 'inf and -inf count as missing')
  train('words_as_values', csv('with_words.csv'), 'non-numeric')
  train('timestamps_missing', csv('with_gaps.csv'), '6 steps are missing in 2 gaps')
  train('timestamps_off_the_grid', csv('off_grid.csv'), "off the series' 1 h grid")
  train('timestamps_duplicated', csv('duplicates.csv'), 'duplicate timestamps')
  train('timestamps_aware_and_naive', csv('aware_and_naive.csv'),
        'mixes timestamps with and without a UTC offset')
  train('timestamps_unparseable', csv('bad_time.csv'), 'not timestamps')
  train('feature_all_missing', csv('empty_feature.csv') + ['--config.data.features=("humidity",)',
                                                           '--config.data.fill=ffill'],
        'hold no finite number at all')
  train('series_too_short', csv('short.csv'), 'too short')
  train('window_longer_than_series', csv('good.csv') + ['--config.data.window=5000'],
        'too short')
  train('id_column_missing', csv('panel.csv') + ['--config.data.id_column=site'],
        "no column(s) ['site']")
  train('id_column_is_the_time', csv('panel.csv') + ['--config.data.id_column=time'],
        'data.id_column')
  train('series_duplicated_timestamps', csv('panel_duplicates.csv')
        + ['--config.data.id_column=series'], "series 'b': duplicate timestamps")
  train('every_series_too_short', csv('short_panel.csv') + ['--config.data.id_column=series'],
        'long enough')
  train('future_feature_is_the_target', csv('good.csv')
        + ['--config.data.future_features=("temperature",)'], 'names the target')
  train('epoch_seconds', csv('epoch.csv'), ('holds numbers', '--config.data.time_unit=s'))
  train('unit_for_dates', csv('good.csv') + ['--config.data.time_unit=s'], 'holds no number')
  train('unit_unknown', csv('epoch.csv') + ['--config.data.time_unit=hours'], 'data.time_unit')
  train('day_first_ambiguous', csv('day_first.csv'), '--config.data.dayfirst=true')
  train('day_first_read_month_first', csv('day_first_late.csv')
        + ['--config.data.dayfirst=false'], 'not dates read month/day/year')
  train('dayfirst_unknown', csv('day_first.csv') + ['--config.data.dayfirst=maybe'],
        'data.dayfirst')
  train('fill_too_much', csv('mostly_gaps.csv') + ['--config.data.fill=ffill'],
        'data.max_fill_fraction')
  train('max_fill_fraction_above_one', ['--config.data.max_fill_fraction=2.0'],
        'data.max_fill_fraction must be a number from 0 to 1')
  train('huge_values_minmax', csv('huge.csv'), "column 'temperature' cannot be scaled")
  train('huge_values_standard', csv('huge.csv') + ['--config.data.scaler=standard'],
        "column 'temperature' cannot be scaled")
  train('header_repeats_a_name', csv('twice.csv'), 'more than once')
  train('latin1_file', csv('latin1.csv'), 'not UTF-8')
  train('val_fraction_one', ['--config.data.val_fraction=1.0'], 'data.val_fraction')
  train('val_fraction_zero', ['--config.data.val_fraction=0.0'], 'data.val_fraction')
  train('season_zero', ['--config.data.season=0'], 'data.season must be a positive integer')
  train('num_seeds_zero', ['--config.num_seeds=0'], 'num_seeds must be a positive integer')
  train('patience_negative', ['--config.train.early_stopping_patience=-1'],
        'train.early_stopping_patience')
  train('epochs_per_chunk_negative', ['--config.train.epochs_per_chunk=-2'],
        'train.epochs_per_chunk')
  train('dropout_one', ['--config.model.dropout=1.0'], 'model.dropout')
  train('learning_rate_zero', ['--config.train.learning_rate=0.0'], 'train.learning_rate')
  train('weight_decay_negative', ['--config.train.weight_decay=-0.1'], 'train.weight_decay')
  train('id_column_on_synthetic', ['--config.data.id_column=series'], 'data.source')
  train('calendar_twice', ['--config.data.calendar=("month","month")'], 'more than once')
  train('ensemble_quantiles_outside', ['--config.num_seeds=2',
                                       '--config.ensemble_quantiles=(0.1,1.2)'],
        'ensemble_quantiles must lie strictly between 0 and 1')
  train('season_longer_than_series', csv('good.csv') + ['--config.data.season=5000'], 'season')

  # Training that cannot go on.
  train('learning_rate_overflows', ['--config.train.learning_rate=1e30'], 'diverged', code=3)

  # Backtests.
  add('backtest_zero_folds', BACKTEST + ['--config.backtest.folds=0'], 'backtest.folds')
  add('backtest_test_too_long', BACKTEST + ['--config.backtest.test_length=100000'], 'backtest')
  add('backtest_stray_argument', BACKTEST + ['x'], "unexpected argument(s) ['x']")
  add('backtest_bad_key', BACKTEST + ['--config.backtest.fold=2'], 'unknown config key')
  add('backtest_csv_missing', BACKTEST + csv('absent.csv'), 'does not exist')
  add('backtest_negative_step', BACKTEST + ['--config.backtest.step=-1'], 'backtest.step')
  add('backtest_refit_words', BACKTEST + ['--config.backtest.refit=sometimes'],
      'bad command line')
  add('backtest_window_zero', BACKTEST + ['--config.data.window=0'], 'data.window')
  add('backtest_day_first', BACKTEST + csv('day_first.csv'), 'data.dayfirst')
  add('backtest_in_use', BACKTEST[:4] + ['{d}/held'] + BACKTEST[5:], 'is in use by another run')

  # Forecasts from a trained run: the run, the --csv and the --out file already there are kept.
  def predict(name, extra, words, code=2, base=PREDICT):
    add(f'predict_{name}', base + list(extra), words, code)

  def predict_with(name, flag, value, words):
    args = list(PREDICT)
    args[args.index(flag) + 1] = value
    predict(name, [], words, base=args)

  predict_with('workdir_missing', '--workdir', '{d}/absent_run', 'absent_run')
  predict_with('workdir_not_a_run', '--workdir', '{d}', '')
  predict_with('workdir_unfinished', '--workdir', '{d}/unfinished', 'unfinished run')
  predict_with('csv_missing', '--csv', '{d}/absent.csv', 'does not exist')
  predict_with('csv_is_a_folder', '--csv', '{d}/folder', 'folder')
  predict_with('csv_empty', '--csv', '{d}/empty.csv', 'empty.csv')
  predict_with('csv_binary', '--csv', '{d}/binary.csv', 'binary.csv')
  predict_with('csv_without_target', '--csv', '{d}/no_target.csv', "no column(s)")
  predict_with('csv_missing_values', '--csv', '{d}/with_nan.csv', 'missing')
  predict_with('csv_gaps', '--csv', '{d}/with_gaps.csv', 'missing')
  predict_with('csv_duplicates', '--csv', '{d}/duplicates.csv', 'duplicate timestamps')
  predict_with('csv_unparseable_times', '--csv', '{d}/bad_time.csv', 'not timestamps')
  predict_with('csv_half_hourly', '--csv', '{d}/half_hourly.csv', 'steps by 30min')
  predict_with('csv_too_short', '--csv', '{d}/short.csv', 'fewer than one window')
  predict_with('csv_epoch_seconds', '--csv', '{d}/epoch.csv', 'holds numbers')
  predict_with('csv_day_first', '--csv', '{d}/day_first.csv', 'data.dayfirst')
  predict_with('csv_huge_value', '--csv', '{d}/huge_one.csv', 'cannot be scaled')
  predict_with('csv_repeated_header', '--csv', '{d}/twice.csv', 'more than once')
  predict_with('csv_off_grid', '--csv', '{d}/off_grid.csv', "off the series' 1 h grid")
  predict_with('csv_aware_and_naive', '--csv', '{d}/aware_and_naive.csv',
               'mixes timestamps with and without a UTC offset')
  predict('fill_too_much', ['--fill=ffill'], 'data.max_fill_fraction',
          base=PREDICT[:4] + ['{d}/mostly_gaps.csv'] + PREDICT[5:])
  predict_with('out_is_the_csv', '--out', '{d}/good.csv', 'is the input --csv')
  predict_with('out_is_a_folder', '--out', '{d}', 'is a folder')
  predict_with('out_folder_missing', '--out', '{d}/nowhere/f.csv', 'does not exist')
  for target in ('config.json', 'metrics.json', 'history.csv', 'loss.png', 'new.csv'):
    predict_with(f'out_in_the_run_{target.replace(".", "_")}', '--out', f'{{run}}/{target}',
                 '--workdir')
  predict_with('out_in_the_run_via_dotdot', '--out', '{run}/checkpoints/../config.json',
               '--workdir')
  predict('plot_is_the_out', ['--plot', '{out}'], '--plot')
  predict('plot_unknown_format', ['--plot', '{d}/figure.txt'], 'txt')
  predict('plot_in_the_run', ['--plot', '{run}/loss.png'], '--workdir')
  predict('plot_is_the_csv', ['--plot', '{d}/good.csv'], '--plot')
  predict('plot_folder_missing', ['--plot', '{d}/nowhere/f.png'], 'does not exist')
  predict('member_of_a_single_run', ['--member=1'], 'drop --member')
  predict('series_not_in_csv', ['--series=z'], "--series='z'")
  predict('fill_unknown', ['--fill=zero'], 'bad command line')
  predict('stray_argument', ['extra'], "unexpected argument(s) ['extra']")
  predict('flag_unknown', ['--ouput=x.csv'], 'bad command line')
  return out


def _write_inputs(d: str) -> None:
  """The CSVs, each damaged in one way, that the cases read."""
  import numpy as np
  import pandas as pd
  from rnnjax.sources import synthetic_series
  times, values = synthetic_series(num_days=30)
  rng = np.random.default_rng(0)
  frame = pd.DataFrame({'time': times, 'temperature': values,
                        'humidity': 60 + 10 * rng.standard_normal(len(values))})

  def save(name, table):
    table.to_csv(os.path.join(d, name), index=False)

  save('good.csv', frame)
  save('no_target.csv', frame.rename(columns={'temperature': 'temp'}))
  damaged = frame.copy()
  damaged.loc[[5, 40, 41], 'temperature'] = np.nan
  save('with_nan.csv', damaged)
  damaged = frame.copy()
  damaged.loc[7, 'temperature'] = -np.inf
  save('with_inf.csv', damaged)
  damaged = frame.astype({'temperature': object})
  damaged.loc[9, 'temperature'] = 'warm'
  save('with_words.csv', damaged)
  save('with_gaps.csv', frame.drop(index=[50, 51, 52, 300, 301, 302]))
  off = frame.copy()
  off.loc[20, 'time'] = off.loc[20, 'time'] + pd.Timedelta(minutes=17)
  save('off_grid.csv', off)
  save('duplicates.csv', pd.concat([frame, frame.iloc[[10]]]))
  stamps = np.array(times.strftime('%Y-%m-%d %H:%M:%S'), dtype=object)
  stamps[100:] = stamps[100:] + '+00:00'
  save('aware_and_naive.csv', frame.assign(time=stamps))
  bad = frame.astype({'time': object})
  bad.loc[3, 'time'] = 'yesterday'
  save('bad_time.csv', bad)
  save('empty_feature.csv', frame.assign(humidity=np.nan))
  save('short.csv', frame.iloc[:20])
  save('half_hourly.csv', pd.DataFrame({
      'time': pd.date_range(times[0], periods=len(values), freq='30min'),
      'temperature': values, 'humidity': frame['humidity']}))
  panel = pd.concat([frame.assign(series=name) for name in ('a', 'b')])
  save('panel.csv', panel)
  save('panel_duplicates.csv', pd.concat([panel, panel[panel['series'] == 'b'].iloc[[10]]]))
  save('short_panel.csv', pd.concat([frame.iloc[:20].assign(series=n) for n in ('a', 'b')]))
  save('epoch.csv', frame.assign(time=(times - pd.Timestamp('1970-01-01')) // pd.Timedelta('1s')))
  save('day_first.csv', frame.assign(time=times.strftime('%d/%m/%Y %H:%M')))
  later = pd.date_range('2025-01-13', periods=len(values), freq='h')
  save('day_first_late.csv', frame.assign(time=later.strftime('%d/%m/%Y %H:%M')))
  save('mostly_gaps.csv', frame.drop(index=frame.index[2::3]))
  huge = frame.copy()
  huge.loc[30, 'temperature'], huge.loc[31, 'temperature'] = 1e308, -1e308
  save('huge.csv', huge)
  huge = frame.copy()
  huge.loc[300, 'temperature'] = 1e308
  save('huge_one.csv', huge)
  with open(os.path.join(d, 'twice.csv'), 'w') as f:
    f.write('time,temperature,temperature\n')
    f.writelines(f'{t},{v},{v}\n' for t, v in zip(times, values))
  with open(os.path.join(d, 'latin1.csv'), 'wb') as f:
    f.write('time,temperature,humidité\n'.encode('latin-1'))
    f.writelines(f'{t},{v},1\n'.encode('latin-1') for t, v in zip(times, values))
  with open(os.path.join(d, 'header_only.csv'), 'w') as f:
    f.write('time,temperature,humidity\n')
  open(os.path.join(d, 'empty.csv'), 'w').close()
  with open(os.path.join(d, 'binary.csv'), 'wb') as f:
    f.write(bytes(range(256)) * 8)
  with open(os.path.join(d, 'broken_config.py'), 'w') as f:
    f.write('def get_config(:\n')
  os.makedirs(os.path.join(d, 'folder'), exist_ok=True)


def _train_runs(d: str) -> None:
  """A finished run on good.csv ({d}/finished, read by the predict cases) and a copy without
  metrics.json ({d}/unfinished)."""
  finished = os.path.join(d, 'finished')
  args = [a.format(w=finished, d=d) for a in TRAIN + csv('good.csv')]
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', args[0]), *args[1:]],
                        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
  if proc.returncode != 0:
    raise SystemExit(f'fault_catalogue: training the run the cases read failed:\n'
                     f'{proc.stderr[-3000:]}')
  unfinished = os.path.join(d, 'unfinished')
  shutil.copytree(finished, unfinished)
  os.remove(os.path.join(unfinished, 'metrics.json'))


def _env() -> dict:
  env = dict(os.environ)
  env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
  env.setdefault('JAX_PLATFORMS', 'cpu')
  return env


def _tree(path: str) -> dict:
  """{relative path: bytes} of a file or of every file under a folder."""
  if os.path.isfile(path):
    with open(path, 'rb') as f:
      return {'': f.read()}
  out = {}
  for root, _, files in os.walk(path):
    for name in files:
      full = os.path.join(root, name)
      with open(full, 'rb') as f:
        out[os.path.relpath(full, path)] = f.read()
  return out


def _leftovers(path: str) -> list[str]:
  found = []
  for root, dirs, files in os.walk(path) if os.path.isdir(path) else ():
    found += [os.path.join(root, n) for n in dirs + files
              if n.startswith('.tmp-') or 'orbax-checkpoint-tmp' in n]
  return found


def run_case(case: Case, d: str) -> dict:
  """Runs one case; returns {name, ok, problems, code, seconds, stderr_tail}."""
  w = os.path.join(d, 'work', case.name)
  out = os.path.join(d, 'work', f'{case.name}.forecast.csv')
  os.makedirs(os.path.dirname(w), exist_ok=True)
  with open(out, 'w') as f:
    f.write('an earlier forecast\n')
  fill = {'d': d, 'w': w, 'run': os.path.join(d, 'finished'), 'out': out}
  args = [a.format(**fill) for a in case.args]
  kept = {path: _tree(path) for path in (fill['run'], os.path.join(d, 'good.csv'), out)}
  start = time.perf_counter()
  try:
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', args[0]), *args[1:]],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    code, stderr = proc.returncode, proc.stderr
  except subprocess.TimeoutExpired:
    code, stderr = None, f'did not end in {TIMEOUT} s'
  problems = []
  if code != case.code:
    problems.append(f'exit code {code}, expected {case.code}')
  for marker in ('Traceback', 'Fatal Python error'):
    if marker in stderr:
      problems.append(f'stderr holds a {marker}')
  problems += [f'stderr lacks {word!r}' for word in case.words if word not in stderr]
  problems += [f'{path} changed' for path, before in kept.items() if _tree(path) != before]
  if case.args[0] == 'train.py' and os.path.exists(os.path.join(w, 'metrics.json')):
    problems.append('a refused run left metrics.json')
  problems += [f'left {p}' for p in _leftovers(w) + _leftovers(fill['run'])]
  lines = [line for line in stderr.splitlines() if line.strip()]
  return {'name': case.name, 'ok': not problems, 'problems': problems, 'code': code,
          'seconds': round(time.perf_counter() - start, 2),
          'message': next((line for line in lines if line.startswith('error:')),
                          lines[-1] if lines else '')}


def main(argv):
  del argv
  cases = _cases()
  names = [c.name for c in cases]
  if len(set(names)) != len(names):
    raise SystemExit(f'fault_catalogue: duplicate case names: '
                     f'{sorted({n for n in names if names.count(n) > 1})}')
  if FLAGS.list:
    for c in cases:
      print(f'{c.name}: {" ".join(c.args)} -> exit {c.code}, says {list(c.words)}')
    return
  if FLAGS.only:
    wanted = FLAGS.only.split(',')
    unknown = sorted(set(wanted) - set(names))
    if unknown:
      raise SystemExit(f'fault_catalogue: unknown case(s) {unknown}; --list shows them.')
    cases = [c for c in cases if c.name in wanted]
  d = FLAGS.scratch or tempfile.mkdtemp(prefix='rnnjax_faults_')
  os.makedirs(d, exist_ok=True)
  from rnnjax import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  try:
    _write_inputs(d)
    if any('{run}' in a or '{d}/finished' in a or '{d}/unfinished' in a
           for c in cases for a in c.args):
      _train_runs(d)
    with workdir_lib.lock(os.path.join(d, 'held'), command='fault_catalogue (holding on purpose)'):
      with concurrent.futures.ThreadPoolExecutor(FLAGS.jobs) as pool:
        results = []
        for result in pool.map(lambda c: run_case(c, d), cases):
          results.append(result)
          status = 'ok  ' if result['ok'] else 'FAIL'
          print(f'{status} {result["name"]}: {result["message"][:150]}'
                + ('' if result['ok'] else f'\n       {"; ".join(result["problems"])}'),
                flush=True)
  finally:
    if not FLAGS.scratch:
      shutil.rmtree(d, ignore_errors=True)
  passed = sum(r['ok'] for r in results)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  with open(FLAGS.out, 'w') as f:
    json.dump({'cases': len(results), 'passed': passed, 'results': results}, f, indent=1)
  print(f'{passed} passed, {len(results) - passed} failed')
  sys.exit(0 if passed == len(results) else 1)


if __name__ == '__main__':
  app.run(main)
