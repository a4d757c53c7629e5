"""Rolling-origin backtest of the forecaster a config file describes: every fold x seed trains
as a member of one compiled program, and each fold is scored against the naive baselines.

  python scripts/backtest.py --config configs/seed_gru.py --workdir runs/bt
  python scripts/backtest.py --config configs/seed_gru.py --workdir runs/bt8 \
      --config.backtest.folds=8 --config.num_seeds=4

Writes backtest.csv (numbers with 6 significant digits; --digits=17 writes every value
exactly), backtest.json, backtest.png and tensorboard/ (see rnnjax.backtest); running the same
command again resumes from the latest checkpoint. All the work is in
`rnnjax.backtest.run_backtest`, tested there; this file only reads flags.
"""
import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from rnnjax import config_checks
from rnnjax import errors

config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py); override keys '
                                'with --config.section.key=value, e.g. '
                                '--config.backtest.folds=8.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints and outputs.')
flags.DEFINE_bool('overwrite', False, 'Replace a run with a different config in --workdir.')
flags.DEFINE_integer('digits', 6, 'Significant digits of each number in backtest.csv (17 writes '
                     'every value exactly).')
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  config = errors.config_or_exit(FLAGS.config)
  errors.exit_on_user_error(lambda: config_checks.validate(config))
  from rnnjax import backtest, backtest_report  # pylint: disable=import-outside-toplevel
  from rnnjax import compile_cache, devices  # pylint: disable=import-outside-toplevel
  from rnnjax import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  compile_cache.enable()
  folds = config.backtest.folds if config.backtest.refit else 1
  devices.use_every_cpu_core(config, folds * config.num_seeds)
  results = errors.exit_on_user_error(
      lambda: backtest.run_backtest(config, FLAGS.workdir, FLAGS.overwrite,
                                    digits=FLAGS.digits))
  print(backtest_report.verdict(results), file=sys.stdout)
  print(json.dumps(workdir_lib.finite_json({k: (None if v is None else round(v, 4))
                                            for k, v in results['mean'].items()})),
        file=sys.stdout)  # last: parse it (null, never NaN, where a score is not finite)
  errors.exit_now(0)


if __name__ == '__main__':
  app.run(main, flags_parser=errors.parse_flags_or_exit)
