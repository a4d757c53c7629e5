r"""Times rnnjax on the tutorial task and its variations; prints a table and writes JSON.

  python scripts/benchmark.py                     # everything, medians of 3 repeats
  python scripts/benchmark.py --only=tutorial,seeds --repeats=5 --out=runs/bench.json
  python scripts/benchmark.py --only=seqlen --num_days=30 --hidden_sizes=8 --epochs=1 \
      --repeats=1 --matmul_size=256                 # a smoke run: a tiny task, seconds on a CPU
  KERAS_BACKEND=jax python scripts/benchmark.py --only=tutorial --keras   # needs keras

Every figure is a median over --repeats runs in this process, next to a large matrix product
timed in the same run, so efficiency (achieved GFLOP/s over the matmul's) is a ratio that
holds on a noisy machine. FLOPs are counted from the model's shapes: a forward pass over one
window costs count_flops_per_window, a training step about three forward passes.
Sections:
  tutorial  GRU 24/50/24, window 24, batch 32, 30 epochs: compile s, train s, epochs/s,
            windows/s, GFLOP/s, efficiency; with --keras the same model fit by Keras, and the
            ratios of Keras' fit seconds to rnnjax's training seconds, without and with
            rnnjax's compile seconds (Keras' fit includes its own compiling).
  seeds     1 / 8 / 64 members (--seed_epochs epochs) split over the CPU devices
            (--cpu_devices): seconds per member, and a member's cost relative to the single
            run.
  seqlen    window 24 / 96 / 384: seconds per epoch and compile seconds.
  hidden    3 layers of 64 and of 256.
  cells     gru / lstm / simple (--cells), fused and flax implementations.
  infer     forecasts per second over the validation windows.
  memory    series of 1 and 10 million points, each trained for one epoch (batch 65,536,
            GRU 8) in a fresh subprocess: peak resident memory, and the bytes each extra point
            costs (the slope between the two), next to the 96 bytes a point would cost if its
            24-step float32 window were materialised; then the same with 168 target steps
            (data.multi_step, horizon 168), where materialised windows and targets would cost
            (24 + 168) * 4 bytes a point.
  xla_opt   the tutorial's training program compiled at LLVM levels 3 and 1 (compile seconds,
            seconds per epoch), and its init with XLA's defaults and with the options
            rnnjax.program.compiler_options gives a program that runs once.
  backtest  a backtest of --backtest_folds folds x --backtest_seeds seeds (--backtest_epochs
            epochs) on the tutorial's series, and with --backtest_csv on that file with
            configs/hourly.py: wall seconds from the series to trained members (planning,
            building, compiling, training) as one program (rnnjax.backtest) and as a loop of
            one run per fold (each fold's seeds one ensemble program, as train.py would
            train it), alternating, and their ratio per repeat.
  panel, dataparallel   one model over a large panel, and over several devices: see
            scripts/benchmark_scaling.py.
Shrinking the task (for smoke runs; each default keeps the tutorial's own value):
  --num_days      days of the synthetic hourly series (the tutorial's 200) in every section but
                  memory.
  --hidden_sizes  layer sizes (the tutorial's 24,50,24) in every section but hidden and memory.
  --epochs        epochs per timed training in tutorial (30), seqlen and hidden (2), cells and
                  xla_opt (3); the seeds section takes --seed_epochs.
  --matmul_size   side of the reference matrix product (2048).
"""
import importlib.util
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from typing import Sequence

from absl import app, flags

from rnnjax import config as config_lib

SECTIONS = ('tutorial', 'seeds', 'seqlen', 'hidden', 'cells', 'infer', 'memory', 'xla_opt',
            'backtest', 'panel', 'dataparallel')
flags.DEFINE_list('only', list(SECTIONS), f'Sections to run, from {SECTIONS}.')


def _known_sections(only: list) -> bool:
  unknown = set(only) - set(SECTIONS)
  if unknown:
    raise flags.ValidationError(f'unknown sections {sorted(unknown)}; choose from {SECTIONS}')
  return True


flags.register_validator('only', _known_sections)
flags.DEFINE_integer('repeats', 3, 'Timed repeats per figure (the median is reported).',
                     lower_bound=1)
flags.DEFINE_integer('seed_epochs', 3, 'Epochs per repeat in the seeds section.', lower_bound=1)
flags.DEFINE_list('seed_counts', ['1', '8', '64'], 'Member counts in the seeds section.')
flags.DEFINE_list('cells', list(config_lib.CELLS), 'Cells in the cells section.')
flags.register_validator('cells',
                         lambda cells: bool(cells) and set(cells) <= set(config_lib.CELLS),
                         message=f'--cells takes names from {config_lib.CELLS}, e.g. gru,lstm')
flags.DEFINE_integer('num_days', 0, 'Days of the synthetic series; 0 is the tutorial\'s 200.',
                     lower_bound=0)
flags.DEFINE_list('hidden_sizes', [], 'Layer sizes, e.g. 8 or 16,16; empty is the tutorial\'s '
                  '24,50,24.')
flags.register_validator('hidden_sizes',
                         lambda sizes: all(s.isdigit() and int(s) > 0 for s in sizes),
                         message='--hidden_sizes takes positive whole numbers, e.g. 8 or 16,16')
flags.DEFINE_integer('epochs', 0, 'Epochs per timed training outside the seeds section; 0 is '
                     'each section\'s own (tutorial 30, seqlen and hidden 2, cells and xla_opt 3).',
                     lower_bound=0)
flags.DEFINE_integer('matmul_size', 2048, 'Side of the reference matrix product.', lower_bound=1)
flags.DEFINE_bool('keras', False, 'Also fit the tutorial model with Keras (if importable).')
flags.DEFINE_string('out', 'runs/benchmark.json', 'JSON file to write.')
flags.DEFINE_integer('cpu_devices', 0, 'CPU devices (jax_num_cpu_devices); 0 is one per core, '
                     'as scripts/train.py sets for an ensemble. Single runs use one device.',
                     lower_bound=0)
flags.DEFINE_integer('memory_child', 0, 'Internal: train on a series of this many points and '
                     'print the peak memory.')
flags.DEFINE_integer('memory_horizon', 0, 'Internal: with --memory_child, forecast this many '
                     'steps at once (data.multi_step); 0 is the tutorial\'s single target.')
flags.DEFINE_integer('backtest_folds', 8, 'Folds in the backtest section.', lower_bound=1)
flags.DEFINE_integer('backtest_seeds', 4, 'Seeds per fold in the backtest section.',
                     lower_bound=1)
flags.DEFINE_integer('backtest_epochs', 10, 'Epochs per member in the backtest section.',
                     lower_bound=1)
flags.DEFINE_string('backtest_csv', '', 'A CSV file (time, temperature columns) to backtest '
                    'with configs/hourly.py besides the tutorial\'s series.')
flags.DEFINE_list('panel_series', ['10', '100', '1000'], 'Series counts in the panel section.')
flags.DEFINE_integer('panel_steps', 50, 'train.steps_per_epoch in the panel section.',
                     lower_bound=1)
flags.DEFINE_integer('panel_val_windows', 2048, 'train.val_windows in the panel section.',
                     lower_bound=1)
flags.DEFINE_list('panel_lengths', ['2190', '8760'], 'Series lengths (hours) of the panel '
                  'section\'s memory figures, each in a fresh process.')
flags.DEFINE_string('panel_child', '', 'Internal: SERIES,LENGTH: train a panel one epoch and '
                    'print the peak memory.')
flags.DEFINE_list('dp_batches', ['64', '256', '1024', '4096'], 'Batch sizes in the '
                  'dataparallel section.')
flags.DEFINE_integer('dp_steps', 20, 'Steps per timed epoch in the dataparallel section.',
                     lower_bound=1)
for _name in ('seed_counts', 'panel_series', 'panel_lengths', 'dp_batches'):
  flags.register_validator(_name, lambda counts: all(c.isdigit() and int(c) > 0 for c in counts),
                           message=f'--{_name} takes positive whole numbers, e.g. 1,8,64')
FLAGS = flags.FLAGS

if __name__ == '__main__':
  # A bad flag is refused at once, before the seconds of importing JAX and the package below.
  app.define_help_flags()
  app.parse_flags_with_usage(sys.argv)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rnnjax import backtest  # noqa: E402
from rnnjax import backtest_folds  # noqa: E402
from rnnjax import cells  # noqa: E402
from rnnjax import data as data_lib  # noqa: E402
from rnnjax import ensemble, sources, train  # noqa: E402
from rnnjax import prediction  # noqa: E402
from rnnjax import program as program_lib  # noqa: E402
from rnnjax import windows  # noqa: E402

import benchmark_scaling  # noqa: E402  scripts/, beside this file


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
  """GFLOP/s of an [n, n] x [n, n] float32 product, median of `repeats`."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x).lower(a).compile()
  jax.block_until_ready(f(a))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(f(a))
    times.append(time.perf_counter() - start)
  return 2 * n ** 3 / np.median(times) / 1e9


def count_flops_per_window(cell: str, hidden_sizes: Sequence[int], num_features: int,
                           window: int) -> int:
  """Multiply-add FLOPs (2 per MAC) of one forward pass over one window, from the shapes."""
  flops, fan_in = 0, num_features
  for size in hidden_sizes:
    gates = cells.GATES[cell]
    flops += 2 * window * gates * size * (fan_in + size)
    fan_in = size
  return flops + 2 * fan_in


def epoch_flops(config, data) -> float:
  """FLOPs of one epoch: 3 forward passes per training window, 1 per validation window."""
  per_window = count_flops_per_window(config.model.cell, config.model.hidden_sizes,
                                      data.num_features, data.window)
  return per_window * (3 * len(data.train_starts) + len(data.val_starts))


def time_training(config, repeats: int) -> dict:
  """Compile and run `config.train.epochs` epochs as one chunk through the run's own program.

  Returns medians: compile_seconds (the init and the chunk: tracing, lowering and XLA),
  train_seconds, and per-epoch figures.
  """
  data = data_lib.prepare(config.data)
  members = ensemble.plan_members(config)
  epochs = config.train.epochs
  compiles, trains = [], []
  for _ in range(repeats):
    program = make_program(config, data, members)
    program.run(program.init(), epochs)  # compiles both; the donated state is spent
    compiles.append(program.compile_seconds)
    state = program.init()
    jax.block_until_ready(state)
    start = time.perf_counter()
    state, history = program.run(state, epochs)
    jax.block_until_ready((state, history))
    trains.append(time.perf_counter() - start)
  n = 1 if members is None else members.size
  seconds = float(np.median(trains))
  return {'members': n, 'epochs': epochs, 'compile_seconds': float(np.median(compiles)),
          'train_seconds': seconds, 'train_seconds_all': [round(t, 4) for t in trains],
          'epochs_per_second': epochs / seconds,
          'train_windows_per_second': n * epochs * len(data.train_starts) / seconds,
          'gflops': n * epochs * epoch_flops(config, data) / seconds / 1e9}


def backtest_ab(config, repeats: int) -> dict:
  """Wall seconds of one backtest as one program and as a loop of one run per fold,
  alternating (which goes first alternates too); each from the loaded series to trained
  members, compiling included (fresh functions every time, no compilation cache)."""
  series = data_lib.load(config.data)

  def one_program():
    bt = backtest.make_backtest(config, series)
    jax.block_until_ready(bt.program.run(bt.program.init(), config.train.epochs))
    return bt

  def fold_by_fold():
    folds = backtest_folds.plan_folds(config, series, data_lib.input_columns(config.data))
    members = ensemble.plan_members(config)
    for origins in folds.origins:
      cut = [sources.Series(one.name, one.times[:n], one.values_TF[:n], one.future)
             for one, n in zip(series, origins, strict=True)]
      data = data_lib.assemble(config.data, cut, data_lib.input_columns(config.data))
      program = make_program(config, data, members)
      jax.block_until_ready(program.run(program.init(), config.train.epochs))

  times = {'one_program': [], 'fold_by_fold': []}
  runs = {'one_program': one_program, 'fold_by_fold': fold_by_fold}
  for r in range(repeats):
    for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
      start = time.perf_counter()
      result = runs[name]()
      times[name].append(time.perf_counter() - start)
      if name == 'one_program':
        members = result.members.size
  ratios = [a / b for a, b in zip(times['one_program'], times['fold_by_fold'], strict=True)]
  return {'folds': config.backtest.folds, 'seeds': config.num_seeds, 'members': members,
          'epochs': config.train.epochs,
          'one_program_seconds': float(np.median(times['one_program'])),
          'fold_by_fold_seconds': float(np.median(times['fold_by_fold'])),
          'ratio': float(np.median(ratios)),
          'ratio_all': [round(x, 3) for x in ratios],
          'one_program_all': [round(x, 2) for x in times['one_program']],
          'fold_by_fold_all': [round(x, 2) for x in times['fold_by_fold']]}


def make_program(config, data, members=None) -> program_lib.Program:
  """The run's own program, built from new functions so nothing comes from jit caches."""
  trainer = train.make_trainer(config, data)
  return program_lib.make_program(trainer, config, members)


def compile_options_ab(repeats: int, epochs: int = 3) -> list[dict]:
  """Compile and epoch seconds of the tutorial program at LLVM levels 3 and 1, and compile
  seconds of its init with XLA's defaults against `program.compiler_options(runs_once=True)`;
  alternating, a fresh trace for every compile."""
  config = tutorial_config(**{'train.epochs': epochs})
  data = data_lib.prepare(config.data)
  levels = (3, 1)
  times = {level: {'compile': [], 'epoch': []} for level in levels}
  init_options = {'defaults': {}, 'runs_once': program_lib.compiler_options(runs_once=True)}
  init_times = {name: [] for name in init_options}
  for _ in range(repeats):
    for name, options in init_options.items():
      trainer = train.make_trainer(config, data)
      lowered = jax.jit(trainer.init).lower(jax.random.PRNGKey(0))
      start = time.perf_counter()
      lowered.compile(compiler_options=options)
      init_times[name].append(time.perf_counter() - start)
    for level in levels:
      trainer = train.make_trainer(config, data)
      state = program_lib.single_program(trainer, config).init()
      lowered = jax.jit(trainer.run_epochs, static_argnums=2).lower(
          state, trainer.device_data, epochs)
      start = time.perf_counter()
      compiled = lowered.compile(compiler_options={'xla_backend_optimization_level': level})
      times[level]['compile'].append(time.perf_counter() - start)
      jax.block_until_ready(compiled(state, trainer.device_data))
      start = time.perf_counter()
      jax.block_until_ready(compiled(state, trainer.device_data))
      times[level]['epoch'].append((time.perf_counter() - start) / epochs)
  rows = [{'llvm_opt_level': level, 'compile_seconds': float(np.median(t['compile'])),
           'seconds_per_epoch': float(np.median(t['epoch'])),
           'compile_all': [round(x, 3) for x in t['compile']],
           'epoch_all': [round(x, 4) for x in t['epoch']]} for level, t in times.items()]
  return rows + [{'init_options': json.dumps(init_options[name]),
                  'init_compile_seconds': float(np.median(t)),
                  'init_compile_all': [round(x, 3) for x in t]}
                 for name, t in init_times.items()]


def tutorial_config(**overrides):
  """The tutorial's config with --num_days, --hidden_sizes and --epochs applied, then
  `overrides` (dotted keys)."""
  shrink = {}
  if FLAGS.num_days:
    shrink['data.synthetic.num_days'] = FLAGS.num_days
  if FLAGS.hidden_sizes:
    shrink['model.hidden_sizes'] = tuple(int(size) for size in FLAGS.hidden_sizes)
  if FLAGS.epochs:
    shrink['train.epochs'] = FLAGS.epochs
  return config_lib.override(config_lib.default_config(), {**shrink, **overrides})


def keras_fit_seconds(config, repeats: int) -> dict | None:
  """Fit seconds of the same model in Keras (whatever KERAS_BACKEND says), or None."""
  try:
    import keras  # pylint: disable=import-outside-toplevel
  except ImportError:
    print('keras is not importable: skipping the Keras comparison', file=sys.stderr)
    return None
  data = data_lib.prepare(config.data)
  xt, yt = windows.gather_windows(data.scaled_TF, data.train_starts, data.window, data.horizon)
  xv, yv = windows.gather_windows(data.scaled_TF, data.val_starts, data.window, data.horizon)
  times = []
  for seed in range(repeats):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input(shape=xt.shape[1:])]
    sizes = config.model.hidden_sizes
    for i, size in enumerate(sizes):
      layers += [keras.layers.GRU(size, activation=config.model.activation,
                                  return_sequences=i < len(sizes) - 1),
                 keras.layers.Dropout(config.model.dropout)]
    model = keras.Sequential(layers + [keras.layers.Dense(1)])
    model.compile(loss='mean_squared_error', optimizer='adam')
    start = time.perf_counter()
    model.fit(xt, yt, validation_data=(xv, yv), epochs=config.train.epochs,
              batch_size=config.train.batch_size, verbose=0)
    times.append(time.perf_counter() - start)
  return {'backend': keras.backend.backend(), 'keras_version': keras.__version__,
          'fit_seconds': float(np.median(times)), 'fit_seconds_all': [round(t, 3) for t in times]}


def inference_rate(config, repeats: int) -> dict:
  data = data_lib.prepare(config.data)
  trainer = train.make_trainer(config, data)
  params = trainer.init(jax.random.PRNGKey(0)).params
  series = trainer.device_data.series_TF
  starts = np.resize(data.val_starts, 65536).astype(np.int32)
  prediction.predict_windows(trainer, params, series, starts, 4096)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    prediction.predict_windows(trainer, params, series, starts, 4096)
    times.append(time.perf_counter() - start)
  return {'windows': len(starts), 'windows_per_second': len(starts) / float(np.median(times))}


def memory_child(points: int, horizon: int) -> None:
  num_days = points // 24 + 1
  steps = {'data.horizon': horizon, 'data.multi_step': True} if horizon else {}
  config = tutorial_config(**{'data.synthetic.num_days': num_days, 'model.hidden_sizes': (8,),
                              'train.epochs': 1, 'train.batch_size': 65536, **steps})
  data = data_lib.prepare(config.data)
  state, history = jax.jit(train.make_train(config, data))(jax.random.PRNGKey(0))
  jax.block_until_ready(history)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  windows_bytes = len(data.train_starts) * (data.window + len(data.steps)) * 4
  print(json.dumps({'points': len(data.scaled_TF), 'target_steps': len(data.steps),
                    'peak_rss_bytes': peak,
                    'series_bytes_float32': data.scaled_TF.nbytes,
                    'materialised_train_windows_bytes': windows_bytes,
                    'loss': float(history['loss'][-1])}))


def main(argv):
  del argv
  if FLAGS.memory_child:
    memory_child(FLAGS.memory_child, FLAGS.memory_horizon)
    return
  if FLAGS.panel_child:
    num_series, length = map(int, FLAGS.panel_child.split(','))
    print(json.dumps(benchmark_scaling.panel_memory_child(
        num_series, length, FLAGS.panel_steps, FLAGS.panel_val_windows)))
    return
  jax.config.update('jax_num_cpu_devices', FLAGS.cpu_devices or len(os.sched_getaffinity(0)))
  r = FLAGS.repeats
  results = {'device': str(jax.devices()[0]), 'device_kind': jax.devices()[0].device_kind,
             'backend': jax.default_backend(),
             'num_devices': jax.device_count(), 'jax': jax.__version__, 'repeats': r,
             'cpu_count': os.cpu_count()}
  matmul = matmul_gflops(FLAGS.matmul_size)
  results['matmul_gflops'] = matmul
  print(f'large matmul: {matmul:.1f} GFLOP/s')

  def report(name, row):
    if 'gflops' in row:
      row['efficiency'] = row['gflops'] / matmul
    results.setdefault(name, []).append(row)
    print(name, json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                            for k, v in row.items()}), flush=True)

  if 'tutorial' in FLAGS.only:
    row = time_training(tutorial_config(), r)
    if FLAGS.keras:
      keras_row = keras_fit_seconds(tutorial_config(), r)
      if keras_row:
        row.update({f'keras_{k}': v for k, v in keras_row.items()})
        row['speedup_vs_keras'] = keras_row['fit_seconds'] / row['train_seconds']
        # Keras' fit includes its own tracing and compiling: count rnnjax's compile too.
        row['speedup_vs_keras_with_compile'] = keras_row['fit_seconds'] / (
            row['train_seconds'] + row['compile_seconds'])
    report('tutorial', row)
  if 'seeds' in FLAGS.only:
    single = None
    for n in map(int, FLAGS.seed_counts):
      row = time_training(tutorial_config(**{'num_seeds': n, 'train.epochs': FLAGS.seed_epochs}),
                          r)
      row['seconds_per_member'] = row['train_seconds'] / n
      single = single or row['seconds_per_member']
      row['member_cost_vs_single'] = row['seconds_per_member'] / single
      report('seeds', row)
  if 'seqlen' in FLAGS.only:
    for window in (24, 96, 384):
      row = time_training(tutorial_config(**{'data.window': window,
                                             'train.epochs': FLAGS.epochs or 2}), r)
      row.update(window=window, seconds_per_epoch=row['train_seconds'] / row['epochs'])
      report('seqlen', row)
  if 'hidden' in FLAGS.only:
    for size in (64, 256):
      row = time_training(tutorial_config(**{'model.hidden_sizes': (size,) * 3,
                                             'train.epochs': FLAGS.epochs or 2}), r)
      row.update(hidden=size, seconds_per_epoch=row['train_seconds'] / row['epochs'])
      report('hidden', row)
  if 'cells' in FLAGS.only:
    for cell in FLAGS.cells:
      for impl in ('fused', 'flax'):
        row = time_training(tutorial_config(**{'model.cell': cell, 'model.implementation': impl,
                                               'train.epochs': FLAGS.epochs or 3}), r)
        row.update(cell=cell, implementation=impl,
                   seconds_per_epoch=row['train_seconds'] / row['epochs'])
        report('cells', row)
  if 'xla_opt' in FLAGS.only:
    for row in compile_options_ab(r, FLAGS.epochs or 3):
      report('xla_opt', row)
  if 'backtest' in FLAGS.only:
    shape = {'backtest.folds': FLAGS.backtest_folds, 'num_seeds': FLAGS.backtest_seeds,
             'train.epochs': FLAGS.backtest_epochs}
    configs = {'tutorial': tutorial_config(**shape)}
    if FLAGS.backtest_csv:
      spec = importlib.util.spec_from_file_location(
          'hourly', os.path.join(os.path.dirname(__file__), '..', 'configs', 'hourly.py'))
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      hourly = module.get_config()
      configs[FLAGS.backtest_csv] = config_lib.override(
          hourly, {**shape, 'data.path': FLAGS.backtest_csv, 'data.target': 'temperature'})
    for name, config in configs.items():
      row = backtest_ab(config, r)
      report('backtest', {'series': name, **row})
  if 'infer' in FLAGS.only:
    report('infer', inference_rate(tutorial_config(), r))
  if 'memory' in FLAGS.only:
    for horizon in (0, 168):
      rows = []
      for points in (1_000_000, 10_000_000):
        proc = subprocess.run([sys.executable, __file__, f'--memory_child={points}',
                               f'--memory_horizon={horizon}'],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        report('memory', rows[-1])
      slope = (rows[1]['peak_rss_bytes'] - rows[0]['peak_rss_bytes']) / (
          rows[1]['points'] - rows[0]['points'])
      report('memory', {'target_steps': rows[0]['target_steps'], 'bytes_per_extra_point': slope,
                        'bytes_per_point_if_windows_materialised':
                            (24 + rows[0]['target_steps']) * 4})
  if 'panel' in FLAGS.only:
    for row in benchmark_scaling.panel_rows(list(map(int, FLAGS.panel_series)), FLAGS.panel_steps,
                                            FLAGS.panel_val_windows, r):
      report('panel', row)
    for row in benchmark_scaling.panel_memory_rows(
        __file__, max(map(int, FLAGS.panel_series)), list(map(int, FLAGS.panel_lengths)),
        FLAGS.panel_steps, FLAGS.panel_val_windows):
      report('panel', row)
  if 'dataparallel' in FLAGS.only:
    for row in benchmark_scaling.data_parallel_rows(list(map(int, FLAGS.dp_batches)),
                                                    FLAGS.dp_steps, r,
                                                    tuple(map(int, FLAGS.hidden_sizes))):
      report('dataparallel', row)
  print(tables(results))
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  with open(FLAGS.out, 'w') as f:
    json.dump(results, f, indent=1)
  print(f'wrote {FLAGS.out}')


def tables(results: dict) -> str:
  """A table per section (per kind of row in a section): a row per figure, its scalar fields
  as columns."""
  out = [f"{results['device_kind']} ({results['backend']}, {results['num_devices']} devices), "
         f"jax {results['jax']}, medians of {results['repeats']}; large matmul "
         f"{results['matmul_gflops']:.1f} GFLOP/s"]
  for section in SECTIONS:
    rows = [{k: v for k, v in row.items() if not isinstance(v, (list, dict))}
            for row in results.get(section, [])]
    for _, group in itertools.groupby(rows, key=lambda row: tuple(row)):
      frame = pd.DataFrame(list(group))
      out += ['', f'== {section}', frame.to_string(index=False, float_format=_figure)]
  return '\n'.join(out)


def _figure(value: float) -> str:
  return f'{value:.3g}' if abs(value) < 1 else f'{value:,.2f}'


if __name__ == '__main__':
  app.run(main)
