"""Searches the hyper-parameters of a config with Optuna, its trials trained together.

  python scripts/search.py --config configs/search.py --workdir runs/search
  python scripts/search.py --config configs/recipe.py --workdir runs/s --config.search.trials=32

Trials are asked in batches of search.members and trained as the members of one program; at
each rung the pruner stops the worse ones. Running the same command again continues a stopped
search. `--storage` names any database Optuna accepts (several hosts can share one study, each
with its own workdir). All the work is in `rnnjax.search.run_search`; this file reads flags.
"""
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from rnnjax import config_checks
from rnnjax import errors

config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py); override keys '
                                'with --config.section.key=value.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory of the search; running again continues it.')
flags.DEFINE_string('storage', None, 'Database URL of the study (default: sqlite in the '
                    'workdir), e.g. postgresql://user@host/db.')
flags.DEFINE_string('study', None, "The study's name in the storage (default: the workdir's "
                    'folder name).')
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  config = errors.config_or_exit(FLAGS.config)
  errors.exit_on_user_error(lambda: config_checks.validate(config))
  from rnnjax import compile_cache, devices, search, search_report  # pylint: disable=import-outside-toplevel
  compile_cache.enable()
  devices.use_every_cpu_core(config, num_members=config.search.members)
  summary = errors.exit_on_user_error(
      lambda: search.run_search(config, FLAGS.workdir, FLAGS.storage, FLAGS.study))
  for line in search_report.summary_lines(summary):
    print(line, file=sys.stdout)
  errors.exit_now(0)


if __name__ == '__main__':
  app.run(main, flags_parser=errors.parse_flags_or_exit)
