r"""A large long-format panel through train.py and predict.py: peak memory and seconds of each,
per point of the panel beyond the same commands on a tiny one; prints a table, writes JSON.

  .venv/bin/python scripts/benchmark_panel.py                     # 1,000 series x 8,760 hours
  .venv/bin/python scripts/benchmark_panel.py --num_series=20 --num_points=500   # a smoke run
  .venv/bin/python scripts/benchmark_panel.py --checkout=../main  # another checkout's code

The panel is `rnnjax.sources.synthetic_panel(num_series, num_points)` written to --csv (kept:
written once, about 44 bytes a row). Every command runs in a fresh process, measured from start
to exit by os.wait4: wall seconds, CPU seconds (user + system) and the peak resident set.
  train    scripts/train.py --config configs/multiseries.py on the panel, one step ahead
           (data.horizon=1, no multi_step), one seed, GRU 8, 1 epoch of batch 8,192, without
           the compilation cache; every --train_arg is added (e.g.
           --train_arg=--config.data.calendar=()).
  predict  scripts/predict.py with that run on the same file (every window forecast, the CSV of
           every forecast written).
The same two on a panel of 10 series x 300 points give the baseline: Python, JAX, the compiled
programs. A command's bytes per point are its peak beyond the baseline's, over the points beyond
the tiny panel's. --checkout runs another checkout's scripts and package with this harness (a
before/after comparison on the same machine). Figures: docs/benchmarks.md, "Large panels".
"""
import json
import os
import shutil
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = (10, 300)  # series, points of the baseline's panel
_WRITE_PANEL = ('import sys; from rnnjax.sources import synthetic_panel; '
                'synthetic_panel(int(sys.argv[1]), int(sys.argv[2])).to_csv(sys.argv[3], '
                'index=False)')

flags.DEFINE_integer('num_series', 1000, 'Series in the panel.', lower_bound=1)
flags.DEFINE_integer('num_points', 8760, 'Hourly points of each series.', lower_bound=100)
flags.DEFINE_string('folder', 'runs/panel_benchmark', 'Folder of the CSV files and workdirs.')
flags.DEFINE_string('checkout', ROOT, 'Root of the rnnjax checkout whose scripts run.')
flags.DEFINE_string('python', sys.executable, 'Python that runs the rnnjax scripts.')
flags.DEFINE_multi_string('train_arg', [], 'One more argument for train.py (repeatable).')
flags.DEFINE_string('out', '', 'JSON file to write; empty is {folder}/panel_benchmark.json.')
FLAGS = flags.FLAGS


def measured(argv: list, cwd: str, env: dict) -> dict:
  """Runs `argv` to its end: wall and CPU seconds, peak resident MiB (os.wait4's rusage)."""
  start = time.perf_counter()
  proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
  output = proc.stdout.read().decode(errors='replace')
  _, status, usage = os.wait4(proc.pid, 0)
  wall = time.perf_counter() - start
  proc.returncode = os.waitstatus_to_exitcode(status)
  if proc.returncode != 0:
    raise SystemExit(f'{" ".join(argv)} failed ({proc.returncode}):\n{output[-3000:]}')
  return {'wall_seconds': round(wall, 2), 'cpu_seconds': round(usage.ru_utime + usage.ru_stime, 2),
          'peak_rss_mib': round(usage.ru_maxrss / 1024, 1), 'output_tail': output[-400:]}


def panel(num_series: int, num_points: int, env: dict) -> str:
  """The panel's CSV file in --folder, written by this checkout's generator unless present."""
  path = os.path.join(os.path.abspath(FLAGS.folder), f'panel_{num_series}x{num_points}.csv')
  if not os.path.exists(path):
    subprocess.run([FLAGS.python, '-c', _WRITE_PANEL, str(num_series), str(num_points),
                    path + '.part'], cwd=ROOT, env=dict(env, PYTHONPATH=ROOT), check=True)
    os.replace(path + '.part', path)
  return path


def commands(csv: str, workdir: str) -> dict:
  """{'train': argv, 'predict': argv} of the run on `csv` into `workdir`."""
  train = [FLAGS.python, 'scripts/train.py', '--config=configs/multiseries.py',
           f'--workdir={workdir}', f'--config.data.path={csv}', '--config.data.target=value',
           '--config.data.horizon=1', '--config.data.multi_step=False', '--config.num_seeds=1',
           '--config.model.hidden_sizes=(8,)', '--config.train.epochs=1',
           '--config.train.batch_size=8192', *FLAGS.train_arg]
  predict = [FLAGS.python, 'scripts/predict.py', f'--workdir={workdir}', f'--csv={csv}',
             f'--out={workdir}_forecast.csv']
  return {'train': train, 'predict': predict}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  checkout = os.path.abspath(FLAGS.checkout)
  env = {k: v for k, v in os.environ.items() if k != 'JAX_COMPILATION_CACHE_DIR'}
  env.update(PYTHONPATH=checkout, RNNJAX_COMPILATION_CACHE='off')
  os.makedirs(FLAGS.folder, exist_ok=True)
  results = {'checkout': checkout, 'train_args': FLAGS.train_arg, 'cpu_count': os.cpu_count()}
  for name, (series, points) in (('baseline', TINY),
                                 ('panel', (FLAGS.num_series, FLAGS.num_points))):
    csv = panel(series, points, env)
    workdir = os.path.join(os.path.abspath(FLAGS.folder), f'run_{name}')
    shutil.rmtree(workdir, ignore_errors=True)
    results[name] = {'series': series, 'points': series * points}
    for command, args in commands(csv, workdir).items():
      results[name][command] = measured(args, checkout, env)
      print(name, command, json.dumps({k: v for k, v in results[name][command].items()
                                       if k != 'output_tail'}), flush=True)
  extra = results['panel']['points'] - results['baseline']['points']
  rows = ['| command | wall s | CPU s | peak RSS MiB | baseline MiB | bytes per point |',
          '| --- | --- | --- | --- | --- | --- |']
  for command in ('train', 'predict'):
    big, small = results['panel'][command], results['baseline'][command]
    per_point = (big['peak_rss_mib'] - small['peak_rss_mib']) * 2**20 / extra
    results['panel'][command]['bytes_per_point'] = round(per_point, 1)
    rows.append(f'| {command} | {big["wall_seconds"]:.1f} | {big["cpu_seconds"]:.1f} | '
                f'{big["peak_rss_mib"]:.0f} | {small["peak_rss_mib"]:.0f} | {per_point:.0f} |')
  print('\n'.join(rows))
  out = FLAGS.out or os.path.join(FLAGS.folder, 'panel_benchmark.json')
  with open(out, 'w') as f:
    json.dump(results, f, indent=1)
  print(f'wrote {out}')


if __name__ == '__main__':
  app.run(main)
