r"""Times whole commands, process start to exit: rnnjax's train and predict scripts next to the
Keras reference, alternating; prints a markdown table (for docs/benchmarks.md) and writes JSON.

  .venv/bin/python scripts/benchmark_wall.py                   # rnnjax only, 5 rounds + 1 warm-up
  .venv/bin/python scripts/benchmark_wall.py --rounds=1 --warmup=0 \
      --train_arg=--config.train.epochs=2                      # a smoke run
  # against Keras (the reference tutorial, ../shared/reference/keras_seed.py, on JAX):
  python3 -m venv /tmp/kref && /tmp/kref/bin/pip install keras jax pandas scikit-learn
  .venv/bin/python scripts/benchmark_wall.py --keras_python=/tmp/kref/bin/python

Every round runs, in this order:
  first    scripts/train.py --config configs/seed_gru.py into a new workdir with an empty
           compilation cache (RNNJAX_COMPILATION_CACHE set to a new folder): a first run,
           compiling included.
  keras    the reference script, `{keras_python} {keras_script} {keras_epochs}`, KERAS_BACKEND=jax
           (only with --keras_python).
  second   the same training into another new workdir, reading the cache the first run filled:
           what any later run of the same shapes costs.
  predict  scripts/predict.py on the second run's workdir and the tutorial's 200-day series.
A figure is wall seconds around subprocess.run: interpreter start, imports, compiling, training,
checkpoints, evaluation, plots and exit all count. The train runs' metrics.json adds
compile_seconds, train_seconds and its per-phase `seconds`; the Keras script's line adds fit_s
(its model.fit alone). Every --train_arg goes to both train runs, e.g.
--train_arg=--config.train.epochs=2 (one argument per --train_arg, with `=`).

Why alternating and medians: on a small shared machine the load comes and goes over minutes;
taking turns within each round exposes every command to the same load, the median over rounds
ignores the odd slow round, and the range (min-max) shows how noisy the figures were. --warmup
rounds (run, not counted) fill the OS's file cache with the interpreters and libraries.
JAX_COMPILATION_CACHE_DIR is removed from the commands' environment so that it cannot pre-fill
the first run's cache. This script imports neither jax nor rnnjax: it only starts processes.
"""
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = {'first': 'rnnjax first run', 'keras': 'Keras reference',
            'second': 'rnnjax second run', 'predict': 'rnnjax predict'}
_WRITE_CSV = ('import sys, pandas; from rnnjax.sources import synthetic_series; '
              'times, values = synthetic_series(); '
              "pandas.DataFrame({'time': times, 'temperature': values})"
              '.to_csv(sys.argv[1], index=False)')

flags.DEFINE_integer('rounds', 5, 'Counted rounds (medians and ranges are over these).',
                     lower_bound=1)
flags.DEFINE_integer('warmup', 1, 'Rounds run first and not counted.', lower_bound=0)
flags.DEFINE_string('python', sys.executable, 'Python that runs the rnnjax scripts.')
flags.register_validator('python', lambda path: shutil.which(path) is not None,
                         message='--python must name an executable Python')
flags.DEFINE_string('keras_python', None, 'Python with keras and jax installed; without it the '
                    'Keras reference is skipped.')
flags.register_validator('keras_python', lambda path: path is None or shutil.which(path),
                         message='--keras_python must name an executable Python')
flags.DEFINE_string('keras_script', '../shared/reference/keras_seed.py', 'The Keras reference '
                    'script; a relative path is relative to the repository root.')
flags.DEFINE_integer('keras_epochs', 30, 'Epochs of the Keras reference.', lower_bound=1)
flags.DEFINE_multi_string('train_arg', [], 'An argument added to both train runs; repeat the '
                          'flag for more, e.g. --train_arg=--config.train.epochs=2.')
flags.DEFINE_string('out', 'runs/benchmark_wall.json', 'JSON file to write.')
flags.DEFINE_string('tmp', None, 'Folder for the temporary workdirs and caches (default: the '
                    'system\'s temporary folder); they are removed at the end.')
flags.register_validator('tmp', lambda path: path is None or os.path.isdir(path),
                         message='--tmp must be an existing folder')
flags.register_multi_flags_validator(
    ['keras_python', 'keras_script'],
    lambda f: f['keras_python'] is None or os.path.isfile(os.path.join(ROOT, f['keras_script'])),
    message='--keras_script (relative to the repository root) is not a file')
FLAGS = flags.FLAGS


def command_env(**extra) -> dict:
  """This process's environment with the checkout importable and no JAX cache of the caller's."""
  env = {k: v for k, v in os.environ.items() if k != 'JAX_COMPILATION_CACHE_DIR'}
  env['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT, env.get('PYTHONPATH')) if p)
  env.update(extra)
  return env


def fail(name: str, argv: list, detail: str):
  """Ends the benchmark (exit code 1) with a message naming the command that failed."""
  print(f'benchmark_wall: the {COMMANDS.get(name, name)} command failed: {shlex.join(argv)}\n'
        f'{detail}', file=sys.stderr)
  sys.exit(1)


def timed(name: str, argv: list, env: dict) -> tuple[float, str]:
  """Runs argv from ROOT; returns (wall seconds, stdout). A failure ends the benchmark."""
  start = time.perf_counter()
  try:
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
  except OSError as e:
    fail(name, argv, f'it could not start: {e}')
  seconds = time.perf_counter() - start
  if proc.returncode != 0:
    fail(name, argv, f'exit code {proc.returncode}; the end of its stderr:\n{proc.stderr[-2000:]}')
  return seconds, proc.stdout


def train_run(name: str, workdir: str, env: dict) -> dict:
  """Wall seconds of scripts/train.py, and the timings its metrics.json holds."""
  argv = [FLAGS.python, 'scripts/train.py', '--config', 'configs/seed_gru.py',
          '--workdir', workdir, *FLAGS.train_arg]
  row = {'wall_seconds': timed(name, argv, env)[0]}
  try:
    with open(os.path.join(workdir, 'metrics.json')) as f:
      metrics = json.load(f)
  except (OSError, ValueError) as e:
    fail(name, argv, f'its metrics.json cannot be read: {e}')
  row.update({k: metrics[k] for k in ('compile_seconds', 'train_seconds') if k in metrics})
  row.update({f'seconds.{k}': v for k, v in metrics.get('seconds', {}).items()
              if isinstance(v, (int, float))})
  return row


def keras_run() -> dict:
  """Wall seconds of the Keras reference, and the fit_s it prints."""
  script = os.path.normpath(os.path.join(ROOT, FLAGS.keras_script))
  argv = [FLAGS.keras_python, script, str(FLAGS.keras_epochs)]
  wall, stdout = timed('keras', argv, command_env(KERAS_BACKEND='jax'))
  match = re.search(r'\bfit_s=([-+.\deE]+)', stdout)
  if not match:
    fail('keras', argv, f'its output has no fit_s=: {stdout[-500:]!r}')
  return {'wall_seconds': wall, 'fit_s': float(match.group(1))}


def one_round(i: int, tmp: str, csv: str) -> dict:
  """The four commands in turn; the second run and predict read the cache the first filled."""
  cache = os.path.join(tmp, f'cache_{i}')
  os.makedirs(cache)
  env = command_env(RNNJAX_COMPILATION_CACHE=cache)
  row = {'first': train_run('first', os.path.join(tmp, f'first_{i}'), env)}
  if FLAGS.keras_python:
    row['keras'] = keras_run()
  second = os.path.join(tmp, f'second_{i}')
  row['second'] = train_run('second', second, env)
  argv = [FLAGS.python, 'scripts/predict.py', '--workdir', second, '--csv', csv,
          '--out', os.path.join(tmp, f'forecast_{i}.csv')]
  row['predict'] = {'wall_seconds': timed('predict', argv, env)[0]}
  for name, figures in row.items():
    print(f'round {i}: {name} {figures["wall_seconds"]:.2f} s', file=sys.stderr, flush=True)
  return row


def summarize(rounds: list) -> dict:
  """{command: {figure: {median, min, max}}} over the counted rounds."""
  summary = {}
  for name in COMMANDS:
    figures = {}
    for row in rounds:
      for figure, value in row.get(name, {}).items():
        figures.setdefault(figure, []).append(value)
    if figures:
      summary[name] = {figure: {'median': statistics.median(values), 'min': min(values),
                                'max': max(values)} for figure, values in figures.items()}
  return summary


def ratios(summary: dict) -> dict:
  """Keras' median wall over each rnnjax train run's (None without Keras); predict's median."""
  wall = {name: figures['wall_seconds']['median'] for name, figures in summary.items()}
  keras = wall.get('keras')
  return {'keras_over_first_wall': keras and keras / wall['first'],
          'keras_over_second_wall': keras and keras / wall['second'],
          'predict_wall_median': wall['predict']}


def table(summary: dict, ratio: dict, header: str) -> str:
  lines = [header, '', '| command | figure | median s | range s |', '|---|---|---:|---:|']
  for name, figures in summary.items():
    for figure, s in figures.items():
      lines.append(f'| {COMMANDS[name]} | {figure} | {s["median"]:.2f} '
                   f'| {s["min"]:.2f}-{s["max"]:.2f} |')

  def value(x):
    return 'n/a (no --keras_python)' if x is None else f'{x:.2f}'
  lines += ['', '| ratio of medians | value |', '|---|---:|',
            f'| Keras wall / rnnjax first-run wall | {value(ratio["keras_over_first_wall"])} |',
            f'| Keras wall / rnnjax second-run wall | {value(ratio["keras_over_second_wall"])} |',
            f'| rnnjax predict wall, median s | {value(ratio["predict_wall_median"])} |']
  return '\n'.join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS.keras_python:
    print('no --keras_python: the Keras reference is skipped', file=sys.stderr)
  with tempfile.TemporaryDirectory(prefix='benchmark_wall-', dir=FLAGS.tmp) as tmp:
    csv = os.path.join(tmp, 'series.csv')
    timed('write the series CSV', [FLAGS.python, '-c', _WRITE_CSV, csv], command_env())
    rows = [one_round(i, tmp, csv) for i in range(FLAGS.warmup + FLAGS.rounds)]
  counted = rows[FLAGS.warmup:]
  summary = summarize(counted)
  ratio = ratios(summary)
  keras = f'Keras {FLAGS.keras_epochs} epochs' if FLAGS.keras_python else 'no Keras'
  header = (f'Wall seconds, process start to exit: medians and ranges over rounds '
            f'({FLAGS.rounds} counted after {FLAGS.warmup} warm-up), {os.cpu_count()} CPUs; '
            f'train args {FLAGS.train_arg or "none"}; {keras}.')
  print(table(summary, ratio, header))
  results = {'rounds': counted, 'warmup_rounds': rows[:FLAGS.warmup], 'summary': summary,
             'ratios': ratio, 'python': FLAGS.python, 'keras_python': FLAGS.keras_python,
             'keras_epochs': FLAGS.keras_epochs, 'train_args': FLAGS.train_arg,
             'cpu_count': os.cpu_count()}
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  with open(FLAGS.out, 'w') as f:
    json.dump(results, f, indent=1)
  print(f'wrote {FLAGS.out}')


if __name__ == '__main__':
  app.run(main)
