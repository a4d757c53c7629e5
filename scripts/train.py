"""Trains (or resumes) the forecaster a config file describes, writing everything to --workdir.

  python scripts/train.py --config configs/seed_gru.py --workdir runs/seed_gru
  python scripts/train.py --config configs/seed_gru.py --workdir runs/s5 --config.num_seeds=5

Running the same command again resumes from the latest checkpoint, and reads its compiled
programs from the persistent compilation cache (rnnjax.compile_cache; RNNJAX_COMPILATION_CACHE=off
turns it off). All the work is in
`rnnjax.run.train_and_evaluate`, tested there; this file only reads flags.
"""
import time

STARTED = time.perf_counter()  # before the imports below, which take seconds

import json  # noqa: E402
import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from rnnjax import config_checks  # noqa: E402
from rnnjax import errors  # noqa: E402

config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py); override keys '
                                'with --config.section.key=value.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints and outputs.')
flags.DEFINE_bool('overwrite', False, 'Replace a run with a different config in --workdir.')
flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() first (one process '
                  'per host). On SLURM, Cloud TPU and other detected clusters it needs nothing '
                  'else; otherwise give the three flags below.')
flags.DEFINE_string('coordinator_address', None, 'host:port of process 0, with --distributed.')
flags.DEFINE_integer('num_processes', None, 'Number of processes, with --distributed.')
flags.DEFINE_integer('process_id', None, 'This process, 0..num_processes-1, with --distributed.')
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  imports_seconds = time.perf_counter() - STARTED
  config = errors.config_or_exit(FLAGS.config)
  # A mistake in the config is reported at once, before the 2 s of importing JAX and the rest.
  errors.exit_on_user_error(lambda: config_checks.validate(config))
  start = time.perf_counter()
  import jax  # pylint: disable=import-outside-toplevel
  from rnnjax import compile_cache, devices, run  # pylint: disable=import-outside-toplevel
  from rnnjax import distribution_metrics  # pylint: disable=import-outside-toplevel
  from rnnjax import metrics as metrics_lib  # pylint: disable=import-outside-toplevel
  from rnnjax import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  imports_seconds += time.perf_counter() - start
  compile_cache.enable()
  if not FLAGS.distributed:
    devices.use_every_cpu_core(config)
  else:
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                               num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  metrics = errors.exit_on_user_error(
      lambda: run.train_and_evaluate(config, FLAGS.workdir, FLAGS.overwrite,
                                     progress=jax.process_index() == 0,
                                     seconds={'imports': imports_seconds}))
  if jax.process_index() == 0:
    # With a test part the verdict is the test part's, which no choice of the run has seen.
    part = 'test' if 'test_rmse' in metrics else 'val'
    base = 'baseline' if part == 'val' else f'{part}_baseline'
    keys = (f'{part}_rmse', f'{part}_mae', f'{base}_persistence_rmse',
            f'{base}_seasonal_naive_rmse', f'{base}_linear_rmse')
    print(metrics_lib.verdict(metrics, part), file=sys.stdout)
    if 'val_crps' in metrics:  # a probabilistic head: its distribution against the naive one
      print(distribution_metrics.distribution_verdict(metrics, part), file=sys.stdout)
      keys += (f'{part}_coverage', f'{part}_interval_width', f'{part}_crps',
               f'{base}_naive_coverage', f'{base}_naive_crps')
    if part == 'test':
      keys += ('val_rmse',)
    keys += ('compile_seconds', 'train_seconds')
    print(json.dumps(workdir_lib.finite_json({k: round(metrics[k], 4) for k in keys})),
          file=sys.stdout)  # last: parse it (null, never NaN, where a score is not finite)
  errors.exit_now(0)


if __name__ == '__main__':
  app.run(main, flags_parser=errors.parse_flags_or_exit)
